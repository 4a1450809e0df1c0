"""The imaging engine: from an original's bytes to its renditions and the record's metadata.

    render(data, options)                          pipeline.py, one step per module:
      header.py     sniff, check bytes and formats, read the header only (its orientation:
                    exif.py), check pixels and frames: before any pixel is decoded
      decode.py     decode once, shrunk on load to the largest size a rendition needs,
                    upright, 8-bit sRGB (colour.py); HEIC through pillow-heif; what libvips
                    decodes wrongly through Pillow (pillow_decode.py); AVIF planes libheif
                    leaves in limited range expanded (avif_range.py); a GIF canvas its first
                    frame leaves uncovered made transparent (gif.py)
      resize.py     the cascade down from that one image, "cover" crops (geometry.py: the
                    sizes, in integers)
      encode.py     every encode of the render, longest first, a helper thread while a core is
                    idle (cpu.py); writers.py: one format, libvips' or Pillow's encoder
      metadata.py   the record's facts: header, EXIF subset, analysis.py (pHash, BlurHash,
                    dominant colour)
    probe(data, options), parse_exif(raw)          inspection.py: as the record's models
    transform.transform(data, request)             transform.py: an on-request transform
      transform_plan.py   imgproxy's sizes and positions, from the header alone
      transform_steps.py  crop by gravity (sm: libvips' attention), resize, filters, extend

    vips.py          libvips imported on first use, its loaders allow-listed, no cache
    memory.py        malloc_trim: what glibc keeps, handed back
    renderers.py     in this process, or in rendering processes that may crash or hang alone
    render_child.py  a rendering process's loop

The options and results are the core's plain data (core/rendering.py). pyvips and Pillow are
imported inside functions, and the names below are imported on first use: importing the
engine is cheap (cold starts matter on Lambda), and a rendering process, which imports
`render_child` and then `pipeline`, loads neither the renderers' side, `inspection`, nor
pydantic (bar core.rendering's validation, which only the parent calls).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgpipe.engine.inspection import parse_exif, probe
    from imgpipe.engine.pipeline import check_header, render, render_unhashed, sha256_hex
    from imgpipe.engine.renderers import InProcessRenderer, SubprocessRenderer
    from imgpipe.engine.vips import configure_vips

# Each public name and the module that defines it.
_HOMES = {
    "check_header": "pipeline",
    "configure_vips": "vips",
    "parse_exif": "inspection",
    "probe": "inspection",
    "render": "pipeline",
    "render_unhashed": "pipeline",
    "sha256_hex": "pipeline",
    "InProcessRenderer": "renderers",
    "SubprocessRenderer": "renderers",
}

__all__ = [
    "InProcessRenderer",
    "SubprocessRenderer",
    "check_header",
    "configure_vips",
    "parse_exif",
    "probe",
    "render",
    "render_unhashed",
    "sha256_hex",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
