"""A twin: a JPEG original as libjpeg decodes it at 1/8 in the DCT domain, kept as raw
pixels, so that a later render needing that very decode reads it instead of decoding again.

Why: an on-request render of a 12 MP photo spends most of its time in libjpeg's entropy
decode, even at 1/8, where a render from the twin reads 0.6 MB of pixels. libjpeg's scaled
decode is deterministic, and the twin takes the original's own header (orientation, ICC
profile, EXIF) from a lazy load of the original, which decodes nothing, so a render from the
twin is byte for byte the render from the original (tests/unit/engine/test_twin.py). A
twin that is not whole, or not of the decode a render needs, is not read: the original is
decoded, as without one.

A render makes one as it goes, where it decodes a JPEG at 1/8 and is asked to keep it: the
decode is done anyway, and keeping it costs a copy. The /img cache keeps it beside the
image's results (service/delivery.py).

Layout: MAGIC, then width, height, bands and shrink as little-endian uint32, then the pixels
(8-bit, interleaved, rows top to bottom, as stored: the orientation is applied after).
"""

from __future__ import annotations

import struct

from imgpipe.core.transform import TWIN_SHRINK
from imgpipe.engine.vips import VipsImage, vips

MAGIC = b"imgpipe twin\x00\x01"
SIZES = struct.Struct("<4I")
HEAD = len(MAGIC) + SIZES.size
# The fields libvips keeps as the image's own properties, not as metadata to copy.
_OWN = frozenset(
    {"width", "height", "bands", "format", "coding", "interpretation"}
    | {"xoffset", "yoffset", "xres", "yres", "filename"}
)


class Twins:
    """One render's twins: the one it was given, and the one it made, if any."""

    def __init__(self, given: bytes | None, keep: bool) -> None:
        self.given = given
        self.keep = keep
        self.made: bytes | None = None

    def decoded(self, loaded: VipsImage, shrink: int) -> VipsImage:
        """`loaded` (the original's lazy load at `shrink`, nothing decoded yet) as the render
        reads it: the given twin where it stands in for it; decoded into memory and kept
        where a twin is wanted and this is its decode; otherwise as it is."""
        if self.given is not None:
            image = stands_in(self.given, loaded, shrink)
            if image is not None:
                return image
        if not self.keep or shrink != TWIN_SHRINK or not _plain(loaded):
            return loaded
        image = loaded.copy_memory()
        sizes = SIZES.pack(int(image.width), int(image.height), int(image.bands), TWIN_SHRINK)
        self.made = MAGIC + sizes + image.write_to_memory()
        return image


def stands_in(twin: bytes, loaded: VipsImage, shrink: int) -> VipsImage | None:
    """The twin's pixels as `loaded` would decode them, with its metadata; None where the
    twin is not whole or is not of this decode."""
    if len(twin) < HEAD or not twin.startswith(MAGIC) or not _plain(loaded):
        return None
    width, height, bands, its_shrink = SIZES.unpack_from(twin, len(MAGIC))
    if (width, height, bands, its_shrink) != (*_shape(loaded), shrink):
        return None
    if len(twin) != HEAD + width * height * bands:
        return None
    pixels = memoryview(twin)[HEAD:]
    image = vips().Image.new_from_memory(pixels, width, height, bands, "uchar")
    image = image.copy(interpretation=loaded.interpretation, xres=loaded.xres, yres=loaded.yres)
    for name in loaded.get_fields():
        if name not in _OWN:
            image.set_type(loaded.get_typeof(name), name, loaded.get(name))
    return image


def _shape(image: VipsImage) -> tuple[int, int, int]:
    return int(image.width), int(image.height), int(image.bands)


def _plain(loaded: VipsImage) -> bool:
    """8-bit grey or RGB as decoded (a CMYK JPEG is converted after its decode: none)."""
    return int(loaded.bands) in (1, 3) and loaded.format == "uchar"
