"""HMAC-signed, expiring URLs: the local stand-in for S3's presigned uploads and downloads."""

from __future__ import annotations

import hashlib
import hmac
import time


def sign(secret: bytes, *parts: str) -> str:
    message = "\x1f".join(parts).encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def expiry(ttl_s: int, now: float | None = None) -> int:
    return int((time.time() if now is None else now) + ttl_s)


def verify(
    secret: bytes, signature: str, expires: int, *parts: str, now: float | None = None
) -> bool:
    """True when the signature matches and has not expired (constant-time compare)."""
    if expires < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(sign(secret, str(expires), *parts), signature)


def constant_time_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
