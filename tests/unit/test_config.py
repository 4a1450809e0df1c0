"""Settings converted to the plain options a render is given."""

from __future__ import annotations

from imgpipe.config import RenditionSpec, Settings
from imgpipe.core.rendering import MetadataRules, RenderLimits, RenderPreset


def test_render_options_from_settings() -> None:
    settings = Settings(background=(1, 2, 3), metadata={"keep_gps": True})
    opts = settings.render_options()
    assert [r.name for r in opts.renditions] == ["thumb", "medium", "large"]
    assert opts.background == (1, 2, 3)
    assert opts.metadata == MetadataRules(keep_gps=True, strip_exif=True)
    assert opts.limits == RenderLimits(
        max_bytes=settings.limits.max_bytes,
        max_pixels=settings.limits.max_pixels,
        max_frames=settings.limits.max_frames,
        allowed_formats=tuple(settings.limits.allowed_formats),
    )


def test_a_preset_carries_every_field_of_its_rendition_spec() -> None:
    # A field added to RenditionSpec and not to RenderPreset would be lost on its way to a render
    assert set(RenderPreset._fields) == set(RenditionSpec.model_fields)
    spec = RenditionSpec(
        name="x",
        width=10,
        height=20,
        fit="cover",
        formats=["webp", "avif"],
        quality={"webp": 70},
        webp_effort=5,
        webp_smart_subsample=True,
        jpeg_optimize_coding=False,
        jpeg_progressive=True,
        jpeg_subsample="off",
        jpeg_trellis=True,
        encoder="libvips",
    )
    preset = spec.render_preset()
    assert preset._asdict() == {**spec.model_dump(), "formats": ("webp", "avif")}
    assert preset.quality_for("webp") == 70
    assert preset.quality_for("avif") == 55  # the format's default
