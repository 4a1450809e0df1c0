"""An upload is one unit: accepted (and it ends PROCESSED or FAILED) or refused with nothing left
behind; a retry with the same Idempotency-Key gets the first answer, not a second image; a
signed upload URL is good for one upload of the size it was signed for. Over the real local
wiring (data folder, SQLite locked by another connection), in-process.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

import imagegen
from conftest import drain, local_app_with, wire
from fakes import InMemoryJobQueue, InMemoryMetadataStore, InMemoryObjectStore
from imgpipe.bootstrap import LocalApp
from imgpipe.config import Settings
from imgpipe.core.errors import StoreUnavailableError
from imgpipe.core.keys import idempotent_prefix
from imgpipe.core.model import ImageRecord, Status
from imgpipe.entrypoints.local_server import create_local_app

JPEG = imagegen.photo_jpeg(320, 240)


@pytest.fixture
def app(settings: Settings) -> Iterator[LocalApp]:
    # a write waits at most 0.2 s for a locked database, so a lock is a quick 503
    with local_app_with(settings, local={"busy_timeout_s": 0.2}) as built:
        yield built


@pytest.fixture
def client(app: LocalApp) -> Iterator[TestClient]:
    with TestClient(create_local_app(app)) as c:
        yield c


@contextmanager
def locked(db: Path) -> Iterator[None]:
    """Another connection holding the database's write lock (`sqlite3` `BEGIN EXCLUSIVE`)."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=10)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def post_image(client: TestClient, name: str = "a.jpg", key: str | None = None) -> object:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/images", files={"file": (name, JPEG, "image/jpeg")}, headers=headers)


def originals(app: LocalApp) -> list[str]:
    return [info.key for info in app.objects.list("uploads/")]


def records(app: LocalApp) -> list[ImageRecord]:
    return app.records.list(None, 100, None).items


# -- refused with nothing left behind -----------------------------------------------------------


def test_an_upload_answered_503_leaves_nothing_a_restart_would_process(
    app: LocalApp, client: TestClient
) -> None:
    # GIVEN a database locked by another process
    with locked(app.records.db_path):
        # WHEN an image is uploaded THEN 503 with Retry-After
        refused = post_image(client)
        assert refused.status_code == 503, refused.text  # type: ignore[attr-defined]
        assert refused.headers["retry-after"]  # type: ignore[attr-defined]

    # THEN nothing is left: no original, no record, and the backfill of the next start (and
    # any job that got queued) makes no image of it
    assert originals(app) == []
    assert app.service.maintenance.backfill() == 0
    drain(app)
    assert records(app) == []
    assert list((app.objects.root / ".imgpipe" / "tmp").iterdir()) == []


def test_an_upload_whose_record_cannot_be_written_is_withdrawn_and_its_job_does_nothing(
    settings: Settings,
) -> None:
    # GIVEN a service whose record store fails after the job was queued
    class FailingRecords(InMemoryMetadataStore):
        def put(self, record: ImageRecord, expected_revision: int | None) -> ImageRecord | None:
            raise StoreUnavailableError("the table is throttled")

    objects, queue = InMemoryObjectStore(), InMemoryJobQueue()
    failing = wire(settings, objects=objects, records=FailingRecords(), queue=queue).service
    # WHEN an image is uploaded THEN the error is raised and the original is gone again
    with pytest.raises(StoreUnavailableError):
        failing.ingest.upload("a.jpg", JPEG, "image/jpeg")
    assert list(objects.list("uploads/")) == []
    # ... and the job it queued, run by a healthy worker, creates no record
    records_now = InMemoryMetadataStore()
    healthy = wire(settings, objects=objects, records=records_now, queue=queue)
    assert drain(healthy) == 1
    assert records_now.list(None, 10, None).items == []


# -- Idempotency-Key ------------------------------------------------------------------------------


def test_a_retry_with_the_same_idempotency_key_returns_the_first_upload(
    app: LocalApp, client: TestClient
) -> None:
    first = post_image(client, key="3f1c9a6e-retry-1")
    assert first.status_code == 202  # type: ignore[attr-defined]
    drain(app)
    # WHEN the client retries (its first answer timed out, say)
    again = post_image(client, key="3f1c9a6e-retry-1")
    # THEN the same image, as it is now, and nothing stored twice
    assert again.status_code == 202  # type: ignore[attr-defined]
    assert again.json()["imageId"] == first.json()["imageId"]  # type: ignore[attr-defined]
    assert again.json()["status"] == "PROCESSED"  # type: ignore[attr-defined]
    assert len(originals(app)) == 1 and len(records(app)) == 1
    # AND another key is another upload
    assert post_image(client, key="another").json()["imageId"] != first.json()["imageId"]  # type: ignore[attr-defined]


def test_a_retry_after_a_503_makes_one_image(app: LocalApp, client: TestClient) -> None:
    with locked(app.records.db_path):
        assert post_image(client, key="k-503").status_code == 503  # type: ignore[attr-defined]
    retried = post_image(client, key="k-503")
    assert retried.status_code == 202  # type: ignore[attr-defined]
    drain(app)
    assert [r.status for r in records(app)] == [Status.PROCESSED]
    assert len(originals(app)) == 1


def test_an_idempotency_key_reused_for_another_file_is_refused(
    app: LocalApp, client: TestClient
) -> None:
    assert post_image(client, "a.jpg", key="k-1").status_code == 202  # type: ignore[attr-defined]
    other = post_image(client, "b.jpg", key="k-1")
    assert other.status_code == 422  # type: ignore[attr-defined]
    assert other.json()["error"]["code"] == "idempotency_key_reused"  # type: ignore[attr-defined]
    assert len(originals(app)) == 1


def test_a_retry_while_the_first_is_still_being_stored_is_told_to_wait(
    app: LocalApp, client: TestClient
) -> None:
    # GIVEN the first attempt's original stored, its record not yet written
    prefix = idempotent_prefix(app.signing_key, "", "images", "k-busy")
    app.objects.put(prefix + "a.jpg", JPEG, "image/jpeg")
    # WHEN the client retries THEN 409, and the first attempt is left to finish
    busy = post_image(client, key="k-busy")
    assert busy.status_code == 409  # type: ignore[attr-defined]
    assert busy.json()["error"]["code"] == "request_in_progress"  # type: ignore[attr-defined]
    assert records(app) == []


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "tab\there"])
def test_a_malformed_idempotency_key_is_a_400(client: TestClient, key: str) -> None:
    response = client.post(
        "/images",
        files={"file": ("a.jpg", JPEG, "image/jpeg")},
        headers={"Idempotency-Key": key.encode("utf-8")},  # type: ignore[dict-item]
    )
    assert response.status_code == 400, response.text


def test_presigning_twice_with_one_idempotency_key_names_one_upload(client: TestClient) -> None:
    body = {"filename": "a.jpg", "contentType": "image/jpeg"}
    first = client.post("/uploads", json=body, headers={"Idempotency-Key": "p-1"}).json()
    again = client.post("/uploads", json=body, headers={"Idempotency-Key": "p-1"}).json()
    assert (again["imageId"], again["key"]) == (first["imageId"], first["key"])
    other = client.post("/uploads", json=body, headers={"Idempotency-Key": "p-2"}).json()
    assert other["key"] != first["key"]


# -- signed upload URLs: once, of the declared size ----------------------------------------------


def presign(client: TestClient, size: int | None = None) -> tuple[str, dict[str, str]]:
    body: dict[str, object] = {"filename": "a.jpg", "contentType": "image/jpeg"}
    if size is not None:
        body["size"] = size
    ticket = client.post("/uploads", json=body).json()
    url = urlsplit(ticket["uploadUrl"])
    return f"{url.path}?{url.query}", ticket["headers"]


def test_a_signed_upload_url_is_good_for_one_upload(app: LocalApp, client: TestClient) -> None:
    target, headers = presign(client)
    assert client.put(target, content=JPEG, headers=headers).status_code == 201
    # WHEN the same URL is used again THEN 409, and the first upload stands
    again = client.put(target, content=imagegen.photo_jpeg(64, 48), headers=headers)
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "already_uploaded"
    assert app.objects.get(originals(app)[0]) == JPEG
    assert len(records(app)) == 1


def test_a_signed_upload_url_is_bound_to_the_declared_size(
    app: LocalApp, client: TestClient
) -> None:
    target, headers = presign(client, size=len(JPEG))
    # a body of another length is refused: longer 413, shorter 400; nothing is kept
    assert client.put(target, content=JPEG + b"\0", headers=headers).status_code == 413
    assert client.put(target, content=JPEG[:-1], headers=headers).status_code == 400

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield JPEG[:1000]
        yield JPEG[1000:-1]

    assert client.put(target, content=chunks(), headers=headers).status_code == 400
    assert originals(app) == []
    # a URL whose size was altered is not ours
    assert (
        client.put(
            target.replace(f"size={len(JPEG)}", f"size={len(JPEG) + 1}"),
            content=JPEG + b"\0",
            headers=headers,
        ).status_code
        == 401
    )
    # the declared size itself is accepted
    assert client.put(target, content=JPEG, headers=headers).status_code == 201
    assert len(originals(app)) == 1
