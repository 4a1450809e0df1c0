"""POST /images/{id}/transform-url over the real local wiring: the signed /img path the
dashboard's URL builder shows, checked with the core's own parser (what the /img route runs)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

import imagegen
from conftest import drain, local_app_with
from imgpipe.config import Settings
from imgpipe.core.errors import ForbiddenError
from imgpipe.core.img_url import ImgUrl, parse_img_path
from imgpipe.core.transform import Gravity, Transform
from imgpipe.entrypoints.local_server import create_local_app

KEY, SALT = "6b6579", "73616c74"  # "key", "salt"
OTHER_KEY, OTHER_SALT = "6f74686572", "706570706572"
FIRST_PAIR = [(bytes.fromhex(KEY), bytes.fromhex(SALT))]
SECOND_PAIR = [(bytes.fromhex(OTHER_KEY), bytes.fromhex(OTHER_SALT))]
SIGNED = {"key": [KEY, OTHER_KEY], "salt": [SALT, OTHER_SALT]}


@contextmanager
def serving(settings: Settings, **sections: dict[str, Any]) -> Iterator[TestClient]:
    with local_app_with(settings, **sections) as app, TestClient(create_local_app(app)) as c:
        yield c


def upload(client: TestClient, headers: dict[str, str] | None = None) -> str:
    response = client.post(
        "/images",
        headers=headers or {},
        files={"file": ("photo.jpg", imagegen.photo_jpeg(640, 480), "image/jpeg")},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["imageId"])


def parsed(path: str, keys: list[tuple[bytes, bytes]], *, unsafe: bool = False) -> ImgUrl:
    assert path.startswith("/img/")
    return parse_img_path(path.removeprefix("/img"), keys=keys, unsafe=unsafe, presets={})


def test_the_signed_path_verifies_and_means_what_was_chosen(settings: Settings) -> None:
    # GIVEN a server with two key pairs (a rotation under way) and an image
    with serving(settings, transform=SIGNED) as client:
        image_id = upload(client)
        # WHEN the URL builder asks for 400x300 filled at the smart crop, WebP at q 80, dpr 2
        choice = {"width": 400, "height": 300, "fit": "fill", "gravity": "sm"}
        choice |= {"format": "webp", "quality": 80, "dpr": 2}
        response = client.post(f"/images/{image_id}/transform-url", json=choice)

    # THEN the path is the one a person writes, signed with the first pair
    assert response.status_code == 200, response.text
    body = response.json()
    path = body["path"]
    signature = path.split("/")[2]
    assert path == f"/img/{signature}/rs:fill:400:300/g:sm/dpr:2/f:webp/q:80/plain/{image_id}"
    assert body["url"] == "http://testserver" + path
    assert body["signed"] is True
    # AND the core's parser, as the /img route runs it, reads back the same choice
    url = parsed(path, FIRST_PAIR)
    assert url.source == image_id
    assert url.format == "webp"
    assert url.transform == Transform(
        resizing_type="fill", width=400, height=300, gravity=Gravity("sm"), quality=80, dpr=2.0
    )
    # AND the second pair did not sign it (the first configured pair signs)
    with pytest.raises(ForbiddenError):
        parsed(path, SECOND_PAIR)


def test_the_img_route_serves_what_the_signed_path_asks_for(settings: Settings) -> None:
    # GIVEN a processed photo on a server with a key
    with local_app_with(settings, transform=SIGNED) as app, TestClient(create_local_app(app)) as c:
        image_id = upload(c)
        drain(app)
        # WHEN the URL builder's 200x200 smart fill as WebP is fetched from /img
        choice = {"width": 200, "height": 200, "fit": "fill", "gravity": "sm", "format": "webp"}
        path = c.post(f"/images/{image_id}/transform-url", json=choice).json()["path"]
        result = c.get(path)
    # THEN the route takes the signature and answers that image
    assert result.status_code == 200, result.text
    assert result.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(result.content)) as image:
        assert (image.format, image.size) == ("WEBP", (200, 200))


def test_defaults_leave_the_format_to_the_route(settings: Settings) -> None:
    with serving(settings, transform=SIGNED) as client:
        image_id = upload(client)
        body = client.post(f"/images/{image_id}/transform-url", json={}).json()
        width_only = client.post(f"/images/{image_id}/transform-url", json={"width": 320}).json()
    assert body["path"].endswith(f"/plain/{image_id}") and body["path"].count("/") == 4
    url = parsed(body["path"], FIRST_PAIR)
    assert (url.transform, url.format) == (Transform(), None)
    assert width_only["path"].endswith(f"/rs:fit:320:0/plain/{image_id}")
    assert parsed(width_only["path"], FIRST_PAIR).transform == Transform(width=320)


def test_unsafe_mode_only_on_loopback_without_a_token(settings: Settings) -> None:
    # GIVEN no key, on loopback, no token: imgproxy's unsafe mode
    with serving(settings) as client:
        image_id = upload(client)
        body = client.post(
            f"/images/{image_id}/transform-url", json={"width": 200, "format": "png"}
        ).json()
    # THEN the path says "insecure" where the signature goes, which only unsafe mode takes
    assert body["path"] == f"/img/insecure/rs:fit:200:0/f:png/plain/{image_id}"
    assert body["signed"] is False
    assert parsed(body["path"], [], unsafe=True).source == image_id
    with pytest.raises(ForbiddenError):
        parsed(body["path"], FIRST_PAIR)


@pytest.mark.parametrize(
    "server", [{"api_token": "s3cret"}, {"host": "0.0.0.0"}], ids=["token", "off-loopback"]
)
def test_no_key_and_no_unsafe_mode_is_a_403_naming_the_key(
    settings: Settings, server: dict[str, Any]
) -> None:
    # GIVEN no key, and a token or an address off loopback: unsigned URLs are refused
    auth = {"Authorization": "Bearer s3cret"}
    with serving(settings, server=server) as client:
        image_id = upload(client, auth)
        # WHEN the dashboard asks for a URL
        response = client.post(f"/images/{image_id}/transform-url", headers=auth, json={})
    # THEN it is told that a key must be configured, and given nothing unsigned
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "signing_key_required"
    assert "no signing key is configured (transform.key, transform.salt)" in error["message"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"width": -1}, "width"),
        ({"width": "wide"}, "width"),
        ({"width": 10**30}, "width"),
        ({"fit": "cover"}, "fit"),
        ({"gravity": "fp"}, "gravity"),
        ({"format": "gif"}, "format"),
        ({"quality": 101}, "quality"),
        ({"dpr": 0}, "dpr"),
        ({"watermark": "yes"}, "watermark"),
        ({"dpr": 5}, "dpr 5 is over the limit"),
        ({"width": 9000}, "9000x? px; the limit is 8192x8192"),
        ({"width": 5000, "height": 5000, "dpr": 1.5}, "7500x7500"),
        ([1, 2], "valid dictionary"),
    ],
)
def test_bad_choices_are_a_400_naming_them(settings: Settings, body: Any, named: str) -> None:
    with serving(settings, transform=SIGNED) as client:
        image_id = upload(client)
        response = client.post(f"/images/{image_id}/transform-url", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert named in error["message"]


def test_a_body_that_is_not_json_is_a_400(settings: Settings) -> None:
    with serving(settings, transform=SIGNED) as client:
        image_id = upload(client)
        response = client.post(
            f"/images/{image_id}/transform-url",
            content=b"width=200",
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("image_id", ["a" * 26, "not-an-image", "22he4rnxsxou2ppyh2o74w4zw1"])
def test_an_unknown_image_is_a_404(settings: Settings, image_id: str) -> None:
    with serving(settings, transform=SIGNED) as client:
        response = client.post(f"/images/{image_id}/transform-url", json={"width": 100})
    # the image is what is not found (not the route): no URL is signed for it
    assert response.status_code == 404
    assert response.json()["error"] == {"code": "not_found", "message": f"no image {image_id}"}


def test_the_token_is_wanted_when_one_is_set(settings: Settings) -> None:
    auth = {"Authorization": "Bearer s3cret"}
    with serving(settings, transform=SIGNED, server={"api_token": "s3cret"}) as client:
        image_id = upload(client, auth)
        route = f"/images/{image_id}/transform-url"
        assert client.post(route, json={"width": 100}).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        refused = client.post(route, headers=wrong, json={"width": 100})
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthorized")
        allowed = client.post(route, headers=auth, json={"width": 100})
    assert allowed.status_code == 200
    assert parsed(allowed.json()["path"], FIRST_PAIR).transform.width == 100
