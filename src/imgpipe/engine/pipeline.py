"""The render: header checks, one decode, the rendition cascade, the encodes, the metadata.

    render(data, options)
      read_header   sniff magic bytes, check max_bytes and the allowed formats, read the
                    header only and check width x height x frames and frames   (header.py)
      decode        ONCE, shrunk on load to the largest size a rendition needs, upright,
                    8-bit sRGB (grey stays grey), in memory                      (decode.py)
      cascade       each smaller size from the smallest image in memory still big enough;
                    "cover" renditions centre-cropped after resizing              (resize.py)
      encode_all    each rendition in each of its formats, no metadata, longest first, a
                    helper thread taking encodes while the machine has an idle core (encode.py)
      facts         header, EXIF subset, phash, blurhash, dominant colour from the smallest
                    image already in memory                                     (metadata.py)
      the original's sha256 (render_unhashed leaves it to its caller: a rendering process's
      parent holds the same bytes and hashes them while the child renders)

Every failure leaves as an ImgpipeError (`guard`): a file that fails to decode is a
CorruptImageError with a one-line message; anything unexpected is a ProcessingError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from imgpipe.core.errors import ImgpipeError, ProcessingError, TooManyPixelsError, one_line
from imgpipe.core.rendering import (
    EncodedRendition,
    MetadataRules,
    RenderLimits,
    RenderOptions,
    RenderResult,
)
from imgpipe.engine.decode import decode
from imgpipe.engine.encode import encode_all, encode_jobs
from imgpipe.engine.exif import without_gps
from imgpipe.engine.header import Header, read_header
from imgpipe.engine.memory import hand_back_free_memory
from imgpipe.engine.metadata import facts
from imgpipe.engine.resize import Size, cascade, cropped, decode_size, resize_sizes
from imgpipe.engine.vips import VipsImage, configure_vips
from imgpipe.engine.writers import keep_flags

_T = TypeVar("_T")


def check_header(data: bytes, limits: RenderLimits) -> tuple[str, int, int, int]:
    """(format, width, height, frames) from the header, limits enforced, no pixel decoded.

    Width and height are as displayed (after EXIF orientation).
    """
    configure_vips()
    header = guard(lambda: read_header(data, limits))
    return header.format, header.width, header.height, header.frames


def render(data: bytes, options: RenderOptions) -> RenderResult:
    """Check, decode once, and encode every rendition in every format; plus the metadata."""
    return render_unhashed(data, options).with_sha256(sha256_hex(data))


def render_unhashed(data: bytes, options: RenderOptions) -> RenderResult:
    """render() but for the original's sha256 (the result's is None): what a rendering
    process runs. Its parent holds the same bytes, and OpenSSL already (hashlib), so it
    hashes them while the child renders; the child never loads libcrypto (3.6 MB)."""
    configure_vips()
    return guard(lambda: _render(data, options))


def sha256_hex(data: bytes) -> str:
    import hashlib  # here, not at the top: see render_unhashed

    return hashlib.sha256(data).hexdigest()


def guard(work: Callable[[], _T]) -> _T:
    """Run `work`, letting imgpipe's errors through and translating everything else."""
    try:
        return work()
    except ImgpipeError:
        raise
    except MemoryError as exc:
        raise TooManyPixelsError("not enough memory to process an image this large") from exc
    except Exception as exc:
        raise ProcessingError(f"image processing failed: {one_line(exc)}") from exc


def _render(data: bytes, options: RenderOptions) -> RenderResult:
    header = read_header(data, options.limits)
    sizes = resize_sizes(header, options.renditions)
    if not sizes:
        raise ProcessingError("no renditions are configured")
    base_size = decode_size(sizes)
    base = _decode_base(data, header, base_size, options.metadata)
    resized = cascade(base, base_size, sizes)
    images = [
        cropped(resized[size], size, header, spec)
        for spec, size in zip(options.renditions, sizes, strict=True)
    ]
    keep = keep_flags(options.metadata)
    jobs = encode_jobs(options.renditions, images, keep, options.background)
    blobs = encode_all(jobs, keep, options.background)
    encoded = tuple(
        EncodedRendition(
            name=job.spec.name,
            format=job.format,
            width=int(job.image.width),
            height=int(job.image.height),
            data=blob,
        )
        for job, blob in zip(jobs, blobs, strict=True)
    )
    smallest = min(resized.values(), key=lambda img: img.width * img.height)
    return RenderResult(facts=facts(data, header, smallest, options), renditions=encoded)


def _decode_base(data: bytes, header: Header, size: Size, metadata: MetadataRules) -> VipsImage:
    """The one decode the cascade starts from, GPS dropped from EXIF that renditions keep."""
    if header.progressive:
        hand_back_free_memory()
    base = decode(data, header, *size)
    if not metadata.strip_exif and not metadata.keep_gps:
        base = without_gps(base)
    return base
