"""A twin (engine/twin.py) is kept by a render that makes its decode and asked to keep it,
stands in for that decode byte for byte, and for nothing else: a twin that is not whole or
not of the decode a render needs is not read."""

from __future__ import annotations

import io

import pytest
from PIL import Image

import imagegen
from imgpipe.config import Limits, Settings
from imgpipe.core.img_url import parse_img_path
from imgpipe.core.transform import TransformLimits, TransformRequest
from imgpipe.engine import twin as twins
from imgpipe.engine.transform import transform

ENCODER = Settings().transform.encoder()
LIMITS = Limits().render_limits()


def request(options: str, fmt: str = "jpeg", *, fast: bool = True) -> TransformRequest:
    url = parse_img_path(f"/_/{options}/plain/x", keys=[], unsafe=True, presets={})
    return TransformRequest(
        url.transform, (fmt,), ENCODER, (255, 255, 255), LIMITS, TransformLimits(), fast
    )


def made(data: bytes, req: TransformRequest | None = None) -> bytes | None:
    """The twin a render of `data` keeps (by default, one that decodes it at 1/8)."""
    req = req or REQUESTS["fast fill jpeg"]
    return transform(data, req._replace(keep_twin=True)).twin


def read(data: bytes, req: TransformRequest, twin: bytes) -> bytes:
    return transform(data, req._replace(twin=twin)).data


def with_icc(data: bytes) -> bytes:
    return imagegen.with_segments(data, imagegen.icc_segments(imagegen.display_p3_profile()))


# Each needs libjpeg's 1/8 decode of every original below, turned or not: the fast decode
# takes the smallest scale that covers the result; the sharp one (the default) leaves 1.5x
# for the resize.
REQUESTS = {
    "fast fill jpeg": request("rs:fill:120:90"),
    "fast fit webp": request("rs:fit:140:140", "webp"),
    "fast crop gravity": request("c:800:800:we/rs:fill:90:90/g:ea"),
    "sharp fill png": request("rs:fill:64:48", "png", fast=False),
    "sharp smart avif": request("rs:fill:64:64/g:sm", "avif", fast=False),
}
ORIGINALS = {
    **{f"orientation {o}": imagegen.photo_jpeg(1600, 1200, orientation=o) for o in range(1, 9)},
    "grey": imagegen.grey_jpeg(1600, 1200),
    "progressive": imagegen.progressive_jpeg(1600, 1200),
    "display p3": with_icc(imagegen.photo_jpeg(1600, 1200)),
    "odd size": imagegen.photo_jpeg(1203, 907),
}


@pytest.mark.parametrize("name", REQUESTS)
@pytest.mark.parametrize("original", ORIGINALS)
def test_a_render_from_the_twin_is_the_render_from_the_original(name: str, original: str) -> None:
    data, req = ORIGINALS[original], REQUESTS[name]
    keeping = transform(data, req._replace(keep_twin=True))
    assert keeping.twin is not None

    assert keeping.data == transform(data, req).data  # keeping one changes nothing
    assert read(data, req, keeping.twin) == keeping.data


def test_the_twin_is_read_not_the_original() -> None:
    """Equal results alone would hold for a twin never read: a black one shows it is."""
    data = imagegen.photo_jpeg(1600, 1200)
    twin = made(data)
    assert twin is not None
    black = twin[: twins.HEAD] + bytes(len(twin) - twins.HEAD)

    result = Image.open(io.BytesIO(read(data, REQUESTS["fast fill jpeg"], black)))

    assert result.convert("L").getextrema() == (0, 0)


def test_the_twin_holds_the_eighth_scale_decode_as_raw_pixels() -> None:
    data = imagegen.photo_jpeg(1203, 907, orientation=6)
    twin = made(data, request("rs:fill:90:90"))

    assert twin is not None and twin.startswith(twins.MAGIC)
    # libvips' shrink-on-load size (each side over 8, rounded down), as stored: the
    # orientation is applied after
    assert len(twin) == twins.HEAD + 150 * 113 * 3


def spoiled(twin: bytes, how: str) -> bytes:
    """A twin of black pixels (so that reading it shows) made wrong in one way."""
    width, height, bands, shrink = twins.SIZES.unpack_from(twin, len(twins.MAGIC))
    sizes = {
        "another shrink": (width, height, bands, 4),
        "another width": (width + 1, height, bands, shrink),
        "another bands": (width, height, 1, shrink),
    }.get(how, (width, height, bands, shrink))
    black = twins.MAGIC + twins.SIZES.pack(*sizes) + bytes(len(twin) - twins.HEAD)
    if how == "cut short":
        return black[:-1]
    if how == "one byte over":
        return black + b"\x00"
    if how == "another magic":
        return b"x" + black[1:]
    if how == "empty":
        return b""
    return black


@pytest.mark.parametrize(
    "how",
    [
        "another shrink",
        "another width",
        "another bands",
        "cut short",
        "one byte over",
        "another magic",
        "empty",
    ],
)
def test_a_twin_not_whole_or_not_of_this_decode_is_not_read(how: str) -> None:
    data = imagegen.photo_jpeg(1600, 1200)
    twin = made(data)
    assert twin is not None

    req = REQUESTS["fast fill jpeg"]

    assert read(data, req, spoiled(twin, how)) == transform(data, req).data


def test_a_render_that_needs_more_than_the_eighth_decodes_the_original() -> None:
    data = imagegen.photo_jpeg(1600, 1200)
    twin = made(data)
    assert twin is not None
    black = twin[: twins.HEAD] + bytes(len(twin) - twins.HEAD)
    larger = request("rs:fill:300:225")  # 1/4 covers it, 1/8 does not

    assert read(data, larger, black) == transform(data, larger).data
    assert made(data, larger) is None  # nor is one kept of a 1/4 decode


@pytest.mark.parametrize(
    "data",
    [
        imagegen.cmyk_jpeg(1600, 1200),  # converted after its decode
        imagegen.rgba_png(1600, 1200),
        imagegen.webp(1600, 1200),
    ],
    ids=["cmyk jpeg", "png", "webp"],
)
def test_none_is_kept_but_of_a_grey_or_rgb_jpeg(data: bytes) -> None:
    assert made(data) is None


def test_none_is_kept_unless_asked() -> None:
    assert transform(ORIGINALS["grey"], REQUESTS["fast fill jpeg"]).twin is None
