"""Near-duplicates over the real local wiring (data folder, SQLite): duplicateOf and
GET /images/{id}/similar, as a user drives them."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageEnhance

import imagegen
from conftest import drain
from contract.metadata_store_contract import make_record
from imgpipe.adapters.local import sqlite_store
from imgpipe.adapters.local.sqlite_store import SqliteMetadataStore
from imgpipe.bootstrap import LocalApp, build_local
from imgpipe.config import Settings, SimilarityOptions
from imgpipe.engine import InProcessRenderer
from imgpipe.entrypoints.local_server import create_local_app


@pytest.fixture
def client(local_app: LocalApp) -> Iterator[TestClient]:
    with TestClient(create_local_app(local_app)) as c:
        yield c


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def upload(client: TestClient, name: str, data: bytes) -> str:
    response = client.post("/images", files={"file": (name, data, "image/jpeg")})
    assert response.status_code == 202, response.text
    return str(response.json()["imageId"])


def similar(client: TestClient, image_id: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/images/{image_id}/similar", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_same_bytes_near_copies_and_strangers(client: TestClient, local_app: LocalApp) -> None:
    # GIVEN a photo, the same file uploaded again, a smaller re-encode, a cropped and
    # brightened edit, and an unrelated picture
    photo = imagegen.photo_pixels(640, 480)
    original = jpeg(photo)
    first = upload(client, "photo.jpg", original)
    drain(local_app)  # the first one is processed (and uploaded) first
    again = upload(client, "photo-again.jpg", original)
    smaller = upload(client, "small.jpg", jpeg(photo.resize((400, 300)), quality=55))
    edited = ImageEnhance.Brightness(photo.crop((16, 12, 624, 468))).enhance(1.3)
    edit = upload(client, "edit.jpg", jpeg(edited, quality=70))
    stranger = upload(client, "flipped.jpg", jpeg(photo.transpose(Image.Transpose.ROTATE_90)))

    # WHEN they are processed
    drain(local_app)

    # THEN the second copy names the first; nothing else is a duplicate
    records = {i: client.get(f"/images/{i}").json() for i in (first, again, smaller, edit)}
    assert records[again]["duplicateOf"] == first
    assert records[first]["duplicateOf"] is None
    assert records[smaller]["duplicateOf"] is None
    # AND /similar lists the copy (same bytes), the re-encode and the edit, closest first
    body = similar(client, first)
    assert (body["imageId"], body["maxDistance"]) == (first, 6)
    found = [(i["imageId"], i["distance"], i["sameBytes"]) for i in body["items"]]
    assert found[0] == (again, 0, True)
    assert {i for i, _, _ in found} == {again, smaller, edit}
    assert all(not same for i, _, same in found if i != again)
    assert [d for _, d, _ in found] == sorted(d for _, d, _ in found)
    assert 0 < dict((i, d) for i, d, _ in found)[edit] <= 6
    # each item is the record as GET /images/{id} shows it, rendition URLs included
    item = body["items"][0]
    assert item["renditions"] and all(r["url"] for r in item["renditions"])
    assert client.get(item["renditions"][0]["url"]).status_code == 200
    # AND the unrelated one is not similar to any of them, nor they to it
    assert stranger not in {i["imageId"] for i in body["items"]}
    assert similar(client, stranger)["items"] == []
    # seen from the copy, the original is the same bytes
    assert similar(client, again)["items"][0]["imageId"] == first


def test_max_distance_and_limit(client: TestClient, local_app: LocalApp) -> None:
    photo = imagegen.photo_pixels(640, 480)
    first = upload(client, "a.jpg", jpeg(photo))
    copies = [upload(client, f"c{n}.jpg", jpeg(photo)) for n in range(3)]
    edited = ImageEnhance.Brightness(photo.crop((16, 12, 624, 468))).enhance(1.3)
    edit = upload(client, "edit.jpg", jpeg(edited, quality=70))
    drain(local_app)

    exact = similar(client, first, maxDistance=0)
    assert {i["imageId"] for i in exact["items"]} == set(copies)
    assert edit in {i["imageId"] for i in similar(client, first)["items"]}
    assert len(similar(client, first, limit=2)["items"]) == 2
    # beyond the configured distance, or a bad limit: 400
    for params in ({"maxDistance": 7}, {"maxDistance": -1}, {"limit": 0}, {"limit": 101}):
        response = client.get(f"/images/{first}/similar", params=params)
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == "bad_request"


def test_unknown_pending_and_deleted(client: TestClient, local_app: LocalApp) -> None:
    photo = jpeg(imagegen.photo_pixels(320, 240))
    # an unknown image is 404; one not processed yet is 409 not_processed
    assert client.get("/images/" + "A" * 26 + "/similar").status_code == 404
    assert client.get("/images/nope/similar").status_code == 404
    first = upload(client, "a.jpg", photo)
    pending = client.get(f"/images/{first}/similar")
    assert pending.status_code == 409
    assert pending.json()["error"]["code"] == "not_processed"
    drain(local_app)
    second = upload(client, "b.jpg", photo)
    drain(local_app)
    assert client.get(f"/images/{second}").json()["duplicateOf"] == first

    # WHEN the original is deleted
    assert client.delete(f"/images/{first}").status_code == 204

    # THEN it is gone from /similar (the live view), while duplicateOf stays what it was
    assert similar(client, second)["items"] == []
    assert client.get(f"/images/{second}").json()["duplicateOf"] == first
    # a third copy now points at the earliest one left
    third = upload(client, "c.jpg", photo)
    drain(local_app)
    assert client.get(f"/images/{third}").json()["duplicateOf"] == second


def test_a_failed_image_has_nothing_to_compare(client: TestClient, local_app: LocalApp) -> None:
    broken = upload(client, "broken.jpg", imagegen.truncated_jpeg())
    drain(local_app)

    assert client.get(f"/images/{broken}").json()["status"] == "FAILED"
    response = client.get(f"/images/{broken}/similar")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_processed"


def test_the_configured_distance_is_the_default_and_the_cap(settings: Settings) -> None:
    strict = settings.model_copy(update={"similarity": SimilarityOptions(max_distance=0)})
    app = build_local(strict, renderer=InProcessRenderer(), with_workers=False)
    try:
        with TestClient(create_local_app(app)) as c:
            photo = imagegen.photo_pixels(640, 480)
            first = upload(c, "a.jpg", jpeg(photo))
            edited = ImageEnhance.Brightness(photo.crop((16, 12, 624, 468))).enhance(1.3)
            upload(c, "edit.jpg", jpeg(edited, quality=70))
            drain(app)

            assert similar(c, first) == {"imageId": first, "maxDistance": 0, "items": []}
            assert c.get(f"/images/{first}/similar", params={"maxDistance": 1}).status_code == 400
    finally:
        app.stop()


def test_the_route_is_documented(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/images/{image_id}/similar"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"image_id", "maxDistance", "limit"}
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/SimilarImages")
    item = spec["components"]["schemas"]["SimilarImageView"]["properties"]
    assert {"distance", "sameBytes", "renditions", "duplicateOf"} <= set(item)


def test_a_database_made_before_the_indexes_is_indexed_when_opened(tmp_path: Path) -> None:
    # GIVEN a database written by an imgpipe without the near-duplicate indexes
    db = tmp_path / "old.db"
    record = make_record("uploads/a.jpg", sha256="a" * 64, phash="0123456789abcdef", revision=1)
    with sqlite3.connect(db) as conn:
        conn.executescript(sqlite_store._SCHEMA)
        conn.execute(
            "INSERT INTO image_records VALUES (?, ?, ?, ?, 1, ?)",
            (
                record.image_id,
                record.key,
                "PROCESSED",
                record.uploaded_at,
                record.model_dump_json(by_alias=True),
            ),
        )
    conn.close()

    # WHEN this version opens it THEN the old record is found through the new indexes
    with SqliteMetadataStore(db) as store:
        assert store.with_sha256("a" * 64, 5) == [record.image_id]
        assert [h.image_id for h in store.near_phash("0123456789abcdee", 6, 5)] == [record.image_id]
