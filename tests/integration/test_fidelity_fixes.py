"""Files from public test suites that imgpipe once decoded wrongly or refused under the
wrong name (issue 25), through the render a rendering process runs and through the service:
each is decoded faithfully, compared with an independent decoder, or refused with a code that
says why (docs/api.md: Formats libvips cannot decode).

No file here is committed. The suites are the conformance tier's (tests/conformance/suites.py:
Pillow's sdist, Debian's tiff and libjpeg-turbo sources), fetched into a cache folder by a
fixture. What no registry ships (a limited-range monochrome AVIF, an uncompressed YCbCr TIFF)
is made at test time by a reference encoder from Debian (avifenc, ImageMagick) from a suite's
PNG, which stays the oracle. A suite or a tool missing skips loudly; under CI=true it fails.
docs/decoding.md says which file stands for each file issue 25 names.

A render is compared with its oracle by PSNR over the pixels, never by bytes: 30 dB is where a
wrong decode (a limited range left unexpanded: 24-28 dB; swapped colour planes, a black frame:
5-10 dB) and a right one (lossless outputs of the same decode: 40 dB and more, bar
resampling) part.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageCms, ImageOps

from avif_still import still_from_sequence, without_colr
from engine_support import options
from imgpipe.bootstrap import LocalApp
from imgpipe.config import RenditionSpec
from imgpipe.core.errors import ImageError
from imgpipe.core.jobs import event_from_info
from imgpipe.core.model import Status
from imgpipe.engine.pipeline import render

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
from suites import available  # the tier's folder, on the path above

# A hang guard on the test alone: a suite's first download runs in the fixture.
pytestmark = pytest.mark.timeout(60, func_only=True)

SUITES_USED = ("pillow", "libtiff", "libjpeg-turbo", "pillow-heif")
# Large enough for every file here: renders at the original's size (imgpipe never upscales).
FULL = RenditionSpec(name="full", width=4096, height=4096, formats=["png"])
FAITHFUL_DB = 30.0
_FILES: dict[str, Path] = {}  # "<suite>/<path>" -> the file, once the fixture has them


def _missing(message: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def suites() -> None:
    """The suites' files, downloaded once per machine (a minute or more the first time)."""
    for suite in SUITES_USED:
        found = available(suite)
        if isinstance(found, str):
            _missing(f"SKIPPING THE FIDELITY TESTS: suite {suite} cannot be had: {found}")
        _FILES.update({f"{suite}/{name}": path for name, path in found.items()})


def file(path: str) -> Path:
    """A suite's file by "<suite>/<path in the suite>"."""
    return _FILES[path]


def original(path: str) -> bytes:
    return file(path).read_bytes()


def tool(*names: str) -> str:
    """The first of `names` on PATH, or a loud skip (a failure under CI=true)."""
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    _missing(f"{names[0]} missing: .ci/run installs it from Debian")


def rendered_bytes(data: bytes) -> Image.Image:
    """`data` through engine.pipeline.render, as the lossless full-size PNG a user gets."""
    result = render(data, options(FULL))
    (rendition,) = result.renditions
    image = Image.open(io.BytesIO(rendition.data))
    image.load()
    return image


def rendered(path: str) -> Image.Image:
    return rendered_bytes(original(path))


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
    ("libjpeg-turbo/testorig12.jpg", "12-bit JPEG"),
]


@pytest.mark.parametrize(("path", "what"), CANNOT_DECODE, ids=[p for p, _ in CANNOT_DECODE])
def test_a_variant_libvips_cannot_decode_is_named_so(path: str, what: str) -> None:
    # GIVEN a sound file (Pillow, libtiff or libjpeg-turbo read it) in a variant libvips does
    # not decode WHEN it is rendered THEN it is refused as unsupported_variant, with libvips'
    # reason
    error = refused(path)
    assert error.code == "unsupported_variant", (what, error.code, str(error))
    assert "libvips cannot decode" in str(error)


def flattened(image: Image.Image, background: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    reference = image.convert("RGBA")
    flat = Image.new("RGB", reference.size, background)
    flat.paste(reference, mask=reference.getchannel("A"))
    return flat


STAR = "pillow/avif/star.avifs"  # Pillow's 5-frame sequence: star.png, turned, then back


def pillow_frames(path: str) -> list[Image.Image]:
    """Every frame of an animated file as Pillow decodes it, as RGBA."""
    frames = []
    with Image.open(file(path)) as animation:
        for index in range(animation.n_frames):
            animation.seek(index)
            frames.append(animation.convert("RGBA"))
    return frames


# Item 1: AVIF image sequences were corrupt_image ("not in a known format").
def test_an_avif_sequence_renders_its_first_frame() -> None:
    # GIVEN Pillow's star sequence, made from star.png, then rotations of it
    # WHEN it is rendered
    image = rendered(STAR)
    # THEN the render is the first frame, as Pillow decodes it (~51 dB), and not a rotated
    # one (under 8 dB; the last frame turns back to the first)
    first, *later = (flattened(frame) for frame in pillow_frames(STAR))
    rotated = [frame for frame in later if psnr(frame, first) < FAITHFUL_DB]
    scores = psnr(image, first), max(psnr(image, frame) for frame in rotated)
    assert len(rotated) == 3 and scores[0] >= FAITHFUL_DB and scores[1] <= 10.0, scores
    # AND it is star.png, its source. Its encode lifted black to 16 (the AV1 stream is lossy
    # and limited range), so the first frame scores ~20 dB against its source
    assert psnr(image, flattened(Image.open(file("pillow/avif/star.png")))) >= 18.0


def test_an_avif_sequence_is_checked_against_the_limits_by_all_its_frames() -> None:
    # GIVEN the 5-frame star sequence, 159x159
    # WHEN rendered THEN its first frame comes out at the sequence's size
    assert rendered(STAR).size == (159, 159)
    # AND the pixel limit counts every frame, as for GIF: 5 x 159 x 159 is over 100,000
    from imgpipe.config import Limits

    with pytest.raises(ImageError) as raised:
        render(original(STAR), options(FULL, limits=Limits(max_pixels=100_000)))
    assert raised.value.code == "too_many_pixels"
    assert "5 frames" in str(raised.value)


def avifenc(source: Image.Image, folder: Path, *flags: str) -> bytes:
    """`source` encoded by libavif's avifenc (Debian's libavif-bin) with `flags`."""
    command = tool("avifenc")
    png, avif = folder / "source.png", folder / "encoded.avif"
    source.save(png)
    subprocess.run([command, "-s", "8", *flags, str(png), str(avif)], check=True, timeout=60)
    return avif.read_bytes()


# Item 2: monochrome AVIF came out with its grey in limited range (11-239).
def test_a_limited_range_monochrome_avif_is_full_range(tmp_path: Path) -> None:
    # GIVEN Pillow's hopper in grey, 0-255, encoded by avifenc as monochrome in limited range
    grey = Image.open(file("pillow/hopper.png")).convert("L")
    data = avifenc(grey, tmp_path, "--yuv", "400", "--range", "limited")
    # WHEN rendered
    image = rendered_bytes(data)
    # THEN it spans black to white and is the grey PNG it was made from (it was 13-241)
    low, high = image.convert("L").getextrema()
    assert low <= 2 and high >= 253, (low, high)
    assert psnr(image, grey, "L") >= FAITHFUL_DB


def grey_with_alpha(folder: Path) -> tuple[Image.Image, Image.Image, bytes]:
    """Pillow's hopper in grey, 0-255, with an alpha gradient, and avifenc's encode of them as
    monochrome in limited range: its av1C box carries no sequence header, so the range is in
    its colr box and its AV1 data (and Pillow does not take it: its libavif gives RGBA)."""
    grey = Image.open(file("pillow/hopper.png")).convert("L")
    alpha = Image.linear_gradient("L").resize(grey.size)
    data = avifenc(Image.merge("LA", (grey, alpha)), folder, "--yuv", "400", "--range", "limited")
    return grey, alpha, data


def assert_full_range_grey(data: bytes, grey: Image.Image, alpha: Image.Image) -> None:
    """The render of `data` spans black to white and is `grey` (avifenc's encode left limited
    was 13-241, 27.5 dB), and its alpha is `alpha`, which avifenc codes in full range."""
    image = rendered_bytes(data).convert("RGBA")
    shown = image.convert("L")
    low, high = shown.getextrema()
    assert low <= 2 and high >= 253, (low, high)
    assert psnr(shown, grey, "L") >= FAITHFUL_DB
    assert psnr(image.getchannel("A"), alpha, "L") >= 45.0


def assert_no_cut_raises(data: bytes, end: int, grey: bool) -> None:
    """No cut of `data` before `end` makes the range reader raise (a cut-off upload, a
    hostile file): each reads the range or takes it as full."""
    from imgpipe.engine.avif_range import Limited, limited_planes

    assert limited_planes(data) == Limited(grey=grey, alpha=False)
    assert {limited_planes(data[:cut]) for cut in range(end)} <= {
        Limited(grey=False, alpha=False),
        Limited(grey=grey, alpha=False),
    }


def test_a_limited_range_monochrome_avif_with_alpha_is_full_range(tmp_path: Path) -> None:
    # GIVEN avifenc's limited-range grey with alpha (its range in its colr box)
    grey, alpha, data = grey_with_alpha(tmp_path)
    # WHEN rendered THEN its grey is full range and its alpha the gradient
    assert_full_range_grey(data, grey, alpha)
    # AND the range is read from its colr box, and no cut before its pixels raises
    assert_no_cut_raises(data, data.index(b"mdat"), grey=True)


def test_a_limited_range_avif_with_no_colr_is_full_range(tmp_path: Path) -> None:
    # GIVEN avifenc's limited-range grey with alpha with its colr boxes taken out: no
    # sequence header in av1C, no colr, the range is in its AV1 data alone (avifdec still
    # reads it: "Range: Limited"), where libvips hands the grey on at 13-241
    grey, alpha, encoded = grey_with_alpha(tmp_path)
    data = without_colr(encoded)
    assert b"colr" not in data
    at = data.index(b"av1C")  # one box, shared by both items: its 4 bytes, no configOBUs
    assert int.from_bytes(data[at - 4 : at], "big") == 8 + 4
    # WHEN rendered THEN its grey is full range and its alpha the gradient
    assert_full_range_grey(data, grey, alpha)
    # AND the range is read from its items' sequence headers, and no cut of the file, its
    # pixels included, makes the reader raise
    assert_no_cut_raises(data, len(data), grey=True)


def vips_alpha(data: bytes) -> npt.NDArray[np.uint8]:
    """The alpha plane of an AVIF as libvips (its libheif) decodes it, nothing done after."""
    import pyvips

    image = pyvips.Image.new_from_buffer(data, "")
    pixels = np.ndarray(
        buffer=image.write_to_memory(), dtype=np.uint8, shape=(image.height, image.width, 4)
    )
    return pixels[:, :, 3].copy()


# Item 2: an alpha plane coded in limited range was left at 16-235.
def test_a_limited_range_alpha_plane_is_full_range() -> None:
    # GIVEN a still AVIF of the star sequence's first frame: its colour and alpha tracks'
    # first samples and av1C boxes, muxed as a colour item and its alpha item (no registry
    # ships a still AVIF whose alpha is coded in limited range; avifenc 0.11 writes none)
    data = still_from_sequence(original(STAR))
    with Image.open(file(STAR)) as sequence:
        sequence.seek(0)
        expected = sequence.convert("RGBA").getchannel("A")  # Pillow's libavif expands it
    # AND libvips alone hands its alpha on as coded: its opaque part at 235, ~26 dB against
    # Pillow's
    coded = vips_alpha(data)
    assert np.median(coded[coded > 128]) == 235
    assert psnr(Image.fromarray(coded), expected, "L") < FAITHFUL_DB
    # WHEN rendered
    image = rendered_bytes(data)
    # THEN its alpha is Pillow's, opaque at 255 (~75 dB; a right expansion differs from
    # libavif's by rounding alone, 1 at most: 48 dB or more)
    assert image.mode == "RGBA", image.mode
    alpha = image.getchannel("A")
    assert np.median(np.asarray(alpha)[np.asarray(alpha) > 128]) == 255
    assert psnr(alpha, expected, "L") >= 45.0


def magick() -> str:
    """ImageMagick's command (Debian's imagemagick; `convert` may be a stand-in on PATH)."""
    return tool("convert-im6.q16", "convert-im7.q16", "magick")


def partial_gif(folder: Path) -> Path:
    """Pillow's hopper.gif (128x128, no transparency) placed by ImageMagick at rows 32-159 of
    a 128x192 canvas: its only frame leaves 32 rows uncovered above and below. The suites'
    GIFs that leave part of their canvas uncovered (Pillow's) have a transparent colour, and
    with one libvips already leaves that part transparent: they pass without the fix."""
    gif = folder / "partial.gif"
    source = str(file("pillow/hopper.gif"))
    subprocess.run([magick(), source, "-repage", "128x192+0+32", str(gif)], check=True, timeout=60)
    return gif


# Item 6: a GIF's first frame short of its canvas had the rest painted opaque black.
def test_a_gif_canvas_its_first_frame_leaves_uncovered_is_transparent(tmp_path: Path) -> None:
    # GIVEN a GIF whose only frame, Pillow's hopper.gif, covers rows 32-159 of its canvas
    data = partial_gif(tmp_path).read_bytes()
    with Image.open(file("pillow/hopper.gif")) as source:
        frame = source.convert("RGB")
    # WHEN rendered THEN the canvas above and below the frame is transparent (it was opaque
    # black), and the frame is hopper.gif as Pillow decodes it, opaque
    image = rendered_bytes(data)
    assert image.mode == "RGBA" and image.size == (128, 192), (image.mode, image.size)
    alpha = np.asarray(image.getchannel("A"))
    assert alpha[:32].max() == 0 and alpha[160:].max() == 0 and alpha[32:160].min() == 255
    assert psnr(image.crop((0, 32, 128, 160)), frame) >= 40.0
    # AND a JPEG, which has no alpha, shows the configured background there (white)
    spec = RenditionSpec(name="jpeg", width=128, height=192, formats=["jpeg"])
    (jpeg,) = render(data, options(spec)).renditions
    pixels = np.asarray(Image.open(io.BytesIO(jpeg.data)).convert("RGB"))
    above, below = pixels[:28], pixels[164:]
    assert above.min() >= 240 and below.min() >= 240, (above.min(), below.min())


def in_srgb(image: Image.Image) -> Image.Image:
    """Pillow's ImageCms (LittleCMS) conversion of an ICC-tagged image to sRGB, as RGB."""
    profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
    srgb = ImageCms.createProfile("sRGB")
    return ImageCms.profileToProfile(image.convert("RGB"), profile, srgb, renderingIntent=0)


# Item 7: an orientation written in XMP alone was ignored.
def test_an_orientation_in_xmp_alone_is_applied() -> None:
    # GIVEN Pillow's xmp_tags_orientation.png: no EXIF, XMP tiff:Orientation="3", and a
    # ColorMatch RGB profile
    path = "pillow/xmp_tags_orientation.png"
    source = Image.open(file(path))
    # WHEN rendered THEN it is upside down as stored, as Pillow's exif_transpose (which reads
    # XMP's orientation) turns it, in sRGB: ~83 dB; as stored it scores 13
    upright = in_srgb(ImageOps.exif_transpose(source))
    assert psnr(rendered(path), upright) >= FAITHFUL_DB


def test_an_avif_keeps_its_container_orientation_over_xmp() -> None:
    # GIVEN Pillow's AVIF with XMP tiff:Orientation="3" and no rotation in its container
    # WHEN rendered THEN it is shown as stored, as browsers show an AVIF: an AVIF's rotation
    # is its container's (irot/imir, MIAF), its EXIF and XMP orientations are advisory
    path = "pillow/avif/xmp_tags_orientation.avif"
    source = Image.open(file(path))
    source.load()
    as_stored = in_srgb(source) if "icc_profile" in source.info else source.convert("RGB")
    assert psnr(rendered(path), as_stored) >= FAITHFUL_DB


def tiff2rgba(tiff: Path) -> Image.Image:
    """libtiff's own reading of a TIFF (tiff2rgba: TIFFReadRGBAImage), as RGBA."""
    command = tool("tiff2rgba")
    out = tiff.with_name(tiff.stem + ".rgba.tif")
    subprocess.run([command, str(tiff), str(out)], check=True, timeout=30)
    image = Image.open(out)
    image.load()
    return image


# Items 3 and 5 (and libvips' refusal of tiled separate planes): decoded by Pillow.
LIBTIFF_AGREES = [
    "libtiff/ojpeg_zackthecat_subsamp22_single_strip.tiff",  # was blank: black, transparent
    "libtiff/ojpeg_chewey_subsamp21_multi_strip.tiff",  # was refused
    "libtiff/ojpeg_single_strip_no_rowsperstrip.tiff",  # was refused
    "pillow/tiff_tiled_planar_lzw.tiff",  # was refused
]


@pytest.mark.parametrize("path", LIBTIFF_AGREES)
def test_a_tiff_libvips_misreads_is_what_libtiff_reads(path: str, tmp_path: Path) -> None:
    # GIVEN a TIFF libvips decodes wrongly or refuses, WHEN it is rendered
    image = rendered(path)
    # THEN it is what libtiff's tiff2rgba reads, opaque
    assert image.mode in ("RGB", "L"), image.mode
    copy = tmp_path / Path(path).name
    copy.write_bytes(original(path))
    assert psnr(image, tiff2rgba(copy)) >= FAITHFUL_DB


def ycbcr_tiff(folder: Path) -> Path:
    """Pillow's hopper.png as an LZW-compressed YCbCr TIFF (BT.709, no subsampling), written
    by ImageMagick."""
    tiff = folder / "ycbcr_lzw_bt709.tif"
    subprocess.run(
        [magick(), str(file("pillow/hopper.png")), "-colorspace", "Rec709YCbCr", "-compress", "lzw",
         str(tiff)],
        check=True,
        timeout=60,
    )  # fmt: skip
    return tiff


# Item 5: an uncompressed (here LZW) YCbCr TIFF had its samples taken for RGB.
def test_a_ycbcr_tiff_is_what_libtiff_reads(tmp_path: Path) -> None:
    # GIVEN a YCbCr TIFF ImageMagick made from Pillow's hopper.png, WHEN it is rendered
    tiff = ycbcr_tiff(tmp_path)
    image = rendered_bytes(tiff.read_bytes())
    # THEN it is what libtiff's tiff2rgba reads (its YCbCr samples as RGB scored 10 dB)
    assert image.mode == "RGB", image.mode
    assert psnr(image, tiff2rgba(tiff)) >= FAITHFUL_DB
    # AND the picture ImageMagick encoded, bar the YCbCr round trip's rounding
    assert psnr(image, Image.open(file("pillow/hopper.png"))) >= FAITHFUL_DB


# Item 4: grey + alpha in separate planes rendered in stripes.
def test_grey_and_alpha_in_separate_planes_is_refused_by_name() -> None:
    # GIVEN libtiff's minisblack-2c-8b-alpha.tiff: libvips reads it in stripes (alpha 0/255
    # row by row), Pillow with its alpha lost (0 everywhere); tiff2rgba reads it right
    # WHEN rendered THEN it is refused as a variant imgpipe cannot decode faithfully
    error = refused("libtiff/minisblack-2c-8b-alpha.tiff")
    assert error.code == "unsupported_variant", str(error)
    assert "separate planes" in str(error)


def pillow_heif_grey(path: str) -> Image.Image:
    """pillow-heif's own decode of a grey HEIF, to 8 bits: its 10- and 12-bit grey come as
    I;16 filling 16 bits, scaled here as the conformance tier's oracle scales Pillow's I;16."""
    import pillow_heif

    heif = pillow_heif.open_heif(file(path))
    image = heif[heif.primary_index]
    width, height = image.size
    if image.mode == "L":
        return Image.frombytes("L", image.size, bytes(image.data), "raw", "L", image.stride)
    assert image.mode == "I;16", image.mode
    rows = np.frombuffer(bytes(image.data), dtype="<u2").reshape(height, image.stride // 2)
    return Image.fromarray(np.rint(rows[:, :width] * (255 / 65535)).astype(np.uint8), "L")


DEEP_GREY = [
    f"pillow-heif/heif/L_{bits}__{size}.heif" for bits in (10, 12) for size in ("128x128", "29x100")
]


@pytest.mark.parametrize("path", DEEP_GREY)
def test_a_10_or_12_bit_grey_heif_is_its_8_bit_grey(path: str) -> None:
    # GIVEN a 10- or 12-bit grey HEIF of pillow-heif's (it was refused as unsupported_format:
    # "unsupported HEIF pixel layout I;16"), and its 8-bit twin of the same picture
    twin = path.replace("_10__", "_8__").replace("_12__", "_8__")
    # WHEN rendered
    image = rendered(path)
    # THEN it is pillow-heif's decode brought to 8 bits (rounding apart: 1 level at most) and
    # its 8-bit twin's (~51 dB; a sample scaled wrongly, 10 bits read as 8, scores far lower)
    assert image.mode == "L" and image.getextrema() == (0, 255), (image.mode, image.getextrema())
    assert psnr(image, pillow_heif_grey(path), "L") >= 45.0
    assert psnr(image, pillow_heif_grey(twin), "L") >= 45.0


# Every kind of file here, and the record it ends in through the service.
OUTCOMES = [
    ("pillow/lab.tif", "unsupported_variant"),
    ("libjpeg-turbo/testorig12.jpg", "unsupported_variant"),
    ("libtiff/minisblack-2c-8b-alpha.tiff", "unsupported_variant"),
    (STAR, "processed"),
    ("pillow-heif/heif/L_12__29x100.heif", "processed"),
    ("libtiff/ojpeg_zackthecat_subsamp22_single_strip.tiff", "processed"),
    ("made/ycbcr_lzw_bt709.tif", "processed"),
    ("pillow/xmp_tags_orientation.png", "processed"),
    ("made/partial.gif", "processed"),
]


@pytest.mark.parametrize(("path", "expected"), OUTCOMES, ids=[p for p, _ in OUTCOMES])
def test_the_service_records_the_outcome(
    path: str, expected: str, local_app: LocalApp, tmp_path: Path
) -> None:
    # GIVEN the file uploaded under its own name
    service = local_app.service
    made: dict[str, Callable[[Path], Path]] = {
        "made/ycbcr_lzw_bt709.tif": ycbcr_tiff,
        "made/partial.gif": partial_gif,
    }
    data = made[path](tmp_path).read_bytes() if path in made else original(path)
    pending = service.ingest.upload(Path(path).name, data, "application/octet-stream")
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


def test_the_range_reader_survives_any_cut_of_an_avif() -> None:
    # GIVEN every prefix of the star sequence's boxes, whose alpha is coded in limited range
    # (a cut-off upload, a hostile file)
    from imgpipe.engine.avif_range import Limited, limited_planes

    data = original(STAR)
    mdat = data.index(b"mdat")
    # WHEN the range is read THEN it never raises: it is known or taken as full
    seen = {limited_planes(data[:end]) for end in range(mdat)}
    assert Limited(grey=False, alpha=False) in seen
    assert limited_planes(data) == Limited(grey=False, alpha=True)


def test_pillow_decodes_run_in_a_rendering_process_under_its_limits() -> None:
    # GIVEN a rendering process with a memory limit, as imgpipe serve runs them
    from imgpipe.engine import SubprocessRenderer

    renderer = SubprocessRenderer(1, 60, memory_mb=512)
    try:
        # WHEN the files Pillow decodes are rendered there
        for path in ("libtiff/ojpeg_zackthecat_subsamp22_single_strip.tiff", STAR):
            result = renderer.render(original(path), options(FULL))
            (rendition,) = result.renditions
            # THEN they come back whole, as they render in this process
            here = rendered(path)
            there = Image.open(io.BytesIO(rendition.data))
            assert there.size == here.size and psnr(there, here) == 99.0, path
    finally:
        renderer.close()


def test_the_gif_frame_reader_survives_any_cut_of_a_gif(tmp_path: Path) -> None:
    # GIVEN every prefix of a GIF whose frame leaves part of its canvas uncovered (a cut-off
    # upload, a hostile file)
    from imgpipe.engine.gif import uncovered_box

    data = partial_gif(tmp_path).read_bytes()
    # WHEN its first frame's box is read THEN it never raises, and the whole file's is the
    # frame's rows 32-159 (the canvas is 128x192)
    assert {uncovered_box(data[:end]) for end in range(len(data))} <= {None, (0, 32, 128, 128)}
    assert uncovered_box(data) == (0, 32, 128, 128)
