"""The settings of on-request transforms (imgproxy's URLs): signing keys, limits, qualities.

Part of the settings (config.py holds the section as `transforms`); each converts itself to
the plain values the core and the engine take (core/transform.py, core/img_url.py).
"""

from __future__ import annotations

import json

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from imgpipe.config_render import RenditionSpec
from imgpipe.core.formats import OutputFormat
from imgpipe.core.rendering import DEFAULT_QUALITY, RenderPreset
from imgpipe.core.transform import TransformLimits

_LIMITS = TransformLimits()


def _default_quality() -> dict[OutputFormat, int]:
    return dict(DEFAULT_QUALITY)


class TransformOptions(BaseModel):
    """On-request transforms, imgproxy's URLs (docs/api.md: On-request transforms)."""

    keys: list[str] = Field(
        default_factory=list,
        repr=False,
        description="hex-encoded HMAC keys that sign URLs (imgproxy's IMGPROXY_KEYS); several"
        " for rotation, each with the salt at the same place in salts",
    )
    salts: list[str] = Field(
        default_factory=list, repr=False, description="hex-encoded salts, one per key"
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

    @field_validator("keys", "salts")
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
        if len(self.keys) != len(self.salts):
            raise ValueError(
                f"transforms: {len(self.keys)} keys and {len(self.salts)} salts: one salt per key"
            )
        return self

    def with_secret(self, text: str) -> TransformOptions:
        """These options with the keys and salts of `text`, the JSON object an AWS stack keeps
        in an SSM SecureString (aws.transform_secret). A ValueError names what is wrong and
        never quotes the value: it would put the keys in the function's logs."""
        try:
            secret = json.loads(text)
        except ValueError:
            raise ValueError("the transform secret is not JSON") from None
        if not isinstance(secret, dict) or not set(secret) <= {"keys", "salts"}:
            raise ValueError('the transform secret is {"keys": [...], "salts": [...]}, no more')
        try:
            return TransformOptions.model_validate({**self.model_dump(), **secret})
        except ValidationError as exc:
            problems = "; ".join(str(e["msg"]) for e in exc.errors())
            raise ValueError(f"the transform secret: {problems}") from None

    def signing_keys(self) -> tuple[tuple[bytes, bytes], ...]:
        """The (key, salt) pairs that may sign a URL, as bytes."""
        return tuple(
            (bytes.fromhex(key), bytes.fromhex(salt))
            for key, salt in zip(self.keys, self.salts, strict=True)
        )

    def limits(self) -> TransformLimits:
        return TransformLimits(self.max_width, self.max_height, self.max_pixels, self.max_dpr)

    def encoder(self) -> RenderPreset:
        """What a transform's output is written with: the renditions' default encoder
        settings (docs/benchmarks.md's choices) at this section's qualities."""
        spec = RenditionSpec(name="transform", width=1, height=1, quality=dict(self.quality))
        return spec.render_preset()
