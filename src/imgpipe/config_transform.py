"""The settings of on-request transforms (imgproxy's URLs, the `/img` route): signing keys,
limits, qualities, the derived cache's budget and the rate of cache misses per client.

Part of the settings (config.py holds the section as `transform`); each converts itself to
the plain values the core, the engine and the use cases take (core/transform.py,
core/img_url.py, service/delivery.py).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode

from imgpipe.config_render import RenditionSpec
from imgpipe.core.formats import OutputFormat
from imgpipe.core.rendering import DEFAULT_QUALITY, RenderPreset
from imgpipe.core.transform import TransformLimits

_LIMITS = TransformLimits()


def _default_quality() -> dict[OutputFormat, int]:
    return dict(DEFAULT_QUALITY)


def _hex_list(value: Any) -> Any:
    """One hex value, or several: a list, or one string with commas (an environment value)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


# NoDecode: an environment value reaches _hex_list as it is, not as JSON.
HexList = Annotated[list[str], NoDecode, BeforeValidator(_hex_list)]


class TransformOptions(BaseModel):
    """On-request transforms, imgproxy's URLs (docs/api.md: On-request transforms)."""

    key: HexList = Field(
        default_factory=list,
        repr=False,
        description="hex HMAC key that signs URLs (imgproxy's IMGPROXY_KEY), or several (a list,"
        " or commas in IMGPIPE_TRANSFORM__KEY) for rotation, each with the salt at its place;"
        " the first signs the dashboard's URLs",
    )
    salt: HexList = Field(
        default_factory=list,
        repr=False,
        description="hex salt (imgproxy's IMGPROXY_SALT), or one per key, in the same order",
    )
    signature_size: int = Field(
        default=32,
        ge=1,
        le=32,
        description="bytes of the HMAC a signature keeps (imgproxy's IMGPROXY_SIGNATURE_SIZE)",
    )
    max_width: int = Field(default=_LIMITS.max_width, gt=0, description="widest result, px")
    max_height: int = Field(default=_LIMITS.max_height, gt=0, description="tallest result, px")
    max_pixels: int = Field(
        default=_LIMITS.max_pixels, gt=0, description="largest result (and resize), in pixels"
    )
    max_dpr: float = Field(default=_LIMITS.max_dpr, gt=0, description="largest dpr option")
    quality: dict[OutputFormat, int] = Field(
        default_factory=_default_quality,
        description="encoder quality per format where the URL names none (q, fq)",
    )
    cache_budget_mb: int = Field(
        default=1024,
        ge=0,
        description="local: the derived cache's size (derived/ in the data folder); past it the"
        " least recently used results are removed; 0: results are not kept",
    )
    memory_cache_mb: int = Field(
        default=64,
        ge=0,
        description="local: cached results kept in memory too, for hits that read no file (one"
        " result at most 1/16 of it); 0: none",
    )
    fast_shrink_on_load: bool = Field(
        default=False,
        description="decode a JPEG at the largest DCT scale that covers the result (sharp's"
        " fastShrinkOnLoad): less CPU per render, softer results; off: a scale that leaves"
        " 1.5x for a sharpening resize (docs/benchmarks.md: Shrink on load)",
    )
    twins: bool = Field(
        default=True,
        description="keep a JPEG's 1/8 decode beside its results (derived/.../twin, 3 bytes"
        " a pixel of 1/64 of its pixels) for the image's next renders that need it: the same"
        " results for a fraction of the CPU; false: every render decodes its original",
    )
    miss_rate_per_s: float = Field(
        default=10.0,
        ge=0,
        description="renders (cache misses) a second per client address; past it 429; 0: none",
    )
    miss_burst: int = Field(
        default=50, ge=1, description="renders at once per client before the rate applies"
    )

    @field_validator("key", "salt")
    @classmethod
    def _hex(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                bytes.fromhex(value)
            except ValueError:
                raise ValueError("keys and salts are hex-encoded") from None
        return values

    @model_validator(mode="after")
    def _paired(self) -> TransformOptions:
        if len(self.key) != len(self.salt):
            raise ValueError(
                f"transform: {len(self.key)} keys and {len(self.salt)} salts: one salt per key"
            )
        return self

    def with_secret(self, text: str) -> TransformOptions:
        """These options with the key and salt of `text`, the JSON object an AWS stack keeps
        in an SSM SecureString (aws.transform_secret): {"key": ..., "salt": ...}, each one hex
        value or a list, as in the settings file. A ValueError names what is wrong and never
        quotes the value: it would put the keys in the function's logs."""
        try:
            secret = json.loads(text)
        except ValueError:
            raise ValueError("the transform secret is not JSON") from None
        if not isinstance(secret, dict) or not set(secret) <= {"key", "salt"}:
            raise ValueError('the transform secret is {"key": ..., "salt": ...}, no more')
        try:
            return TransformOptions.model_validate({**self.model_dump(), **secret})
        except ValidationError as exc:
            problems = "; ".join(str(e["msg"]) for e in exc.errors())
            raise ValueError(f"the transform secret: {problems}") from None

    def signing_keys(self) -> tuple[tuple[bytes, bytes], ...]:
        """The (key, salt) pairs that may sign a URL, as bytes; the first signs new ones."""
        return tuple(
            (bytes.fromhex(key), bytes.fromhex(salt))
            for key, salt in zip(self.key, self.salt, strict=True)
        )

    def limits(self) -> TransformLimits:
        return TransformLimits(self.max_width, self.max_height, self.max_pixels, self.max_dpr)

    def encoder(self) -> RenderPreset:
        """What a transform's output is written with: the renditions' default encoder
        settings (docs/benchmarks.md's choices) at this section's qualities."""
        spec = RenditionSpec(name="transform", width=1, height=1, quality=dict(self.quality))
        return spec.render_preset()
