"""The imaging engine, judged by what a user sees: outputs decoded with Pillow (an independent
decoder), their sizes, formats, orientation, colours, and that no metadata is left in them."""

from __future__ import annotations

import hashlib
import io
import math
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
from imgpipe.config import Limits, RenditionSpec, Settings
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
    EncodedRendition,
    MetadataRules,
    RenderLimits,
    RenderOptions,
    RenderPreset,
)
from imgpipe.engine import check_header, parse_exif, pipeline, probe, render

DEFAULTS = Settings().render_options()
ALL_FORMATS = RenditionSpec(
    name="all", width=64, height=64, formats=["jpeg", "webp", "png", "avif"]
)


def options(
    *specs: RenditionSpec,
    limits: Limits | None = None,
    keep_gps: bool = False,
    strip_exif: bool = True,
    background: tuple[int, int, int] = (255, 255, 255),
) -> RenderOptions:
    return RenderOptions(
        renditions=tuple(spec.render_preset() for spec in specs) or DEFAULTS.renditions,
        limits=(limits or Limits()).render_limits(),
        metadata=MetadataRules(keep_gps=keep_gps, strip_exif=strip_exif),
        background=background,
    )


def decoded(rendition: EncodedRendition) -> Image.Image:
    image = Image.open(io.BytesIO(rendition.data))
    image.load()
    return image


def close(actual, expected, tolerance: int = 12) -> bool:
    return all(abs(int(a) - int(e)) <= tolerance for a, e in zip(actual, expected, strict=False))


PIL_FORMAT = {"jpeg": "JPEG", "webp": "WEBP", "png": "PNG", "avif": "AVIF"}


@pytest.fixture(scope="module")
def large_photo() -> bytes:
    return gen.photo_jpeg(2000, 1500, gps=True)


@pytest.fixture(scope="module")
def large_result(large_photo: bytes) -> pipeline.RenderResult:
    return render(large_photo, DEFAULTS)


# --- sizes and formats ------------------------------------------------------------------------


def test_default_renditions_of_a_large_photo(large_result: pipeline.RenderResult) -> None:
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


def test_outputs_carry_no_exif_xmp_or_icc(large_result: pipeline.RenderResult) -> None:
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


def test_untrusted_loaders_are_blocked() -> None:
    import pyvips

    pipeline.configure_vips()
    pipeline.configure_vips()  # idempotent
    for data in (gen.SVG, b"2 2\n1 2\n3 4\n", b"1,2,3\n4,5,6\n"):
        with pytest.raises(pyvips.Error):
            pyvips.Image.new_from_buffer(data, "")
        with pytest.raises(pyvips.Error):
            pyvips.Image.new_from_source(pyvips.Source.new_from_memory(data), "")
    with pytest.raises(pyvips.Error):
        pyvips.Operation.call("svgload_buffer", gen.SVG)
    for data in (gen.photo_jpeg(8, 8), gen.rgba_png(8, 8), gen.webp(8, 8), gen.animated_gif(8, 8)):
        assert pyvips.Image.new_from_buffer(data, "").avg() >= 0
    assert pyvips.Image.new_from_buffer(gen.tiff(8, 8), "").width == 8
    assert pyvips.Image.new_from_buffer(gen.avif(8, 8), "").avg() >= 0


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


# --- metadata ---------------------------------------------------------------------------------


def test_exif_subset_without_gps_by_default(large_photo: bytes, large_result) -> None:
    metadata = large_result.metadata
    assert metadata.exif is not None
    exif = metadata.exif.model_dump(by_alias=True)
    assert exif == {
        "make": "Canon",
        "model": "Canon EOS R6",
        "lens": "RF24-105mm F4 L IS USM",
        "takenAt": "2024-05-17T14:03:22+02:00",
        "exposureTime": "1/250",
        "fNumber": 2.8,
        "iso": 400,
        "focalLength": 35.0,
        "gps": None,
    }
    assert metadata.sha256 == hashlib.sha256(large_photo).hexdigest()
    assert (metadata.content_type, metadata.format, metadata.color_space) == (
        "image/jpeg",
        "jpeg",
        "srgb",
    )
    assert (metadata.width, metadata.height, metadata.frames, metadata.orientation) == (
        2000,
        1500,
        1,
        1,
    )


def test_gps_only_when_configured() -> None:
    data = gen.photo_jpeg(64, 48, gps=True)
    assert probe(data, options()).exif.gps is None  # type: ignore[union-attr]
    gps = probe(data, options(keep_gps=True)).exif.gps  # type: ignore[union-attr]
    assert gps is not None
    assert math.isclose(gps["lat"], 48 + 51 / 60 + 30.24 / 3600, abs_tol=1e-6)
    assert math.isclose(gps["lon"], 2 + 17 / 60 + 40.2 / 3600, abs_tol=1e-6)
    assert gps["alt"] == 35.0


def test_renditions_keeping_exif_still_lose_gps_unless_configured() -> None:
    data = gen.photo_jpeg(64, 48, orientation=6, gps=True)
    spec = RenditionSpec(name="t", width=32, height=32, formats=["jpeg", "webp"])
    for keep_gps in (False, True):
        result = render(data, options(spec, strip_exif=False, keep_gps=keep_gps))
        for rendition in result.renditions:
            exif = decoded(rendition).getexif()
            assert exif.get(0x010F) == "Canon"
            assert exif.get(0x0112) in (None, 1)  # pixels are upright already
            assert bool(exif.get_ifd(0x8825)) is keep_gps


def test_heic_exif_is_read() -> None:
    metadata = probe(gen.heic(32, 32), DEFAULTS)
    assert metadata.exif is not None
    assert metadata.exif.model == "Canon EOS R6"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"Exif\x00\x00",
        b"Exif\x00\x00garbage",
        b"II*\x00\xff\xff\xff\xff",
        b"MM\x00*\x00\x00\x00\x08\x00\x05",
        gen.exif_bytes(gps=True)[:40],
        gen.exif_bytes(gps=True)[:-30],
    ],
)
def test_broken_exif_never_raises(raw: bytes) -> None:
    parse_exif(raw, keep_gps=True)


def test_partly_broken_exif_keeps_what_it_can_read() -> None:
    raw = gen.exif_bytes(gps=True)
    exif = parse_exif(raw[: len(raw) - 8], keep_gps=True)
    assert exif is not None
    assert exif.make == "Canon"


@given(st.binary(max_size=300))
def test_exif_fuzz_never_raises(raw: bytes) -> None:
    parse_exif(b"Exif\x00\x00II*\x00\x08\x00\x00\x00" + raw, keep_gps=True)


@pytest.mark.parametrize(
    ("original", "offset", "expected"),
    [
        ("2024:05:17 14:03:22", None, "2024-05-17T14:03:22"),
        (b"2024:05:17 14:03:22\x00", "+02:00", "2024-05-17T14:03:22+02:00"),
        ("2024:05:17 14:03:22", "+25:00", "2024-05-17T14:03:22"),  # no such offset
        ("2024:02:29 23:59:59", None, "2024-02-29T23:59:59"),  # a leap day
    ],
)
def test_taken_at_reads_exif_dates(original: object, offset: object, expected: str) -> None:
    assert pipeline._taken_at(original, offset) == expected


@pytest.mark.parametrize(
    "original",
    [
        "2023:02:29 10:00:00",  # no leap day that year
        "2024:13:01 10:00:00",
        "2024:05:17 24:00:00",
        "0000:00:00 00:00:00",  # what a camera with no clock writes
        "    :  :     :  :  ",
        "2024:5:17 14:03:22",  # EXIF pads with zeros
        "2024-05-17 14:03:22",
        "2024:05:17T14:03:22",
        "2024:05:17 14:03:2\u0662",  # a non-ASCII digit
        "2024:05:17 +4:03:22",
    ],
)
def test_taken_at_refuses_what_is_not_an_exif_date(original: str) -> None:
    with pytest.raises(ValueError, match=r"numbers of|out of range|must be in"):
        pipeline._taken_at(original, None)


def test_exposure_formats() -> None:
    from PIL.TiffImagePlugin import IFDRational

    assert pipeline._exposure(IFDRational(1, 250)) == "1/250"
    assert pipeline._exposure(IFDRational(10, 2500)) == "1/250"
    assert pipeline._exposure(IFDRational(2, 1)) == "2"
    assert pipeline._exposure(IFDRational(1, 2)) == "1/2"
    assert pipeline._exposure(IFDRational(3, 10)) == "0.3"
    assert pipeline._exposure(IFDRational(1, 0)) is None


# phash, blurhash, dominant colour -----------------------------------------------------------


def pixels(rgb: np.ndarray) -> pipeline.Pixels:
    height, width = rgb.shape[:2]
    return pipeline.Pixels(width, height, rgb.astype(np.uint8).tobytes())


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def test_phash_matches_a_naive_dct_definition() -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    luma = rgb.astype(float) @ np.array([0.299, 0.587, 0.114])
    coefficients = np.zeros((8, 8))
    for u in range(8):
        for v in range(8):
            total = 0.0
            for x in range(32):
                for y in range(32):
                    total += (
                        luma[x, y]
                        * math.cos(math.pi * (2 * x + 1) * u / 64)
                        * math.cos(math.pi * (2 * y + 1) * v / 64)
                    )
            coefficients[u, v] = total
    bits = "".join("1" if c > np.median(coefficients) else "0" for c in coefficients.flatten())
    assert pipeline.phash(pixels(rgb)) == f"{int(bits, 2):016x}"


def test_phash_is_stable_across_formats_and_differs_between_pictures() -> None:
    picture = gen.photo_pixels(300, 200)
    as_png = gen._save(picture, "PNG")
    as_jpeg = gen._save(picture, "JPEG", quality=70)
    other = gen._save(Image.fromarray(np.asarray(picture)[::-1, ::-1].copy()), "PNG")
    hashes = [probe(data, DEFAULTS).phash for data in (as_png, as_jpeg, other)]
    assert all(h is not None and len(h) == 16 for h in hashes)
    assert hamming(hashes[0], hashes[1]) <= 4  # type: ignore[arg-type]
    assert hamming(hashes[0], hashes[2]) >= 16  # type: ignore[arg-type]


def test_probe_and_render_agree(large_photo: bytes, large_result) -> None:
    probed = probe(large_photo, DEFAULTS)
    rendered = large_result.metadata
    assert probed.model_dump(exclude={"phash", "blurhash", "dominant_color"}) == (
        rendered.model_dump(exclude={"phash", "blurhash", "dominant_color"})
    )
    assert hamming(probed.phash, rendered.phash) <= 4  # type: ignore[arg-type]


_B83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def to_srgb(value: float) -> int:
    """BlurHash's linear-to-sRGB step, as the reference encoder and decoder write it."""
    v = max(0.0, min(1.0, value))
    if v <= 0.0031308:
        return int(v * 12.92 * 255 + 0.5)
    return int((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5)


def decode_blurhash(blurhash: str, width: int, height: int) -> np.ndarray:
    """The reference decoder (woltapp/blurhash, TypeScript), transcribed."""

    def b83(text: str) -> int:
        value = 0
        for char in text:
            value = value * 83 + _B83.index(char)
        return value

    def to_linear(value: int) -> float:
        v = value / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    size_flag = b83(blurhash[0])
    ny, nx = size_flag // 9 + 1, size_flag % 9 + 1
    assert len(blurhash) == 4 + 2 * nx * ny
    maximum = (b83(blurhash[1]) + 1) / 166
    dc = b83(blurhash[2:6])
    colours = [(to_linear(dc >> 16), to_linear((dc >> 8) & 255), to_linear(dc & 255))]
    for i in range(1, nx * ny):
        value = b83(blurhash[4 + i * 2 : 6 + i * 2])
        quantised = (value // (19 * 19), (value // 19) % 19, value % 19)
        colours.append(tuple(math.copysign(((q - 9) / 9) ** 2, q - 9) * maximum for q in quantised))
    out = np.zeros((height, width, 3), dtype=np.uint8)
    for y in range(height):
        for x in range(width):
            pixel = [0.0, 0.0, 0.0]
            for j in range(ny):
                for i in range(nx):
                    basis = math.cos(math.pi * x * i / width) * math.cos(math.pi * y * j / height)
                    for c in range(3):
                        pixel[c] += colours[i + j * nx][c] * basis
            out[y, x] = [to_srgb(v) for v in pixel]
    return out


def test_blurhash_of_a_flat_colour() -> None:
    rgb = np.zeros((32, 32, 3), dtype=np.uint8)
    rgb[:, :] = (255, 128, 0)
    blurhash = pipeline.blurhash(pixels(rgb))
    assert blurhash[0] == "L"  # 4x3 components
    assert len(blurhash) == 28
    # The DC term alone is the average colour
    assert close(decode_blurhash(blurhash[:6] + "fQ" * 11, 1, 1)[0, 0], (255, 128, 0), 1)
    # The whole hash decodes to about that colour (BlurHash's basis is not quite orthogonal
    # on a pixel grid, so a flat image has small AC terms: the reference encoder does that too)
    picture = decode_blurhash(blurhash, 8, 8).reshape(-1, 3).astype(float)
    assert np.abs(picture - (255, 128, 0)).mean() < 8


def test_blurhash_decodes_to_the_picture_with_a_reference_decoder() -> None:
    # GIVEN red on top and blue at the bottom, upright
    result = render(gen.two_tone_jpeg(64, 48, 1), options(ALL_FORMATS))
    blurhash = result.metadata.blurhash
    assert blurhash is not None
    assert len(blurhash) == 28
    # WHEN decoded by the reference algorithm THEN the top is red and the bottom blue
    picture = decode_blurhash(blurhash, 16, 12)
    top, bottom = picture[1, 8], picture[10, 8]
    assert top[0] > 150 > top[2]
    assert bottom[2] > 150 > bottom[0]
    # and the average colour (the DC term alone) is the mean of the linear-light pixels:
    # half red, half blue is linear (0.5, 0, 0.5), which is sRGB (188, 0, 188)
    average = decode_blurhash(blurhash[:6] + "fQ" * 11, 2, 2)[0, 0]
    assert close(average, (188, 0, 188), 10)


def test_dominant_colour() -> None:
    image = Image.new("RGB", (64, 64), (20, 120, 220))
    image.paste((250, 250, 250), (0, 0, 20, 64))  # less than a third is white
    result = probe(gen._save(image, "PNG"), DEFAULTS)
    assert result.dominant_color is not None
    assert close(bytes.fromhex(result.dominant_color[1:]), (20, 120, 220), 4)


def test_dominant_colour_ignores_transparent_pixels() -> None:
    # Mostly transparent green, a red opaque half: red is what a user sees
    assert probe(gen.rgba_png(40, 40), DEFAULTS).dominant_color == "#ff0000"


# The analysis' first implementation, in numpy. A rendering process no longer imports numpy
# (12 MB of RSS, and its import in every cold start); the pure-Python code must give the same
# answers, bit for bit, on pictures without exact ties.


def numpy_phash(rgb: np.ndarray) -> str:
    size = rgb.shape[0]
    luma = rgb[:, :, :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    n = np.arange(size)
    basis = np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size))
    low = (basis @ luma @ basis.T)[:8, :8]
    return f"{int(''.join('1' if b else '0' for b in (low > np.median(low)).flatten()), 2):016x}"


def numpy_blurhash(rgb: np.ndarray) -> str:
    """The reference encoder's steps (woltapp/blurhash) over numpy's factors, 4x3."""

    def b83(value: int, length: int) -> str:
        return "".join(_B83[(value // 83 ** (length - i - 1)) % 83] for i in range(length))

    factors = [[float(v) for v in f] for f in numpy_blurhash_factors(rgb)]
    dc, ac = factors[0], factors[1:]
    quantised_max = int(max(0, min(82, math.floor(max(abs(v) for f in ac for v in f) * 166 - 0.5))))
    maximum = (quantised_max + 1) / 166
    out = b83(3 + 2 * 9, 1) + b83(quantised_max, 1)
    out += b83((to_srgb(dc[0]) << 16) + (to_srgb(dc[1]) << 8) + to_srgb(dc[2]), 4)
    for f in ac:
        r, g, b = (
            int(max(0, min(18, math.floor(math.copysign(abs(v / maximum) ** 0.5, v) * 9 + 9.5))))
            for v in f
        )
        out += b83(r * 19 * 19 + g * 19 + b, 2)
    return out


def numpy_blurhash_factors(rgb: np.ndarray, nx: int = 4, ny: int = 3) -> list[np.ndarray]:
    height, width = rgb.shape[:2]
    v = rgb.astype(np.float64) / 255.0
    linear = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    xs, ys = np.arange(width) / width, np.arange(height) / height
    factors = []
    for j in range(ny):
        for i in range(nx):
            basis = np.outer(np.cos(np.pi * j * ys), np.cos(np.pi * i * xs))
            scale = (1.0 if i == 0 and j == 0 else 2.0) / (width * height)
            factors.append((basis[:, :, None] * linear).sum(axis=(0, 1)) * scale)
    return factors


def numpy_dominant(rgb: np.ndarray, alpha: np.ndarray | None) -> str:
    flat = rgb.reshape(-1, 3)
    if alpha is not None and (alpha.reshape(-1) >= 128).any():
        flat = flat[alpha.reshape(-1) >= 128]
    buckets = flat.astype(np.int64) >> 5
    index = (buckets[:, 0] << 6) | (buckets[:, 1] << 3) | buckets[:, 2]
    best = int(np.bincount(index, minlength=512).argmax())
    red, green, blue = (round(float(v)) for v in flat[index == best].mean(axis=0))
    return f"#{red:02x}{green:02x}{blue:02x}"


def numpy_composite(rgb: np.ndarray, alpha: np.ndarray, background: tuple[int, int, int]) -> bytes:
    weight = alpha.astype(np.float64)[:, :, None] / 255.0
    mixed = rgb * weight + np.asarray(background, dtype=np.float64) * (1.0 - weight)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8).tobytes()


def analysis_picture(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """32x32: smooth gradients with a little noise (a photo shrunk that far), or pure noise."""
    rng = np.random.default_rng(seed)
    if seed % 2:
        rgb = rng.integers(0, 256, (32, 32, 3))
    else:
        y, x = np.mgrid[0:32, 0:32]
        base = rng.uniform(0, 255, 3) + rng.uniform(-4, 4, 3) * (x + y)[:, :, None]
        rgb = np.clip(base + rng.normal(0, 6, (32, 32, 3)), 0, 255)
    alpha = rng.choice([0, 40, 127, 128, 200, 255], (32, 32))
    return rgb.astype(np.uint8), alpha.astype(np.uint8)


@pytest.mark.parametrize("seed", range(16))
def test_the_analysis_gives_what_its_numpy_definition_gives(seed: int) -> None:
    rgb, alpha = analysis_picture(seed)
    assert pipeline.phash(pixels(rgb)) == numpy_phash(rgb)
    assert pipeline.blurhash(pixels(rgb)) == numpy_blurhash(rgb)
    assert pipeline.dominant_color(pixels(rgb)) == numpy_dominant(rgb, None)
    assert pipeline.dominant_color(pixels(rgb), alpha.tobytes()) == numpy_dominant(rgb, alpha)
    flat = pipeline._composite(pixels(rgb), alpha.tobytes(), (250, 3, 128))
    assert flat.rgb == numpy_composite(rgb, alpha, (250, 3, 128))


def test_the_dominant_colour_of_a_fully_transparent_picture_counts_every_pixel() -> None:
    rgb, _ = analysis_picture(2)
    clear = bytes(32 * 32)
    assert pipeline.dominant_color(pixels(rgb), clear) == numpy_dominant(rgb, None)


@pytest.mark.parametrize("bands", [1, 2, 3, 4])
def test_the_analysis_pixels_of_each_band_layout(bands: int) -> None:
    import pyvips

    rng = np.random.default_rng(bands)
    source = rng.integers(0, 256, (40, 50, bands), dtype=np.uint8)
    image = pyvips.Image.new_from_memory(source.tobytes(), 50, 40, bands, "uchar")
    got, alpha = pipeline._analysis_pixels(image)
    small = image.thumbnail_image(32, height=32, size="force", no_rotate=True)
    want = np.frombuffer(small.write_to_memory(), np.uint8).reshape(32, 32, bands)
    colour = 1 if bands <= 2 else 3
    rgb = np.repeat(want[:, :, :1], 3, axis=2) if colour == 1 else want[:, :, :3]
    assert (got.width, got.height) == (32, 32)
    assert got.rgb == rgb.tobytes()
    assert alpha == (want[:, :, colour].tobytes() if bands in (2, 4) else None)


def test_a_decoders_row_padding_is_dropped() -> None:
    rows = [bytes(range(10 * y, 10 * y + 6)) + b"\xee\xee" for y in range(3)]  # 6 + 2 padding
    assert bytes(pipeline._unpadded(b"".join(rows), 8, 6, 3)) == b"".join(r[:6] for r in rows)
    # unpadded rows are used as they are, without what follows the last one
    assert bytes(pipeline._unpadded(bytes(range(20)), 6, 6, 3)) == bytes(range(18))


# --- memory ---------------------------------------------------------------------------------


def test_free_memory_is_handed_back_before_a_progressive_jpeg_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # libjpeg holds a progressive JPEG's every coefficient: that decode sets a process's peak,
    # so what glibc kept from earlier images goes back first; no other decode pays for it.
    calls: list[str] = []
    monkeypatch.setattr(pipeline, "hand_back_free_memory", lambda: calls.append("trim"))
    render(gen.photo_jpeg(64, 48), DEFAULTS)
    render(gen.rgba_png(64, 48), DEFAULTS)
    assert calls == []
    result = render(gen.progressive_jpeg(64, 48), DEFAULTS)
    assert calls == ["trim"] and len(result.renditions) == 6


def test_glibc_malloc_trim_is_found() -> None:
    # Debian, CI and Lambda's runtime are glibc: the call is there and answers 0 or 1
    trim = pipeline._malloc_trim()
    assert trim is not None
    assert trim(0) in (0, 1)


# --- options ------------------------------------------------------------------------------


def test_render_options_from_settings() -> None:
    settings = Settings(background=(1, 2, 3), metadata={"keep_gps": True})
    opts = settings.render_options()
    assert [r.name for r in opts.renditions] == ["thumb", "medium", "large"]
    assert opts.background == (1, 2, 3)
    assert opts.metadata == MetadataRules(keep_gps=True, strip_exif=True)
    assert opts.limits == RenderLimits(
        max_bytes=settings.limits.max_bytes,
        max_pixels=settings.limits.max_pixels,
        max_frames=settings.limits.max_frames,
        allowed_formats=tuple(settings.limits.allowed_formats),
    )


def test_a_preset_carries_every_field_of_its_rendition_spec() -> None:
    # A field added to RenditionSpec and not to RenderPreset would be lost on its way to a render
    assert set(RenderPreset._fields) == set(RenditionSpec.model_fields)
    spec = RenditionSpec(
        name="x",
        width=10,
        height=20,
        fit="cover",
        formats=["webp", "avif"],
        quality={"webp": 70},
        webp_effort=5,
        webp_smart_subsample=True,
        jpeg_optimize_coding=False,
        jpeg_progressive=True,
        jpeg_subsample="off",
        jpeg_trellis=True,
        encoder="libvips",
    )
    preset = spec.render_preset()
    assert preset._asdict() == {**spec.model_dump(), "formats": ("webp", "avif")}
    assert preset.quality_for("webp") == 70
    assert preset.quality_for("avif") == 55  # the format's default


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
