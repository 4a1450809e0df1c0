"""Object keys and ids: imageId from a key, server-chosen upload keys, rendition keys, and the
keys of on-request results (derived/)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import unicodedata

from imgpipe.core.errors import InvalidRequestError

UPLOADS_PREFIX = "uploads/"
RENDITIONS_PREFIX = "renditions/"
# On-request results (the /img route's cache): a prefix no upload or rendition key starts with,
# so that an AWS lifecycle rule and the API's IAM policy can be scoped to it alone.
DERIVED_PREFIX = "derived/"
MAX_KEY_BYTES = 1024
MAX_SAFE_NAME_CHARS = 120
_IMAGE_ID = re.compile(r"^[a-z2-7]{26}$")
_UNSAFE_NAME_CHARS = re.compile(r"[^\w.\-]+", re.UNICODE)


def image_id_for(key: str) -> str:
    """Deterministic, URL-safe id of an original key: 26 base32 chars of its SHA-256."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()[:16]
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def is_image_id(value: str) -> bool:
    return bool(_IMAGE_ID.match(value))


def validate_key(key: str) -> str:
    """A key S3 would accept: non-empty UTF-8 of at most 1,024 bytes."""
    if not key:
        raise InvalidRequestError("key must not be empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidRequestError("key must be valid UTF-8") from exc
    if size > MAX_KEY_BYTES:
        raise InvalidRequestError(f"key is {size} bytes; the limit is {MAX_KEY_BYTES}")
    return key


def is_upload_key(key: str) -> bool:
    """Only originals under uploads/ are processed; nothing imgpipe writes lands there."""
    return key.startswith(UPLOADS_PREFIX) and len(key) > len(UPLOADS_PREFIX)


def safe_filename(filename: str) -> str:
    """A client's file name made safe for a key: no path, no controls, short, never empty."""
    name = unicodedata.normalize("NFC", filename).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE_NAME_CHARS.sub("_", name).strip("._") or "image"
    if len(name) > MAX_SAFE_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: MAX_SAFE_NAME_CHARS - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_SAFE_NAME_CHARS]
    return name


def new_upload_key(filename: str, prefix: str | None = None) -> str:
    """`uploads/{unique id}/{file name made safe}`: two uploads never share a key. `prefix`:
    the `uploads/{id}/` of an upload sent with an Idempotency-Key (`idempotent_prefix`)."""
    return f"{prefix or UPLOADS_PREFIX + secrets.token_hex(8) + '/'}{safe_filename(filename)}"


MAX_IDEMPOTENCY_KEY_CHARS = 255


def idempotent_prefix(secret: bytes, scope: str, route: str, idempotency_key: str) -> str:
    """The `uploads/{id}/` of the upload a client names with an Idempotency-Key: the same for
    every retry of it, so that a retry finds the first attempt's original instead of making a
    second image. The id is an HMAC of the client's key, its caller (`scope`) and the route,
    shaped like a random id; unguessable when `secret` is. InvalidRequestError for a key that
    is empty, longer than MAX_IDEMPOTENCY_KEY_CHARS or not printable ASCII."""
    if not (
        0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_CHARS
        and idempotency_key.isascii()
        and idempotency_key.isprintable()
    ):
        raise InvalidRequestError(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters"
        )
    message = "\x00".join((scope, route, idempotency_key)).encode("utf-8")
    return f"{UPLOADS_PREFIX}{hmac.new(secret, message, hashlib.sha256).hexdigest()[:16]}/"


def rendition_key(image_id: str, name: str, ext: str) -> str:
    return f"{RENDITIONS_PREFIX}{image_id}/{name}.{ext}"


def derived_prefix(image_id: str, version_tag: str | None = None) -> str:
    """`derived/{imageId}/` (every cached result of an image), or that of one version of it."""
    folder = f"{DERIVED_PREFIX}{image_id}/"
    return folder if version_tag is None else f"{folder}{version_tag}/"


def derived_key(image_id: str, version_tag: str, options: str, ext: str) -> str:
    """Where one on-request result is cached: `derived/{imageId}/{versionTag}/{hash}.{ext}`,
    the hash (sha256, 32 hex) of the canonical options and the output format."""
    digest = hashlib.sha256(f"{options}\x00{ext}".encode()).hexdigest()[:32]
    return f"{derived_prefix(image_id, version_tag)}{digest}.{ext}"


def derived_twin_key(image_id: str, version_tag: str) -> str:
    """Where an image's twin is kept, beside its results (engine/twin.py):
    `derived/{imageId}/{versionTag}/twin`, removed and evicted as they are."""
    return f"{derived_prefix(image_id, version_tag)}twin"


def compare_sequencers(a: str, b: str) -> int:
    """S3 sequencers (and ours) are hex strings of unequal length; compare them as numbers."""
    ia, ib = int(a or "0", 16), int(b or "0", 16)
    return (ia > ib) - (ia < ib)
