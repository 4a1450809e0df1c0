"""The settings a render reads, as plain frozen data.

`imgpipe.config` validates the settings with pydantic; a render only reads them. These copies
are what `RenderOptions` holds and what crosses to a rendering process, so that a rendering
process imports no pydantic: pydantic, pydantic-settings and the models came to about 16 MB
of every rendering process's memory (docs/benchmarks.md). They are named tuples, not
dataclasses, for the same reason: the dataclasses module imports inspect (with ast, dis and
tokenize), 0.9 MB of every rendering process that nothing else there needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, NamedTuple

from imgpipe.core.formats import InputFormat, OutputFormat

if TYPE_CHECKING:
    from imgpipe.config import Limits, MetadataOptions, RenditionSpec

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

    @classmethod
    def of(cls, spec: RenditionSpec) -> RenderPreset:
        # every field, by name: a field added to RenditionSpec and not here fails loudly
        fields = spec.model_dump()
        return cls(**{**fields, "formats": tuple(spec.formats), "quality": dict(spec.quality)})

    def quality_for(self, fmt: OutputFormat) -> int:
        return self.quality.get(fmt, DEFAULT_QUALITY[fmt])


class RenderLimits(NamedTuple):
    """What an original may be (config.Limits, less the rendering process's own limits)."""

    max_bytes: int
    max_pixels: int
    max_frames: int
    allowed_formats: tuple[InputFormat, ...]

    @classmethod
    def of(cls, limits: Limits) -> RenderLimits:
        return cls(
            max_bytes=limits.max_bytes,
            max_pixels=limits.max_pixels,
            max_frames=limits.max_frames,
            allowed_formats=tuple(limits.allowed_formats),
        )


class MetadataRules(NamedTuple):
    """What metadata is kept (config.MetadataOptions)."""

    keep_gps: bool
    strip_exif: bool

    @classmethod
    def of(cls, metadata: MetadataOptions) -> MetadataRules:
        return cls(keep_gps=metadata.keep_gps, strip_exif=metadata.strip_exif)
