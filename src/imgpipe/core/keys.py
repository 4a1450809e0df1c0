"""Object keys and ids: imageId from a key, server-chosen upload keys, rendition keys."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import unicodedata

from imgpipe.core.errors import InvalidRequestError

UPLOADS_PREFIX = "uploads/"
RENDITIONS_PREFIX = "renditions/"
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


def new_upload_key(filename: str) -> str:
    """`uploads/{unique id}/{file name made safe}`: two uploads never share a key."""
    return f"{UPLOADS_PREFIX}{secrets.token_hex(8)}/{safe_filename(filename)}"


def rendition_key(image_id: str, name: str, ext: str) -> str:
    return f"{RENDITIONS_PREFIX}{image_id}/{name}.{ext}"


def compare_sequencers(a: str, b: str) -> int:
    """S3 sequencers (and ours) are hex strings of unequal length; compare them as numbers."""
    ia, ib = int(a or "0", 16), int(b or "0", 16)
    return (ia > ib) - (ia < ib)
