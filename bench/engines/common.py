"""What every engine shares: the default renditions and the rounding of their sizes.

The settings are imgpipe's defaults, written out here so that every peer gets the same ones:
1600/800/256 px long edge ("inside", never upscaled), each as JPEG q82 and WebP q80, EXIF
orientation applied, sRGB, no metadata in the outputs.
"""

from __future__ import annotations

from typing import NamedTuple

SIZES: tuple[tuple[str, int], ...] = (("large", 1600), ("medium", 800), ("thumb", 256))
JPEG_QUALITY = 82
WEBP_QUALITY = 80
# libwebp's `method`: Pillow's method=, libvips' and sharp's effort=. 4 is every peer's default.
WEBP_METHOD = 4


class Output(NamedTuple):
    """One encoded rendition (a named tuple: the dataclasses module would load inspect, ast
    and dis into every engine's process, 0.9 MB that no engine needs)."""

    name: str
    format: str  # "jpeg" or "webp"
    width: int
    height: int
    data: bytes

    @property
    def ext(self) -> str:
        return "jpg" if self.format == "jpeg" else self.format


def inside_size(width: int, height: int, box: int) -> tuple[int, int]:
    """Fit in box x box, aspect kept, never upscaled; the long side exact, the other rounded
    half up (imgpipe's geometry.inside_size, restated so that peers do not import imgpipe)."""
    if width <= box and height <= box:
        return width, height
    if width >= height:
        return box, max(1, (2 * height * box + width) // (2 * width))
    return max(1, (2 * width * box + height) // (2 * height)), box
