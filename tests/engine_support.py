"""Shared by the engine's tests: render options built from settings, and what a user sees of
an output (decoded with Pillow, an independent decoder)."""

from __future__ import annotations

import io

from PIL import Image

from imgpipe.config import Limits, RenditionSpec, Settings
from imgpipe.core.rendering import EncodedRendition, MetadataRules, RenderOptions

DEFAULTS = Settings().render_options()


ALL_FORMATS = RenditionSpec(
    name="all", width=64, height=64, formats=["jpeg", "webp", "png", "avif"]
)


def options(
    *specs: RenditionSpec,
    limits: Limits | None = None,
    keep_gps: bool = False,
    strip_exif: bool = True,
    background: tuple[int, int, int] = (255, 255, 255),
) -> RenderOptions:
    return RenderOptions(
        renditions=tuple(spec.render_preset() for spec in specs) or DEFAULTS.renditions,
        limits=(limits or Limits()).render_limits(),
        metadata=MetadataRules(keep_gps=keep_gps, strip_exif=strip_exif),
        background=background,
    )


def decoded(rendition: EncodedRendition) -> Image.Image:
    image = Image.open(io.BytesIO(rendition.data))
    image.load()
    return image


def close(actual, expected, tolerance: int = 12) -> bool:
    return all(abs(int(a) - int(e)) <= tolerance for a, e in zip(actual, expected, strict=False))


PIL_FORMAT = {"jpeg": "JPEG", "webp": "WEBP", "png": "PNG", "avif": "AVIF"}


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()
