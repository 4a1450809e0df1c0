"""libvips as the engine uses it: imported on first use, loaders allow-listed, no cache.

pyvips is imported inside `vips()`, never at the top of a module: importing the engine stays
cheap (cold starts matter on Lambda) and pyvips ships no type hints, so a pyvips.Image is
`VipsImage` (Any) to mypy.
"""

from __future__ import annotations

import functools
from typing import Any

from imgpipe.core.errors import CorruptImageError, ImageError, UnsupportedVariantError, one_line

VipsImage = Any

# Loader classes left usable once every VipsForeignLoad is blocked (libvips 8.18 names; the
# PNG loader is VipsForeignLoadPng whether spng or libpng backs it, GIF is libnsgif's).
ALLOWED_LOADER_CLASSES: tuple[str, ...] = (
    "VipsForeignLoadJpeg",
    "VipsForeignLoadPng",
    "VipsForeignLoadWebp",
    "VipsForeignLoadNsgif",
    "VipsForeignLoadTiff",
    "VipsForeignLoadHeif",
)
# The `vips-loader` a header must name for each sniffed format (prefix of e.g. jpegload_buffer).
LOADER_FOR: dict[str, str] = {
    "jpeg": "jpegload",
    "png": "pngload",
    "webp": "webpload",
    "gif": "gifload",
    "tiff": "tiffload",
    "avif": "heifload",
}
# The option string makes truncated and corrupt files fail; as a keyword it had no effect.
# "error", not "truncated": at "truncated" libtiff's strip errors (an unknown compression,
# damaged LZW) and PNG CRC errors were ignored and the image rendered black or garbled.
# Decoder *warnings* (stray bytes between JPEG markers, a resynced scan) still pass.
LOAD_OPTIONS = "fail_on=error"

# What libvips (8.18), libtiff and libjpeg say of a sound file they cannot decode, as opposed
# to a damaged one (docs/api.md: Formats libvips cannot decode).
_CANNOT_DECODE: tuple[str, ...] = (
    "bad labq format",  # an 8-bit CIELab TIFF: libvips takes it for its own LabQ coding
    "not a whole number of bytes",  # TIFF samples of 12 bits (or 2, 4... per pixel group)
    "unsupported jpeg data precision",  # a 12-bit JPEG: libjpeg-turbo is built for 8
    "support is not configured",  # a TIFF compression libtiff was built without
    "separate planes not supported",  # a tiled TIFF in separate planes (Pillow decodes it)
)


def vips() -> Any:
    """The pyvips module, imported on first use."""
    import pyvips

    return pyvips


@functools.cache
def configure_vips() -> None:
    """Block every libvips loader but the allow-listed ones; no operation cache. Idempotent."""
    pyvips = vips()
    pyvips.block_untrusted_set(True)
    pyvips.operation_block_set("VipsForeignLoad", True)
    for name in ALLOWED_LOADER_CLASSES:
        pyvips.operation_block_set(name, False)
    # The operation cache would keep decoded images of earlier requests alive.
    pyvips.cache_set_max(0)


def source(data: bytes) -> Any:
    """libvips reads the caller's bytes where they are. The *_buffer loaders would first copy
    them into a blob of libvips' own (pyvips does): the file's size again, for the whole decode.
    """
    return vips().Source.new_from_memory(data)


def get(image: VipsImage, name: str, default: Any) -> Any:
    """An image's metadata field `name`, or `default` where the image has none."""
    return image.get(name) if image.get_typeof(name) else default


def failure(fmt: str, what: str, exc: Exception) -> ImageError:
    """The image error a libvips failure means: a variant of `fmt` libvips cannot decode
    (unsupported_variant), or a damaged file (corrupt_image). `what` says where it failed."""
    message = one_line(exc)
    if any(phrase in message.lower() for phrase in _CANNOT_DECODE):
        return UnsupportedVariantError(f"{fmt} variant that libvips cannot decode: {message}")
    return CorruptImageError(f"{what}: {message}")
