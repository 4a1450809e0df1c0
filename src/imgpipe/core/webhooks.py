"""Webhook deliveries, the pure part: the body, the signature header and the retry schedule.

The signature is Stripe's scheme: `X-Imgpipe-Signature: t=<unix seconds>,v1=<hex>` where the
hex is HMAC-SHA256(secret, f"{t}.{body}") over the exact bytes of the body. The timestamp is
signed with the body, so a receiver that checks it is recent rejects a replayed request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Final

SIGNATURE_HEADER: Final = "X-Imgpipe-Signature"
EVENT_ID_HEADER: Final = "X-Imgpipe-Event-Id"
EVENT_TYPE_HEADER: Final = "X-Imgpipe-Event-Type"
DEFAULT_TOLERANCE_S: Final = 300


def event_body(event: Mapping[str, Any]) -> bytes:
    """The bytes POSTed for an event: compact JSON, the same bytes on every retry."""
    return json.dumps(dict(event), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode("ascii") + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """The value of X-Imgpipe-Signature for `body` sent at `timestamp` (unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify_signature(
    secret: str,
    body: bytes,
    header: str,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """What a receiver does: the header parses, its time is within `tolerance_s` of `now`,
    and one of its v1 signatures matches (constant-time). Any other case is False."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if name == "t":
            if not value.isdigit():
                return False
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = _digest(secret, timestamp, body)
    return any(hmac.compare_digest(expected, c) for c in candidates)


def retry_delay(attempts: int, base_s: float, cap_s: float, jitter: float) -> float:
    """Seconds to wait after the `attempts`-th failed delivery (1, 2, ...): `base_s` doubled
    per attempt, capped at `cap_s`, then scaled by 1 - jitter/2 for `jitter` in [0, 1), so
    the wait lies in (ceiling/2, ceiling] and receivers that failed together do not retry
    together."""
    if attempts < 1:
        raise ValueError("attempts counts failed deliveries, from 1")
    ceiling = min(cap_s, base_s * 2.0 ** min(attempts - 1, 64))
    return ceiling * (1.0 - jitter / 2.0)


def is_delivered(status: int) -> bool:
    """2xx is delivered; anything else (a redirect too: it is not followed) is retried."""
    return 200 <= status < 300
