"""On-request transforms through the engine, as a user sees them: outputs decoded with Pillow
(sizes, where colours land, alpha, metadata, magic bytes), never compared byte for byte."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import imagegen
from imgpipe.config import Limits, Settings
from imgpipe.core.errors import InvalidRequestError, TooManyPixelsError
from imgpipe.core.formats import OutputFormat
from imgpipe.core.img_url import parse_img_path
from imgpipe.core.transform import TransformLimits, TransformRequest, Variant
from imgpipe.engine.transform import transform
from imgpipe.engine.transform_plan import plan

SETTINGS = Settings()
ENCODER = SETTINGS.transform.encoder()
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)
PHOTO = imagegen.photo_jpeg(400, 300)
DEFAULT_LIMITS = TransformLimits()


def request(
    options: str,
    formats: tuple[OutputFormat, ...] = ("jpeg",),
    limits: TransformLimits = DEFAULT_LIMITS,
    source_limits: Limits | None = None,
) -> TransformRequest:
    url = parse_img_path(f"/_/{options}/plain/x", keys=[], unsafe=True, presets={})
    return TransformRequest(
        url.transform,
        formats,
        ENCODER,
        (255, 255, 255),
        (source_limits or Limits()).render_limits(),
        limits,
    )


def run(data: bytes, options: str, *formats: OutputFormat) -> tuple[Variant, Image.Image]:
    variant = transform(data, request(options, formats or ("jpeg",)))
    image = Image.open(io.BytesIO(variant.data))
    image.load()
    assert image.size == (variant.width, variant.height)
    return variant, image


def rgb(image: Image.Image, x: int, y: int) -> tuple[int, ...]:
    return tuple(image.convert("RGB").getpixel((x, y)))  # type: ignore[arg-type]


def near(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


def halves(width: int, height: int, left: tuple[int, ...], right: tuple[int, ...]) -> bytes:
    image = Image.new("RGB", (width, height), left)
    image.paste(right, (width // 2, 0, width, height))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("options", "size"),
    [
        ("rs:fit:100:100", (100, 75)),
        ("rs:fill:100:100", (100, 100)),
        ("rs:fill-down:1000:500", (400, 200)),
        ("rs:force:50:70", (50, 70)),
        ("rs:auto:100:300", (100, 75)),
        ("rs:auto:300:100", (300, 100)),
        ("w:200", (200, 150)),
        ("h:60", (80, 60)),
        ("rs:fit:1000:1000", (400, 300)),
        ("rs:fit:1000:1000:1", (1000, 750)),
        ("rs:fit:500:500:0:1", (500, 500)),
        ("w:100/dpr:2", (200, 150)),
        ("w:100/mw:200", (100, 150)),
        ("z:0.5", (200, 150)),
        ("c:200:100/rs:fill:50:50", (50, 50)),
        ("rot:90/w:150", (150, 200)),
    ],
)
def test_each_resizing_gives_the_exact_size_the_plan_says(
    options: str, size: tuple[int, int]
) -> None:
    _, image = run(PHOTO, options)
    assert image.size == size
    turned = (300, 400) if "rot:90" in options else (400, 300)
    assert plan(*turned, request(options).transform).output == size


def test_fill_crops_at_the_gravity() -> None:
    red_blue = halves(400, 200, RED, BLUE)
    for gravity, colour in (("we", RED), ("ea", BLUE), ("fp:0.1:0.5", RED), ("fp:0.9:0.5", BLUE)):
        _, image = run(red_blue, f"rs:fill:100:100/g:{gravity}")
        assert image.size == (100, 100)
        assert near(rgb(image, 5, 50), colour) and near(rgb(image, 94, 50), colour), gravity


def subject_on_a_flat_field(width: int, height: int, x: int, y: int) -> bytes:
    """A grey field with a small, bright, detailed object at (x, y): what attention finds."""
    field = np.full((height, width, 3), 128, np.uint8)
    rng = np.random.default_rng(1)
    field[y - 20 : y + 20, x - 20 : x + 20] = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    field[y - 8 : y + 8, x - 8 : x + 8] = (255, 30, 30)
    out = io.BytesIO()
    Image.fromarray(field).save(out, "PNG")
    return out.getvalue()


def has_subject(image: Image.Image) -> bool:
    pixels = np.asarray(image.convert("RGB")).astype(int)
    reds = (pixels[..., 0] > 200) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
    return int(reds.sum()) > 20


def test_smart_gravity_keeps_an_off_centre_subject_in_a_square_crop() -> None:
    # GIVEN a wide flat field whose only detail is near its right edge
    data = subject_on_a_flat_field(900, 300, x=800, y=150)
    # WHEN it is filled into a square, centred and smart
    _, centred = run(data, "rs:fill:200:200")
    _, smart = run(data, "rs:fill:200:200/g:sm")
    # THEN the centre crop loses the subject and the smart one keeps it
    assert smart.size == centred.size == (200, 200)
    assert not has_subject(centred)
    assert has_subject(smart)


def test_the_crop_option_cuts_an_area_before_the_resize() -> None:
    red_blue = halves(400, 200, RED, BLUE)
    _, image = run(red_blue, "c:0.5:0:we/w:100")
    assert image.size == (100, 100) and near(rgb(image, 95, 50), RED)
    _, image = run(red_blue, "c:100:100:ea")
    assert image.size == (100, 100) and near(rgb(image, 5, 50), BLUE)


def test_extend_pads_onto_the_background_at_its_gravity() -> None:
    red = halves(100, 50, RED, RED)
    _, image = run(red, "rs:fit:200:200:0:1")
    assert image.size == (200, 200)
    assert near(rgb(image, 100, 5), WHITE) and near(rgb(image, 100, 100), RED)
    _, image = run(red, "rs:fit:200:200:0:1:no")
    assert near(rgb(image, 100, 5), RED) and near(rgb(image, 100, 195), WHITE)
    _, image = run(red, "rs:fit:200:200:0:1/bg:000")
    assert near(rgb(image, 100, 5), (0, 0, 0))


def test_extend_is_transparent_where_the_format_has_alpha() -> None:
    _, image = run(halves(100, 50, RED, RED), "rs:fit:200:200:0:1", "png")
    assert image.mode == "RGBA"
    assert image.getpixel((100, 5))[3] == 0 and image.getpixel((100, 100))[3] == 255


def test_transparency_is_flattened_where_the_format_has_no_alpha() -> None:
    data = imagegen.rgba_png(100, 60)  # left opaque red, right transparent
    _, jpeg = run(data, "")
    assert near(rgb(jpeg, 90, 30), WHITE) and near(rgb(jpeg, 10, 30), RED)
    _, on_blue = run(data, "bg:00f")
    assert near(rgb(on_blue, 90, 30), BLUE)
    _, webp = run(data, "", "webp")
    assert webp.mode == "RGBA" and webp.getpixel((90, 30))[3] == 0
    _, flat_webp = run(data, "bg:0:0:255", "webp")  # a background named: flattened anyway
    assert "A" not in flat_webp.getbands() or flat_webp.getpixel((90, 30))[3] == 255
    assert near(rgb(flat_webp, 90, 30), BLUE)


def corner(image: Image.Image) -> str:
    """Which corner of the image is red (corner_jpeg's red quadrant)."""
    width, height = image.size
    spots = {
        "tl": (2, 2),
        "tr": (width - 3, 2),
        "bl": (2, height - 3),
        "br": (width - 3, height - 3),
    }
    return next(name for name, spot in spots.items() if near(rgb(image, *spot), RED, 80))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_exif_orientation_is_applied(orientation: int) -> None:
    data = imagegen.corner_jpeg(80, 40, orientation)
    _, image = run(data, "w:40")
    upright = (40, 20) if orientation <= 4 else (40, 80)
    assert image.size == upright
    assert corner(image) == imagegen.RED_CORNER[orientation]


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_jpeg_shrunk_on_load_is_upright_at_the_exact_size(orientation: int, fast: bool) -> None:
    # a JPEG decoded at 1/4 (sharp: 200 px left for a 100 px result) or 1/8 (fast)
    data = imagegen.corner_jpeg(800, 400, orientation)
    variant = transform(data, request("w:100")._replace(fast_shrink_on_load=fast))
    image = Image.open(io.BytesIO(variant.data))
    assert image.size == ((100, 50) if orientation <= 4 else (100, 200))
    assert corner(image) == imagegen.RED_CORNER[orientation]


def test_the_default_decode_is_sharper_than_the_fast_one() -> None:
    # GIVEN a detailed 1600x1200 photo, and its 200x150 fill made from its full decode
    out = io.BytesIO()
    imagegen.photo_pixels(1600, 1200).save(out, "JPEG", quality=95)
    data = out.getvalue()
    full = Image.open(io.BytesIO(data)).convert("L")
    reference = np.asarray(full.resize((200, 150), Image.Resampling.LANCZOS), dtype=float)

    def psnr(fast: bool) -> float:
        variant = transform(
            data, request("rs:fill:200:150", ("png",))._replace(fast_shrink_on_load=fast)
        )
        got = np.asarray(Image.open(io.BytesIO(variant.data)).convert("L"), dtype=float)
        return float(10 * np.log10(255**2 / np.mean((got - reference) ** 2)))

    # THEN the default (1/4, then Magic Kernel Sharp) is close to it, the fast one (1/8, the
    # DCT's block averages, then Lanczos3) visibly softer
    sharp, fast = psnr(False), psnr(True)
    assert sharp >= 50.0
    assert sharp - fast >= 3.0, (sharp, fast)


def test_auto_rotate_off_keeps_the_pixels_as_stored() -> None:
    _, image = run(imagegen.corner_jpeg(80, 40, 6), "ar:0")
    assert image.size == (80, 40) and corner(image) == "tl"


def test_rotate_turns_clockwise_after_the_exif_orientation() -> None:
    data = imagegen.corner_jpeg(80, 40, 1)
    for angle, expected in ((90, "tr"), (180, "br"), (270, "bl"), (-90, "bl")):
        _, image = run(data, f"rot:{angle}")
        assert image.size == ((40, 80) if angle % 180 else (80, 40))
        assert corner(image) == expected, angle


MAGIC = {
    "jpeg": lambda b: b.startswith(b"\xff\xd8\xff"),
    "png": lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"),
    "webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    "avif": lambda b: b[4:12] == b"ftypavif",
}


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif"])
def test_each_format_is_written_with_its_magic_bytes_and_no_metadata(fmt: OutputFormat) -> None:
    data = imagegen.photo_jpeg(300, 200, gps=True)
    variant, image = run(data, "w:120", fmt)
    assert variant.format == fmt and MAGIC[fmt](variant.data)
    assert variant.content_type == f"image/{fmt}"
    assert image.size == (120, 80)
    assert not image.getexif()
    assert not image.info.get("exif") and not image.info.get("xmp")


def test_strip_metadata_off_keeps_exif_but_never_gps() -> None:
    data = imagegen.photo_jpeg(300, 200, gps=True, orientation=6)
    _, image = run(data, "w:100/sm:0")
    exif = image.getexif()
    assert exif.get(imagegen.TAG_MAKE) == "Canon"
    assert not exif.get_ifd(imagegen.IFD_GPS)
    assert exif.get(imagegen.TAG_ORIENTATION, 1) == 1  # the pixels are upright already
    assert image.size == (100, 150)


def test_best_writes_each_format_and_keeps_the_smallest() -> None:
    flat = halves(200, 100, RED, BLUE)
    best, _ = run(flat, "", "jpeg", "png")
    sizes = {fmt: len(run(flat, "", fmt)[0].data) for fmt in ("jpeg", "png")}
    assert best.format == min(sizes, key=sizes.__getitem__)
    assert len(best.data) == min(sizes.values())


def test_quality_from_the_url_changes_the_pixels() -> None:
    original = np.asarray(Image.open(io.BytesIO(PHOTO)).convert("RGB")).astype(int)

    def error(options: str) -> float:
        _, image = run(PHOTO, options)
        return float(np.abs(np.asarray(image.convert("RGB")).astype(int) - original).mean())

    assert error("q:5") > error("q:95") + 1
    assert error("fq:jpeg:5") > error("fq:jpeg:95") + 1


def test_blur_smooths_and_pixelate_makes_blocks() -> None:
    _, plain = run(PHOTO, "", "png")
    _, blurred = run(PHOTO, "bl:4", "png")
    edges = lambda im: float(np.abs(np.diff(np.asarray(im.convert("L")).astype(int))).mean())  # noqa: E731
    assert edges(blurred) < edges(plain) / 2
    _, sharpened = run(PHOTO, "sh:2", "png")
    assert edges(sharpened) > edges(plain)
    _, blocks = run(PHOTO, "pix:10", "png")
    pixels = np.asarray(blocks.convert("RGB")).astype(int)
    assert blocks.size == (400, 300)
    assert np.ptp(pixels[10:20, 30:40], axis=(0, 1)).max() == 0  # one block, one colour


def test_a_result_over_the_limits_is_refused_before_decoding() -> None:
    limits = TransformLimits(max_width=500, max_height=500, max_pixels=200_000)
    with pytest.raises(InvalidRequestError, match="the result is 800x600 px"):
        transform(PHOTO, request("z:2/el:1", limits=limits))
    with pytest.raises(InvalidRequestError, match="the result is 500x375 = 187,500"):
        transform(PHOTO, request("w:500/el:1", limits=limits._replace(max_pixels=100_000)))
    # a resize that would be huge before its crop is refused too
    thin = halves(1000, 2, RED, BLUE)
    with pytest.raises(InvalidRequestError, match="resized before its crop"):
        transform(thin, request("rs:fill:400:400:1", limits=limits))


def test_a_zoom_past_any_size_is_a_400_even_where_the_url_was_not_checked() -> None:
    url = parse_img_path("/_/z:1e308/el:1/plain/x", keys=[], unsafe=True, presets={})
    asked = request("")._replace(transform=url.transform)
    with pytest.raises(InvalidRequestError, match="too large"):
        transform(PHOTO, asked)


def test_the_original_is_checked_as_a_render_checks_it() -> None:
    with pytest.raises(TooManyPixelsError):
        transform(PHOTO, request("w:10", source_limits=Limits(max_pixels=1000)))


# (bytes, size upright, size as stored) of small sources for the property below
SOURCES = [
    (imagegen.photo_jpeg(60, 40, orientation=6), (40, 60), (60, 40)),
    (imagegen.rgba_png(30, 50), (30, 50), (30, 50)),
    (imagegen.grey_jpeg(20, 20), (20, 20), (20, 20)),
]
OPTIONS = [
    "rs:fit:10:10", "rs:fill:50:20", "rs:fill-down:100:90", "rs:force:7:3", "rs:auto:30:5",
    "w:1", "h:3", "mw:80", "mh:70", "z:0.1", "z:3:0.5", "dpr:3", "el:1", "ex:1:so:3:4",
    "ex:1:fp:0:1", "g:sm", "g:fp:1:0", "g:noea:-5:0.5", "c:0.9:5", "c:1:1:sm",
    "c:200:200:fp:0.2:0.9", "rot:90", "rot:270", "ar:0", "bg:123", "bl:20", "sh:5", "pix:3",
    "pix:100", "sm:0", "q:1", "fq:png:10",
]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    options=st.lists(st.sampled_from(OPTIONS), max_size=6),
    source=st.sampled_from(SOURCES),
    fmt=st.sampled_from(["jpeg", "png", "webp", "avif"]),
)
def test_any_mix_of_options_gives_the_planned_size_or_a_400(
    options: list[str], source: tuple[bytes, tuple[int, int], tuple[int, int]], fmt: OutputFormat
) -> None:
    data, upright, stored = source
    asked = request("/".join(options) or "cb:x", (fmt,))
    t = asked.transform
    size = upright if t.auto_rotate else stored
    size = size[::-1] if t.rotate % 180 else size
    try:
        variant = transform(data, asked)
    except InvalidRequestError:
        return  # over the limits: a 400, never another error
    assert (variant.width, variant.height) == plan(*size, t).output
    assert variant.format == fmt and MAGIC[fmt](variant.data)
