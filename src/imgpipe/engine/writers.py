"""Writers: one rendition's pixels in one output format, with no metadata unless kept.

JPEG and WebP go through Pillow's encoders by default (the same libjpeg-turbo and libwebp
as libvips', the same pixels), unless the preset says encoder="libvips", metadata is kept,
or a setting only libvips has is on; AVIF and PNG always through libvips.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from imgpipe.core.errors import ProcessingError
from imgpipe.core.formats import OutputFormat
from imgpipe.core.rendering import MetadataRules, RenderPreset
from imgpipe.engine.colour import flatten
from imgpipe.engine.vips import VipsImage, vips

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

_AVIF_EFFORT = 4
_PNG_COMPRESSION = 6
_PIL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
# Pillow's `subsampling`: 0 is 4:4:4, 2 is 4:2:0. libvips' "auto" is 4:2:0 below quality 90.
_AUTO_SUBSAMPLE_BELOW = 90


def keep_flags(metadata: MetadataRules) -> int:
    """libvips' `keep`: what metadata the renditions carry (none unless EXIF is kept)."""
    keep = vips().enums.ForeignKeep
    if metadata.strip_exif:
        return int(keep.NONE)
    return int(keep.EXIF | keep.XMP | keep.IPTC)


def pillow_encodes(spec: RenderPreset, fmt: OutputFormat, keep: int) -> bool:
    """Whether Pillow writes this rendition: JPEG and WebP with no metadata kept, and no
    setting only libvips has (trellis quantisation, sharp YUV)."""
    if spec.encoder != "pillow" or keep != int(vips().enums.ForeignKeep.NONE):
        return False
    if fmt == "jpeg":
        return not spec.jpeg_trellis
    return fmt == "webp" and not spec.webp_smart_subsample


class PillowPixels:
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
                source = flatten(self._image, self._background) if flat else self._image
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


def write(
    image: VipsImage,
    fmt: OutputFormat,
    spec: RenderPreset,
    keep: int,
    background: tuple[int, int, int],
    as_pillow: PillowPixels,
) -> bytes:
    """`image` encoded as `fmt` with the preset's settings."""
    quality = spec.quality_for(fmt)
    if pillow_encodes(spec, fmt, keep):
        with as_pillow.borrow(flat=fmt == "jpeg") as pixels:
            return _write_pillow(pixels, fmt, quality, spec)
    writer = _LIBVIPS_WRITERS.get(fmt)
    if writer is None:
        raise ProcessingError(f"unknown output format {fmt!r}")
    return bytes(writer(image, spec, quality, keep, background))


def _write_pillow(pixels: PILImage, fmt: OutputFormat, quality: int, spec: RenderPreset) -> bytes:
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


# libvips' writers, each (image, preset, quality, keep, background) -> the encoded bytes.
_Writer = Callable[[VipsImage, RenderPreset, int, int, tuple[int, int, int]], bytes]


def _jpeg(
    image: VipsImage, spec: RenderPreset, quality: int, keep: int, bg: tuple[int, int, int]
) -> bytes:
    return bytes(
        flatten(image, bg).jpegsave_buffer(
            Q=quality,
            optimize_coding=spec.jpeg_optimize_coding,
            interlace=spec.jpeg_progressive,
            subsample_mode=spec.jpeg_subsample,
            trellis_quant=spec.jpeg_trellis,
            keep=keep,
        )
    )


def _webp(
    image: VipsImage, spec: RenderPreset, quality: int, keep: int, bg: tuple[int, int, int]
) -> bytes:
    return bytes(
        image.webpsave_buffer(
            Q=quality, effort=spec.webp_effort, smart_subsample=spec.webp_smart_subsample, keep=keep
        )
    )


def _avif(
    image: VipsImage, spec: RenderPreset, quality: int, keep: int, bg: tuple[int, int, int]
) -> bytes:
    if image.bands < 3:
        image = image.colourspace("srgb")
    return bytes(
        image.heifsave_buffer(
            Q=quality, compression="av1", effort=_AVIF_EFFORT, keep=keep, bitdepth=8
        )
    )


def _png(
    image: VipsImage, spec: RenderPreset, quality: int, keep: int, bg: tuple[int, int, int]
) -> bytes:
    if quality < 100:
        # Below 100, quantise to a palette (libimagequant), like pngquant.
        return bytes(
            image.pngsave_buffer(palette=True, Q=quality, compression=_PNG_COMPRESSION, keep=keep)
        )
    return bytes(image.pngsave_buffer(compression=_PNG_COMPRESSION, keep=keep))


_LIBVIPS_WRITERS: dict[str, _Writer] = {"jpeg": _jpeg, "webp": _webp, "avif": _avif, "png": _png}
