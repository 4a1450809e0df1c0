"""The record's metadata from a render: what the header said, the EXIF subset, and the
analysis of the smallest image already in memory, as plain facts by field name.

Plain data, not the record's model: a rendering process hands the facts back without
pydantic, and the caller validates them (core.rendering.RenderResult.metadata).
"""

from __future__ import annotations

from typing import Any

from imgpipe.core.formats import content_type
from imgpipe.core.rendering import RenderOptions
from imgpipe.engine.analysis import (
    BLURHASH_COMPONENTS,
    analysis_pixels,
    blurhash,
    composite,
    dominant_color,
    phash,
)
from imgpipe.engine.exif import exif_fields
from imgpipe.engine.header import Header
from imgpipe.engine.vips import VipsImage


def facts(data: bytes, header: Header, image: VipsImage, options: RenderOptions) -> dict[str, Any]:
    """The record's metadata (model.ImageMetadata's fields, by name) but for the sha256."""
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
