"""`POST /images` reads its multipart body as it arrives, into the store's spool
(entrypoints/multipart.py): what it accepts, what it refuses, and that nothing is left behind."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import imagegen
from conftest import local_app_with
from imgpipe.bootstrap import LocalApp
from imgpipe.config import Settings
from imgpipe.entrypoints.local_server import create_local_app

BOUNDARY = "imgpipe-test-boundary"


def body(*parts: tuple[str, str | None, str | None, bytes], boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body: (name, filename or None, content type or None, bytes)."""
    out = b""
    for name, filename, kind, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if kind is not None:
            out += f"Content-Type: {kind}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


HEADERS = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


@pytest.fixture
def small_app(settings: Settings) -> Iterator[LocalApp]:
    """Uploads of at most 200 KB."""
    with local_app_with(settings, limits={"max_bytes": 200_000}) as app:
        yield app


@pytest.fixture
def client(small_app: LocalApp) -> Iterator[TestClient]:
    with TestClient(create_local_app(small_app)) as c:
        yield c


def leftovers(app: LocalApp) -> list[str]:
    """Anything in the store's tmp folder (a spool not cleaned up) or under uploads/."""
    tmp = Path(app.settings.local.data_dir) / ".imgpipe" / "tmp"
    return sorted(os.listdir(tmp)) + [o.key for o in app.objects.list("uploads/")]


def test_the_file_part_is_stored_whole_between_other_fields(
    client: TestClient, small_app: LocalApp
) -> None:
    # GIVEN a photo sent between two other form fields, in small pieces
    photo = imagegen.photo_jpeg(400, 300)
    sent = body(
        ("caption", None, None, b"x" * 70_000),
        ("file", "Ünïcødé photo.jpg", "image/jpeg", photo),
        ("note", None, "text/plain", b"after"),
    )

    def pieces() -> Iterator[bytes]:  # no Content-Length; a boundary may straddle two pieces
        for at in range(0, len(sent), 4093):
            yield sent[at : at + 4093]

    # WHEN it is posted
    response = client.post("/images", content=pieces(), headers=HEADERS)

    # THEN the stored original is the photo, byte for byte, under its own name, and its ETag
    # is its sha256 (hashed as it was written); no spool file is left behind
    assert response.status_code == 202, response.text
    record = response.json()
    assert record["key"].endswith("/Ünïcødé_photo.jpg")  # safe_filename: no spaces
    assert small_app.objects.get(record["key"]) == photo
    info = small_app.objects.head(record["key"])
    assert info is not None and info.etag == hashlib.sha256(photo).hexdigest()
    assert leftovers(small_app) == [record["key"]]


@pytest.mark.parametrize(
    ("sent", "headers", "status", "says"),
    [
        (body(("other", "a.jpg", "image/jpeg", b"\xff\xd8")), HEADERS, 400, "file: Field required"),
        (body(("file", None, None, b"just text")), HEADERS, 400, "not a plain form field"),
        (
            body(("file", "a.jpg", "image/jpeg", b"one"), ("file", "b.jpg", "image/jpeg", b"two")),
            HEADERS,
            400,
            "one 'file' per upload",
        ),
        (b'{"file": "a.jpg"}', {"content-type": "application/json"}, 400, "multipart/form-data"),
        (
            body(("file", "a.jpg", None, b"x")),
            {"content-type": "multipart/form-data"},
            400,
            "boundary",
        ),
        (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n"
            f"--{BOUNDARY}--\r\n".encode(),
            HEADERS,
            400,
            '"name"',
        ),
        (f"--{BOUNDARY}\r\nnot a header line".encode(), HEADERS, 400, "Invalid multipart data"),
        (b"no boundary at all", HEADERS, 400, "Invalid multipart data"),
        (body(("file", "a.jpg", "image/jpeg", b"\xff" * 200_001)), HEADERS, 413, "200000"),
        (body(("file", "a.jpg", "image/jpeg", b"\xff" * 5000))[:-40], HEADERS, 400, "closing"),
    ],
    ids=[
        "no-file-field",
        "file-as-plain-field",
        "two-files",
        "json",
        "no-boundary",
        "part-without-name",
        "broken-headers",
        "garbage",
        "too-large",
        "cut-short",
    ],
)
def test_a_body_that_is_not_one_upload_is_refused_and_leaves_nothing(
    client: TestClient,
    small_app: LocalApp,
    sent: bytes,
    headers: dict[str, str],
    status: int,
    says: str,
) -> None:
    response = client.post("/images", content=sent, headers=headers)

    assert response.status_code == status, response.text
    assert says in response.json()["error"]["message"]
    assert leftovers(small_app) == []


def test_the_openapi_document_still_describes_the_file_field(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/images"]["post"]
    schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["file"]
    assert schema["properties"]["file"]["format"] == "binary"


def test_a_long_file_name_is_shortened_as_post_uploads_shortens_it(
    client: TestClient, small_app: LocalApp
) -> None:
    # GIVEN a 5,000-character file name, in a multipart upload and in a request for an URL
    name = "long" * 1249 + ".jpg"
    sent = body(("file", name, "image/jpeg", imagegen.photo_jpeg(64, 48)))
    uploaded = client.post("/images", content=sent, headers=HEADERS)
    ticket = client.post("/uploads", json={"filename": name, "contentType": "image/jpeg"})
    # THEN both take it and give the stored file the same short name
    assert uploaded.status_code == 202, uploaded.text
    assert ticket.status_code == 201, ticket.text
    stored = uploaded.json()["key"].rsplit("/", 1)[1]
    assert stored == ticket.json()["key"].rsplit("/", 1)[1]
    assert len(stored) == 120 and stored.endswith("long.jpg")


def test_part_headers_past_their_limit_are_a_clear_400(client: TestClient) -> None:
    sent = body(("file", "x" * 20_000 + ".jpg", "image/jpeg", b"\xff\xd8"))
    response = client.post("/images", content=sent, headers=HEADERS)
    assert response.status_code == 400
    assert "header size" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("disposition", "stored"),
    [
        ("filename*=UTF-8''%E5%86%99%E7%9C%9F.jpg", "写真.jpg"),
        ("filename=\"fallback.jpg\"; filename*=UTF-8''%E5%86%99%E7%9C%9F.jpg", "写真.jpg"),
        ("filename*=\"iso-8859-1'fr'caf%E9.jpg\"", "café.jpg"),
    ],
    ids=["only-extended", "extended-wins", "latin-1-quoted"],
)
def test_an_rfc_8187_file_name_is_decoded(
    client: TestClient, small_app: LocalApp, disposition: str, stored: str
) -> None:
    # GIVEN a file part named with `filename*=` (RFC 8187's charset'language'%-encoded bytes)
    sent = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; {disposition}\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + imagegen.photo_jpeg(64, 48)
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    # WHEN it is posted THEN it is stored under the decoded name
    response = client.post("/images", content=sent, headers=HEADERS)
    assert response.status_code == 202, response.text
    assert response.json()["key"].endswith("/" + stored)
