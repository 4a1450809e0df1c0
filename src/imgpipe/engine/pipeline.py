"""The imaging engine: header checks, one decode, the rendition cascade, encoding, metadata.

    render(data, options)
      sniff magic bytes (formats.py), check max_bytes and the allowed formats
      read the header only (lazy pyvips load, or pillow-heif for HEIC) and check
        width x height x frames <= max_pixels and frames <= max_frames      <- before any pixel
      decode ONCE, shrunk on load to the largest size a rendition needs, EXIF-oriented,
        converted to 8-bit sRGB (grey stays grey), held in memory
      cascade: each smaller rendition is resized from the smallest in-memory image that is
        still big enough; "cover" renditions are centre-cropped after resizing
      encode each rendition in each of its formats, with no metadata (JPEG and WebP through
        Pillow's encoders unless the rendition says encoder="libvips"), longest first, with a
        helper thread taking encodes while the machine has an idle core
      metadata (EXIF subset, phash, blurhash, dominant colour) from the header and
        the smallest image already in memory
      the original's sha256 (render_unhashed leaves it to its caller: a rendering
        process's parent holds the same bytes and hashes them while the child renders)

pyvips and Pillow are imported inside functions: importing this module is cheap
(cold starts matter on Lambda). Every pyvips error is translated: a file that fails to decode
is a CorruptImageError with a one-line message; anything else is a ProcessingError.
"""

from __future__ import annotations

import functools
import math
import operator
import os
import threading
import warnings
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from imgpipe.core.errors import (
    CorruptImageError,
    ImgpipeError,
    ProcessingError,
    TooLargeError,
    TooManyFramesError,
    TooManyPixelsError,
    UnsupportedFormatError,
    one_line,
)
from imgpipe.core.formats import InputFormat, OutputFormat, content_type, sniff
from imgpipe.core.rendering import (
    EncodedRendition,
    MetadataRules,
    RenderLimits,
    RenderOptions,
    RenderPreset,
    RenderResult,
    validated_metadata,
)
from imgpipe.engine import geometry

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from PIL.Image import Image as PILImage

    from imgpipe.core.model import Exif, ImageMetadata

_T = TypeVar("_T")

# pyvips ships no type hints: a pyvips.Image is `Any` to mypy.
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
_LOADER_FOR: dict[str, str] = {
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
_LOAD_OPTIONS = "fail_on=error"
# JPEGs decode at the largest DCT scale (1/2, 1/4, 1/8) that still covers the largest
# rendition, not at libvips' thumbnail choice, which keeps a factor of 2 for the resize.
_FAST_SHRINK_ON_LOAD = True
_AVIF_EFFORT = 4
_PNG_COMPRESSION = 6
# phash, blurhash and the dominant colour are computed from a 32x32 version.
_ANALYSIS_SIZE = 32
_BLURHASH_COMPONENTS = (4, 3)


class Pixels(NamedTuple):
    """A small 8-bit RGB picture for the metadata's analysis: row-major, 3 bytes a pixel."""

    width: int
    height: int
    rgb: bytes


class _Header(NamedTuple):
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
    progressive: bool = False  # a progressive JPEG: libjpeg holds all its coefficients


# --------------------------------------------------------------------------------------------
# libvips set-up


def _vips() -> Any:
    import pyvips

    return pyvips


@functools.cache
def configure_vips() -> None:
    """Block every libvips loader but the allow-listed ones; no operation cache. Idempotent."""
    vips = _vips()
    vips.block_untrusted_set(True)
    vips.operation_block_set("VipsForeignLoad", True)
    for name in ALLOWED_LOADER_CLASSES:
        vips.operation_block_set(name, False)
    # The operation cache would keep decoded images of earlier requests alive.
    vips.cache_set_max(0)


# --------------------------------------------------------------------------------------------
# Public API


def check_header(data: bytes, limits: RenderLimits) -> tuple[str, int, int, int]:
    """(format, width, height, frames) from the header, limits enforced, no pixel decoded.

    Width and height are as displayed (after EXIF orientation).
    """
    configure_vips()
    header = _guard(lambda: _read_header(data, limits))
    return header.format, header.width, header.height, header.frames


def probe(data: bytes, options: RenderOptions) -> ImageMetadata:
    """The metadata a record would get, with no rendition encoded (`imgpipe info`)."""
    configure_vips()
    facts = _guard(lambda: _probe(data, options))
    return validated_metadata({**facts, "sha256": sha256_hex(data)})


def render(data: bytes, options: RenderOptions) -> RenderResult:
    """Check, decode once, and encode every rendition in every format; plus the metadata."""
    return render_unhashed(data, options).with_sha256(sha256_hex(data))


def render_unhashed(data: bytes, options: RenderOptions) -> RenderResult:
    """render() but for the original's sha256 (the result's is None): what a rendering
    process runs. Its parent holds the same bytes, and OpenSSL already (hashlib), so it
    hashes them while the child renders; the child never loads libcrypto (3.6 MB)."""
    configure_vips()
    return _guard(lambda: _render(data, options))


def sha256_hex(data: bytes) -> str:
    import hashlib  # here, not at the top: see render_unhashed

    return hashlib.sha256(data).hexdigest()


def _guard(work: Callable[[], _T]) -> _T:
    """Run `work`, letting imgpipe's errors through and translating everything else."""
    try:
        return work()
    except ImgpipeError:
        raise
    except MemoryError as exc:
        raise TooManyPixelsError("not enough memory to process an image this large") from exc
    except Exception as exc:
        raise ProcessingError(f"image processing failed: {one_line(exc)}") from exc


# --------------------------------------------------------------------------------------------
# Header


def _read_header(data: bytes, limits: RenderLimits) -> _Header:
    if len(data) > limits.max_bytes:
        raise TooLargeError(f"file is {len(data):,} bytes; the limit is {limits.max_bytes:,}")
    fmt = sniff(data)
    if fmt not in limits.allowed_formats:
        allowed = ", ".join(limits.allowed_formats) or "none"
        raise UnsupportedFormatError(f"{fmt} images are not accepted here (allowed: {allowed})")
    header = _read_heif_header(data) if fmt == "heif" else _read_vips_header(data, fmt)
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


def _source(data: bytes) -> Any:
    """libvips reads the caller's bytes where they are. The *_buffer loaders would first copy
    them into a blob of libvips' own (pyvips does): the file's size again, for the whole decode.
    """
    return _vips().Source.new_from_memory(data)


def _read_vips_header(data: bytes, fmt: InputFormat) -> _Header:
    vips = _vips()
    try:
        # Lazy: this parses the header only; no pixel is decoded until something asks.
        image = vips.Image.new_from_source(_source(data), "", access="sequential")
    except vips.Error as exc:
        raise CorruptImageError(f"cannot read the {fmt} header: {one_line(exc)}") from exc
    loader = _get(image, "vips-loader", "")
    if not str(loader).startswith(_LOADER_FOR[fmt]):
        raise UnsupportedFormatError(f"unsupported format: {fmt} data read by {loader or '?'}")
    exif = _get(image, "exif-data", None)
    if exif is None and fmt == "tiff":
        exif = data  # a TIFF's first IFD is where Make, Model and the EXIF pointer live
    width, height = int(image.width), int(image.height)
    if fmt == "avif":
        # libheif has applied the container's rotation already; EXIF orientation is advisory.
        orientation = _exif_orientation(exif)
    else:
        orientation = _valid_orientation(_get(image, "orientation", 1))
        width, height = geometry.oriented_size(width, height, orientation)
    return _Header(
        format=fmt,
        width=width,
        height=height,
        orientation=orientation,
        frames=max(1, int(_get(image, "n-pages", 1))),
        has_alpha=bool(image.hasalpha()),
        color_space=str(image.interpretation).lower(),
        has_icc=bool(image.get_typeof("icc-profile-data")),
        exif=bytes(exif) if exif else None,
        progressive=fmt == "jpeg" and bool(_get(image, "interlaced", 0)),
    )


def _read_heif_header(data: bytes) -> _Header:
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
    return _Header(
        format="heif",
        width=int(width),  # libheif applies the container's rotation and mirroring
        height=int(height),
        orientation=_exif_orientation(exif),
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


def _get(image: VipsImage, field: str, default: Any) -> Any:
    return image.get(field) if image.get_typeof(field) else default


def _valid_orientation(value: Any) -> int:
    try:
        orientation = int(value)
    except (TypeError, ValueError):
        return 1
    return orientation if 1 <= orientation <= 8 else 1


# --------------------------------------------------------------------------------------------
# Decoding


def _decode(data: bytes, header: _Header, width: int, height: int) -> VipsImage:
    """Decode once to exactly `width` x `height` (displayed orientation): upright, 8-bit sRGB
    (or grey), with alpha if the source has it, in memory."""
    vips = _vips()
    try:
        if header.heif_image is not None:
            image = _heif_pixels(header)
            image = image.thumbnail_image(
                width, height=height, size="force", no_rotate=True, **_icc_options(header)
            )
            return _normalise(image).copy_memory()
        try:
            return _decode_vips(data, header, width, height, _icc_options(header))
        except vips.Error:
            if not header.has_icc:
                raise
            # A broken ICC profile should not lose the image: decode again, untransformed.
            return _decode_vips(data, header, width, height, {})
    except vips.Error as exc:
        raise CorruptImageError(
            f"{header.format} image is corrupt or truncated: {one_line(exc)}"
        ) from exc


def _decode_vips(
    data: bytes, header: _Header, width: int, height: int, icc: dict[str, str]
) -> VipsImage:
    vips = _vips()
    shrink = _jpeg_shrink(header, width, height)
    if shrink > 1:
        # libjpeg decodes at 1/shrink in the DCT domain, then Lanczos3 does the rest.
        loaded = vips.Image.new_from_source(
            _source(data), f"{_LOAD_OPTIONS},shrink={shrink}", access="sequential"
        )
        image = loaded.thumbnail_image(width, height=height, size="force", **icc)
    else:
        image = vips.Image.thumbnail_source(
            _source(data), width, height=height, size="force", option_string=_LOAD_OPTIONS, **icc
        )
    loader = str(_get(image, "vips-loader", ""))
    if not loader.startswith(tuple(_LOADER_FOR.values())):
        raise UnsupportedFormatError(f"unsupported format: read by {loader or '?'}")
    return _normalise(image).copy_memory()


def hand_back_free_memory() -> None:
    """Return to the system what glibc keeps from earlier images (malloc_trim), before a decode
    that sets a process's peak: libjpeg holds every DCT coefficient of a progressive JPEG at
    full size, whatever the shrink-on-load. Only then: after every render it cost 2.2% of
    images/s (docs/benchmarks.md), as later images fault the memory back in."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes

    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def _jpeg_shrink(header: _Header, width: int, height: int) -> int:
    """The largest JPEG shrink-on-load factor (8, 4, 2) whose decode still covers `width` x
    `height` (displayed orientation), or 1.

    libvips' thumbnail leaves a factor of at least 2 for its Lanczos3 step, so a 12 MP photo
    bound for 1600 px is decoded at full size; Pillow's draft mode decodes it at 1/2, as this
    does: ~8% less time per image, outputs as Pillow's (docs/benchmarks.md).
    """
    if header.format != "jpeg" or not _FAST_SHRINK_ON_LOAD:
        return 1
    stored_w, stored_h = geometry.oriented_size(header.width, header.height, header.orientation)
    want_w, want_h = geometry.oriented_size(width, height, header.orientation)
    for shrink in (8, 4, 2):
        if stored_w // shrink >= want_w and stored_h // shrink >= want_h:
            return shrink
    return 1


def _icc_options(header: _Header) -> dict[str, str]:
    # On an untagged image an sRGB export still runs a transform (~140 ms): only when tagged.
    return {"export_profile": "srgb"} if header.has_icc else {}


def _heif_pixels(header: _Header) -> VipsImage:
    vips = _vips()
    source = header.heif_image
    bands_for = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
    try:
        mode = str(source.mode)
        bands = bands_for[mode]
        raw = source.data  # the HEVC decode happens here
        stride = int(source.stride)
        width, height = (int(side) for side in source.size)
    except KeyError as exc:
        raise UnsupportedFormatError(f"unsupported HEIF pixel layout {exc}") from exc
    except Exception as exc:
        raise CorruptImageError(f"heif image is corrupt or truncated: {one_line(exc)}") from exc
    pixels = _unpadded(raw, stride, width * bands, height)
    image = vips.Image.new_from_memory(pixels, width, height, bands, "uchar")
    image = image.copy(interpretation="b-w" if bands < 3 else "srgb")
    icc = header.heif_image.info.get("icc_profile")
    if icc:
        image.set_type(vips.GValue.blob_type, "icc-profile-data", bytes(icc))
    return image


def _unpadded(raw: Any, stride: int, row: int, height: int) -> memoryview | bytes:
    """A decoder's rows without the padding at the end of each (libvips wants none)."""
    buffer = memoryview(raw).cast("B")
    if stride == row:  # no padding: libvips reads the decoder's buffer as it is
        return buffer[: row * height]
    return b"".join(buffer[y * stride : y * stride + row] for y in range(height))


def _normalise(image: VipsImage) -> VipsImage:
    """8-bit sRGB, or 8-bit grey for grey sources; alpha kept; no ICC profile attached."""
    interpretation = str(image.interpretation)
    bands = int(image.bands)
    grey = bands in (1, 2) and interpretation in ("b-w", "grey16", "multiband")
    if interpretation == "multiband":
        image = image.copy(interpretation="b-w" if grey else "srgb")
        interpretation = str(image.interpretation)
    target = "b-w" if grey else "srgb"
    if interpretation != target or image.format != "uchar":
        image = image.colourspace(target)
    if image.format != "uchar":
        image = image.cast("uchar")
    wanted = 2 if grey else 4
    if image.bands > wanted:
        image = image.extract_band(0, n=wanted)
    if image.get_typeof("icc-profile-data"):
        image = image.copy()
        image.remove("icc-profile-data")
    return image


# --------------------------------------------------------------------------------------------
# Rendering


def _probe(data: bytes, options: RenderOptions) -> dict[str, Any]:
    header = _read_header(data, options.limits)
    sizes = _resize_sizes(header, options.renditions) or [(header.width, header.height)]
    # The size of render()'s smallest intermediate, so that both give (nearly) the same hashes.
    width, height = min(sizes, key=lambda size: size[0] * size[1])
    image = _decode(data, header, width, height)
    return _metadata(data, header, image, options)


def _render(data: bytes, options: RenderOptions) -> RenderResult:
    header = _read_header(data, options.limits)
    specs = options.renditions
    sizes = _resize_sizes(header, specs)
    if not sizes:
        raise ProcessingError("no renditions are configured")
    decode_w = max(width for width, _ in sizes)
    decode_h = max(height for _, height in sizes)
    if header.progressive:
        hand_back_free_memory()
    base = _decode(data, header, decode_w, decode_h)
    if not options.metadata.strip_exif and not options.metadata.keep_gps:
        base = _without_gps(base)

    # Cascade: resize each size from the smallest in-memory image still at least as big.
    resized: dict[tuple[int, int], VipsImage] = {(decode_w, decode_h): base}
    for width, height in sorted(set(sizes), key=lambda size: -(size[0] * size[1])):
        if (width, height) in resized:
            continue
        source = min(
            (img for (w, h), img in resized.items() if w >= width and h >= height),
            key=lambda img: img.width * img.height,
        )
        resized[(width, height)] = source.thumbnail_image(
            width, height=height, size="force", no_rotate=True
        ).copy_memory()

    keep = _keep_flags(options.metadata)
    jobs: list[_EncodeJob] = []
    for spec, size in zip(specs, sizes, strict=True):
        image = resized[size]
        target_w, target_h = geometry.target_size(
            header.width, header.height, spec.width, spec.height, spec.fit
        )
        if (target_w, target_h) != size:
            left, top, crop_w, crop_h = geometry.centre_crop(*size, target_w, target_h)
            image = image.crop(left, top, crop_w, crop_h)
        formats = list(dict.fromkeys(spec.formats))
        uses = sum(_pillow_encodes(spec, fmt, keep) for fmt in formats)
        as_pillow = _PillowPixels(image, options.background, uses)
        jobs += [_EncodeJob(spec, fmt, image, as_pillow) for fmt in formats]
    blobs = _encode_all(jobs, keep, options.background)
    encoded = [
        EncodedRendition(
            name=job.spec.name,
            format=job.format,
            width=int(job.image.width),
            height=int(job.image.height),
            data=blob,
        )
        for job, blob in zip(jobs, blobs, strict=True)
    ]
    smallest = min(resized.values(), key=lambda img: img.width * img.height)
    return RenderResult(facts=_metadata(data, header, smallest, options), renditions=tuple(encoded))


def _without_gps(image: VipsImage) -> VipsImage:
    """Renditions that keep EXIF still lose GPS unless the config keeps it: drop the GPS IFD
    from the EXIF block and the exif-ifd3-* fields libvips would write back from."""
    vips = _vips()
    image = image.copy()
    for field in image.get_fields():
        if field.startswith("exif-ifd3-"):
            image.remove(field)
    raw = _get(image, "exif-data", None)
    if raw:
        try:
            with warnings.catch_warnings(action="ignore"):
                exif = _load_exif(bytes(raw))
                del exif[_IFD_GPS]
                cleaned = b"Exif\x00\x00" + exif.tobytes()
            image.set_type(vips.GValue.blob_type, "exif-data", cleaned)
        except Exception:
            image.remove("exif-data")  # unreadable: drop it rather than leak a location
    return image


def _resize_sizes(header: _Header, specs: tuple[RenderPreset, ...]) -> list[tuple[int, int]]:
    return [
        geometry.resize_size(header.width, header.height, spec.width, spec.height, spec.fit)
        for spec in specs
    ]


def _keep_flags(metadata: MetadataRules) -> int:
    keep = _vips().enums.ForeignKeep
    if metadata.strip_exif:
        return int(keep.NONE)
    return int(keep.EXIF | keep.XMP | keep.IPTC)


def _encode(
    image: VipsImage,
    fmt: OutputFormat,
    spec: RenderPreset,
    keep: int,
    background: tuple[int, int, int],
    as_pillow: _PillowPixels,
) -> bytes:
    quality = spec.quality_for(fmt)
    if _pillow_encodes(spec, fmt, keep):
        with as_pillow.borrow(flat=fmt == "jpeg") as pixels:
            return _encode_pillow(pixels, fmt, quality, spec)
    if fmt == "jpeg":
        flat = _flatten(image, background)
        return bytes(
            flat.jpegsave_buffer(
                Q=quality,
                optimize_coding=spec.jpeg_optimize_coding,
                interlace=spec.jpeg_progressive,
                subsample_mode=spec.jpeg_subsample,
                trellis_quant=spec.jpeg_trellis,
                keep=keep,
            )
        )
    if fmt == "webp":
        return bytes(
            image.webpsave_buffer(
                Q=quality,
                effort=spec.webp_effort,
                smart_subsample=spec.webp_smart_subsample,
                keep=keep,
            )
        )
    if fmt == "avif":
        if image.bands < 3:
            image = image.colourspace("srgb")
        return bytes(
            image.heifsave_buffer(
                Q=quality, compression="av1", effort=_AVIF_EFFORT, keep=keep, bitdepth=8
            )
        )
    if fmt == "png":
        if quality < 100:
            # Below 100, quantise to a palette (libimagequant), like pngquant.
            return bytes(
                image.pngsave_buffer(
                    palette=True, Q=quality, compression=_PNG_COMPRESSION, keep=keep
                )
            )
        return bytes(image.pngsave_buffer(compression=_PNG_COMPRESSION, keep=keep))
    raise ProcessingError(f"unknown output format {fmt!r}")


class _EncodeJob(NamedTuple):
    spec: RenderPreset
    format: OutputFormat
    image: VipsImage
    as_pillow: _PillowPixels

    @property
    def cost(self) -> float:
        """A rough relative CPU cost, only to start the longest encodes first."""
        return float(self.image.width * self.image.height) * _ENCODE_WEIGHT.get(self.format, 1.0)


# WebP (method 4) costs ~6x a baseline JPEG of the same pixels; AVIF and PNG more still.
_ENCODE_WEIGHT: dict[str, float] = {"jpeg": 1.0, "webp": 6.0, "png": 4.0, "avif": 20.0}


def _encode_all(jobs: list[_EncodeJob], keep: int, background: tuple[int, int, int]) -> list[bytes]:
    """Every encode, returned in `jobs`' order. They start longest first, and a helper thread
    takes encodes from the same list while the machine has a core to spare: Pillow 13
    releases the GIL while libwebp encodes (its JPEG encoder does not), as libvips does, so an
    image rendering alone (the only upload, the last of a batch) uses two cores. Under full
    load the helper waits instead: an always-on second thread per render cost up to 3.5% of
    throughput there (docs/benchmarks.md).
    """

    def run(job: _EncodeJob) -> bytes:
        return _encode(job.image, job.format, job.spec, keep, background, job.as_pillow)

    if len(jobs) < 2 or usable_cores() < 2 or not ENCODE_HELPER:
        return [run(job) for job in jobs]
    order = deque(sorted(range(len(jobs)), key=lambda n: -jobs[n].cost))
    blobs: list[bytes] = [b""] * len(jobs)
    finished = threading.Event()

    def help_out() -> None:
        while not finished.is_set():
            # This thread and the render's own count among the runnable ones.
            if runnable_threads() > usable_cores():
                finished.wait(_RECHECK_S)
                continue
            try:
                n = order.popleft()
            except IndexError:
                return
            blobs[n] = run(jobs[n])

    longest = order.popleft()  # the render's own thread takes it, before the helper starts
    helper = _encode_pool().submit(help_out)
    try:
        n = longest
        while True:
            blobs[n] = run(jobs[n])
            try:
                n = order.popleft()
            except IndexError:  # the helper may take the last one between a look and a pop
                break
    finally:
        finished.set()
    # A helper still queued (every pool thread busy with other renders: more in-process
    # renders than cores) has nothing left to do; only one that started is waited for.
    if not helper.cancel():
        helper.result()
    return blobs


# How often a waiting helper looks again for an idle core.
_RECHECK_S = 0.01
# False: every encode in the render's own thread (bench/run.py measures the helper's effect).
ENCODE_HELPER = True


@functools.cache
def usable_cores() -> int:
    """The cores this process may run on (its affinity: taskset, cpusets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def runnable_threads() -> int:
    """Threads running or ready to run on the whole machine now, the caller included (the
    fourth field of /proc/loadavg); where it cannot be read (not Linux), a count so high that
    no helper thread ever starts."""
    try:
        with open("/proc/loadavg", "rb") as stats:
            return int(stats.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return 1 << 30


# One pool per process id: a forked child must not use its parent's (threadless) pool.
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _encode_pool() -> ThreadPoolExecutor:
    """The process' helper threads (one per render at most), made on first use (and again
    in a forked child)."""
    with _pools_lock:
        pool = _pools.get(os.getpid())
        if pool is None:
            pool = _pools[os.getpid()] = ThreadPoolExecutor(
                usable_cores(), thread_name_prefix="imgpipe-encode"
            )
        return pool


def _pillow_encodes(spec: RenderPreset, fmt: OutputFormat, keep: int) -> bool:
    """Whether Pillow writes this rendition: JPEG and WebP with no metadata kept, and no
    setting only libvips has (trellis quantisation, sharp YUV)."""
    if spec.encoder != "pillow" or keep != int(_vips().enums.ForeignKeep.NONE):
        return False
    if fmt == "jpeg":
        return not spec.jpeg_trellis
    return fmt == "webp" and not spec.webp_smart_subsample


_PIL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
# Pillow's `subsampling`: 0 is 4:4:4, 2 is 4:2:0. libvips' "auto" is 4:2:0 below quality 90.
_AUTO_SUBSAMPLE_BELOW = 90


class _PillowPixels:
    """One rendition's pixels as a Pillow image, copied out of libvips once for all its
    formats (the copy costs ~4 ms at 1600 px): flattened onto the background for JPEG, as they
    are for WebP; the same image for both when there is no alpha.

    Image.save keeps its options on the image object, so two encodes must not use one image at
    the same time (the JPEG came out at the WebP's quality): while one thread has it, another
    gets a copy (~1 ms at 1600 px, made only then). After its last use (`uses`: the formats
    Pillow writes) the image is let go, so that it is not kept while other sizes encode."""

    def __init__(self, image: VipsImage, background: tuple[int, int, int], uses: int) -> None:
        self._image = image
        self._background = background
        self._uses_left = uses
        self._made: dict[bool, PILImage] = {}
        self._lent: set[bool] = set()
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self, *, flat: bool) -> Iterator[PILImage]:
        from PIL import Image

        flat = flat and bool(self._image.hasalpha())
        with self._lock:
            if flat not in self._made:
                source = _flatten(self._image, self._background) if flat else self._image
                mode = _PIL_MODES[int(source.bands)]
                size = (int(source.width), int(source.height))
                # Pillow copies RGB out of these bytes: let them go before the encodes run
                pixels = source.write_to_memory()
                self._made[flat] = Image.frombuffer(mode, size, pixels, "raw", mode, 0, 1)
                del pixels, source
            image = self._made[flat]
            mine = flat not in self._lent
            if mine:
                self._lent.add(flat)
            else:  # the other thread is encoding from it
                image = image.copy()
        try:
            yield image
        finally:
            with self._lock:
                if mine:
                    self._lent.discard(flat)
                self._uses_left -= 1
                if self._uses_left <= 0:
                    self._made.clear()


def _encode_pillow(pixels: PILImage, fmt: OutputFormat, quality: int, spec: RenderPreset) -> bytes:
    """The same libjpeg-turbo and libwebp code as libvips', in Pillow's builds: the same
    pixels and sizes, ~8% less CPU per image (docs/benchmarks.md)."""
    import io

    out = io.BytesIO()
    if fmt == "jpeg":
        subsample = spec.jpeg_subsample
        if subsample == "auto":
            subsample = "on" if quality < _AUTO_SUBSAMPLE_BELOW else "off"
        pixels.save(
            out,
            "JPEG",
            quality=quality,
            optimize=spec.jpeg_optimize_coding,
            progressive=spec.jpeg_progressive,
            subsampling=2 if subsample == "on" else 0,
        )
    else:
        pixels.save(out, "WEBP", quality=quality, method=spec.webp_effort)
    return out.getvalue()


def _flatten(image: VipsImage, background: tuple[int, int, int]) -> VipsImage:
    """JPEG has no alpha: composite onto the configured background colour."""
    if not image.hasalpha():
        return image
    red, green, blue = background
    if image.bands == 2:
        if red == green == blue:
            return image.flatten(background=[red])
        image = image.colourspace("srgb")
    return image.flatten(background=[red, green, blue])


# --------------------------------------------------------------------------------------------
# Metadata


def _metadata(
    data: bytes, header: _Header, image: VipsImage, options: RenderOptions
) -> dict[str, Any]:
    """The record's metadata (model.ImageMetadata's fields, by name)."""
    rgb, alpha = _analysis_pixels(image)
    flat = _composite(rgb, alpha, options.background)
    return {
        "content_type": content_type(header.format),
        "format": header.format,
        "file_size": len(data),
        "width": header.width,
        "height": header.height,
        "orientation": header.orientation,
        "has_alpha": header.has_alpha,
        "color_space": header.color_space,
        "frames": header.frames,
        "exif": _exif_fields(header.exif, keep_gps=options.metadata.keep_gps),
        "phash": phash(flat),
        "blurhash": blurhash(flat, *_BLURHASH_COMPONENTS),
        "dominant_color": dominant_color(rgb, alpha),
    }


def _analysis_pixels(image: VipsImage) -> tuple[Pixels, bytes | None]:
    """A 32x32 RGB picture (and its alpha, if any) from an in-memory 8-bit image."""
    small = image.thumbnail_image(
        _ANALYSIS_SIZE, height=_ANALYSIS_SIZE, size="force", no_rotate=True
    )
    bands = int(small.bands)
    raw = bytes(small.write_to_memory())
    width, height = int(small.width), int(small.height)
    if bands == 3:
        return Pixels(width, height, raw), None
    colour_bands = 1 if bands <= 2 else 3
    rgb = bytearray(width * height * 3)
    for c in range(3):  # a grey picture's one band, three times
        rgb[c::3] = raw[min(c, colour_bands - 1) :: bands]
    alpha = raw[colour_bands::bands] if bands in (2, 4) else None
    return Pixels(width, height, bytes(rgb)), alpha


def _composite(pixels: Pixels, alpha: bytes | None, background: tuple[int, int, int]) -> Pixels:
    """The pixels as a JPEG rendition shows them: alpha flattened onto the background."""
    if alpha is None:
        return pixels
    weights = [a / 255.0 for a in alpha]
    mixed = bytearray(len(pixels.rgb))
    for c in range(3):
        back = float(background[c])
        mixed[c::3] = bytes(
            min(255, max(0, round(v * w + back * (1.0 - w))))
            for v, w in zip(pixels.rgb[c::3], weights, strict=True)
        )
    return Pixels(pixels.width, pixels.height, bytes(mixed))


def _dot(a: Iterable[float], b: Iterable[float]) -> float:
    # fsum: exactly rounded, so the hashes are the same bits on every platform and Python
    return math.fsum(map(operator.mul, a, b))


@functools.cache
def _dct_basis(size: int) -> tuple[tuple[float, ...], ...]:
    """DCT-II's first 8 cosine rows over `size` samples."""
    return tuple(
        tuple(math.cos(math.pi * (2 * n + 1) * u / (2 * size)) for n in range(size))
        for u in range(8)
    )


@functools.cache
def _cosines(components: int, size: int) -> tuple[tuple[float, ...], ...]:
    """BlurHash's basis along one side: cos(pi * k * position / size), k < components."""
    return tuple(
        tuple(math.cos(math.pi * k * (n / size)) for n in range(size)) for k in range(components)
    )


def phash(pixels: Pixels) -> str:
    """64-bit DCT perceptual hash, 16 hex digits; the definition of the `imagehash` package.

    Luma (ITU-R 601: 0.299 R + 0.587 G + 0.114 B) of a 32x32 image, 2-D DCT-II (unscaled),
    the top-left 8x8 low frequencies including the DC term, each bit = coefficient > their
    median, row-major, first bit most significant. Compare hashes by Hamming distance.
    """
    size = pixels.height
    if pixels.width != size:
        raise ValueError(f"phash needs a square picture, not {pixels.width}x{size}")
    rgb = pixels.rgb
    luma = [
        r * 0.299 + g * 0.587 + b * 0.114
        for r, g, b in zip(rgb[0::3], rgb[1::3], rgb[2::3], strict=True)
    ]
    columns = [luma[y::size] for y in range(size)]
    basis = _dct_basis(size)
    # (basis @ luma)[u][y], then (... @ basis.T)[u][v]: only the 8x8 that the hash keeps
    rows = [[_dot(basis_u, column) for column in columns] for basis_u in basis]
    low = [_dot(row, basis_v) for row in rows for basis_v in basis]
    ordered = sorted(low)  # statistics.median's arithmetic, without its imports (0.7 MB)
    median = (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2
    value = 0
    for coefficient in low:
        value = (value << 1) | (coefficient > median)
    return f"{value:016x}"


_BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def _base83(value: int, length: int) -> str:
    return "".join(_BASE83[(value // 83 ** (length - i - 1)) % 83] for i in range(length))


def _srgb_to_linear(value: int) -> float:
    v = value / 255.0
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


_LINEAR = tuple(_srgb_to_linear(value) for value in range(256))


def _linear_to_srgb(value: float) -> int:
    v = min(1.0, max(0.0, value))
    if v <= 0.0031308:
        return int(v * 12.92 * 255 + 0.5)
    return int((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5)


def blurhash(pixels: Pixels, x_components: int = 4, y_components: int = 3) -> str:
    """The BlurHash (woltapp/blurhash reference encoder) of an sRGB image."""
    width, height = pixels.width, pixels.height
    cos_x = _cosines(x_components, width)
    cos_y = _cosines(y_components, height)
    # per channel: each row against each horizontal basis, then those sums down the columns
    sums: list[list[list[float]]] = []  # [channel][i][y]
    for c in range(3):
        linear = [_LINEAR[v] for v in pixels.rgb[c::3]]
        rows = [linear[y * width : (y + 1) * width] for y in range(height)]
        sums.append([[_dot(cx, row) for row in rows] for cx in cos_x])
    factors: list[tuple[float, ...]] = []
    for j in range(y_components):
        for i in range(x_components):
            scale = (1.0 if i == 0 and j == 0 else 2.0) / (width * height)
            factors.append(tuple(_dot(cos_y[j], sums[c][i]) * scale for c in range(3)))
    dc, ac = factors[0], factors[1:]
    out = _base83((x_components - 1) + (y_components - 1) * 9, 1)
    if ac:
        actual_max = max(abs(v) for factor in ac for v in factor)
        quantised_max = int(max(0, min(82, math.floor(actual_max * 166 - 0.5))))
        maximum = (quantised_max + 1) / 166
        out += _base83(quantised_max, 1)
    else:
        maximum = 1.0
        out += _base83(0, 1)
    out += _base83(
        (_linear_to_srgb(dc[0]) << 16) + (_linear_to_srgb(dc[1]) << 8) + _linear_to_srgb(dc[2]), 4
    )
    for factor in ac:
        r, g, b = (
            int(max(0, min(18, math.floor(_sign_pow(v / maximum, 0.5) * 9 + 9.5)))) for v in factor
        )
        out += _base83(r * 19 * 19 + g * 19 + b, 2)
    return out


def _sign_pow(value: float, exponent: float) -> float:
    return math.copysign(abs(value) ** exponent, value)


def dominant_color(pixels: Pixels, alpha: bytes | None = None) -> str:
    """Hex "#rrggbb": the mean of the most populated 8x8x8 colour bucket of the opaque pixels."""
    rgb = pixels.rgb
    triples = list(zip(rgb[0::3], rgb[1::3], rgb[2::3], strict=True))
    if alpha is not None:
        opaque = [t for t, a in zip(triples, alpha, strict=True) if a >= 128]
        if opaque:
            triples = opaque
    buckets = [(r >> 5) << 6 | (g >> 5) << 3 | b >> 5 for r, g, b in triples]
    counts = Counter(buckets)
    top = max(counts.values())
    best = min(bucket for bucket, n in counts.items() if n == top)  # as argmax: the lowest
    members = [t for t, bucket in zip(triples, buckets, strict=True) if bucket == best]
    red, green, blue = (round(sum(t[c] for t in members) / len(members)) for c in range(3))
    return f"#{red:02x}{green:02x}{blue:02x}"


# --------------------------------------------------------------------------------------------
# EXIF

_IFD_EXIF = 0x8769
_IFD_GPS = 0x8825
_TAG_ORIENTATION = 0x0112


def _load_exif(raw: bytes) -> Any:
    from PIL import Image

    exif = Image.Exif()
    exif.load(raw)
    return exif


def _exif_orientation(raw: bytes | None) -> int:
    if not raw:
        return 1
    try:
        with warnings.catch_warnings(action="ignore"):
            return _valid_orientation(_load_exif(raw).get(_TAG_ORIENTATION, 1))
    except Exception:
        return 1


def parse_exif(raw: bytes | None, *, keep_gps: bool) -> Exif | None:
    """The curated EXIF subset; whatever can be read from a broken block, never an error."""
    from imgpipe.core.model import Exif

    fields = _exif_fields(raw, keep_gps=keep_gps)
    return Exif.model_validate(fields) if fields is not None else None


def _exif_fields(raw: bytes | None, *, keep_gps: bool) -> dict[str, Any] | None:
    """parse_exif's fields by name (model.Exif's), only those present; None if none are."""
    if not raw:
        return None
    with warnings.catch_warnings(action="ignore"):
        try:
            exif = _load_exif(raw)
        except Exception:
            return None
        ifd0: dict[int, Any] = _safe(lambda: dict(exif.items())) or {}
        sub: dict[int, Any] = _safe(lambda: dict(exif.get_ifd(_IFD_EXIF))) or {}
        gps: dict[int, Any] = {}
        if keep_gps:
            gps = _safe(lambda: dict(exif.get_ifd(_IFD_GPS))) or {}
        fields: dict[str, Any] = {
            "make": _safe(lambda: _text(ifd0.get(0x010F))),
            "model": _safe(lambda: _text(ifd0.get(0x0110))),
            "lens": _safe(lambda: _text(sub.get(0xA434))),
            "taken_at": _safe(lambda: _taken_at(sub.get(0x9003), sub.get(0x9011))),
            "exposure_time": _safe(lambda: _exposure(sub.get(0x829A))),
            "f_number": _safe(lambda: _number(sub.get(0x829D))),
            "iso": _safe(lambda: _iso(sub.get(0x8827))),
            "focal_length": _safe(lambda: _number(sub.get(0x920A))),
            "gps": _safe(lambda: _gps(gps)) if keep_gps else None,
        }
    present = {name: value for name, value in fields.items() if value is not None}
    return present or None


def _safe(read: Callable[[], _T]) -> _T | None:
    try:
        return read()
    except Exception:
        return None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "").strip()
    return text[:200] or None


def _number(value: Any) -> float | None:
    if isinstance(value, tuple | list):
        value = value[0] if value else None
    if value is None:
        return None
    number = float(value)
    return round(number, 2) if math.isfinite(number) and number > 0 else None


def _iso(value: Any) -> int | None:
    if isinstance(value, tuple | list):
        value = value[0] if value else None
    if value is None:
        return None
    iso = int(value)
    return iso if iso > 0 else None


def _exposure(value: Any) -> str | None:
    """Exposure as "1/250" for fractions of a second, "2" or "0.5" otherwise."""
    if isinstance(value, tuple | list):
        value = value[0] if value else None
    seconds = _number(value)
    if seconds is None:
        return None
    numerator = getattr(value, "numerator", None)
    denominator = getattr(value, "denominator", None)
    if numerator == 1 and isinstance(denominator, int) and denominator > 1:
        return f"1/{denominator}"
    exact = float(value)
    if exact < 0.25:
        return f"1/{round(1 / exact)}"
    return f"{round(exact, 4):g}"


def _numbers(text: str, separator: str, digits: tuple[int, ...]) -> list[int]:
    """Decimal numbers of exactly these many digits between `separator`s; ValueError for
    anything else."""
    parts = text.split(separator)
    if [len(part) for part in parts] != list(digits) or not all(
        part.isascii() and part.isdigit() for part in parts
    ):
        raise ValueError(f"not numbers of {digits} digits between {separator!r}: {text!r}")
    return [int(part) for part in parts]


def _taken_at(original: Any, offset: Any) -> str | None:
    """DateTimeOriginal "YYYY:MM:DD HH:MM:SS" (+ OffsetTimeOriginal) as ISO-8601."""
    text = _text(original)
    if text is None:
        return None
    # Read by hand: strptime imports _strptime, calendar and locale for this one format, 0.4 MB
    # in every rendering process. datetime() checks the ranges (month 13, 30 February).
    day, _, clock = text[:19].partition(" ")
    year, month, date = _numbers(day, ":", (4, 2, 2))
    hour, minute, second = _numbers(clock, ":", (2, 2, 2))
    taken = datetime(year, month, date, hour, minute, second)
    result = taken.isoformat()
    zone = _text(offset)
    if zone and len(zone) == 6 and zone[0] in "+-" and zone[3] == ":":
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours <= 14 and minutes < 60:
            result += zone
    return result


def _gps(gps: dict[int, Any]) -> dict[str, float] | None:
    lat = _degrees(gps.get(2), gps.get(1), "S")
    lon = _degrees(gps.get(4), gps.get(3), "W")
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180:
        return None
    result = {"lat": round(lat, 7), "lon": round(lon, 7)}
    alt = _safe(lambda: float(gps[6]))
    if alt is not None and math.isfinite(alt):
        below = gps.get(5) in (1, b"\x01")
        result["alt"] = round(-alt if below else alt, 2)
    return result


def _degrees(value: Any, ref: Any, negative: str) -> float | None:
    if not isinstance(value, tuple | list) or not value:
        return None
    parts = [float(part) for part in value[:3]]
    if not all(math.isfinite(part) for part in parts):
        return None
    degrees = sum(part / 60.0**i for i, part in enumerate(parts))
    return -degrees if _text(ref) == negative else degrees
