"""The originals libvips decodes wrongly or not at all and Pillow decodes right: which they are
(told from their headers alone), and their first frame as a libvips image.

    AVIF image sequence       libvips' heifload does not open it ("not in a known format")
    AVIF monochrome           libheif leaves its grey in limited range (16-235 as 0-255)
    TIFF old-style JPEG       libvips' libtiff has no OJPEG: refused, or blank where the
                              strip is read as tiles
    TIFF separate planes      tiled: refused; grey alone: a strip byte count of 0 refused
                              (grey + alpha: read as if interleaved, in stripes, and Pillow
                              loses its alpha: refused as unsupported_variant)
    TIFF YCbCr, not JPEG      its samples taken for RGB: wrong colours

docs/decoding.md reports each upstream. Pillow is handed the one plugin for the sniffed
format, never Image.open's search over every plugin it has, and only opens the file here:
nothing is decoded before read_header has checked the size against the limits, and the
decode runs where libvips' would (in a rendering process).
"""

from __future__ import annotations

import io
import warnings
from typing import Any

from imgpipe.core.errors import CorruptImageError, ImageError, UnsupportedVariantError, one_line
from imgpipe.engine.vips import VipsImage, vips

_TIFF_OJPEG = 6
_TIFF_YCBCR = 6
_TIFF_JPEG = 7
_TIFF_GREY = (0, 1)
_SEPARATE_PLANES = 2
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"})


def pillow_image(data: bytes, fmt: str) -> Any | None:
    """Pillow's image, opened and not decoded, where Pillow should decode `data`; else None
    (libvips decodes it, and says what it makes of a file Pillow cannot open)."""
    try:
        with warnings.catch_warnings(action="ignore"):  # a stray tag is no reason to fail
            if fmt == "avif":
                return _avif(data)
            if fmt == "tiff":
                return _tiff(data)
    except ImageError:
        raise
    except Exception:
        return None
    return None


def _avif(data: bytes) -> Any | None:
    from PIL import AvifImagePlugin

    image = AvifImagePlugin.AvifImageFile(io.BytesIO(data))
    sequence = int(getattr(image, "n_frames", 1)) > 1
    return image if sequence or image.mode in ("L", "LA") else None


def _tiff(data: bytes) -> Any | None:
    from PIL import TiffImagePlugin

    image = TiffImagePlugin.TiffImageFile(io.BytesIO(data))
    tags = image.tag_v2
    compression = tags.get(259, 1)
    photometric = tags.get(262)
    separate = tags.get(284, 1) == _SEPARATE_PLANES
    tiled = 322 in tags
    if compression == _TIFF_OJPEG:
        return image
    if separate and photometric in _TIFF_GREY and tags.get(277, 1) > 1:
        # libvips reads the planes as if interleaved (stripes); Pillow loses the alpha plane.
        raise UnsupportedVariantError(
            "tiff variant that neither libvips nor Pillow decodes right: grey and alpha"
            " in separate planes"
        )
    if separate and (tiled or photometric in _TIFF_GREY):
        return image
    if photometric == _TIFF_YCBCR and compression != _TIFF_JPEG:
        return image
    return None


def is_grey(image: Any) -> bool:
    return str(image.mode) in _GREY_MODES


def has_alpha(image: Any) -> bool:
    mode = str(image.mode)
    return mode.endswith(("A", "a")) or "transparency" in image.info


def pillow_pixels(image: Any, fmt: str) -> VipsImage:
    """The first frame, 8-bit grey or RGB with alpha if it has one, as a libvips image (its
    ICC profile and EXIF orientation kept, for the thumbnail to apply)."""
    pyvips = vips()
    grey = is_grey(image)
    mode = ("LA" if grey else "RGBA") if has_alpha(image) else ("L" if grey else "RGB")
    try:
        with warnings.catch_warnings(action="ignore"):
            image.seek(0)
            image.load()
            pixels = image if image.mode == mode else image.convert(mode)
            raw = pixels.tobytes()
    except Exception as exc:
        raise CorruptImageError(f"{fmt} image is corrupt or truncated: {one_line(exc)}") from exc
    width, height = pixels.size
    result = pyvips.Image.new_from_memory(raw, width, height, len(mode), "uchar")
    result = result.copy(interpretation="b-w" if grey else "srgb")
    icc = image.info.get("icc_profile")
    if icc:
        result.set_type(pyvips.GValue.blob_type, "icc-profile-data", bytes(icc))
    return result
