"""Local event publishers: the JSONL event log, and a fan-out to several publishers.

The log appends each event as one JSON line to `{data_dir}/.imgpipe/events.jsonl` with one
`write(2)` on a file opened O_APPEND, under a lock: lines from several worker threads never
interleave, and a line is in the kernel once `publish` returns (so `kill -9` loses none). It is
not fsynced: the records in SQLite are the truth and the log a feed of them, and an fsync per
image would cost more than a render's encode on a slow disk; a power cut may lose the last lines.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imgpipe.core.ports import EventPublisher, Metrics

log = logging.getLogger("imgpipe.events")

EVENT_LOG_NAME = "events.jsonl"


class JsonlEventLog:
    """EventPublisher that appends one JSON line per event to a file."""

    def __init__(self, path: Path, metrics: Metrics) -> None:
        self.path = Path(path)
        self.metrics = metrics
        self._lock = threading.Lock()
        self._fd: int | None = None

    def publish(self, event: Mapping[str, Any]) -> None:
        line = json.dumps(dict(event), separators=(",", ":"), ensure_ascii=False) + "\n"
        data = line.encode("utf-8")
        try:
            with self._lock:
                if self._fd is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._fd = os.open(
                        self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
                    )
                view = memoryview(data)
                while view:  # a regular file takes it all at once; a short write continues
                    view = view[os.write(self._fd, view) :]
        except OSError:
            log.exception("could not append to the event log", extra={"path": str(self.path)})
            self.metrics.incr("events_failed")

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class FanOutEvents:
    """EventPublisher that hands each event to several; one that raises does not stop the
    others (it is logged and counted)."""

    def __init__(self, publishers: list[EventPublisher], metrics: Metrics) -> None:
        self.publishers = publishers
        self.metrics = metrics

    def publish(self, event: Mapping[str, Any]) -> None:
        for publisher in self.publishers:
            try:
                publisher.publish(event)
            except Exception:
                log.exception("an event publisher failed", extra={"eventId": event.get("id")})
                self.metrics.incr("events_failed")
