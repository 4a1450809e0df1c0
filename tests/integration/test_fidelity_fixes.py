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
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

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


def flattened(path: str, background: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    reference = Image.open(FILES / path).convert("RGBA")
    flat = Image.new("RGB", reference.size, background)
    flat.paste(reference, mask=reference.getchannel("A"))
    return flat


# Item 1: AVIF image sequences were corrupt_image ("not in a known format").
def test_an_avif_sequence_renders_its_first_frame() -> None:
    # GIVEN link-u's star sequence, made (star.input.txt) from star.png, then star90.png...
    # WHEN it is rendered
    image = rendered("link-u/star-8bpc.avifs")
    # THEN the render is star.png, the first frame, not a later one. Its encode lifted black
    # to 16 (the AV1 stream is lossy and limited range), so the first frame scores ~20 dB
    # against its source and the other frames under 9: 18 dB, and 8 dB clear of them.
    first = psnr(image, flattened("link-u/star.png"))
    later = max(psnr(image, flattened(f"link-u/{name}")) for name in ("star90.png", "star180.png"))
    assert first >= 18.0 and first >= later + 8.0, (first, later)


def test_an_avif_sequence_is_checked_against_the_limits_by_all_its_frames() -> None:
    # GIVEN file-type's 100-frame AVIF sequence, 800x450
    data = original("file-type/fixture-sequence.avif")
    # WHEN rendered THEN its first frame comes out at the sequence's size
    assert rendered("file-type/fixture-sequence.avif").size == (800, 450)
    # AND the pixel limit counts every frame, as for GIF: 100 x 800 x 450 is over 30 MP
    from imgpipe.config import Limits

    with pytest.raises(ImageError) as raised:
        render(data, options(FULL, limits=Limits(max_pixels=30_000_000)))
    assert raised.value.code == "too_many_pixels"
    assert "100 frames" in str(raised.value)


# Item 2: monochrome AVIF came out with its grey in limited range (11-239).
def test_a_monochrome_avif_is_full_range() -> None:
    # GIVEN link-u's monochrome fox, and its colour twin (the same picture, in colour)
    image = rendered("link-u/fox.profile0.8bpc.yuv420.monochrome.avif")
    twin = Image.open(FILES / "link-u/fox.profile0.8bpc.yuv420.avif")
    # THEN it spans black to white, and its grey is the twin's luma (~42 dB; it was 24-28)
    low, high = image.convert("L").getextrema()
    assert low <= 2 and high >= 253, (low, high)
    assert psnr(image, twin, "L") >= FAITHFUL_DB


# Item 6: a GIF's first frame short of its canvas had the rest painted opaque black.
def test_a_gif_canvas_its_first_frame_leaves_uncovered_is_transparent() -> None:
    # GIVEN image-rs' border_touching_layers.gif: a 100x100 canvas, its first frame rows
    # 25-74, and image-rs' reference PNG of that frame (transparent above and below)
    path = "image-rs/border_touching_layers.gif"
    reference = Image.open(FILES / "image-rs/border_touching_layers.gif.png")
    # WHEN rendered THEN the PNG is the reference, alpha included (it was opaque black)
    assert psnr(rendered(path), reference, "RGBA") >= FAITHFUL_DB
    # AND a JPEG, which has no alpha, shows the configured background there (white)
    spec = RenditionSpec(name="jpeg", width=100, height=100, formats=["jpeg"])
    (jpeg,) = render(original(path), options(spec)).renditions
    pixels = Image.open(io.BytesIO(jpeg.data)).convert("RGB")
    above, below = np.asarray(pixels)[:20], np.asarray(pixels)[80:]
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
    source = Image.open(FILES / path)
    # WHEN rendered THEN it is upside down as stored, as Pillow's exif_transpose (which reads
    # XMP's orientation) turns it, in sRGB: ~83 dB; as stored it scores 13
    upright = in_srgb(ImageOps.exif_transpose(source))
    assert psnr(rendered(path), upright) >= FAITHFUL_DB


def test_an_avif_keeps_its_container_orientation_over_xmp() -> None:
    # GIVEN Pillow's AVIF with XMP tiff:Orientation="3" and no rotation in its container
    # WHEN rendered THEN it is shown as stored, as browsers show an AVIF: an AVIF's rotation
    # is its container's (irot/imir, MIAF), its EXIF and XMP orientations are advisory
    path = "pillow/avif/xmp_tags_orientation.avif"
    source = Image.open(FILES / path)
    source.load()
    as_stored = in_srgb(source) if "icc_profile" in source.info else source.convert("RGB")
    assert psnr(rendered(path), as_stored) >= FAITHFUL_DB


# Item 2 (alpha): limited-range alpha (and grey beside it) left at 16-235.
LIMITED_ALPHA = [
    ("link-u/plum-blossom-small.profile0.8bpc.yuv420.alpha-limited.avif", "RGBA"),
    ("link-u/plum-blossom-small.profile0.8bpc.yuv420.alpha-limited.monochrome.avif", "LA"),
]


@pytest.mark.parametrize(("path", "mode"), LIMITED_ALPHA, ids=[p for p, _ in LIMITED_ALPHA])
def test_limited_range_alpha_is_expanded(path: str, mode: str) -> None:
    # GIVEN a link-u plum blossom whose alpha (and, monochrome, grey) is coded in limited
    # range, and link-u's reference PNG, WHEN rendered
    image = rendered(path)
    # THEN its alpha spans 0-255 and it is the reference, alpha included: ~40 dB, as its
    # full-range twin scores (it was 29 and 23 dB, alpha at 16-235 and grey at 11-241)
    assert image.getchannel("A").getextrema() == (0, 255)
    reference = Image.open(FILES / "link-u/plum-blossom-small.png")
    assert psnr(image, reference, mode) >= FAITHFUL_DB


def tiff2rgba(path: str) -> Image.Image:
    """libtiff's own reading of a TIFF (tiff2rgba: TIFFReadRGBAImage), as RGBA."""
    if shutil.which("tiff2rgba") is None:
        message = "tiff2rgba missing: apt-get install libtiff-tools (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "rgba.tif"
        subprocess.run(["tiff2rgba", str(FILES / path), str(out)], check=True, timeout=30)
        image = Image.open(out)
        image.load()
    return image


# Items 3 and 5 (and libvips' refusal of tiled separate planes): decoded by Pillow.
LIBTIFF_AGREES = [
    "libtiff/ojpeg_zackthecat_subsamp22_single_strip.tiff",  # was blank: black, transparent
    "libtiff/ojpeg_chewey_subsamp21_multi_strip.tiff",  # was refused
    "libtiff/ojpeg_single_strip_no_rowsperstrip.tiff",  # was refused
    "image-rs/ycbcr_lzw_bt709.tif",  # white was pink: 10 dB
    "pillow/tiff_tiled_planar_lzw.tiff",  # was refused
]


@pytest.mark.parametrize("path", LIBTIFF_AGREES)
def test_a_tiff_libvips_misreads_is_what_libtiff_reads(path: str) -> None:
    # GIVEN a TIFF libvips decodes wrongly or refuses, WHEN it is rendered
    image = rendered(path)
    # THEN it is what libtiff's tiff2rgba reads, opaque. The YCbCr file scores ~39 dB: its
    # BT.709 coefficients are applied by libtiff and not by Pillow, which rounds otherwise.
    assert image.mode in ("RGB", "L"), image.mode
    assert psnr(image, tiff2rgba(path)) >= FAITHFUL_DB


# Item 4: grey + alpha in separate planes rendered in stripes.
def test_grey_and_alpha_in_separate_planes_is_refused_by_name() -> None:
    # GIVEN libtiff's minisblack-2c-8b-alpha.tiff: libvips reads it in stripes (alpha 0/255
    # row by row), Pillow with its alpha lost (0 everywhere); tiff2rgba reads it right
    # WHEN rendered THEN it is refused as a variant imgpipe cannot decode faithfully
    error = refused("libtiff/minisblack-2c-8b-alpha.tiff")
    assert error.code == "unsupported_variant", str(error)
    assert "separate planes" in str(error)


# Every file here, and the record it ends in through the service.
OUTCOMES = [
    ("pillow/lab.tif", "unsupported_variant"),
    ("libjpeg-turbo/monkey12.jpg", "unsupported_variant"),
    ("libtiff/minisblack-2c-8b-alpha.tiff", "unsupported_variant"),
    ("link-u/star-8bpc.avifs", "processed"),
    ("link-u/fox.profile0.8bpc.yuv420.monochrome.avif", "processed"),
    ("libtiff/ojpeg_zackthecat_subsamp22_single_strip.tiff", "processed"),
    ("image-rs/ycbcr_lzw_bt709.tif", "processed"),
    ("pillow/xmp_tags_orientation.png", "processed"),
    ("image-rs/border_touching_layers.gif", "processed"),
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


def test_the_range_reader_survives_any_cut_of_an_avif() -> None:
    # GIVEN every prefix of a limited-range AVIF's boxes (a cut-off upload, a hostile file)
    from imgpipe.engine.avif_range import Limited, limited_planes

    data = original("link-u/plum-blossom-small.profile0.8bpc.yuv420.alpha-limited.monochrome.avif")
    mdat = data.index(b"mdat")
    # WHEN the range is read THEN it never raises: it is known or taken as full
    seen = {limited_planes(data[:end]) for end in range(mdat)}
    assert Limited(grey=False, alpha=False) in seen
    assert limited_planes(data) == Limited(grey=True, alpha=True)


def test_pillow_decodes_run_in_a_rendering_process_under_its_limits() -> None:
    # GIVEN a rendering process with a memory limit, as imgpipe serve runs them
    from imgpipe.engine import SubprocessRenderer

    renderer = SubprocessRenderer(1, 60, memory_mb=512)
    try:
        # WHEN the files Pillow decodes are rendered there
        for path in (
            "libtiff/ojpeg_zackthecat_subsamp22_single_strip.tiff",
            "link-u/star-8bpc.avifs",
        ):
            result = renderer.render(original(path), options(FULL))
            (rendition,) = result.renditions
            # THEN they come back whole, as they render in this process
            here = rendered(path)
            there = Image.open(io.BytesIO(rendition.data))
            assert there.size == here.size and psnr(there, here) == 99.0, path
    finally:
        renderer.close()


def test_the_gif_frame_reader_survives_any_cut_of_a_gif() -> None:
    # GIVEN every prefix of image-rs' GIF (a cut-off upload, a hostile file)
    from imgpipe.engine.gif import uncovered_box

    data = original("image-rs/border_touching_layers.gif")
    # WHEN its first frame's box is read THEN it never raises, and the whole file's is the
    # frame's rows 25-74 (the canvas is 100x100)
    assert {uncovered_box(data[:end]) for end in range(len(data))} <= {None, (0, 25, 100, 50)}
    assert uncovered_box(data) == (0, 25, 100, 50)
