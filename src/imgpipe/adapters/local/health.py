"""What `GET /health` reports of a running server: which of its parts are degraded, and why.

The parts that run on their own threads (the job threads, above all) report here when a store
fails them and when it answers again. A part's fall is logged and counted once, and so is its
recovery, however many retries happen in between: a locked database retried four times a
second must not flood the log, yet must show on `/health` for as long as it lasts.
"""

from __future__ import annotations

import logging
import threading

from imgpipe.core.ports import Metrics, NullMetrics

log = logging.getLogger("imgpipe.health")


class HealthBoard:
    """Degraded parts by name ("database", "workers"), each with the reason it last gave."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics: Metrics = metrics or NullMetrics()
        self._lock = threading.Lock()
        self._problems: dict[str, str] = {}

    def degraded(self, part: str, reason: str) -> None:
        with self._lock:
            fresh = part not in self._problems
            self._problems[part] = reason
        if fresh:
            log.error("%s degraded: %s", part, reason, extra={"part": part})
            self.metrics.incr("degraded", part=part)

    def recovered(self, part: str) -> None:
        with self._lock:
            if part not in self._problems:
                return
            reason = self._problems.pop(part)
        log.info("%s recovered (was: %s)", part, reason, extra={"part": part})

    def problems(self) -> dict[str, str]:
        """The degraded parts and their reasons; empty when all is well."""
        with self._lock:
            return dict(self._problems)
