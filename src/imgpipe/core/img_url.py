"""imgproxy's URL grammar and signature: `/{signature}/{options}/{source}` into an ImgUrl.

    /{signature}/{option}/.../{base64url(source)}[.{ext}]      the source may be cut by "/"
    /{signature}/{option}/.../plain/{percent-encoded source}[@{ext}]

The signature is imgproxy's: HMAC-SHA256 with the key over the salt and the rest of the path
(from its "/", as sent: still percent-encoded), URL-safe base64 without padding, optionally
cut to its first `signature_size` bytes. Several (key, salt) pairs may verify, for rotation.
A URL whose signature does not verify is a ForbiddenError (403); a malformed one, an unknown
option or a bad value an InvalidRequestError (400) naming it. imgproxy's own URL builders
(@imgproxy/imgproxy-node, imgproxykit, Nuxt Image's and Next.js' providers) write these.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal, NamedTuple
from urllib.parse import unquote

from imgpipe.core.errors import ForbiddenError, InvalidRequestError
from imgpipe.core.formats import OutputFormat
from imgpipe.core.rendering import RenderPreset
from imgpipe.core.transform import Transform, TransformLimits, check_requested
from imgpipe.core.transform_options import (
    Option,
    Presets,
    apply_options,
    split_options,
)

UNSAFE_SIGNATURES = frozenset({"insecure", "_"})
FULL_SIGNATURE = 32  # bytes of HMAC-SHA256
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# A proxy that "normalises" a plain source's scheme://host to scheme:/host (imgproxy mends it).
_SQUASHED_SCHEME = re.compile(r"^(\S+):/([^/])")
_BASIC_FORMAT = frozenset({"fit", "fill", "fill-down", "force", "auto"})


class ImgUrl(NamedTuple):
    """A parsed URL: the source as given (decoded), the transform, and the output format the
    URL names (its extension or the format option; "best": the smallest of those the caller
    allows), None where it names none: the caller negotiates."""

    source: str
    transform: Transform
    format: OutputFormat | Literal["best"] | None


def sign_img_path(path: str, key: bytes, salt: bytes, signature_size: int = FULL_SIGNATURE) -> str:
    """`path` (`/{options}/{source}`, as it will be sent) with its signature in front."""
    return f"/{signature(path, key, salt, signature_size)}{path}"


def signature(path: str, key: bytes, salt: bytes, signature_size: int = FULL_SIGNATURE) -> str:
    """imgproxy's signature of `path` (a "/" is put in front where it has none)."""
    message = salt + (path if path.startswith("/") else "/" + path).encode("utf-8")
    digest = hmac.new(key, message, hashlib.sha256).digest()[:signature_size]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def parse_img_path(
    path: str,
    *,
    keys: Sequence[tuple[bytes, bytes]],
    unsafe: bool,
    presets: Presets,
    limits: TransformLimits | None = None,
    signature_size: int = FULL_SIGNATURE,
) -> ImgUrl:
    """The URL path after `/img` (percent-encoded as it came, no query string) as an ImgUrl.

    `keys`: the (key, salt) pairs that may have signed it. `unsafe`: accept "insecure" or "_"
    instead of a signature (the caller decides when). `presets`: the option lists `preset:`
    names (`rendition_presets`). `limits`: refuse what the options alone show to be over
    them (the rest is checked once the source's size is known)."""
    given, _, rest = path.lstrip("/").partition("/")
    if not given or not rest:
        raise InvalidRequestError(
            f"malformed path {path!r}: expected /{{signature}}/{{options}}/{{source}}"
        )
    rest = redenormalised(rest)
    verify(given, "/" + rest, keys, unsafe=unsafe, signature_size=signature_size)
    segments = rest.split("/")
    if segments[0] in _BASIC_FORMAT:
        raise InvalidRequestError(
            "imgproxy's basic URL format (/{resizing_type}/{width}/...) is not supported:"
            " write options as name:arguments (rs:fill:300:200)"
        )
    options, source_parts = split_options(segments)
    source, extension = _source(source_parts)
    fields: dict[str, Any] = {**Transform()._asdict(), "format": None}
    apply_options(fields, options, presets)
    if extension:
        apply_options(fields, [("format", (extension,))], {})
    fmt = fields.pop("format")
    transform = Transform(**fields).normalised()
    if limits is not None:
        check_requested(transform, limits)
    return ImgUrl(source, transform, fmt)


def redenormalised(rest: str) -> str:
    """Undo what browsers and proxies do to such paths, as imgproxy does: ":" sent as %3A in
    the options, and a plain source's `scheme://` squashed to `scheme:/`."""
    if rest.startswith("plain/"):
        options, plain, has_plain = "", rest[len("plain/") :], True
    else:
        options, sep, plain = rest.partition("/plain/")
        has_plain = bool(sep)
    options = options.replace("%3A", ":")
    if not has_plain:
        return options
    match = _SQUASHED_SCHEME.match(plain)
    if match:
        slashes = "///" if match.group(1) == "local" else "//"
        plain = f"{match.group(1)}:{slashes}{match.group(2)}{plain[match.end() :]}"
    return f"{options}/plain/{plain}" if options else f"plain/{plain}"


def verify(
    given: str,
    path: str,
    keys: Sequence[tuple[bytes, bytes]],
    *,
    unsafe: bool,
    signature_size: int = FULL_SIGNATURE,
) -> None:
    """Raise ForbiddenError unless `given` signs `path` with one of `keys` (or is "insecure"
    or "_" where `unsafe` allows)."""
    if unsafe and given in UNSAFE_SIGNATURES:
        return
    if not keys:
        raise ForbiddenError("this URL must be signed, and no signing key is configured")
    sent = given.encode("utf-8", errors="surrogateescape")  # compare_digest takes ASCII str
    for key, salt in keys:
        if hmac.compare_digest(sent, signature(path, key, salt, signature_size).encode()):
            return
    raise ForbiddenError("the URL's signature does not match its path")


def _source(parts: list[str]) -> tuple[str, str]:
    """(source, extension) from the segments after the options."""
    if not parts or parts == [""]:
        raise InvalidRequestError("the URL names no source")
    if parts[0] == "plain" and len(parts) > 1:
        return _plain_source("/".join(parts[1:]))
    if parts[0] == "enc" and len(parts) > 1:
        raise InvalidRequestError("encrypted sources (enc/) are not supported by imgpipe")
    return _base64_source("".join(parts))


def _plain_source(encoded: str) -> tuple[str, str]:
    source, _, extension = _one_extension(encoded, "@")
    if _BAD_ESCAPE.search(source):
        raise InvalidRequestError(f"invalid percent-encoding in the source {source!r}")
    try:
        return unquote(source, errors="strict"), extension
    except UnicodeDecodeError:
        raise InvalidRequestError(f"the source {source!r} is not UTF-8") from None


def _base64_source(encoded: str) -> tuple[str, str]:
    source, _, extension = _one_extension(encoded, ".")
    source = source.rstrip("=")
    if not source:
        raise InvalidRequestError("the URL names no source")
    if not _BASE64URL.fullmatch(source) or len(source) % 4 == 1:
        raise InvalidRequestError(f"the source {source!r} is not URL-safe base64")
    try:
        raw = base64.urlsafe_b64decode(source + "=" * (-len(source) % 4))
        return raw.decode("utf-8"), extension
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidRequestError(f"the source {source!r} is not base64 of UTF-8") from None


def _one_extension(encoded: str, separator: str) -> tuple[str, str, str]:
    parts = encoded.split(separator)
    if len(parts) > 2:
        raise InvalidRequestError(f"more than one format is given in {encoded!r}")
    if not parts[0]:
        raise InvalidRequestError("the URL names no source")
    return parts[0], separator, parts[1] if len(parts) > 1 else ""


def rendition_presets(presets: Iterable[RenderPreset]) -> dict[str, tuple[Option, ...]]:
    """`preset:{name}` for each rendition preset: its box, fit (inside: fit, cover: fill),
    gravity and qualities, so that a preset means that rendition (in whatever format the
    request ends up with). Renditions never upscale, and neither do these."""
    return {preset.name: preset_options(preset) for preset in presets}


def preset_options(preset: RenderPreset) -> tuple[Option, ...]:
    qualities = [str(part) for fmt, q in sorted(preset.quality.items()) for part in (fmt, q)]
    options: list[Option] = [
        ("rt", ("fill" if preset.fit == "cover" else "fit",)),
        ("w", (str(preset.width),)),
        ("h", (str(preset.height),)),
        ("g", ("sm" if preset.gravity == "smart" else "ce",)),
        ("el", ("0",)),
    ]
    if qualities:
        options.append(("fq", tuple(qualities)))
    return tuple(options)


__all__ = [
    "ImgUrl",
    "parse_img_path",
    "redenormalised",
    "rendition_presets",
    "sign_img_path",
    "signature",
    "verify",
]
