"""The floor: what any libvips pipeline has to do for these outputs, and nothing else; with
knobs, so that each optimisation can be measured by turning one of them.

Default knobs (the floor itself): read the header lazily, decode the JPEG with shrink-on-load
at the largest DCT scale that still covers 1600 px, EXIF-rotate and Lanczos3 to 1600 px
(thumbnail_image), 800 from that and 256 from 800, and the six encodes at the shared settings
(JPEG q82 with Huffman optimisation, WebP q80 effort 4; by libvips unless encoder="pillow").
No limits, no colour-space
normalisation, no metadata (hashes, EXIF parsing), no error translation.

Knobs (the optimisation table: bench/sections/levers.py):
    shrink   "fast" (above), "libvips" (thumbnail_source's own choice, which keeps a factor
             of 2 for the resize), "none" (decode at full size)
    cascade  false: each size from the original again (three thumbnail_source calls)
    icc      "always": export_profile="srgb" even on untagged images
    kernel   a libvips kernel other than lanczos3 (resize() instead of thumbnail_image)
    jpeg, webp   extra jpegsave / webpsave arguments
    cache    libvips' operation cache size (imgpipe sets 0)
    encoder  "pillow": JPEG and WebP written by Pillow's libjpeg-turbo and libwebp, as imgpipe
             does (the headline floor); "libvips" (the default here): by libvips, with the
             jpeg/webp knobs applied
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engines.common import JPEG_QUALITY, SIZES, WEBP_METHOD, WEBP_QUALITY, Output, inside_size

_TRANSPOSING = {5, 6, 7, 8}


@dataclass(frozen=True)
class Knobs:
    shrink: str = "fast"
    cascade: bool = True
    icc: str = "tagged"
    kernel: str = "lanczos3"
    jpeg: dict[str, Any] = field(default_factory=dict)
    webp: dict[str, Any] = field(default_factory=dict)
    cache: int = 0
    encoder: str = "libvips"


def make(knobs: Knobs) -> Callable[[bytes], list[Output]]:
    import pyvips

    pyvips.cache_set_max(knobs.cache)
    jpeg_args = {"Q": JPEG_QUALITY, "optimize_coding": True, "keep": 0, **knobs.jpeg}
    webp_args = {"Q": WEBP_QUALITY, "effort": WEBP_METHOD, "keep": 0, **knobs.webp}

    def _source(data: bytes) -> Any:
        # the bytes where they are: the *_buffer loaders would copy them into a libvips blob
        return pyvips.Source.new_from_memory(data)

    def resize(image: Any, width: int, height: int, icc: dict[str, str]) -> Any:
        if knobs.kernel == "lanczos3":
            return image.thumbnail_image(width, height=height, size="force", **icc)
        if image.get_typeof("orientation"):
            image = image.autorot()
        return image.resize(width / image.width, vscale=height / image.height, kernel=knobs.kernel)

    def decode(data: bytes, width: int, height: int, header: Any) -> Any:
        icc = (
            {"export_profile": "srgb"}
            if knobs.icc == "always" or header.get_typeof("icc-profile-data")
            else {}
        )
        if knobs.shrink == "libvips" and knobs.kernel == "lanczos3":
            return pyvips.Image.thumbnail_source(
                _source(data),
                width,
                height=height,
                size="force",
                option_string="fail_on=error",
                **icc,
            )
        shrink = 1
        if knobs.shrink == "fast":
            stored_w, stored_h = int(header.width), int(header.height)
            want_w, want_h = width, height
            if _orientation(header) in _TRANSPOSING:
                want_w, want_h = height, width
            for factor in (8, 4, 2):
                if stored_w // factor >= want_w and stored_h // factor >= want_h:
                    shrink = factor
                    break
        loaded = pyvips.Image.new_from_source(_source(data), f"fail_on=error,shrink={shrink}")
        return resize(loaded, width, height, icc)

    def render(data: bytes) -> list[Output]:
        header = pyvips.Image.new_from_source(_source(data), "", access="sequential")
        width, height = int(header.width), int(header.height)
        if _orientation(header) in _TRANSPOSING:
            width, height = height, width
        image: Any = None
        outputs: list[Output] = []
        for name, box in SIZES:
            target = inside_size(width, height, box)
            if image is None or not knobs.cascade:
                image = decode(data, *target, header)
            else:
                image = resize(image, *target, {})
            image = image.copy_memory()
            size = (int(image.width), int(image.height))
            if knobs.encoder == "pillow":
                outputs += _pillow_encode(image, name, size)
                continue
            outputs.append(Output(name, "jpeg", *size, bytes(image.jpegsave_buffer(**jpeg_args))))
            outputs.append(Output(name, "webp", *size, bytes(image.webpsave_buffer(**webp_args))))
        return outputs

    return render


def _orientation(image: Any) -> int:
    return int(image.get("orientation")) if image.get_typeof("orientation") else 1


def _pillow_encode(image: Any, name: str, size: tuple[int, int]) -> list[Output]:
    import io

    from PIL import Image

    pixels = Image.frombuffer("RGB", size, image.write_to_memory(), "raw", "RGB", 0, 1)
    jpeg, webp = io.BytesIO(), io.BytesIO()
    pixels.save(jpeg, "JPEG", quality=JPEG_QUALITY, optimize=True)
    pixels.save(webp, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
    return [
        Output(name, "jpeg", *size, jpeg.getvalue()),
        Output(name, "webp", *size, webp.getvalue()),
    ]
