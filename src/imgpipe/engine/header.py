"""What an original's header says, and the limits checked on it before any pixel is decoded.

libvips has no pixel cap of its own: a 634-byte JPEG may claim 60000x60000. So the bytes are
sniffed by their magic numbers (core/formats.py), then the header alone is read (a lazy
libvips load; pillow-heif for HEIC, which libvips' wheel cannot decode; Pillow for the files
libvips decodes wrongly, pillow_decode.py), and width x
height x frames is checked against the limits first.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from imgpipe.core.errors import (
    CorruptImageError,
    TooLargeError,
    TooManyFramesError,
    TooManyPixelsError,
    UnsupportedFormatError,
    one_line,
)
from imgpipe.core.formats import InputFormat, sniff
from imgpipe.core.rendering import RenderLimits
from imgpipe.engine import geometry
from imgpipe.engine.avif_range import Limited, limited_planes
from imgpipe.engine.exif import (
    TAG_ORIENTATION,
    exif_orientation,
    valid_orientation,
    xmp_orientation,
)
from imgpipe.engine.gif import uncovered_box
from imgpipe.engine.pillow_decode import has_alpha, is_grey, pillow_image
from imgpipe.engine.vips import LOADER_FOR, failure, get, source, vips


class Header(NamedTuple):
    """What the header says, read before any pixel is decoded."""

    format: InputFormat
    width: int  # as displayed: after EXIF orientation / HEIF transforms
    height: int
    orientation: int
    frames: int
    has_alpha: bool
    color_space: str
    has_icc: bool
    exif: bytes | None
    heif_image: Any = None  # pillow_heif.HeifImage, decoded on first access to .data
    pil_image: Any = None  # a PIL image, not decoded yet: Pillow decodes it (pillow_decode.py)
    xmp_oriented: bool = False  # the orientation is XMP's: libvips' autorotate does not see it
    uncovered: tuple[int, int, int, int] | None = None  # a GIF's first frame, short of its canvas
    limited: Limited = Limited(grey=False, alpha=False)  # AVIF planes libheif leaves limited
    progressive: bool = False  # a progressive JPEG: libjpeg holds all its coefficients


def read_header(data: bytes, limits: RenderLimits) -> Header:
    """The header of an original within `limits`; an ImageError for one outside them."""
    if len(data) > limits.max_bytes:
        raise TooLargeError(f"file is {len(data):,} bytes; the limit is {limits.max_bytes:,}")
    fmt = sniff(data)
    if fmt not in limits.allowed_formats:
        allowed = ", ".join(limits.allowed_formats) or "none"
        raise UnsupportedFormatError(f"{fmt} images are not accepted here (allowed: {allowed})")
    header = _read_any_header(data, fmt)
    if header.frames > limits.max_frames:
        raise TooManyFramesError(
            f"image has {header.frames} frames; the limit is {limits.max_frames}"
        )
    pixels = header.width * header.height * header.frames
    if pixels > limits.max_pixels:
        frames = f" x {header.frames} frames" if header.frames > 1 else ""
        raise TooManyPixelsError(
            f"image is {header.width}x{header.height}{frames} = {pixels:,} pixels;"
            f" the limit is {limits.max_pixels:,}"
        )
    return header


def _read_any_header(data: bytes, fmt: InputFormat) -> Header:
    if fmt == "heif":
        return _read_heif_header(data)
    image = pillow_image(data, fmt)
    if image is not None:
        return _read_pillow_header(data, fmt, image)
    return _read_vips_header(data, fmt)


def _read_pillow_header(data: bytes, fmt: InputFormat, image: Any) -> Header:
    """A file libvips decodes wrongly (pillow_decode.py), its header as Pillow reads it."""
    raw_exif = image.info.get("exif")
    exif = bytes(raw_exif) if isinstance(raw_exif, bytes | bytearray) and raw_exif else None
    if fmt == "tiff":
        exif = data  # as for libvips: a TIFF's first IFD is where its EXIF fields live
        orientation = valid_orientation(image.tag_v2.get(TAG_ORIENTATION, 1))
    else:
        orientation = exif_orientation(exif)
    width, height = geometry.oriented_size(int(image.size[0]), int(image.size[1]), orientation)
    return Header(
        format=fmt,
        width=width,
        height=height,
        orientation=orientation,
        frames=max(1, int(getattr(image, "n_frames", 1))),
        has_alpha=has_alpha(image),
        color_space="b-w" if is_grey(image) else "srgb",
        has_icc=bool(image.info.get("icc_profile")),
        exif=exif,
        pil_image=image,
    )


def _read_vips_header(data: bytes, fmt: InputFormat) -> Header:
    pyvips = vips()
    try:
        # Lazy: this parses the header only; no pixel is decoded until something asks.
        image = pyvips.Image.new_from_source(source(data), "", access="sequential")
    except pyvips.Error as exc:
        raise failure(fmt, f"cannot read the {fmt} header", exc) from exc
    loader = get(image, "vips-loader", "")
    if not str(loader).startswith(LOADER_FOR[fmt]):
        raise UnsupportedFormatError(f"unsupported format: {fmt} data read by {loader or '?'}")
    exif = get(image, "exif-data", None)
    if exif is None and fmt == "tiff":
        exif = data  # a TIFF's first IFD is where Make, Model and the EXIF pointer live
    width, height = int(image.width), int(image.height)
    xmp_oriented = False
    if fmt == "avif":
        # libheif has applied the container's rotation already; EXIF orientation is advisory.
        orientation = exif_orientation(exif)
    else:
        orientation = valid_orientation(get(image, "orientation", 1))
        if not image.get_typeof("orientation"):
            # No EXIF orientation: XMP's, as Pillow and Adobe's applications read it. Not for
            # AVIF and HEIF, whose rotation is the container's (MIAF), as browsers show them.
            orientation = xmp_orientation(get(image, "xmp-data", None))
            xmp_oriented = orientation != 1
        width, height = geometry.oriented_size(width, height, orientation)
    uncovered = uncovered_box(data) if fmt == "gif" else None
    return Header(
        format=fmt,
        width=width,
        height=height,
        orientation=orientation,
        frames=max(1, int(get(image, "n-pages", 1))),
        has_alpha=bool(image.hasalpha()) or uncovered is not None,
        color_space=str(image.interpretation).lower(),
        has_icc=bool(image.get_typeof("icc-profile-data")),
        exif=bytes(exif) if exif else None,
        progressive=fmt == "jpeg" and bool(get(image, "interlaced", 0)),
        xmp_oriented=xmp_oriented,
        uncovered=uncovered,
        limited=limited_planes(data) if fmt == "avif" else Limited(grey=False, alpha=False),
    )


def _read_heif_header(data: bytes) -> Header:
    """HEIC/HEIF through pillow-heif: libvips' wheel has no HEVC decoder."""
    import pillow_heif

    try:
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
        image = heif[heif.primary_index]
        width, height = image.size
        mode = str(image.mode)
        info = dict(image.info)
    except Exception as exc:
        raise CorruptImageError(f"cannot read the heif header: {one_line(exc)}") from exc
    raw_exif = info.get("exif")
    exif = bytes(raw_exif) if isinstance(raw_exif, bytes | bytearray) and raw_exif else None
    raw_depth = info.get("bit_depth")
    depth = raw_depth if isinstance(raw_depth, int) else 8
    grey = mode.startswith(("L", "I"))
    return Header(
        format="heif",
        width=int(width),  # libheif applies the container's rotation and mirroring
        height=int(height),
        orientation=exif_orientation(exif),
        frames=max(1, len(heif)),
        has_alpha=bool(image.has_alpha),
        color_space=_heif_colour_space(grey=grey, deep=depth > 8),
        has_icc=bool(info.get("icc_profile")),
        exif=exif,
        heif_image=image,
    )


def _heif_colour_space(*, grey: bool, deep: bool) -> str:
    if grey:
        return "grey16" if deep else "b-w"
    return "rgb16" if deep else "srgb"
