"""GET /img/...: on-request results over the real local wiring (data folder, SQLite,
rendering in-process), as a client sees them: formats by magic bytes and decoded sizes, the
cache headers, 304, and every refusal as its 4xx JSON error."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image

import imagegen
from conftest import drain, local_app_with
from imgpipe.bootstrap import LocalApp
from imgpipe.config import Settings
from imgpipe.core.img_url import sign_img_path
from imgpipe.entrypoints.local_server import create_local_app

KEY, SALT = "943b421c9eb07c830af81030552c86009268de4e", "520f986b998545b4785e0defbc4f3c12"
AVIF_FIRST = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"  # Chrome


@pytest.fixture
def client(local_app: LocalApp) -> Iterator[TestClient]:
    with TestClient(create_local_app(local_app)) as c:
        yield c


def upload(client: TestClient, app: LocalApp, data: bytes, name: str = "photo.jpg") -> str:
    response = client.post("/images", files={"file": (name, data, "application/octet-stream")})
    assert response.status_code == 202, response.text
    drain(app)
    return str(response.json()["imageId"])


def decoded(content: bytes) -> tuple[str, tuple[int, int]]:
    with Image.open(io.BytesIO(content)) as im:
        return str(im.format), im.size


def error(response: object) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("accept", "content_type", "pil_format"),
    [
        (AVIF_FIRST, "image/avif", "AVIF"),
        ("image/webp,*/*", "image/webp", "WEBP"),
        ("*/*", "image/jpeg", "JPEG"),
        (None, "image/jpeg", "JPEG"),
    ],
)
def test_format_follows_accept_by_magic_bytes(
    client: TestClient, local_app: LocalApp, accept: str | None, content_type: str, pil_format: str
) -> None:
    image_id = upload(client, local_app, imagegen.photo_jpeg(800, 600))
    headers = {"accept": accept} if accept is not None else {}
    got = client.get(f"/img/insecure/rs:fill:300:200/plain/{image_id}", headers=headers)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == content_type
    assert got.headers["vary"] == "Accept"
    assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert int(got.headers["content-length"]) == len(got.content)
    assert decoded(got.content) == (pil_format, (300, 200))


def test_png_for_transparency_where_no_modern_format_is_taken(
    client: TestClient, local_app: LocalApp
) -> None:
    image_id = upload(client, local_app, imagegen.rgba_png(400, 300), "logo.png")
    got = client.get(f"/img/_/w:200/plain/{image_id}", headers={"accept": "*/*"})
    assert got.headers["content-type"] == "image/png"
    assert decoded(got.content) == ("PNG", (200, 150))
    webp = client.get(f"/img/_/w:200/plain/{image_id}", headers={"accept": "image/webp"})
    assert decoded(webp.content)[0] == "WEBP"


def test_a_named_format_is_not_negotiated(client: TestClient, local_app: LocalApp) -> None:
    image_id = upload(client, local_app, imagegen.photo_jpeg(640, 480))
    source = base64.urlsafe_b64encode(image_id.encode()).decode().rstrip("=")
    got = client.get(f"/img/_/w:320/{source}.webp", headers={"accept": AVIF_FIRST})
    assert decoded(got.content) == ("WEBP", (320, 240))
    assert "vary" not in got.headers


def test_source_by_original_key(client: TestClient, local_app: LocalApp) -> None:
    image_id = upload(client, local_app, imagegen.photo_jpeg(640, 480))
    key = client.get(f"/images/{image_id}").json()["key"]
    for source in (key, "local:///" + key):
        got = client.get(f"/img/_/w:100/plain/{source}@jpg")
        assert decoded(got.content) == ("JPEG", (100, 75))


def test_etag_and_304(client: TestClient, local_app: LocalApp) -> None:
    image_id = upload(client, local_app, imagegen.photo_jpeg(640, 480))
    path = f"/img/_/w:100/plain/{image_id}@webp"
    first = client.get(path)
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    again = client.get(path, headers={"if-none-match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other = client.get(path, headers={"if-none-match": '"something-else"'})
    assert other.status_code == 200 and other.content == first.content


def test_signed_urls_with_rotated_keys(tmp_path: object, settings: Settings) -> None:
    new_key, new_salt = "aa" * 32, "bb" * 16
    keys = {"key": [new_key, KEY], "salt": [new_salt, SALT]}
    with local_app_with(settings, transform=keys) as app, TestClient(create_local_app(app)) as c:
        image_id = upload(c, app, imagegen.photo_jpeg(640, 480))
        path = f"/w:64/plain/{image_id}@jpg"
        for key, salt in ((new_key, new_salt), (KEY, SALT)):
            signed = sign_img_path(path, bytes.fromhex(key), bytes.fromhex(salt))
            got = c.get("/img" + signed)
            assert decoded(got.content) == ("JPEG", (64, 48)), got.text
        # With a key set, unsigned URLs are refused even on loopback.
        assert error(c.get(f"/img/insecure{path}")) == (403, "bad_signature")
        tampered = sign_img_path(path, bytes.fromhex(KEY), bytes.fromhex(SALT)).replace(
            "w:64", "w:65"
        )
        assert error(c.get("/img" + tampered)) == (403, "bad_signature")


def test_refusals_are_json_errors(client: TestClient, local_app: LocalApp) -> None:
    image_id = upload(client, local_app, imagegen.photo_jpeg(640, 480))
    assert error(client.get(f"/img/wrongsig/w:10/plain/{image_id}")) == (403, "bad_signature")
    assert error(client.get(f"/img/_/w:10/plain/{'a' * 26}")) == (404, "not_found")
    for source in (
        "http://example.com/cat.jpg",
        "/etc/passwd",
        "uploads/..%2F.imgpipe%2Fimgpipe.db",
        "uploads/%2E%2E/%2E%2E/etc/passwd",
        "local:///etc/passwd",
        "renditions/" + image_id + "/thumb.jpg",
    ):
        assert error(client.get(f"/img/_/w:10/plain/{source}")) == (404, "not_found"), source
        encoded = base64.urlsafe_b64encode(source.encode()).decode().rstrip("=")
        assert error(client.get(f"/img/_/w:10/{encoded}")) == (404, "not_found"), source
    assert error(client.get(f"/img/_/nope:1/plain/{image_id}"))[0] == 400
    bad = client.get(f"/img/_/rt:cover/plain/{image_id}").json()["error"]["message"]
    assert "rt" in bad and "cover" in bad
    assert error(client.get("/img/_/w:10"))[0] == 400
    assert error(client.get(f"/img/_/w:9000/el:1/plain/{image_id}"))[0] == 400
    assert error(client.get(f"/img/_/dpr:9/plain/{image_id}"))[0] == 400


def test_a_failed_image_is_422_with_its_error_code(client: TestClient, local_app: LocalApp) -> None:
    image_id = upload(client, local_app, b"%PDF-1.4 not an image", "doc.jpg")
    record = client.get(f"/images/{image_id}").json()
    assert record["status"] == "FAILED"
    assert error(client.get(f"/img/_/w:10/plain/{image_id}")) == (422, record["error"]["code"])


def test_a_rendition_without_extension_is_negotiated(
    client: TestClient, local_app: LocalApp
) -> None:
    image_id = upload(client, local_app, imagegen.photo_jpeg(640, 480))
    formats = {r["format"] for r in client.get(f"/images/{image_id}").json()["renditions"]}
    assert formats == {"jpeg", "webp"}  # the default presets
    path = f"/images/{image_id}/renditions/thumb"
    chrome = client.get(path, headers={"accept": AVIF_FIRST})
    assert (chrome.status_code, chrome.headers["content-type"]) == (200, "image/webp")
    assert chrome.headers["vary"] == "Accept"
    assert decoded(chrome.content) == ("WEBP", (256, 192))
    old = client.get(path, headers={"accept": "image/png, image/svg+xml, image/*; q=0.8"})
    assert decoded(old.content) == ("JPEG", (256, 192))
    named = client.get(f"{path}.jpg", headers={"accept": AVIF_FIRST})
    assert decoded(named.content)[0] == "JPEG" and "vary" not in named.headers
    assert error(client.get(f"/images/{image_id}/renditions/huge")) == (404, "not_found")


def test_an_image_not_processed_yet_is_409(client: TestClient) -> None:
    photo = imagegen.photo_jpeg(320, 240)
    response = client.post("/images", files={"file": ("photo.jpg", photo, "image/jpeg")})
    image_id = response.json()["imageId"]  # queued, not processed: nothing drains the queue
    assert error(client.get(f"/img/_/w:10/plain/{image_id}")) == (409, "not_processed")


def test_signed_path_makes_urls_the_route_takes(settings: Settings) -> None:
    with local_app_with(settings) as app, TestClient(create_local_app(app)) as c:
        image_id = upload(c, app, imagegen.photo_jpeg(640, 480))
        unsigned = app.service.delivery.signed_path(f"/w:32/plain/{image_id}@jpg")
        assert unsigned.startswith("/insecure/")  # no key, loopback, no token
        assert decoded(c.get("/img" + unsigned).content) == ("JPEG", (32, 24))
    keys = {"key": ["aa" * 32, KEY], "salt": ["bb" * 16, SALT]}
    with local_app_with(settings, transform=keys) as app, TestClient(create_local_app(app)) as c:
        image_id = upload(c, app, imagegen.photo_jpeg(640, 480))
        path = f"/w:32/plain/{image_id}@jpg"
        signed = app.service.delivery.signed_path(path)
        # signed with the first pair
        assert signed == sign_img_path(path, b"\xaa" * 32, b"\xbb" * 16)
        assert decoded(c.get("/img" + signed).content) == ("JPEG", (32, 24))
    with local_app_with(settings, server={"api_token": "t" * 32}) as app:
        with pytest.raises(Exception, match="no signing key") as caught:
            app.service.delivery.signed_path("/w:32/plain/x")
        assert getattr(caught.value, "status", None) == 403


def test_format_best_keeps_the_smallest_the_client_takes(
    client: TestClient, local_app: LocalApp
) -> None:
    image_id = upload(client, local_app, imagegen.photo_jpeg(640, 480))
    magic = {"image/avif": b"ftypavif", "image/webp": b"WEBP", "image/jpeg": b"\xff\xd8\xff"}
    for accept, allowed in ((AVIF_FIRST, set(magic)), ("*/*", {"image/jpeg"})):
        for _ in range(2):  # a miss, then a hit of the same entry
            got = client.get(f"/img/_/w:200/f:best/plain/{image_id}", headers={"accept": accept})
            assert got.status_code == 200 and got.headers["vary"] == "Accept"
            assert got.headers["content-type"] in allowed
            assert magic[got.headers["content-type"]] in got.content[:12]
