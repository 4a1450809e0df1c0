"""Input formats, told from magic bytes (never from a file name or a claimed content type).

`sniff(data)` answers one of the seven formats imgpipe reads, or raises
`UnsupportedFormatError` naming what the bytes look like (SVG, PDF, PSD, ...), so a FAILED
record says why in words a user understands.
"""

from __future__ import annotations

import struct
from typing import Final, Literal

from imgpipe.core.errors import UnsupportedFormatError

__all__ = [
    "ALL_INPUT_FORMATS",
    "CONTENT_TYPES",
    "EXTENSIONS",
    "InputFormat",
    "OutputFormat",
    "content_type",
    "sniff",
]

InputFormat = Literal["jpeg", "png", "webp", "gif", "tiff", "avif", "heif"]
ALL_INPUT_FORMATS: list[InputFormat] = ["jpeg", "png", "webp", "gif", "tiff", "avif", "heif"]
OutputFormat = Literal["jpeg", "webp", "avif", "png"]
EXTENSIONS: dict[str, str] = {"jpeg": "jpg", "webp": "webp", "avif": "avif", "png": "png"}
CONTENT_TYPES: dict[str, str] = {
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "avif": "image/avif",
    "png": "image/png",
    "gif": "image/gif",
    "tiff": "image/tiff",
    "heif": "image/heif",
}

_AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})
_HEIF_BRANDS: Final = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
)
_GENERIC_HEIF_BRANDS: Final = frozenset({b"mif1", b"msf1"})

# Formats we refuse, recognised so that the message can name them. Order matters only
# where one signature is a prefix of another.
_REFUSED_SIGNATURES: Final[tuple[tuple[bytes, str], ...]] = (
    (b"%PDF-", "PDF document"),
    (b"8BPS", "Photoshop document (PSD)"),
    (b"BM", "BMP image"),
    (b"\x00\x00\x01\x00", "Windows icon (ICO)"),
    (b"\x00\x00\x02\x00", "Windows cursor (CUR)"),
    (b"\x76\x2f\x31\x01", "OpenEXR image"),
    (b"SIMPLE  =", "FITS image"),
    (b"\x08\xf2\xa6\xb6", "libvips native image (.v)"),
    (b"\xb6\xa6\xf2\x08", "libvips native image (.v)"),
    (b"%!PS", "PostScript document"),
    (b"\xc5\xd0\xd3\xc6", "Encapsulated PostScript (EPS)"),
    (b"#?RADIANCE", "Radiance HDR image"),
    (b"#?RGBE", "Radiance HDR image"),
    (b"\xff\x0a", "JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL image"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", "JPEG 2000 codestream"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"\x1f\x8b", "gzip archive"),
    (b"DDS ", "DirectDraw surface (DDS)"),
    (b"gimp xcf", "GIMP image (XCF)"),
    (b"\x00\x00\x00\x00", "file starting with zero bytes"),
)


def content_type(fmt: str) -> str:
    """The MIME type of a sniffed format (model.CONTENT_TYPES is the one table)."""
    return CONTENT_TYPES.get(fmt, "application/octet-stream")


def sniff(data: bytes) -> InputFormat:
    """Tell the format of `data` from its first bytes; raise UnsupportedFormatError otherwise."""
    if not data:
        raise UnsupportedFormatError("empty file: no image data")
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(data)
    raise UnsupportedFormatError(_describe_refused(data))


def _sniff_ftyp(data: bytes) -> InputFormat:
    """An ISO-BMFF file: AVIF or HEIF by its brands, anything else (MP4, MOV...) refused."""
    (box_size,) = struct.unpack(">I", data[:4])
    # A box size of 0 means "to the end of the file"; 1 means a 64-bit size follows (never
    # seen for ftyp). Either way, read no further than the data and 4 KiB of brands.
    end = len(data) if box_size in (0, 1) else min(box_size, len(data))
    end = min(end, 4096)
    major = data[8:12]
    compatible = {data[i : i + 4] for i in range(16, end - 3, 4)}
    if major in _AVIF_BRANDS:
        return "avif"
    if major in _HEIF_BRANDS:
        if major in _GENERIC_HEIF_BRANDS and compatible & _AVIF_BRANDS:
            return "avif"
        return "heif"
    if compatible & _AVIF_BRANDS:
        return "avif"
    if compatible & _HEIF_BRANDS:
        return "heif"
    brand = major.decode("latin-1")
    raise UnsupportedFormatError(
        f"unsupported ISO media file (ftyp brand {brand!r}): not an AVIF or HEIF image"
    )


def _describe_refused(data: bytes) -> str:
    """A readable sentence naming what `data` looks like, for an unsupported format."""
    what = _guess_refused(data)
    return f"unsupported format: {what}"


def _guess_refused(data: bytes) -> str:
    head = data[:64]
    for signature, name in _REFUSED_SIGNATURES:
        if head.startswith(signature):
            return name
    if len(head) >= 2 and head[0:1] == b"P" and head[1:2] in b"1234567fF":
        if head[1:2] in b"fF":
            return "portable float map (PFM)"
        return "Netpbm image (PBM/PGM/PPM/PAM)"
    text = _as_text(data[:4096])
    if text is not None:
        return _guess_text(text.lstrip().lower())
    if len(data) < 12:
        return f"file too short to be an image ({len(data)} bytes)"
    return f"unknown binary data (starts with {data[:8].hex(' ')})"


def _guess_text(lowered: str) -> str:
    """What a refused file that reads as text is: SVG, HTML, XML, MVG or plain text."""
    if "<svg" in lowered:
        return "SVG image (vector graphics are not accepted)"
    if lowered.startswith(("<?xml", "<!doctype", "<")):
        if lowered.startswith("<!doctype html") or "<html" in lowered:
            return "HTML document"
        return "XML document"
    if lowered.startswith(("push graphic-context", "viewbox")) or "graphic-context" in lowered:
        return "ImageMagick vector graphics (MVG)"
    return "text file"


def _as_text(sample: bytes) -> str | None:
    """The sample as text when it looks like text (UTF-8/16 BOMs tolerated), else None."""
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return sample.decode("utf-16", errors="strict")
        except UnicodeDecodeError:
            return None
    if sample.startswith(b"\xef\xbb\xbf"):
        sample = sample[3:]
    try:
        # A sample cut mid-character is still text.
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:
            return None
        text = sample[: exc.start].decode("utf-8")
    if not text:
        return None
    printable = sum(ch.isprintable() or ch in "\t\r\n" for ch in text)
    return text if printable >= 0.95 * len(text) else None
