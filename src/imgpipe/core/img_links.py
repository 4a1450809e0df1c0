"""The /img paths the dashboard's URL builder hands out: a few common options written as a
person writes them (`rs:fill:400:300/g:sm/f:webp/q:80`), signed as this server verifies them.

The path is built from the options' short forms, not from `Transform.canonical()` (whose
`rt:fill/w:400/h:300` means the same but is not what imgproxy's documentation or builders
write), and the source is `plain/{imageId}`, readable and URL-safe as it is. Who may sign is
the deployment's decision (ImgSigner): the first configured key pair, or `insecure` where the
server takes unsigned URLs (imgproxy's unsafe mode), else nobody: SigningKeyRequiredError.
"""

from __future__ import annotations

from typing import NamedTuple

from imgpipe.core.errors import SigningKeyRequiredError
from imgpipe.core.formats import OutputFormat
from imgpipe.core.img_url import FULL_SIGNATURE, sign_img_path
from imgpipe.core.transform import (
    Gravity,
    GravityType,
    ResizingType,
    Transform,
    TransformLimits,
    check_requested,
    number,
)

UNSIGNED = "insecure"


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

    def path(self, image_id: str) -> str:
        """`/{options}/plain/{image_id}`: the path a signature is made over."""
        options = self.options()
        return f"/{options}/plain/{image_id}" if options else f"/plain/{image_id}"


class ImgSigner(NamedTuple):
    """How this server's /img URLs are signed: `keys` (key, salt) pairs, the first of which
    signs; `unsafe`: no key is needed, and `insecure` stands for a signature."""

    keys: tuple[tuple[bytes, bytes], ...] = ()
    signature_size: int = FULL_SIGNATURE
    unsafe: bool = False

    def sign(self, path: str) -> str:
        """`/{signature}{path}`, or SigningKeyRequiredError where this server cannot sign."""
        if self.keys:
            key, salt = self.keys[0]
            return sign_img_path(path, key, salt, self.signature_size)
        if self.unsafe:
            return f"/{UNSIGNED}{path}"
        raise SigningKeyRequiredError(
            "no key signs /img URLs on this server: configure a transform key and salt"
            " (unsigned URLs are taken only on loopback without an API token)"
        )


def img_link(
    image_id: str, options: LinkOptions, signer: ImgSigner, limits: TransformLimits
) -> str:
    """The signed `/img/...` path for `image_id` with `options`, or InvalidRequestError (400)
    where the options alone ask for more than `limits`."""
    check_requested(options.transform(), limits)
    return "/img" + signer.sign(options.path(image_id))


__all__ = ["UNSIGNED", "ImgSigner", "LinkOptions", "img_link"]
