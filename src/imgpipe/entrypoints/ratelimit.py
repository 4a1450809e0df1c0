"""A per-client token bucket for the local API: 429 with Retry-After past the configured rate.
(On AWS, API Gateway's stage throttling does this job.)"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from imgpipe.entrypoints.asgi_errors import send_json_error

EXEMPT_PATHS = frozenset({"/health"})
_PRUNE_EVERY = 1024


class TokenBuckets:
    """`rate` requests a second sustained, `burst` at once, per key. Pure apart from the clock
    (and a lock: the /img route takes from worker threads)."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._calls = 0
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        with self._lock:
            return self._take(key)

    def _take(self, key: str) -> float:
        now = self.clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1 - tokens) / self.rate
        self._calls += 1
        if self._calls % _PRUNE_EVERY == 0:
            self._prune(now)
        return wait

    def _prune(self, now: float) -> None:
        full = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full}


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, buckets: TokenBuckets) -> None:
        self.app = app
        self.buckets = buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.buckets.take(client[0] if client else "unknown")
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        await send_json_error(
            send,
            429,
            "rate_limited",
            f"more than {self.buckets.rate:g} requests a second; retry in {retry_after} s",
            [(b"retry-after", str(retry_after).encode())],
        )
