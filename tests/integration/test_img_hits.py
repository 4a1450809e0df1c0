"""GET /img/... answered from memory (service.hits, entrypoints/api/img_hits.py) over the real
local wiring: the same bytes and headers as the stored result, the Accept variant kept apart,
304 and HEAD, and never a result of a record that changed since (the stamp check)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from test_derived_cache import derived_files, size_of, upload

import imagegen
from imgpipe.bootstrap import LocalApp
from imgpipe.entrypoints.local_server import create_local_app

HEADERS = ("etag", "cache-control", "content-type", "content-length", "vary")


@pytest.fixture
def client(local_app: LocalApp) -> Iterator[TestClient]:
    with TestClient(create_local_app(local_app)) as c:
        yield c


def test_a_hit_from_memory_is_the_stored_result(client: TestClient, local_app: LocalApp) -> None:
    image_id, _ = upload(client, local_app, imagegen.photo_jpeg(640, 480))
    path = f"/img/_/w:200/plain/{image_id}@webp"
    first = client.get(path)
    assert len(local_app.service.delivery.memory) == 1
    # WHEN the stored file goes behind the cache's back, the answer comes from memory
    (stored,) = derived_files(local_app)
    on_disk = stored.read_bytes()
    stored.unlink()
    second = client.get(path)
    assert second.status_code == 200
    assert second.content == first.content == on_disk
    assert [second.headers.get(h) for h in HEADERS] == [first.headers.get(h) for h in HEADERS]
    assert second.headers["content-length"] == str(len(on_disk))


def test_304_and_head_from_memory(client: TestClient, local_app: LocalApp) -> None:
    image_id, _ = upload(client, local_app, imagegen.photo_jpeg(640, 480))
    path = f"/img/_/w:120/plain/{image_id}@jpg"
    first = client.get(path)
    again = client.get(path, headers={"if-none-match": f'W/{first.headers["etag"]}, "x"'})
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == first.headers["etag"]
    head = client.head(path)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(first.content))


def test_each_accept_variant_is_its_own_hit(client: TestClient, local_app: LocalApp) -> None:
    image_id, _ = upload(client, local_app, imagegen.photo_jpeg(640, 480))
    path = f"/img/_/w:100/plain/{image_id}"
    webp = client.get(path, headers={"accept": "image/webp,*/*"})
    for _ in range(2):  # the second of each from memory
        jpeg = client.get(path, headers={"accept": "*/*"})
        assert jpeg.headers["content-type"] == "image/jpeg"
        assert jpeg.headers["vary"] == "Accept"
        again = client.get(path, headers={"accept": "image/webp,*/*"})
        assert again.content == webp.content
        assert again.headers["content-type"] == "image/webp"


def test_a_record_written_since_is_not_answered_from_memory(
    client: TestClient, local_app: LocalApp
) -> None:
    image_id, key = upload(client, local_app, imagegen.photo_jpeg(640, 480))
    path = f"/img/_/w:100/plain/{image_id}@jpg"
    assert size_of(client.get(path).content) == (100, 75)
    assert size_of(client.get(path).content) == (100, 75)  # from memory
    # WHEN a new version is processed: the new image, not the remembered one
    local_app.objects.put(key, imagegen.photo_jpeg(300, 600), "image/jpeg")
    assert client.post("/process-image", json={"key": key}).status_code == 200
    assert size_of(client.get(path).content) == (100, 200)
    assert size_of(client.get(path).content) == (100, 200)
    # WHEN it is deleted, and uploaded again as another photo under the same key
    assert client.delete(f"/images/{image_id}").status_code == 204
    assert client.get(path).status_code == 404
    local_app.objects.put(key, imagegen.photo_jpeg(400, 100), "image/jpeg")
    made = client.post("/process-image", json={"key": key})
    assert made.status_code == 200, made.text
    assert size_of(client.get(path).content) == (100, 25)
