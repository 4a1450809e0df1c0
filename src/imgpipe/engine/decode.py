"""The one decode of a render: shrunk on load to the size the largest rendition needs,
upright, 8-bit sRGB (or grey), held in memory for the cascade.

JPEGs shrink in libjpeg's DCT domain, other formats through libvips' thumbnail; HEIC is decoded
by pillow-heif (libvips' wheel has no HEVC decoder) and its pixels handed to libvips as they
are. Files libvips decodes wrongly are decoded by Pillow (pillow_decode.py). A libvips failure
here is a CorruptImageError with a one-line message, or an UnsupportedVariantError where
libvips says it cannot decode a sound file (vips.failure).
"""

from __future__ import annotations

from typing import Any

from imgpipe.core.errors import CorruptImageError, UnsupportedFormatError, one_line
from imgpipe.engine import geometry
from imgpipe.engine.avif_range import expand
from imgpipe.engine.colour import icc_options, normalise
from imgpipe.engine.gif import clear_outside
from imgpipe.engine.header import Header
from imgpipe.engine.pillow_decode import pillow_pixels
from imgpipe.engine.twin import Twins
from imgpipe.engine.vips import (
    LOAD_OPTIONS,
    LOADER_FOR,
    VipsImage,
    failure,
    get,
    source,
    vips,
)

# JPEGs decode at the largest DCT scale (1/2, 1/4, 1/8) that still covers the largest
# rendition, not at libvips' thumbnail choice, which keeps a factor of 2 for the resize.
_FAST_SHRINK_ON_LOAD = True
# A sharp decode (on-request results, decode(sharp=True)) leaves the resize at least this
# factor after the DCT scale, and resizes with Magic Kernel Sharp 2021: libvips' kernel that
# sharpens as it reduces. docs/benchmarks.md ("Shrink on load") shows the trade: more SSIM at
# no more bytes than thumbor's, for more CPU than the fast decode.
_SHARP_GAP = 1.5
_SHARP_KERNEL = "mks2021"


def decode(
    data: bytes,
    header: Header,
    width: int,
    height: int,
    *,
    upright: bool = True,
    sharp: bool = False,
    twins: Twins | None = None,
) -> VipsImage:
    """Decode once to exactly `width` x `height` (displayed orientation): upright, 8-bit sRGB
    (or grey), with alpha if the source has it, in memory. Not `upright`: as stored, the EXIF
    orientation not applied (`width` x `height` then as stored too); HEIF's rotation, which
    libheif applies, is applied whatever. `sharp`: a JPEG keeps more of its resolution for a
    sharper resize (_SHARP_GAP), at more CPU. `twins`: the render's twins (twin.py), one read
    instead of the JPEG's decode, or kept of it."""
    pyvips = vips()
    try:
        if header.heif_image is not None:
            image = _heif_pixels(header)
            image = image.thumbnail_image(
                width, height=height, size="force", no_rotate=True, **icc_options(header)
            )
            return normalise(image).copy_memory()
        if header.pil_image is not None:
            return _decode_pillow(header, width, height, upright=upright)
        options: dict[str, Any] = {**icc_options(header), "no_rotate": not upright}
        try:
            return _decode_vips(data, header, (width, height), options, sharp, twins)
        except pyvips.Error:
            if not header.has_icc:
                raise
            # A broken ICC profile should not lose the image: decode again, untransformed.
            plain = {"no_rotate": not upright}
            return _decode_vips(data, header, (width, height), plain, sharp, twins)
    except pyvips.Error as exc:
        raise failure(header.format, f"{header.format} image is corrupt or truncated", exc) from exc


def _decode_vips(
    data: bytes,
    header: Header,
    size: tuple[int, int],
    options: dict[str, Any],
    sharp: bool,
    twins: Twins | None,
) -> VipsImage:
    pyvips = vips()
    width, height = size
    by_hand = header.xmp_oriented and not options.get("no_rotate")
    if by_hand:
        # libvips turns upright by EXIF alone: decode as stored, then turn by XMP's.
        options = {**options, "no_rotate": True}
        width, height = geometry.oriented_size(width, height, header.orientation)
    stored = bool(options.get("no_rotate"))
    gap = _SHARP_GAP if sharp else 1.0
    shrink = _jpeg_shrink(header, width, height, stored=stored, gap=gap)
    if shrink > 1:
        # libjpeg decodes at 1/shrink in the DCT domain, then a resize kernel does the rest.
        loaded = pyvips.Image.new_from_source(
            source(data), f"{LOAD_OPTIONS},shrink={shrink}", access="sequential"
        )
        if twins is not None:
            loaded = twins.decoded(loaded, shrink)
        if sharp:
            loaded = _sharp_resize(loaded, header, (width, height), stored=stored)
        image = loaded.thumbnail_image(width, height=height, size="force", **options)
    else:
        image = pyvips.Image.thumbnail_source(
            source(data), width, height=height, size="force", option_string=LOAD_OPTIONS, **options
        )
    loader = str(get(image, "vips-loader", ""))
    if not loader.startswith(tuple(LOADER_FOR.values())):
        raise UnsupportedFormatError(f"unsupported format: read by {loader or '?'}")
    if header.uncovered is not None:
        canvas = (header.width, header.height)
        image = clear_outside(image, header.uncovered, canvas)
    if by_hand:
        image = image.copy()
        image.set_type(pyvips.GValue.gint_type, "orientation", header.orientation)
        image = image.autorot()
    if any(header.limited):
        return expand(normalise(image), header.limited).copy_memory()
    return normalise(image).copy_memory()


def _decode_pillow(header: Header, width: int, height: int, *, upright: bool) -> VipsImage:
    """A file libvips decodes wrongly, decoded by Pillow (pillow_decode.py), then resized,
    turned upright and converted as libvips' own decodes are."""
    image = pillow_pixels(header.pil_image, header.format)
    if upright and header.orientation != 1:
        image.set_type(vips().GValue.gint_type, "orientation", header.orientation)
    image = image.thumbnail_image(
        width, height=height, size="force", no_rotate=not upright, **icc_options(header)
    )
    return normalise(image).copy_memory()


def _sharp_resize(
    loaded: VipsImage, header: Header, size: tuple[int, int], *, stored: bool
) -> VipsImage:
    """`loaded` (as stored) resized with _SHARP_KERNEL to `size` (displayed orientation; as
    stored where `stored`), in memory: thumbnail_image then finds it at its size and only turns
    it and converts its colours. A CMYK JPEG keeps thumbnail_image's resize, after its
    conversion to sRGB."""
    if int(loaded.bands) not in (1, 3):
        return loaded
    width, height = size if stored else geometry.oriented_size(*size, header.orientation)
    hscale, vscale = width / int(loaded.width), height / int(loaded.height)
    return loaded.resize(hscale, vscale=vscale, kernel=_SHARP_KERNEL, gap=0.0).copy_memory()


def _jpeg_shrink(
    header: Header, width: int, height: int, *, stored: bool = False, gap: float = 1.0
) -> int:
    """The largest JPEG shrink-on-load factor (8, 4, 2) whose decode still covers `width` x
    `height` (displayed orientation; as stored where `stored`) `gap` times over, or 1.

    libvips' thumbnail leaves a factor of at least 2 for its Lanczos3 step, so a 12 MP photo
    bound for 1600 px is decoded at full size; Pillow's draft mode decodes it at 1/2, as this
    does: ~8% less time per image, outputs as Pillow's (docs/benchmarks.md).
    """
    if header.format != "jpeg" or not _FAST_SHRINK_ON_LOAD:
        return 1
    stored_w, stored_h = geometry.oriented_size(header.width, header.height, header.orientation)
    want_w, want_h = (
        (width, height) if stored else (geometry.oriented_size(width, height, header.orientation))
    )
    for shrink in (8, 4, 2):
        if stored_w // shrink >= want_w * gap and stored_h // shrink >= want_h * gap:
            return shrink
    return 1


# pillow-heif's modes (convert_hdr_to_8bit turns deep colour to 8 bits, not deep grey):
# bands, and bytes a sample.
_HEIF_LAYOUTS = {"L": (1, 1), "LA": (2, 1), "RGB": (3, 1), "RGBA": (4, 1), "I;16": (1, 2)}


def _heif_pixels(header: Header) -> VipsImage:
    pyvips = vips()
    heif = header.heif_image
    try:
        mode = str(heif.mode)
        bands, sample = _HEIF_LAYOUTS[mode]
        raw = heif.data  # the HEVC decode happens here
        stride = int(heif.stride)
        width, height = (int(side) for side in heif.size)
    except KeyError as exc:
        raise UnsupportedFormatError(f"unsupported HEIF pixel layout {exc}") from exc
    except Exception as exc:
        raise CorruptImageError(f"heif image is corrupt or truncated: {one_line(exc)}") from exc
    pixels = unpadded(raw, stride, width * bands * sample, height)
    fmt = "ushort" if sample == 2 else "uchar"  # I;16 is little-endian, as every host here
    image = pyvips.Image.new_from_memory(pixels, width, height, bands, fmt)
    if sample == 2:
        image = _deep_grey(image, heif.info.get("bit_depth"))
    image = image.copy(interpretation="b-w" if bands < 3 else "srgb")
    icc = header.heif_image.info.get("icc_profile")
    if icc:
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", bytes(icc))
    return image


def _deep_grey(image: VipsImage, bit_depth: object) -> VipsImage:
    """A 10- or 12-bit grey plane as 8-bit grey. pillow-heif hands it as I;16 with each
    sample shifted to the top of 16 bits (10-bit 1023 as 65472): the n-bit sample is scaled
    to 0-255 and rounded (1023 is 255), as an n-bit value x stands for x / (2^n - 1)."""
    depth = bit_depth if isinstance(bit_depth, int) and 8 < bit_depth <= 16 else 16
    samples = image >> (16 - depth) if depth < 16 else image
    return (samples * (255 / ((1 << depth) - 1)) + 0.5).cast("uchar")


def unpadded(raw: Any, stride: int, row: int, height: int) -> memoryview | bytes:
    """A decoder's rows without the padding at the end of each (libvips wants none)."""
    buffer = memoryview(raw).cast("B")
    if stride == row:  # no padding: libvips reads the decoder's buffer as it is
        return buffer[: row * height]
    return b"".join(buffer[y * stride : y * stride + row] for y in range(height))
