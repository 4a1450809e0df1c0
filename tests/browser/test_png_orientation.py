"""A PNG is turned upright as a browser turns it: by the orientation in its eXIf chunk, not
by the one ImageMagick writes as hex in a "Raw profile type exif" text chunk (which Pillow
reads). Debian's chromium, driven by Playwright, draws each original and imgpipe's PNG
rendition of it; the two must show the same picture (docs/decoding.md). Without chromium or
Pillow's sdist a developer's run skips loudly; under CI=true it fails."""

from __future__ import annotations

import base64
import io
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from engine_support import options
from imgpipe.config import RenditionSpec
from imgpipe.engine.pipeline import render

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
from suites import available  # the conformance tier's folder, on the path above

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"]
FULL = RenditionSpec(name="full", width=4096, height=4096, formats=["png"])
# The original's gAMA and cHRM chunks, which Chromium applies, part it from imgpipe's
# rendition (which keeps no colour chunk) by ~36 dB; turned by 180 degrees, ~16 dB.
SAME_PICTURE_DB = 30.0

# Chromium draws the image as the page shows it (image-orientation: from-image), then hands
# its pixels back as a PNG (lossless).
DRAWN = """async (src) => {
  const image = new Image(); image.src = src; await image.decode();
  const canvas = document.createElement('canvas');
  canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
  canvas.getContext('2d').drawImage(image, 0, 0);
  return canvas.toDataURL('image/png');
}"""

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120, func_only=True)]


def _missing(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _missing(f"SKIPPING BROWSER TESTS: Debian's chromium is not installed ({CHROMIUM})")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.set_content("<html><body></body></html>")
        yield page
        browser.close()


@pytest.fixture(scope="module")
def imagemagick_png() -> bytes:
    """Pillow's exif_imagemagick_orientation.png: 512x512, orientation 3 (upside down) only in
    ImageMagick's text chunk, from Pillow's sdist (the conformance tier's suite)."""
    found = available("pillow")
    if isinstance(found, str):
        _missing(f"SKIPPING: Pillow's sdist cannot be had: {found}")
        raise AssertionError  # not reached: _missing fails or skips
    return found["exif_imagemagick_orientation.png"].read_bytes()


def drawn(page: Any, png: bytes) -> Image.Image:
    """`png` as Chromium draws it, as RGB."""
    url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    shown = page.evaluate(DRAWN, url)
    assert shown.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(shown.split(",", 1)[1]))).convert("RGB")


def psnr(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mse = float(((x - y) ** 2).mean())
    return 99.0 if mse == 0 else float(10 * np.log10(255**2 / mse))


def rendition(data: bytes) -> bytes:
    (png,) = render(data, options(FULL)).renditions
    return png.data


def test_an_orientation_in_imagemagick_text_is_shown_as_chromium_shows_it(
    page: Any, imagemagick_png: bytes
) -> None:
    # GIVEN a PNG whose only orientation (3) is in ImageMagick's text chunk
    stored = Image.open(io.BytesIO(imagemagick_png)).convert("RGB")
    # WHEN Chromium draws it THEN it shows it as stored, not turned
    original = drawn(page, imagemagick_png)
    assert psnr(original, stored) >= SAME_PICTURE_DB > psnr(original, stored.rotate(180))
    # AND imgpipe's rendition, drawn by Chromium, is that same picture
    assert psnr(drawn(page, rendition(imagemagick_png)), original) >= SAME_PICTURE_DB


def test_an_orientation_in_exif_is_turned_as_chromium_turns_it(
    page: Any, imagemagick_png: bytes
) -> None:
    # GIVEN the same pixels with orientation 3 in an eXIf chunk (Pillow writes one)
    stored = Image.open(io.BytesIO(imagemagick_png)).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 3
    out = io.BytesIO()
    stored.save(out, "PNG", exif=exif.tobytes())
    # WHEN Chromium draws it THEN it turns it upside down (so the test above can tell)
    original = drawn(page, out.getvalue())
    assert psnr(original, stored.rotate(180)) >= SAME_PICTURE_DB > psnr(original, stored)
    # AND imgpipe's rendition, drawn by Chromium, is that turned picture
    assert psnr(drawn(page, rendition(out.getvalue())), original) >= SAME_PICTURE_DB
