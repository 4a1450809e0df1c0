"""docs/dashboard.png: the dashboard of a real `imgpipe serve`, captured in headless Chromium.

Run it from the repository's root with the dev venv (Playwright and Pillow come with it):

    .venv/bin/python docs/screenshot.py            # writes docs/dashboard.png

It starts `imgpipe serve` on a temporary data folder (tests/liveserver.py), uploads a few
images made in code (tests/imagegen.py: photos, an upright-rotated portrait, a transparent
PNG, a greyscale ramp, an animated GIF and a truncated JPEG that fails), waits until each is
PROCESSED or FAILED, opens `GET /` in Debian's chromium as the browser tests do, and saves the
page. The PNG must stay under 300 KB in the repository (a 256-colour palette if need be).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import imagegen  # noqa: E402 (tests/ is put on the path first)
from liveserver import start_server, stop, upload_multipart, wait_terminal  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
# The flags of tests/browser/test_dashboard.py: headless, no sandbox (root in CI), quiet.
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
VIEWPORT = {"width": 1280, "height": 900}
MAX_BYTES = 300_000


def uploads() -> list[tuple[str, bytes, str]]:
    """What the screenshot shows: good images of several kinds, and one that fails."""
    return [
        ("harbour.jpg", imagegen.photo_jpeg(1600, 1067), "image/jpeg"),
        ("portrait.jpg", imagegen.photo_jpeg(900, 1200, orientation=6), "image/jpeg"),
        ("logo.png", imagegen.rgba_png(640, 480), "image/png"),
        ("ramp.jpg", imagegen.grey_jpeg(800, 500), "image/jpeg"),
        ("spinner.gif", imagegen.animated_gif(320, 240), "image/gif"),
        ("broken.jpg", imagegen.truncated_jpeg(), "image/jpeg"),
    ]


def capture(url: str, count: int) -> bytes:
    """The page at `url` once its `count` cards are drawn and their thumbnails loaded."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url + "/")
            page.wait_for_function(f"document.querySelectorAll('.card').length === {count}")
            page.wait_for_function(
                "[...document.querySelectorAll('.card[data-status=PROCESSED] img')]"
                ".every(i => i.complete && i.naturalWidth > 0)"
            )
            time.sleep(2.5)  # one more poll (every 2 s), so the charts have drawn
            shot: bytes = page.screenshot(full_page=False)
            return shot
        finally:
            browser.close()


def small_png(png: bytes) -> bytes:
    """The screenshot re-encoded with PNG's best compression; in 256 colours only if it
    would be over MAX_BYTES in full colour (the palette bands the photos' gradients)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    if out.tell() <= MAX_BYTES:
        return out.getvalue()
    out = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="imgpipe-screenshot-") as tmp:
        server = start_server(Path(tmp) / "data", Path(tmp) / "serve.log")
        try:
            files = uploads()
            with server.client() as client:
                ids = [upload_multipart(client, *upload) for upload in files]
                wait_terminal(client, ids)
            png = small_png(capture(server.url, len(files)))
        finally:
            stop(server)
    if len(png) > MAX_BYTES:
        print(f"{len(png)} bytes: over {MAX_BYTES}; not written", file=sys.stderr)
        return 1
    args.out.write_bytes(png)
    print(f"wrote {args.out} ({len(png)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
