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

import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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
from imgpipe.engine.analysis import (
    BLURHASH_COMPONENTS,
    analysis_pixels,
    blurhash,
    composite,
    dominant_color,
    phash,
)
from imgpipe.engine.cpu import runnable_threads, usable_cores
from imgpipe.engine.exif import exif_fields, exif_orientation, valid_orientation, without_gps
from imgpipe.engine.memory import hand_back_free_memory
from imgpipe.engine.vips import (
    LOAD_OPTIONS,
    LOADER_FOR,
    VipsImage,
    configure_vips,
    get,
    source,
    vips,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from PIL.Image import Image as PILImage

    from imgpipe.core.model import Exif, ImageMetadata

_T = TypeVar("_T")


# JPEGs decode at the largest DCT scale (1/2, 1/4, 1/8) that still covers the largest
# rendition, not at libvips' thumbnail choice, which keeps a factor of 2 for the resize.
_FAST_SHRINK_ON_LOAD = True
_AVIF_EFFORT = 4
_PNG_COMPRESSION = 6


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


def _read_vips_header(data: bytes, fmt: InputFormat) -> _Header:
    pyvips = vips()
    try:
        # Lazy: this parses the header only; no pixel is decoded until something asks.
        image = pyvips.Image.new_from_source(source(data), "", access="sequential")
    except pyvips.Error as exc:
        raise CorruptImageError(f"cannot read the {fmt} header: {one_line(exc)}") from exc
    loader = get(image, "vips-loader", "")
    if not str(loader).startswith(LOADER_FOR[fmt]):
        raise UnsupportedFormatError(f"unsupported format: {fmt} data read by {loader or '?'}")
    exif = get(image, "exif-data", None)
    if exif is None and fmt == "tiff":
        exif = data  # a TIFF's first IFD is where Make, Model and the EXIF pointer live
    width, height = int(image.width), int(image.height)
    if fmt == "avif":
        # libheif has applied the container's rotation already; EXIF orientation is advisory.
        orientation = exif_orientation(exif)
    else:
        orientation = valid_orientation(get(image, "orientation", 1))
        width, height = geometry.oriented_size(width, height, orientation)
    return _Header(
        format=fmt,
        width=width,
        height=height,
        orientation=orientation,
        frames=max(1, int(get(image, "n-pages", 1))),
        has_alpha=bool(image.hasalpha()),
        color_space=str(image.interpretation).lower(),
        has_icc=bool(image.get_typeof("icc-profile-data")),
        exif=bytes(exif) if exif else None,
        progressive=fmt == "jpeg" and bool(get(image, "interlaced", 0)),
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


# --------------------------------------------------------------------------------------------
# Decoding


def _decode(data: bytes, header: _Header, width: int, height: int) -> VipsImage:
    """Decode once to exactly `width` x `height` (displayed orientation): upright, 8-bit sRGB
    (or grey), with alpha if the source has it, in memory."""
    pyvips = vips()
    try:
        if header.heif_image is not None:
            image = _heif_pixels(header)
            image = image.thumbnail_image(
                width, height=height, size="force", no_rotate=True, **_icc_options(header)
            )
            return _normalise(image).copy_memory()
        try:
            return _decode_vips(data, header, width, height, _icc_options(header))
        except pyvips.Error:
            if not header.has_icc:
                raise
            # A broken ICC profile should not lose the image: decode again, untransformed.
            return _decode_vips(data, header, width, height, {})
    except pyvips.Error as exc:
        raise CorruptImageError(
            f"{header.format} image is corrupt or truncated: {one_line(exc)}"
        ) from exc


def _decode_vips(
    data: bytes, header: _Header, width: int, height: int, icc: dict[str, str]
) -> VipsImage:
    pyvips = vips()
    shrink = _jpeg_shrink(header, width, height)
    if shrink > 1:
        # libjpeg decodes at 1/shrink in the DCT domain, then Lanczos3 does the rest.
        loaded = pyvips.Image.new_from_source(
            source(data), f"{LOAD_OPTIONS},shrink={shrink}", access="sequential"
        )
        image = loaded.thumbnail_image(width, height=height, size="force", **icc)
    else:
        image = pyvips.Image.thumbnail_source(
            source(data), width, height=height, size="force", option_string=LOAD_OPTIONS, **icc
        )
    loader = str(get(image, "vips-loader", ""))
    if not loader.startswith(tuple(LOADER_FOR.values())):
        raise UnsupportedFormatError(f"unsupported format: read by {loader or '?'}")
    return _normalise(image).copy_memory()


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
    pyvips = vips()
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
    image = pyvips.Image.new_from_memory(pixels, width, height, bands, "uchar")
    image = image.copy(interpretation="b-w" if bands < 3 else "srgb")
    icc = header.heif_image.info.get("icc_profile")
    if icc:
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", bytes(icc))
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
        base = without_gps(base)

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


def _resize_sizes(header: _Header, specs: tuple[RenderPreset, ...]) -> list[tuple[int, int]]:
    return [
        geometry.resize_size(header.width, header.height, spec.width, spec.height, spec.fit)
        for spec in specs
    ]


def _keep_flags(metadata: MetadataRules) -> int:
    keep = vips().enums.ForeignKeep
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
    if spec.encoder != "pillow" or keep != int(vips().enums.ForeignKeep.NONE):
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
    rgb, alpha = analysis_pixels(image)
    flat = composite(rgb, alpha, options.background)
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
        "exif": exif_fields(header.exif, keep_gps=options.metadata.keep_gps),
        "phash": phash(flat),
        "blurhash": blurhash(flat, *BLURHASH_COMPONENTS),
        "dominant_color": dominant_color(rgb, alpha),
    }


# --------------------------------------------------------------------------------------------
# EXIF


def parse_exif(raw: bytes | None, *, keep_gps: bool) -> Exif | None:
    """The curated EXIF subset; whatever can be read from a broken block, never an error."""
    from imgpipe.core.model import Exif

    fields = exif_fields(raw, keep_gps=keep_gps)
    return Exif.model_validate(fields) if fields is not None else None
