"""The pixels to compare: imgpipe's decode at full size and an independent decoder's (Pillow,
pillow-heif for HEIF, libtiff's tiff2rgba for a TIFF Pillow reads otherwise), both upright
8-bit RGBA, and the PSNR between them over alpha-premultiplied RGBA."""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pillow_heif
from PIL import Image, ImageCms, ImageOps

from imgpipe.config import Settings
from imgpipe.engine.decode import decode
from imgpipe.engine.header import read_header

Pixels = npt.NDArray[np.uint8]

IDENTICAL_DB = 99.0  # what an exact match scores (its PSNR is infinite)
IMAGEMAGICK_EXIF = "Raw profile type exif"  # a PNG text chunk's keyword
TIFF2RGBA_TIMEOUT_S = 60
_LIMITS = Settings().render_options().limits
_SRGB = ImageCms.createProfile("sRGB")

pillow_heif.register_heif_opener()
Image.MAX_IMAGE_PIXELS = None  # imgpipe's own limits decide; the oracle never refuses for size


def imgpipe_pixels(data: bytes) -> Pixels:
    """What imgpipe's render decodes, at the full displayed size (no resampling to blur a
    difference away): the same decode() the render runs, upright, 8-bit sRGB."""
    header = read_header(data, _LIMITS)
    image = decode(data, header, header.width, header.height)
    array = np.ndarray(
        buffer=image.write_to_memory(),
        dtype=np.uint8,
        shape=(image.height, image.width, image.bands),
    )
    return _rgba(array)


def _rgba(array: Pixels) -> Pixels:
    """Grey to RGB, and an opaque alpha where the image has none."""
    bands = array.shape[2]
    if bands in (1, 2):
        grey = array[:, :, :1]
        array = np.concatenate([grey, grey, grey, array[:, :, 1:]], axis=2)
    if array.shape[2] == 3:
        opaque = np.full((*array.shape[:2], 1), 255, dtype=np.uint8)
        array = np.concatenate([array, opaque], axis=2)
    return np.ascontiguousarray(array)


def pillow_pixels(data: bytes) -> Pixels:
    """Pillow's first frame, upright (EXIF or XMP orientation, a PNG's EXIF as browsers read
    it), its ICC profile applied."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            if opened.format == "PNG" and "exif" not in opened.info:
                # ImageMagick writes a PNG's EXIF as hex in this text chunk. Pillow turns the
                # image by its orientation; Chromium reads EXIF from eXIf alone and shows it
                # as stored, as imgpipe does (docs/decoding.md): the oracle does so too.
                opened.info.pop(IMAGEMAGICK_EXIF, None)
            image = ImageOps.exif_transpose(opened)
        return _pillow_rgba(image)


def _pillow_rgba(image: Image.Image) -> Pixels:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        wide = np.asarray(image, dtype=np.float64)
        top = 65535.0 if wide.max(initial=0) > 255 or image.mode.startswith("I;16") else 255.0
        grey = np.clip(np.rint(wide * 255.0 / top), 0, 255).astype(np.uint8)
        return _rgba(grey[:, :, None])
    icc = image.info.get("icc_profile")
    if icc and image.mode in ("RGB", "RGBA", "CMYK", "L", "LA"):
        try:
            alpha = image.getchannel("A") if image.mode in ("RGBA", "LA") else None
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            base = image.convert("RGB") if image.mode in ("RGBA", "LA") else image
            converted = ImageCms.profileToProfile(base, source, _SRGB, outputMode="RGB")
            assert converted is not None
            if alpha is not None:
                converted.putalpha(alpha)
            image = converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a profile littlecms refuses: the pixels as they are
    return np.asarray(image.convert("RGBA"), dtype=np.uint8).copy()


def tiff2rgba_pixels(path: Path) -> Pixels | None:
    """libtiff's own reading of a TIFF (TIFFReadRGBAImage), or None where the tool is
    missing or refuses the file."""
    tool = shutil.which("tiff2rgba")
    if tool is None:
        return None
    with tempfile.TemporaryDirectory(prefix="imgpipe-tiff2rgba-") as tmp:
        out = Path(tmp) / "out.tif"
        try:
            done = subprocess.run(
                [tool, "-c", "none", str(path), str(out)],
                capture_output=True,
                timeout=TIFF2RGBA_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None
        if done.returncode != 0 or not out.exists():
            return None
        with Image.open(out) as image:
            image.load()
            return np.asarray(image.convert("RGBA"), dtype=np.uint8).copy()


def psnr(ours: Pixels, theirs: Pixels) -> float:
    """PSNR in dB over alpha-premultiplied RGBA (colour under full transparency does not
    count); 0 where the sizes differ (a wrong orientation or crop), IDENTICAL_DB if equal."""
    if ours.shape != theirs.shape:
        return 0.0
    a, b = _premultiplied(ours), _premultiplied(theirs)
    mse = float(np.mean(np.square(a - b), dtype=np.float64))
    if mse == 0.0:
        return IDENTICAL_DB
    return min(IDENTICAL_DB, 10.0 * math.log10(255.0**2 / mse))


def _premultiplied(pixels: Pixels) -> npt.NDArray[np.float32]:
    values = pixels.astype(np.float32)
    values[:, :, :3] *= values[:, :, 3:] / 255.0
    return values
