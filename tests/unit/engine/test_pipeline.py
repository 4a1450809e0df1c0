"""The imaging engine, judged by what a user sees: outputs decoded with Pillow (an independent
decoder), their sizes, formats, orientation, colours, and that no metadata is left in them."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

import imagegen as gen
from engine_support import ALL_FORMATS, DEFAULTS, PIL_FORMAT, close, decoded, hamming, options
from imgpipe.config import Limits, RenditionSpec
from imgpipe.core.errors import (
    CorruptImageError,
    ImageError,
    ProcessingError,
    TooLargeError,
    TooManyFramesError,
    TooManyPixelsError,
    UnsupportedFormatError,
)
from imgpipe.core.rendering import (
    RenderResult,
)
from imgpipe.engine import check_header, pipeline, probe, render

# --- sizes and formats ------------------------------------------------------------------------


def test_default_renditions_of_a_large_photo(large_result: RenderResult) -> None:
    # GIVEN a 2000x1500 photo WHEN rendered with the defaults
    # THEN thumb, medium and large come out at long edge 256, 800, 1600, as JPEG and WebP
    got = {(r.name, r.format): r for r in large_result.renditions}
    assert set(got) == {(n, f) for n in ("thumb", "medium", "large") for f in ("jpeg", "webp")}
    expected = {"thumb": (256, 192), "medium": (800, 600), "large": (1600, 1200)}
    for (name, fmt), rendition in got.items():
        image = decoded(rendition)
        assert image.format == PIL_FORMAT[fmt]
        assert image.size == expected[name] == (rendition.width, rendition.height)
        assert image.mode == "RGB"
        assert rendition.ext == {"jpeg": "jpg", "webp": "webp"}[fmt]


def test_outputs_carry_no_exif_xmp_or_icc(large_result: RenderResult) -> None:
    for rendition in large_result.renditions:
        image = decoded(rendition)
        assert "exif" not in image.info
        assert not image.getexif()
        assert "icc_profile" not in image.info
        assert "xmp" not in image.info
        assert b"Exif" not in rendition.data[:2048]
        assert b"http://ns.adobe.com/xap" not in rendition.data


def test_outputs_look_like_the_source(large_photo: bytes, large_result) -> None:
    source = Image.open(io.BytesIO(large_photo)).convert("RGB").resize((256, 192))
    thumb = next(r for r in large_result.renditions if (r.name, r.format) == ("thumb", "jpeg"))
    diff = np.abs(np.asarray(source, float) - np.asarray(decoded(thumb), float))
    assert diff.mean() < 8


def test_a_small_image_is_never_upscaled() -> None:
    result = render(gen.photo_jpeg(100, 80), DEFAULTS)
    assert {(r.width, r.height) for r in result.renditions} == {(100, 80)}
    assert all(decoded(r).size == (100, 80) for r in result.renditions)


def test_every_output_format_encodes_and_decodes() -> None:
    result = render(gen.photo_jpeg(120, 90), options(ALL_FORMATS))
    assert [r.format for r in result.renditions] == ["jpeg", "webp", "png", "avif"]
    for rendition in result.renditions:
        image = decoded(rendition)
        assert image.format == PIL_FORMAT[rendition.format]
        assert image.size == (64, 48)
        assert (
            rendition.ext
            == {"jpeg": "jpg", "webp": "webp", "png": "png", "avif": "avif"}[rendition.format]
        )


def test_cover_fills_the_box_with_the_centre() -> None:
    # GIVEN 400x200: a red, green, blue band left to right (green is the middle half)
    image = Image.new("RGB", (400, 200), (0, 255, 0))
    image.paste((255, 0, 0), (0, 0, 100, 200))
    image.paste((0, 0, 255), (300, 0, 400, 200))
    data = io.BytesIO()
    image.save(data, "PNG")
    spec = RenditionSpec(name="square", width=100, height=100, fit="cover", formats=["png"])
    # WHEN cropped to a 100x100 cover
    (square,) = render(data.getvalue(), options(spec)).renditions
    # THEN only the green middle is left, corner to corner
    out = decoded(square).convert("RGB")
    assert out.size == (100, 100)
    for corner in ((1, 1), (98, 1), (1, 98), (98, 98), (50, 50)):
        assert close(out.getpixel(corner), (0, 255, 0), 30)


def test_cover_never_upscales_a_narrow_source() -> None:
    spec = RenditionSpec(name="sq", width=256, height=256, fit="cover", formats=["jpeg"])
    (out,) = render(gen.photo_jpeg(100, 1000), options(spec)).renditions
    assert decoded(out).size == (100, 256)


def test_custom_rendition_boxes_and_quality() -> None:
    specs = (
        RenditionSpec(name="wide", width=300, height=100, formats=["jpeg"]),
        RenditionSpec(name="low", width=200, height=200, formats=["jpeg"], quality={"jpeg": 20}),
        RenditionSpec(name="high", width=200, height=200, formats=["jpeg"], quality={"jpeg": 95}),
    )
    result = render(gen.photo_jpeg(600, 450), options(*specs))
    sizes = {r.name: decoded(r).size for r in result.renditions}
    assert sizes == {"wide": (133, 100), "low": (200, 150), "high": (200, 150)}
    lengths = {r.name: len(r.data) for r in result.renditions}
    assert lengths["low"] < lengths["high"]


# --- orientation ------------------------------------------------------------------------------


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


def test_probe_reports_the_displayed_size() -> None:
    metadata = probe(gen.photo_jpeg(400, 300, orientation=6), DEFAULTS)
    assert (metadata.width, metadata.height, metadata.orientation) == (300, 400, 6)


# --- alpha, colour ----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [gen.rgba_png, gen.palette_png])
def test_jpeg_flattens_alpha_onto_the_background_others_keep_it(make) -> None:
    background = (10, 20, 200)
    result = render(make(80, 40), options(ALL_FORMATS, background=background))
    assert result.metadata.has_alpha
    for rendition in result.renditions:
        out = decoded(rendition)
        if rendition.format == "jpeg":
            assert out.mode == "RGB"
            assert close(out.getpixel((8, 16)), gen.RED, 12)
            assert close(out.getpixel((56, 16)), background, 12)
        else:
            rgba = out.convert("RGBA")
            assert rgba.getpixel((8, 16))[3] == 255
            assert rgba.getpixel((56, 16))[3] == 0


def test_cmyk_comes_out_rgb_with_roughly_the_right_colour() -> None:
    result = render(gen.cmyk_jpeg(40, 40), options(ALL_FORMATS))
    assert result.metadata.color_space == "cmyk"
    for rendition in result.renditions:
        out = decoded(rendition)
        assert out.mode in ("RGB", "RGBA")
        red, green, blue = out.convert("RGB").getpixel((20, 20))[:3]
        assert red > 180
        assert green < 90
        assert blue < 90


def test_16_bit_rgb_becomes_8_bit() -> None:
    result = render(gen.rgb16_png(30, 20), options(ALL_FORMATS))
    assert result.metadata.color_space == "rgb16"
    for rendition in result.renditions:
        out = decoded(rendition)
        assert out.mode in ("RGB", "RGBA")
        assert close(out.convert("RGB").getpixel((15, 10)), (255, 128, 0), 6)


def test_16_bit_grey_becomes_8_bit_grey() -> None:
    result = render(gen.grey16_png(64, 16), options(ALL_FORMATS))
    assert result.metadata.color_space == "grey16"
    jpeg = decoded(result.renditions[0])
    assert jpeg.mode == "L"
    assert jpeg.getpixel((1, 8)) < 20
    assert jpeg.getpixel((62, 8)) > 235
    for rendition in result.renditions[1:]:
        out = decoded(rendition).convert("L")
        assert out.getpixel((1, 8)) < 20
        assert out.getpixel((62, 8)) > 235


def test_greyscale_jpeg() -> None:
    result = render(gen.grey_jpeg(50, 30), options(ALL_FORMATS))
    assert result.metadata.color_space == "b-w"
    assert not result.metadata.has_alpha
    assert decoded(result.renditions[0]).mode == "L"


@pytest.mark.parametrize("make", [gen.p3_png, gen.p3_heic])
def test_icc_tagged_images_are_converted_to_srgb(make) -> None:
    # GIVEN Display P3 pixels that mean sRGB (0, 200, 0); read as if sRGB they would be
    # roughly (90, 197, 58)
    raw = Image.open(io.BytesIO(gen.p3_png(24, 24, (0, 200, 0)))).getpixel((5, 5))
    assert not close(raw, (0, 200, 0), 30)
    data = make(24, 24, (0, 200, 0))
    # WHEN rendered THEN the outputs show the sRGB colour and carry no profile
    result = render(data, options(ALL_FORMATS))
    for rendition in result.renditions:
        out = decoded(rendition)
        assert "icc_profile" not in out.info
        assert close(out.convert("RGB").getpixel((5, 5)), (0, 200, 0), 10)


# --- input formats ----------------------------------------------------------------------------


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


# --- limits and refusals ----------------------------------------------------------------------


def test_a_claimed_60000_square_jpeg_is_refused_from_its_header_fast() -> None:
    data = gen.claimed_size_jpeg(60000, 60000)
    assert len(data) < 1000
    for call in (
        lambda: check_header(data, Limits().render_limits()),
        lambda: probe(data, DEFAULTS),
        lambda: render(data, DEFAULTS),
    ):
        started = time.perf_counter()
        with pytest.raises(TooManyPixelsError, match="60000x60000"):
            call()
        assert time.perf_counter() - started < 0.5


def test_check_header_reads_size_and_frames() -> None:
    limits = DEFAULTS.limits
    assert check_header(gen.photo_jpeg(40, 30, orientation=6), limits) == ("jpeg", 30, 40, 1)
    assert check_header(gen.animated_gif(20, 10, frames=4), limits) == ("gif", 20, 10, 4)
    assert check_header(gen.heic(32, 16), limits) == ("heif", 32, 16, 1)


def test_pixel_limit_counts_frames() -> None:
    data = gen.animated_gif(40, 30, frames=3)  # 1,200 pixels a frame, 3,600 in all
    check_header(data, Limits(max_pixels=3600).render_limits())
    with pytest.raises(TooManyPixelsError, match="3 frames"):
        check_header(data, Limits(max_pixels=3000).render_limits())


def test_frame_limit() -> None:
    with pytest.raises(TooManyFramesError, match="3 frames"):
        render(gen.animated_gif(20, 20, frames=3), options(limits=Limits(max_frames=2)))


def test_byte_limit() -> None:
    data = gen.photo_jpeg(64, 64)
    with pytest.raises(TooLargeError):
        render(data, options(limits=Limits(max_bytes=len(data) - 1)))
    check_header(data, Limits(max_bytes=len(data)).render_limits())


@pytest.mark.parametrize("make", [gen.heic, gen.avif])
def test_a_heif_whose_ispe_box_understates_its_size_is_refused(make) -> None:
    # GIVEN a 256x192 HEIC/AVIF whose `ispe` box (what the header check reads) says 32x24,
    # the way a file would slip a large picture past max_pixels
    data = bytearray(make(256, 192))
    at = data.find(b"ispe")
    assert data.count(b"ispe") == 1 and struct.unpack(">II", data[at + 8 : at + 16]) == (256, 192)
    data[at + 8 : at + 16] = struct.pack(">II", 32, 24)
    assert pipeline.check_header(bytes(data), DEFAULTS.limits)[1:3] == (32, 24)
    # WHEN it renders THEN libheif's own check refuses it: the decoded size is not the
    # signalled one (after the decode, so the decoder's memory and time follow the coded
    # size; the renderer's memory cap and time limit bound those)
    with pytest.raises(CorruptImageError, match="does not have the size signaled"):
        render(bytes(data), DEFAULTS)


def test_heic_pixel_limit_is_checked_before_decoding() -> None:
    with pytest.raises(TooManyPixelsError):
        render(gen.heic(64, 64), options(limits=Limits(max_pixels=64 * 64 - 1)))


def test_formats_not_allowed_by_config_are_refused() -> None:
    limits = Limits(allowed_formats=["jpeg"])
    with pytest.raises(UnsupportedFormatError, match="png"):
        render(gen.rgba_png(8, 8), options(limits=limits))
    render(gen.photo_jpeg(8, 8), options(limits=limits))


@pytest.mark.parametrize("data", [gen.SVG, gen.PDF, b"P6\n2 2\n255\n" + bytes(12), b""])
def test_svg_pdf_and_others_are_unsupported(data: bytes) -> None:
    for call in (check_header, lambda d, _: probe(d, DEFAULTS), lambda d, _: render(d, DEFAULTS)):
        with pytest.raises(UnsupportedFormatError):
            call(data, Limits())


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


def test_unexpected_failures_become_processing_errors(monkeypatch) -> None:
    def explode(*_args: object) -> None:
        raise RuntimeError("boom\n" + "x" * 5000)

    monkeypatch.setattr(pipeline, "_decode", explode)
    with pytest.raises(ProcessingError) as raised:
        render(gen.photo_jpeg(16, 16), DEFAULTS)
    assert len(str(raised.value)) < 300


def test_memory_errors_become_too_many_pixels(monkeypatch) -> None:
    def exhaust(*_args: object) -> None:
        raise MemoryError

    monkeypatch.setattr(pipeline, "_decode", exhaust)
    with pytest.raises(TooManyPixelsError):
        render(gen.photo_jpeg(16, 16), DEFAULTS)


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


def test_a_render_loads_no_numpy() -> None:
    """numpy is a test and bench dependency only: the analysis (pHash, blurhash, dominant
    colour, alpha flattening) is pure Python, so rendering processes and the Lambda zip are
    without it."""
    code = (
        "import io, sys; from PIL import Image;"
        "from imgpipe.config import Settings; from imgpipe import engine;"
        "opts = Settings().render_options();"
        "out = io.BytesIO(); Image.new('RGBA', (64, 48), (9, 99, 199, 120)).save(out, 'PNG');"
        "result = engine.render(out.getvalue(), opts);"
        "print(len(result.renditions), result.metadata.phash is not None, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["6", "True", "False"]


def test_importing_the_engine_loads_no_image_library() -> None:
    code = (
        "import sys, imgpipe.engine.pipeline, imgpipe.engine.renderers;"
        "print(sorted({'pyvips', 'numpy', 'PIL', 'pillow_heif'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=None
    )
    assert out.stdout.strip() == "[]"


def test_probe_and_render_agree(large_photo: bytes, large_result) -> None:
    probed = probe(large_photo, DEFAULTS)
    rendered = large_result.metadata
    assert probed.model_dump(exclude={"phash", "blurhash", "dominant_color"}) == (
        rendered.model_dump(exclude={"phash", "blurhash", "dominant_color"})
    )
    assert hamming(probed.phash, rendered.phash) <= 4  # type: ignore[arg-type]


def test_a_decoders_row_padding_is_dropped() -> None:
    rows = [bytes(range(10 * y, 10 * y + 6)) + b"\xee\xee" for y in range(3)]  # 6 + 2 padding
    assert bytes(pipeline._unpadded(b"".join(rows), 8, 6, 3)) == b"".join(r[:6] for r in rows)
    # unpadded rows are used as they are, without what follows the last one
    assert bytes(pipeline._unpadded(bytes(range(20)), 6, 6, 3)) == bytes(range(18))


@pytest.mark.parametrize("orientation", [1, 6])
def test_pillow_and_libvips_encoders_write_the_same_pixels(orientation: int) -> None:
    """encoder="pillow" (the default) is only a faster writer: the same libjpeg-turbo and
    libwebp settings, so the decoded pixels are identical to libvips' own encoders, and the
    files differ by at most a few header bytes (JPEG) or not at all (WebP)."""
    data = gen.photo_jpeg(1200, 900, orientation=orientation)

    def encoded(encoder: str) -> dict[str, bytes]:
        spec = RenditionSpec(name="m", width=800, height=800, encoder=encoder)  # type: ignore[arg-type]
        return {r.ext: r.data for r in render(data, options(spec)).renditions}

    by_pillow, by_libvips = encoded("pillow"), encoded("libvips")
    assert by_pillow.keys() == by_libvips.keys() == {"jpg", "webp"}
    for ext, ours in by_pillow.items():
        theirs = by_libvips[ext]
        with Image.open(io.BytesIO(ours)) as a, Image.open(io.BytesIO(theirs)) as b:
            assert a.size == b.size == ((800, 600) if orientation == 1 else (600, 800))
            assert np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))
        assert abs(len(ours) - len(theirs)) <= 64, (ext, len(ours), len(theirs))
    assert by_pillow["webp"] == by_libvips["webp"]
