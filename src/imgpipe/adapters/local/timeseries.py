"""The last hour of the local pipeline in 10-second buckets, for the dashboard's live charts.

It is a Metrics port of its own (the service's counters and timings land here as well as in
Prometheus, through `TeeMetrics`), plus queue depth sampled as buckets close.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from imgpipe.core.ports import Metrics, QueueStats

BUCKET_S = 10
WINDOW_S = 3600


@dataclass
class _Bucket:
    start: int
    processed: int = 0
    failed: int = 0
    durations: list[float] = field(default_factory=list)
    queue_depth: int | None = None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


class TimeSeries:
    """Metrics port: images_processed, images_failed and processing_seconds per bucket."""

    def __init__(
        self,
        queue_stats: Callable[[], QueueStats] | None = None,
        clock: Callable[[], float] = time.time,
        bucket_s: int = BUCKET_S,
        window_s: int = WINDOW_S,
    ) -> None:
        self._queue_stats = queue_stats
        self._clock = clock
        self._bucket_s = bucket_s
        self._buckets: deque[_Bucket] = deque(maxlen=window_s // bucket_s)
        self._lock = threading.Lock()

    def _current(self) -> _Bucket:
        start = int(self._clock()) // self._bucket_s * self._bucket_s
        if not self._buckets or self._buckets[-1].start != start:
            self._buckets.append(_Bucket(start))
        return self._buckets[-1]

    def incr(self, name: str, value: float = 1.0, **labels: str) -> None:
        if name not in ("images_processed", "images_failed"):
            return
        with self._lock:
            bucket = self._current()
            if name == "images_processed":
                bucket.processed += int(value)
            else:
                bucket.failed += int(value)

    def timing(self, name: str, seconds: float, **labels: str) -> None:
        if name != "processing_seconds":
            return
        with self._lock:
            self._current().durations.append(seconds)

    def sample_queue(self) -> None:
        if self._queue_stats is None:
            return
        stats = self._queue_stats()
        with self._lock:
            self._current().queue_depth = stats.visible + stats.in_flight

    def snapshot(self) -> dict[str, Any]:
        """Every bucket of the window, oldest first, gaps filled with zeros."""
        self.sample_queue()
        with self._lock:
            now = int(self._clock()) // self._bucket_s * self._bucket_s
            by_start = {b.start: b for b in self._buckets}
            count = self._buckets.maxlen or 0
            points = []
            for n in range(count - 1, -1, -1):
                start = now - n * self._bucket_s
                b = by_start.get(start)
                points.append(
                    {
                        "t": start,
                        "processed": b.processed if b else 0,
                        "failed": b.failed if b else 0,
                        "p50": percentile(b.durations, 0.5) if b else None,
                        "p95": percentile(b.durations, 0.95) if b else None,
                        "queueDepth": b.queue_depth if b else None,
                    }
                )
        return {"bucketSeconds": self._bucket_s, "points": points}


class TeeMetrics:
    """One Metrics port that forwards to several."""

    def __init__(self, *sinks: Metrics) -> None:
        self.sinks = sinks

    def incr(self, name: str, value: float = 1.0, **labels: str) -> None:
        for sink in self.sinks:
            sink.incr(name, value, **labels)

    def timing(self, name: str, seconds: float, **labels: str) -> None:
        for sink in self.sinks:
            sink.timing(name, seconds, **labels)
