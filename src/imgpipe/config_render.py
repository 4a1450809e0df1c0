"""The settings that shape a render: the renditions (sizes and encoders), limits, metadata.

Part of the settings (config.py re-exports each model); each converts itself to the plain data
a rendering process is sent (core.rendering).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from imgpipe.core.formats import ALL_INPUT_FORMATS, InputFormat, OutputFormat
from imgpipe.core.rendering import (
    DEFAULT_QUALITY,
    MetadataRules,
    RenderLimits,
    RenderPreset,
)


def _default_formats() -> list[OutputFormat]:
    return ["jpeg", "webp"]


def _default_quality() -> dict[OutputFormat, int]:
    return dict(DEFAULT_QUALITY)


class RenditionSpec(BaseModel):
    """One named output size, written in each of its formats."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$",
        description="names the files, renditions/{imageId}/{name}.{ext}; unique",
    )
    width: int = Field(gt=0, le=16384, description="max width in px (never upscaled)")
    height: int = Field(gt=0, le=16384, description="max height in px (never upscaled)")
    fit: Literal["inside", "cover"] = Field(
        default="inside", description="inside: fit within the box; cover: fill it, crop the rest"
    )
    gravity: Literal["centre", "smart"] = Field(
        default="centre",
        description='what "cover" keeps: the centre, or smart: the most interesting part'
        " (libvips' attention: edges, skin tones, saturated colour); only with fit = cover",
    )
    formats: list[OutputFormat] = Field(
        default_factory=_default_formats, min_length=1, description="one file per format"
    )
    quality: dict[OutputFormat, int] = Field(
        default_factory=_default_quality,
        description="encoder quality per format; a format left out keeps its default",
    )
    # Encoder settings. The defaults are what docs/benchmarks.md measured as the best quality
    # and size per CPU second on photographs; each alternative is there with its effect.
    webp_effort: int = Field(
        default=4,
        ge=0,
        le=6,
        description="libwebp method: 0 fastest .. 6 smallest; below 3 outputs grow and lose SSIM",
    )
    webp_smart_subsample: bool = Field(
        default=False, description="sharp YUV conversion (crisper colour edges, ~2x WebP time)"
    )
    jpeg_optimize_coding: bool = Field(
        default=True, description="optimised Huffman tables: ~3% smaller, same pixels"
    )
    jpeg_progressive: bool = Field(
        default=False, description="progressive JPEG: ~3% smaller, same pixels, slower"
    )
    jpeg_subsample: Literal["auto", "on", "off"] = Field(
        default="auto", description="chroma subsampling: auto is 4:2:0 below quality 90"
    )
    jpeg_trellis: bool = Field(
        default=False,
        description="mozjpeg trellis quantisation: ~10% smaller, lower SSIM, ~30% slower",
    )
    encoder: Literal["pillow", "libvips"] = Field(
        default="pillow",
        description="who writes JPEG and WebP: Pillow (same pixels, ~6% less CPU per image; holds"
        " the GIL while encoding WebP) or libvips (always used when metadata is kept)",
    )

    @model_validator(mode="after")
    def _gravity_crops(self) -> RenditionSpec:
        if self.gravity != "centre" and self.fit != "cover":
            raise ValueError(f"gravity {self.gravity!r} needs fit = 'cover' (nothing is cropped)")
        return self

    def render_preset(self) -> RenderPreset:
        """This spec as the plain preset a render carries."""
        # every field, by name: a field added here and not to RenderPreset fails loudly
        fields = self.model_dump()
        return RenderPreset(
            **{**fields, "formats": tuple(self.formats), "quality": dict(self.quality)}
        )


def default_renditions() -> list[RenditionSpec]:
    """The presets of a configuration that names none."""
    return [
        RenditionSpec(name="thumb", width=256, height=256),
        RenditionSpec(name="medium", width=800, height=800),
        RenditionSpec(name="large", width=1600, height=1600),
    ]


class Limits(BaseModel):
    """What an original may be, and what a local rendering process may use."""

    max_bytes: int = Field(default=50 * 1024 * 1024, gt=0, description="largest original")
    max_pixels: int = Field(
        default=100_000_000, gt=0, description="width x height x frames, read from the header"
    )
    max_frames: int = Field(default=200, gt=0, description="pages or animation frames")
    allowed_formats: list[InputFormat] = Field(
        default_factory=lambda: list(ALL_INPUT_FORMATS),
        description="input formats accepted, told by content; others fail unsupported_format",
    )
    processing_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="a rendering process running longer is killed and the job retried",
    )
    worker_memory_mb: int = Field(
        default=2048,
        ge=256,
        description="address-space limit of each local rendering process (RLIMIT_AS)",
    )

    def render_limits(self) -> RenderLimits:
        """What a render checks (the rendering process's own limits are its renderer's)."""
        return RenderLimits(
            max_bytes=self.max_bytes,
            max_pixels=self.max_pixels,
            max_frames=self.max_frames,
            allowed_formats=tuple(self.allowed_formats),
        )


class MetadataOptions(BaseModel):
    """What the record keeps of a file's metadata, and what its renditions carry."""

    keep_gps: bool = Field(default=False, description="record GPS coordinates in the record")
    strip_exif: bool = Field(
        default=True, description="strip EXIF/XMP/IPTC from renditions (ICC is never needed)"
    )

    def rules(self) -> MetadataRules:
        return MetadataRules(keep_gps=self.keep_gps, strip_exif=self.strip_exif)
