"""The /img paths the dashboard's URL builder hands out: a few common options written as a
person writes them (`rs:fill:400:300/g:sm/f:webp/q:80`), checked against the limits.

The path is built from the options' short forms, not from `Transform.canonical()` (whose
`rt:fill/w:400/h:300` means the same but is not what imgproxy's documentation or builders
write), and the source is `plain/{imageId}`, readable and URL-safe as it is. Signing it is
the /img use case's (service.delivery's `signed_path`), with the keys the route verifies.
"""

from __future__ import annotations

from typing import NamedTuple

from imgpipe.core.formats import OutputFormat
from imgpipe.core.transform import (
    Gravity,
    GravityType,
    ResizingType,
    Transform,
    TransformLimits,
    check_requested,
    number,
)


class LinkOptions(NamedTuple):
    """What the URL builder offers: a box and how to fit it, where to cut, the format (None:
    left to the route, which negotiates from Accept), the quality (0: the configured one)
    and the dpr."""

    width: int = 0
    height: int = 0
    fit: ResizingType = "fit"
    gravity: GravityType = "ce"
    format: OutputFormat | None = None
    quality: int = 0
    dpr: float = 1.0

    def transform(self) -> Transform:
        """The Transform the path parses to."""
        return Transform(
            resizing_type=self.fit,
            width=self.width,
            height=self.height,
            gravity=Gravity(self.gravity),
            quality=self.quality,
            dpr=self.dpr,
        ).normalised()

    def options(self) -> str:
        """The options as a path, those at their defaults left out ("" for none)."""
        parts = []
        if self.width or self.height:
            parts.append(f"rs:{self.fit}:{self.width}:{self.height}")
        if self.gravity != "ce":
            parts.append(f"g:{self.gravity}")
        if self.dpr != 1:
            parts.append(f"dpr:{number(self.dpr)}")
        if self.format is not None:
            parts.append(f"f:{self.format}")
        if self.quality:
            parts.append(f"q:{self.quality}")
        return "/".join(parts)


def link_path(image_id: str, options: LinkOptions, limits: TransformLimits) -> str:
    """`/{options}/plain/{image_id}`, the path a signature is made over; InvalidRequestError
    (400) where the options alone ask for more than `limits`, as the /img route would say."""
    check_requested(options.transform(), limits)
    written = options.options()
    return f"/{written}/plain/{image_id}" if written else f"/plain/{image_id}"


__all__ = ["LinkOptions", "link_path"]
