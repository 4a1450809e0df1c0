"""A plain `<img src="/img/...">` (no `<picture>`, no format in the URL) gets AVIF in a real
browser: Debian's chromium, driven by Playwright, against a real `imgpipe serve` with a
signing key. Without chromium a developer's run skips loudly; under CI=true it fails."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import imagegen
from imgpipe.core.img_url import sign_img_path
from liveserver import Server, start_server, stop, upload_multipart, wait_terminal

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"]
KEY, SALT = "11" * 32, "22" * 16

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        reason = f"Debian's chromium is not installed ({CHROMIUM}); .ci/run installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(f"SKIPPING BROWSER TESTS: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = {"IMGPIPE_TRANSFORM__KEY": KEY, "IMGPIPE_TRANSFORM__SALT": SALT}
    s = start_server(tmp_path / "data", tmp_path / "serve.log", env=env)
    yield s
    stop(s)


def test_an_img_without_format_gets_avif_and_decodes(browser: Any, server: Server) -> None:
    # GIVEN a processed photo and a signed URL that names no format
    with server.client() as client:
        image_id = upload_multipart(
            client, "photo.jpg", imagegen.photo_jpeg(800, 600), "image/jpeg"
        )
        wait_terminal(client, [image_id])
    src = (
        server.url
        + "/img"
        + sign_img_path(
            f"/rs:fill:320:240/plain/{image_id}", bytes.fromhex(KEY), bytes.fromhex(SALT)
        )
    )
    page = browser.new_page()
    try:
        # WHEN a page shows it with a plain <img>
        with page.expect_response(lambda r: "/img/" in r.url) as caught:
            page.set_content(f'<img id="shot" src="{src}" alt="">')
        response = caught.value
        page.wait_for_function(
            "document.getElementById('shot').complete", timeout=30_000
        )  # a hang guard only
        natural = page.eval_on_selector("#shot", "i => [i.naturalWidth, i.naturalHeight]")
        # THEN chromium asked for AVIF, got it, and decoded it at the size asked
        assert "image/avif" in response.request.all_headers()["accept"]
        assert response.status == 200
        assert response.headers["content-type"] == "image/avif"
        assert response.headers["vary"] == "Accept"
        assert response.body()[4:12] == b"ftypavif"
        assert natural == [320, 240]
    finally:
        page.close()
