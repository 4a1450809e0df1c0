"""The imaging engine: from an original's bytes to its renditions and the record's metadata.

    pipeline.py      render, probe, check_header: header checks, one decode, the cascade,
                     the encodes, the metadata (geometry.py: the sizes, in integers)
    vips.py          libvips imported on first use, its loaders allow-listed
    exif.py          orientation, the record's EXIF subset, GPS out of kept EXIF
    analysis.py      pHash, BlurHash, the dominant colour
    cpu.py           usable cores and the machine's runnable threads (the encode helper)
    memory.py        malloc_trim
    renderers.py     in this process, or in rendering processes that may crash or hang alone
    render_child.py  a rendering process's loop

The options and results are the core's plain data (core/rendering.py). pyvips and Pillow are
imported inside functions, and the names below are imported on first use: importing the
engine is cheap (cold starts matter on Lambda), and a rendering process, which imports
`render_child`, loads neither the renderers' side nor pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgpipe.engine.pipeline import (
        check_header,
        parse_exif,
        probe,
        render,
        render_unhashed,
        sha256_hex,
    )
    from imgpipe.engine.renderers import InProcessRenderer, SubprocessRenderer
    from imgpipe.engine.vips import configure_vips

# Each public name and the module that defines it.
_HOMES = {
    "check_header": "pipeline",
    "configure_vips": "vips",
    "parse_exif": "pipeline",
    "probe": "pipeline",
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
