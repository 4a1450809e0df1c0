"""End to end: URLs written by imgproxy's own npm builder (@imgproxy/imgproxy-node) answered
by a live `imgpipe serve` with a signing key: the decoded result's format (by magic bytes)
and size are what the URL asks for; the format follows Accept where the URL names none;
identical requests at once render once, counted by the server's own metric."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

import imagegen
from imgpipe.core.img_url import sign_img_path
from imgproxy_node import KEY, SALT, build, install_builder
from liveserver import Server, start_server, stop, upload_multipart, wait_terminal

CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
MAGIC = {
    "jpeg": lambda b: b[:3] == b"\xff\xd8\xff",
    "png": lambda b: b[:8] == b"\x89PNG\r\n\x1a\n",
    "webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    "avif": lambda b: b[4:12] in (b"ftypavif", b"ftypavis"),
}


@pytest.fixture(scope="module")
def builder() -> Path:
    return install_builder()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("img")
    env = {"IMGPIPE_TRANSFORM__KEY": f"{'ab' * 32},{KEY}", "IMGPIPE_TRANSFORM__SALT": f"cd,{SALT}"}
    s = start_server(folder / "data", folder / "serve.log", env=env)
    yield s
    stop(s)


@pytest.fixture(scope="module")
def images(server: Server) -> dict[str, dict[str, Any]]:
    """A 800x600 photo and a 400x300 PNG with transparency, processed."""
    with server.client() as client:
        ids = {
            "photo": upload_multipart(
                client, "photo.jpg", imagegen.photo_jpeg(800, 600), "image/jpeg"
            ),
            "logo": upload_multipart(client, "logo.png", imagegen.rgba_png(400, 300), "image/png"),
        }
        records = wait_terminal(client, list(ids.values()))
    return {name: records[image_id] for name, image_id in ids.items()}


def fetch(server: Server, path: str, accept: str = "*/*") -> httpx.Response:
    return httpx.get(server.url + "/img" + path, headers={"accept": accept}, timeout=60)


def decoded(response: httpx.Response) -> tuple[str, tuple[int, int]]:
    assert response.status_code == 200, response.text
    fmt = next(name for name, test in MAGIC.items() if test(response.content))
    assert response.headers["content-type"] == f"image/{fmt}"
    with Image.open(io.BytesIO(response.content)) as im:
        return fmt, im.size


@pytest.mark.slow
def test_the_builders_urls_are_answered_as_they_ask(
    builder: Path, server: Server, images: dict[str, dict[str, Any]]
) -> None:
    photo, logo = images["photo"], images["logo"]
    plain_key = {"value": photo["key"], "displayAs": "plain"}
    cases: list[tuple[str | dict[str, str], dict[str, Any], str, tuple[str, tuple[int, int]]]] = [
        (photo["imageId"], {"resize": {"resizing_type": "fill", "width": 300, "height": 200}},
         CHROME, ("avif", (300, 200))),
        (photo["imageId"], {"width": 150, "format": "webp"}, CHROME, ("webp", (150, 113))),
        (photo["imageId"], {"preset": ["thumb"], "format": "jpg"}, "*/*", ("jpeg", (256, 192))),
        (photo["imageId"], {"resize": {"width": 100, "height": 100}, "dpr": 2}, "image/webp",
         ("webp", (200, 150))),
        (photo["imageId"], {"crop": {"width": 0.5, "height": 0.5}, "width": 100, "format": "png"},
         CHROME, ("png", (100, 75))),
        (plain_key, {"height": 60}, "*/*", ("jpeg", (80, 60))),
        (logo["imageId"], {"width": 200}, "*/*", ("png", (200, 150))),
        (logo["imageId"], {"resize": {"resizing_type": "force", "width": 50, "height": 50}},
         CHROME, ("avif", (50, 50))),
    ]  # fmt: skip
    paths = build(
        builder,
        [
            {"url": source, "options": options, "key": KEY, "salt": SALT}
            for source, options, *_ in cases
        ],
    )
    for path, (_, options, accept, expected) in zip(paths, cases, strict=True):
        assert decoded(fetch(server, path, accept)) == expected, options


@pytest.mark.slow
def test_unsigned_and_wrongly_signed_builder_urls_are_403(
    builder: Path, server: Server, images: dict[str, dict[str, Any]]
) -> None:
    source = images["photo"]["imageId"]
    unsigned, other_key = build(
        builder,
        [
            {"url": source, "options": {"width": 64}},
            {"url": source, "options": {"width": 64}, "key": "00" * 32, "salt": SALT},
        ],
    )
    assert unsigned.startswith("/insecure/")
    for path in (unsigned, other_key):
        response = fetch(server, path)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "bad_signature"


def _renders(server: Server) -> dict[str, float]:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    found = re.findall(r'^imgpipe_transforms_total\{result="(\w+)"\} ([0-9.e+]+)$', text, re.M)
    return {result: float(value) for result, value in found}


@pytest.mark.slow
def test_ten_identical_requests_at_once_render_once(
    builder: Path, server: Server, images: dict[str, dict[str, Any]]
) -> None:
    (path,) = build(
        builder,
        [{"url": images["photo"]["imageId"], "options": {"width": 640, "format": "avif"},
          "key": KEY, "salt": SALT}],
    )  # fmt: skip
    before = _renders(server)
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: fetch(server, path), range(10)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    after = _renders(server)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in ("miss", "shared", "hit")}
    assert delta["miss"] == 1
    assert sum(delta.values()) == 10


def test_head_answers_the_gets_headers_without_its_body(
    server: Server, images: dict[str, dict[str, Any]]
) -> None:
    # GIVEN a result a browser has fetched
    path = sign_img_path(
        f"/rs:fit:240:240/plain/{images['photo']['imageId']}",
        bytes.fromhex(KEY),
        bytes.fromhex(SALT),
    )
    got = fetch(server, path, CHROME)
    assert decoded(got) == ("avif", (240, 180))
    # WHEN a CDN or a link checker asks for it with HEAD
    with server.client() as client:
        head = client.head("/img" + path, headers={"accept": CHROME})
    # THEN it gets the same type, length and ETag, and no bytes
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-length", "etag", "cache-control", "vary"):
        assert head.headers[name] == got.headers[name], name
