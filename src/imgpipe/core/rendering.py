"""What a render is given and what it gives back, as plain data: options, presets, results.

The Renderer port speaks these types, so they live in the core: the service and the ports
name them without importing the engine. `imgpipe.config` builds the options from the
validated settings (`Settings.render_options()`); the options are what crosses to a rendering
process, so that a rendering process imports no pydantic: pydantic, pydantic-settings and the
models came to about 16 MB of every rendering process's memory (docs/benchmarks.md). They are
named tuples, not dataclasses, for the same reason: the dataclasses module imports inspect
(with ast, dis and tokenize), 0.9 MB of every rendering process that nothing else there needs.

A result's metadata comes back as plain facts too and is validated as the record's model
(`RenderResult.metadata`) in the process that reads it: the one place this module reaches
the pydantic models, on first use, never in a rendering process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from imgpipe.core.errors import ProcessingError, one_line
from imgpipe.core.formats import EXTENSIONS, InputFormat, OutputFormat

if TYPE_CHECKING:
    from imgpipe.core.model import ImageMetadata

DEFAULT_QUALITY: dict[OutputFormat, int] = {"jpeg": 82, "webp": 80, "avif": 55, "png": 100}


class RenderPreset(NamedTuple):
    """One rendition preset (config.RenditionSpec, whose fields document each of these)."""

    name: str
    width: int
    height: int
    fit: Literal["inside", "cover"]
    formats: tuple[OutputFormat, ...]
    quality: Mapping[OutputFormat, int]
    webp_effort: int
    webp_smart_subsample: bool
    jpeg_optimize_coding: bool
    jpeg_progressive: bool
    jpeg_subsample: Literal["auto", "on", "off"]
    jpeg_trellis: bool
    encoder: Literal["pillow", "libvips"]
    gravity: Literal["centre", "smart"] = "centre"  # where "cover" crops

    def quality_for(self, fmt: OutputFormat) -> int:
        return self.quality.get(fmt, DEFAULT_QUALITY[fmt])


class RenderLimits(NamedTuple):
    """What an original may be (config.Limits, less the rendering process's own limits)."""

    max_bytes: int
    max_pixels: int
    max_frames: int
    allowed_formats: tuple[InputFormat, ...]


class MetadataRules(NamedTuple):
    """What metadata is kept (config.MetadataOptions)."""

    keep_gps: bool
    strip_exif: bool


class RenderOptions(NamedTuple):
    """Everything that shapes a render, taken from Settings once (`Settings.render_options`)."""

    renditions: tuple[RenderPreset, ...]
    limits: RenderLimits
    metadata: MetadataRules
    background: tuple[int, int, int]


class EncodedRendition(NamedTuple):
    name: str
    format: OutputFormat
    width: int
    height: int
    data: bytes

    @property
    def ext(self) -> str:
        return EXTENSIONS[self.format]


class RenderResult(NamedTuple):
    # The record's metadata by field name (exif a dict too), all but the sha256: plain data,
    # so that a rendering process hands it back without pydantic; `metadata` validates it in
    # the caller.
    facts: dict[str, Any]
    renditions: tuple[EncodedRendition, ...]
    # The original's sha256 (hex); None from render_unhashed, until the caller adds it.
    sha256: str | None = None

    @property
    def metadata(self) -> ImageMetadata:
        """The facts and the sha256 as the record's model, validated at each read (a named
        tuple keeps no cache): the service and `imgpipe process` read it once."""
        return validated_metadata({**self.facts, "sha256": self.sha256})

    def with_sha256(self, digest: str) -> RenderResult:
        return self._replace(sha256=digest)


def validated_metadata(facts: dict[str, Any]) -> ImageMetadata:
    """The facts as the record's model; a value the record would refuse is a ProcessingError,
    as it was when the render built the model itself."""
    from imgpipe.core.model import ImageMetadata

    try:
        return ImageMetadata.model_validate(facts)
    except ValueError as exc:  # pydantic's ValidationError
        raise ProcessingError(f"the image's metadata is invalid: {one_line(exc)}") from exc
