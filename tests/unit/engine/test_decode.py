"""The one decode: every input format, upright, its first frame; a damaged file is a
CorruptImageError with a one-line message, never a libvips error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

import imagegen as gen
from engine_support import ALL_FORMATS, DEFAULTS, close, decoded, options
from imgpipe.config import RenditionSpec
from imgpipe.core.errors import CorruptImageError, ImageError
from imgpipe.engine import decode, probe, render


@pytest.mark.parametrize(
    ("orientation", "red_at"),
    [(1, "top"), (3, "bottom"), (6, "right"), (8, "left")],
)
def test_outputs_are_upright(orientation: int, red_at: str) -> None:
    # GIVEN stored pixels red on top, blue below, and an EXIF orientation
    data = gen.two_tone_jpeg(120, 60, orientation)
    spec = RenditionSpec(name="t", width=64, height=64, formats=["jpeg", "webp", "png"])
    result = render(data, options(spec))
    # Pillow's own exif_transpose of the source is the oracle for "upright"
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    assert result.metadata.orientation == orientation
    assert (result.metadata.width, result.metadata.height) == upright.size
    points = {
        "top": (0.5, 0.1),
        "bottom": (0.5, 0.9),
        "left": (0.1, 0.5),
        "right": (0.9, 0.5),
    }
    opposite = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}
    for rendition in result.renditions:
        out = decoded(rendition).convert("RGB")
        assert out.size == ((64, 32) if orientation in (1, 3) else (32, 64))
        fx, fy = points[red_at]
        assert close(out.getpixel((int(fx * out.width), int(fy * out.height))), gen.RED, 40)
        gx, gy = points[opposite[red_at]]
        assert close(out.getpixel((int(gx * out.width), int(gy * out.height))), gen.BLUE, 40)
        ox = int(fx * upright.width)
        oy = int(fy * upright.height)
        assert close(upright.getpixel((ox, oy)), gen.RED, 40)


@pytest.mark.parametrize(
    ("make", "fmt", "mime"),
    [
        (lambda: gen.tiff(64, 48), "tiff", "image/tiff"),
        (lambda: gen.webp(64, 48), "webp", "image/webp"),
        (lambda: gen.avif(64, 48), "avif", "image/avif"),
        (lambda: gen.heic(64, 48), "heif", "image/heif"),
        (lambda: gen._save(gen.photo_pixels(64, 48), "PNG"), "png", "image/png"),
    ],
)
def test_each_input_format_renders(make, fmt: str, mime: str) -> None:
    data = make()
    result = render(data, options(ALL_FORMATS))
    assert (result.metadata.format, result.metadata.content_type) == (fmt, mime)
    assert (result.metadata.width, result.metadata.height) == (64, 48)
    assert result.metadata.file_size == len(data)
    reference = np.asarray(gen.photo_pixels(64, 48), float)
    for rendition in result.renditions:
        out = np.asarray(decoded(rendition).convert("RGB"), float)
        assert out.shape == (48, 64, 3)
        assert np.abs(out - reference).mean() < 12


@pytest.mark.parametrize("make", [gen.heic, gen.avif])
def test_heif_and_avif_rotation_is_applied(make) -> None:
    # GIVEN a HEIC/AVIF whose container rotates stored pixels (red on top) by 90 degrees
    result = render(make(80, 40, orientation=6), options(ALL_FORMATS))
    assert (result.metadata.width, result.metadata.height) == (40, 80)
    for rendition in result.renditions:
        out = decoded(rendition).convert("RGB")
        assert out.size == (32, 64)
        assert close(out.getpixel((28, 32)), gen.RED, 40)
        assert close(out.getpixel((3, 32)), gen.BLUE, 40)


def test_heic_with_alpha() -> None:
    # GIVEN a HEIC whose right half is transparent
    result = render(gen.heic(32, 32, alpha=True), options(ALL_FORMATS, background=(0, 0, 0)))
    assert result.metadata.has_alpha
    for rendition in result.renditions:
        out = decoded(rendition)
        if rendition.format == "jpeg":
            assert close(out.getpixel((28, 16)), (0, 0, 0), 12)
        else:
            assert out.mode == "RGBA"
            assert out.getpixel((4, 16))[3] > 245  # HEIC's alpha plane is lossy
            assert out.getpixel((28, 16))[3] < 10


def test_animated_gif_uses_the_first_frame_and_counts_frames() -> None:
    result = render(gen.animated_gif(40, 30, frames=3), options(ALL_FORMATS))
    assert result.metadata.frames == 3
    for rendition in result.renditions:
        assert close(decoded(rendition).convert("RGB").getpixel((20, 15)), gen.RED, 12)


def test_truncated_jpeg_is_corrupt_with_a_short_message() -> None:
    with pytest.raises(CorruptImageError) as raised:
        render(gen.truncated_jpeg(), DEFAULTS)
    message = str(raised.value)
    assert "truncated" in message or "premature" in message
    assert "\n" not in message
    assert len(message) < 300
    with pytest.raises(CorruptImageError):
        probe(gen.truncated_jpeg(), DEFAULTS)


@pytest.mark.parametrize(
    "make",
    [
        lambda: gen._save(gen.photo_pixels(200, 150), "PNG"),
        lambda: gen.webp(200, 150),
        lambda: gen._save(gen.photo_pixels(200, 150).convert("P"), "GIF"),
        lambda: gen.avif(200, 150),
        lambda: gen.heic(200, 150),
        lambda: gen.tiff(200, 150),
    ],
)
def test_truncated_files_of_every_format_are_corrupt(make) -> None:
    data = make()
    with pytest.raises(CorruptImageError):
        render(data[: len(data) * 2 // 3], DEFAULTS)


def test_garbage_after_a_jpeg_signature_is_corrupt() -> None:
    with pytest.raises(CorruptImageError):
        render(b"\xff\xd8\xff" + bytes(range(256)) * 4, DEFAULTS)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_files_fail_cleanly_never_with_a_libvips_error(data: st.DataObject) -> None:
    original = bytearray(SMALL_FILES[data.draw(st.sampled_from(sorted(SMALL_FILES)))])
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(original) - 1))
        original[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(original)))
    message = ""
    try:
        render(bytes(original[:cut]), options(ALL_FORMATS))
    except ImageError as exc:  # anything else (a pyvips.Error) fails the test
        message = str(exc)
    assert "\n" not in message


SMALL_FILES = {
    "jpeg": gen.photo_jpeg(24, 16),
    "png": gen.rgba_png(24, 16),
    "gif": gen.animated_gif(12, 8, frames=2),
    "webp": gen.webp(24, 16),
    "tiff": gen.tiff(12, 8),
}


def test_decodes_once_for_all_renditions(monkeypatch, large_photo: bytes) -> None:
    import pyvips

    calls: list[int] = []
    original = pyvips.Image.thumbnail_source

    def counting(source: object, width: int, **kwargs: object):
        calls.append(width)
        return original(source, width, **kwargs)

    monkeypatch.setattr(pyvips.Image, "thumbnail_source", counting)
    render(large_photo, DEFAULTS)
    assert calls == [1600]


def test_a_decoders_row_padding_is_dropped() -> None:
    rows = [bytes(range(10 * y, 10 * y + 6)) + b"\xee\xee" for y in range(3)]  # 6 + 2 padding
    assert bytes(decode.unpadded(b"".join(rows), 8, 6, 3)) == b"".join(r[:6] for r in rows)
    # unpadded rows are used as they are, without what follows the last one
    assert bytes(decode.unpadded(bytes(range(20)), 6, 6, 3)) == bytes(range(18))
