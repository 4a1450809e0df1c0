"""The dashboard in a real browser: Debian's chromium driven by Playwright, against a real
`imgpipe serve`. Without chromium a developer's run skips loudly; under CI=true it fails."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import imagegen
from imgpipe.core.img_url import sign_img_path
from liveserver import Server, start_server, stop, upload_multipart, wait_terminal

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("IMGPIPE_SCREENSHOTS", "/tmp/imgpipe-screenshots"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    reason = f"Debian's chromium is not installed ({CHROMIUM}); .ci/run installs it"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the browser tests: {reason}")
    pytest.skip(f"SKIPPING BROWSER TESTS: {reason}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path / "data", tmp_path / "serve.log")
    yield s
    stop(s)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 1000})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(str(e)))
    pg.problems = problems
    yield pg
    context.close()


def _seed(server: Server) -> dict[str, dict[str, Any]]:
    with server.client() as client:
        ids = [
            upload_multipart(client, "sunset.jpg", imagegen.photo_jpeg(1600, 1067), "image/jpeg"),
            upload_multipart(
                client, "portrait.jpg", imagegen.photo_jpeg(900, 1200, orientation=6), "image/jpeg"
            ),
            upload_multipart(client, "logo.png", imagegen.rgba_png(640, 480), "image/png"),
            upload_multipart(client, "broken.jpg", imagegen.truncated_jpeg(), "image/jpeg"),
        ]
        return wait_terminal(client, ids)


def test_dashboard_shows_thumbnails_counts_and_failures(server: Server, page: Any) -> None:
    # GIVEN three good uploads and a broken one, processed
    records = _seed(server)
    failed = [r for r in records.values() if r["status"] == "FAILED"]
    assert len(failed) == 1

    # WHEN a person opens the dashboard
    page.goto(server.url + "/")
    page.wait_for_function("document.querySelectorAll('.card').length === 4")
    page.wait_for_function(
        "[...document.querySelectorAll('.card[data-status=PROCESSED] img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )

    # THEN the thumbnails have loaded, the counts are right and the failure is explained
    widths = page.eval_on_selector_all(
        ".card[data-status=PROCESSED] img", "els => els.map(e => e.naturalWidth)"
    )
    assert len(widths) == 3 and all(w > 0 for w in widths)
    assert page.text_content("#count-PROCESSED") == "3"
    assert page.text_content("#count-FAILED") == "1"
    broken = page.locator(".card[data-status=FAILED]")
    assert "corrupt_image" in broken.locator(".error").text_content()
    assert broken.locator("button", has_text="Retry").is_visible()
    assert page.locator(".card[data-status=PROCESSED] button", has_text="Retry").count() == 3
    assert not page.locator(".card[data-status=PROCESSED] button").first.is_visible()
    # blurhash placeholders were painted
    assert page.eval_on_selector_all(".card .bh", "els => els.filter(c => c.width > 0).length") == 4
    # ... and they look like the images: the placeholder's mean colour is the thumbnail's
    differences = page.evaluate("""() => [...document.querySelectorAll(
            '.card[data-status=PROCESSED]')].map(card => {
        const mean = (source, w, h) => {
            const c = document.createElement('canvas'); c.width = w; c.height = h;
            const ctx = c.getContext('2d'); ctx.fillStyle = '#fff';
            ctx.fillRect(0, 0, w, h); ctx.drawImage(source, 0, 0, w, h);  // alpha on white
            const d = ctx.getImageData(0, 0, w, h).data; const m = [0, 0, 0];
            // BlurHash averages in linear light: so does this oracle
            const lin = v => { v /= 255; return v <= 0.04045 ? v / 12.92
                                                 : Math.pow((v + 0.055) / 1.055, 2.4); };
            for (let i = 0; i < d.length; i += 4) {
                m[0] += lin(d[i]); m[1] += lin(d[i+1]); m[2] += lin(d[i+2]);
            }
            return m.map(v => 255 * v / (w * h));
        };
        const a = mean(card.querySelector('canvas.bh'), 32, 32);
        const b = mean(card.querySelector('img'), 32, 32);
        return Math.max(...a.map((v, i) => Math.abs(v - b[i])));
    })""")
    assert len(differences) == 3
    assert max(differences) < 25, differences
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)

    # AND the detail view lists every rendition with its size and bytes
    page.locator(".card", has_text="portrait.jpg").click()
    page.wait_for_selector("#detail:not([hidden])")
    page.wait_for_function("document.getElementById('detail-img').naturalWidth > 0")
    rows = page.locator("#detail-renditions tr")
    assert rows.count() == 7  # header + 3 sizes x 2 formats
    assert "900 × 1200" not in page.text_content("#detail-meta")  # shown upright:
    assert "1200 × 900" in page.text_content("#detail-meta")
    page.wait_for_timeout(500)  # the fade-in
    page.screenshot(path=str(SHOTS / "detail.png"))
    page.keyboard.press("Escape")

    # AND retrying the failed image goes through the API (it fails again: still corrupt)
    with server.client() as client:
        before = client.get(f"/images/{failed[0]['imageId']}").json()["attempts"]
    broken.locator("button", has_text="Retry").click()
    with server.client() as client:
        deadline = 50
        while (
            deadline and client.get(f"/images/{failed[0]['imageId']}").json()["attempts"] == before
        ):
            page.wait_for_timeout(100)
            deadline -= 1
        assert client.get(f"/images/{failed[0]['imageId']}").json()["attempts"] == before + 1
    assert page.problems == []


def test_upload_through_the_page(server: Server, page: Any, tmp_path: Path) -> None:
    # GIVEN the dashboard and a photo on disk
    photo = tmp_path / "holiday photo.jpg"
    photo.write_bytes(imagegen.photo_jpeg(1200, 800))
    page.goto(server.url + "/")
    page.wait_for_selector("#health.ok")
    # WHEN it is chosen with the file picker
    page.set_input_files("#file-input", str(photo))
    # THEN it uploads, is processed, and its thumbnail appears
    page.wait_for_function(
        "[...document.querySelectorAll('.card[data-status=PROCESSED] img')]"
        ".some(i => i.complete && i.naturalWidth > 0)",
        timeout=60_000,
    )
    assert page.locator(".card .title").first.text_content() == "holiday_photo.jpg"
    with server.client() as client:
        items = client.get("/images").json()["items"]
    assert [i["status"] for i in items] == ["PROCESSED"]
    page.screenshot(path=str(SHOTS / "after-upload.png"), full_page=True)
    assert page.problems == []


def test_token_is_asked_for_and_used(tmp_path: Path, browser: Any) -> None:
    data = tmp_path / "data"
    env_token = "let-me-in"
    os.environ["IMGPIPE_SERVER__API_TOKEN"] = env_token
    try:
        s = start_server(data, tmp_path / "serve.log")
    finally:
        del os.environ["IMGPIPE_SERVER__API_TOKEN"]
    try:
        headers = {"Authorization": f"Bearer {env_token}"}
        with httpx.Client(base_url=s.url, headers=headers) as client:
            upload_multipart(client, "a.png", imagegen.rgba_png(100, 80), "image/png")
        context = browser.new_context()
        pg = context.new_page()
        pg.goto(s.url + "/")
        pg.wait_for_selector("#token-dialog[open]")
        pg.fill("#token-input", env_token)
        pg.click("#token-save")
        pg.wait_for_function(
            "[...document.querySelectorAll('.card img')].some(i => i.naturalWidth > 0)",
            timeout=60_000,
        )
        context.close()
    finally:
        stop(s)


def test_detail_shows_duplicates_and_similar_images(server: Server, page: Any) -> None:
    # GIVEN the same photo uploaded twice, an unrelated image and a broken one, all finished
    photo = imagegen.photo_jpeg(1200, 800)
    with server.client() as client:
        first = upload_multipart(client, "original.jpg", photo, "image/jpeg")
        second = upload_multipart(client, "copy.jpg", photo, "image/jpeg")
        other = upload_multipart(client, "logo.png", imagegen.rgba_png(640, 480), "image/png")
        broken = upload_multipart(client, "broken.jpg", imagegen.truncated_jpeg(), "image/jpeg")
        records = wait_terminal(client, [first, second, other, broken])
        # Either copy may finish first. When the copy does, the original's worker links it
        # just after its own commit, so read the copy again until that write has landed
        # (wait_terminal keeps the copy as it was when it first finished).
        deadline = time.monotonic() + 10
        while True:
            records[second] = client.get(f"/images/{second}").json()
            if records[second]["duplicateOf"] is not None or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert [records[i]["status"] for i in (first, second, other)] == ["PROCESSED"] * 3
    assert records[second]["duplicateOf"] == first
    assert records[first]["duplicateOf"] is None
    similar_calls: list[str] = []
    page.on("request", lambda r: similar_calls.append(r.url) if "/similar" in r.url else None)
    page.goto(server.url + "/")
    page.wait_for_function("document.querySelectorAll('.card').length === 4")

    # WHEN the second copy's detail is opened
    page.locator(".card", has_text="copy.jpg").click()
    page.wait_for_selector("#detail:not([hidden])")
    duplicate = page.locator("#detail-duplicate")
    strip = page.locator("#detail-similar")
    page.wait_for_selector("#detail-duplicate button")
    page.wait_for_selector("#detail-similar .similar-item")

    # THEN it names the first as the original, and lists it as identical, thumbnail and all
    assert page.text_content("#detail-title") == "copy.jpg"
    assert duplicate.text_content() == "Duplicate of original.jpg"
    items = strip.locator(".similar-item")
    assert items.count() == 1
    item = items.first
    assert item.get_attribute("data-id") == first
    assert item.locator(".caption").text_content() == "identical"
    assert item.locator("img").get_attribute("alt") == "original.jpg"
    page.wait_for_function(
        "document.querySelector('#detail-similar img').naturalWidth > 0"
        " && document.querySelector('#detail-similar img').src.includes('/thumb.webp')"
    )
    page.wait_for_timeout(500)  # the fade-in
    page.screenshot(path=str(SHOTS / "detail-similar.png"))

    # WHEN the "Duplicate of" link is followed
    duplicate.get_by_role("button", name="original.jpg").click()
    # THEN the first image's detail shows, with no duplicate line and the copy as identical
    page.wait_for_function("document.getElementById('detail-title').textContent === 'original.jpg'")
    page.wait_for_selector(f"#detail-similar .similar-item[data-id='{second}']")
    assert duplicate.is_hidden()
    assert strip.locator(".caption").all_text_contents() == ["identical"]

    # WHEN a similar image is clicked, its detail opens
    strip.locator(".similar-item").first.click()
    page.wait_for_function("document.getElementById('detail-title').textContent === 'copy.jpg'")
    page.keyboard.press("Escape")

    # AND an unrelated image has nothing similar
    page.locator(".card", has_text="logo.png").click()
    page.wait_for_function("document.getElementById('detail-title').textContent === 'logo.png'")
    page.wait_for_function(
        "document.getElementById('detail-similar').textContent === 'No similar images'"
    )
    assert duplicate.is_hidden()
    page.keyboard.press("Escape")

    # AND a failed image shows no similar strip and never asks for one
    page.locator(".card", has_text="broken.jpg").click()
    page.wait_for_function("document.getElementById('detail-title').textContent === 'broken.jpg'")
    assert page.locator("#detail-similar-section").is_hidden()
    assert not [u for u in similar_calls if broken in u]
    assert {u.split("/images/")[1].split("/")[0] for u in similar_calls} == {first, second, other}
    page.keyboard.press("Escape")
    assert page.problems == []

    # WHEN the original is deleted, the copy still says what it was a duplicate of
    with server.client() as client:
        assert client.delete(f"/images/{first}").status_code == 204
    page.locator(".card", has_text="copy.jpg").click()
    page.wait_for_function("document.getElementById('detail-title').textContent === 'copy.jpg'")
    page.wait_for_function(
        "document.getElementById('detail-duplicate').textContent === 'Duplicate of (deleted)'"
    )
    assert page.locator("#detail-duplicate button").count() == 0
    page.wait_for_function(
        "document.getElementById('detail-similar').textContent === 'No similar images'"
    )
    # the 404 for the deleted original is the browser's only complaint
    assert all("404" in p for p in page.problems), page.problems


def test_url_builder_shows_the_signed_url_and_its_result(tmp_path: Path, page: Any) -> None:
    # GIVEN a server with a transform key, and a processed 1600x1067 photo
    key, salt = "736563726574", "736f6469756d"
    env = {"IMGPIPE_TRANSFORM__KEY": key, "IMGPIPE_TRANSFORM__SALT": salt}
    s = start_server(tmp_path / "data", tmp_path / "serve.log", env=env)
    try:
        with s.client() as client:
            image_id = upload_multipart(
                client, "sunset.jpg", imagegen.photo_jpeg(1600, 1067), "image/jpeg"
            )
            wait_terminal(client, [image_id])
        page.goto(s.url + "/")
        page.locator(".card", has_text="sunset.jpg").click()
        page.wait_for_selector("#builder-section:not([hidden])")

        # WHEN 200x200, filled at the smart crop, as WebP is chosen by the fields' labels
        builder = page.locator("#builder")
        builder.get_by_label("width").fill("200")
        builder.get_by_label("height").fill("200")
        builder.get_by_label("fit").select_option("fill")
        builder.get_by_label("gravity").select_option(label="smart")
        builder.get_by_label("format").select_option("webp")

        # THEN the URL shown is that path, signed with the configured key
        options = f"/rs:fill:200:200/g:sm/f:webp/plain/{image_id}"
        expected = "/img" + sign_img_path(options, bytes.fromhex(key), bytes.fromhex(salt))
        field = page.get_by_label("signed URL")
        page.wait_for_function(
            "url => document.getElementById('builder-url').value === url", arg=s.url + expected
        )
        # AND the result is shown: 200x200 WebP, its size and type read from the response
        page.wait_for_function(
            "document.getElementById('builder-facts').textContent.includes('200 × 200 px')"
        )
        result = page.eval_on_selector(
            "#builder-img", "i => [i.naturalWidth, i.naturalHeight, i.src.slice(0, 5)]"
        )
        assert result == [200, 200, "blob:"]
        facts = page.text_content("#builder-facts")
        assert facts is not None and "image/webp" in facts and "KB" in facts
        assert field.input_value() == s.url + expected
        # AND Copy puts it on the clipboard
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=s.url)
        page.get_by_role("button", name="Copy").click()
        page.wait_for_function("document.getElementById('builder-note').textContent === 'Copied'")
        assert page.evaluate("navigator.clipboard.readText()") == s.url + expected
        page.locator("#builder-section").screenshot(path=str(SHOTS / "url-builder.png"))

        # WHEN the format is left to the route, THEN Chromium's Accept gets AVIF
        builder.get_by_label("format").select_option("auto")
        page.wait_for_function(
            "document.getElementById('builder-facts').textContent.includes('image/avif')"
        )
        assert field.input_value().endswith(f"/rs:fill:200:200/g:sm/plain/{image_id}")
        # AND a choice the route refuses is explained, not shown
        builder.get_by_label("dpr").fill("9")
        page.wait_for_function(
            "document.getElementById('builder-note').textContent.includes('dpr 9 is over')"
        )
        assert page.locator("#builder-result").is_hidden()
        assert all("400" in p for p in page.problems), page.problems
    finally:
        stop(s)
