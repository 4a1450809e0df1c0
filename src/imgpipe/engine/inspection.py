"""What a record would say about an original, as the record's models: `imgpipe info`'s probe
and the EXIF subset alone.

The models are pydantic: this module is for the process that keeps records, never imported
by a rendering process, which hands back plain facts (core.rendering.RenderResult).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imgpipe.core.rendering import RenderOptions, validated_metadata
from imgpipe.engine.decode import decode
from imgpipe.engine.exif import exif_fields
from imgpipe.engine.header import read_header
from imgpipe.engine.metadata import facts
from imgpipe.engine.pipeline import guard, sha256_hex
from imgpipe.engine.resize import resize_sizes
from imgpipe.engine.vips import configure_vips

if TYPE_CHECKING:
    from imgpipe.core.model import Exif, ImageMetadata


def probe(data: bytes, options: RenderOptions) -> ImageMetadata:
    """The metadata a record would get, with no rendition encoded (`imgpipe info`)."""
    configure_vips()
    found = guard(lambda: _probe(data, options))
    return validated_metadata({**found, "sha256": sha256_hex(data)})


def parse_exif(raw: bytes | None, *, keep_gps: bool) -> Exif | None:
    """The curated EXIF subset; whatever can be read from a broken block, never an error."""
    from imgpipe.core.model import Exif

    fields = exif_fields(raw, keep_gps=keep_gps)
    return Exif.model_validate(fields) if fields is not None else None


def _probe(data: bytes, options: RenderOptions) -> dict[str, Any]:
    header = read_header(data, options.limits)
    sizes = resize_sizes(header, options.renditions) or [(header.width, header.height)]
    # The size of render()'s smallest intermediate, so that both give (nearly) the same hashes.
    width, height = min(sizes, key=lambda size: size[0] * size[1])
    image = decode(data, header, width, height)
    return facts(data, header, image, options)
