"""The derived cache's size budget in the data folder (`derived/`, the /img route's results):
least recently used first out.

Recency is each file's access time, set explicitly for every read (os.utime, whatever the
mount's atime option: relatime and noatime only change what a read does by itself), so it
needs no database write per hit and survives a restart. A read is noted in memory (a hit
from memory must not pay a file write) and the notes are written to the files before every
scan for eviction and at least every FLUSH_EVERY_S, each with the time of its read.

The size is counted as results are written, once the folder has been scanned; past the
budget the folder is scanned again and the least recently read files are deleted until it
holds LOW_WATER of the budget, so that a full cache is not scanned on every write.
docs/operations.md ("The derived cache") has the measurements.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from imgpipe.adapters.local.fs_store import FilesystemObjectStore
from imgpipe.core.keys import DERIVED_PREFIX
from imgpipe.core.ports import Metrics

LOW_WATER = 0.9
FLUSH_EVERY_S = 30.0


class LocalDerivedCache:
    """The DerivedCache port over a FilesystemObjectStore's `derived/` folder."""

    def __init__(self, objects: FilesystemObjectStore, budget_bytes: int, metrics: Metrics) -> None:
        self.objects = objects
        self.budget_bytes = budget_bytes
        self.metrics = metrics
        self.folder = objects.root / DERIVED_PREFIX.rstrip("/")
        self._lock = threading.Lock()
        self._total: int | None = None  # bytes under derived/; None until first scanned
        self._reads: dict[str, int] = {}  # key -> when last read (ns), not yet on its file
        self._reads_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._flush_at = time.monotonic() + FLUSH_EVERY_S

    def read(self, key: str) -> None:
        with self._reads_lock:
            self._reads[key] = time.time_ns()
            due = time.monotonic() >= self._flush_at
            if due:
                self._flush_at = time.monotonic() + FLUSH_EVERY_S
        if due:
            # Off the caller's thread: a hit from memory reads on the event loop, and a flush
            # is a file write per result read since the last one.
            threading.Thread(target=self.flush, name="derived-recency", daemon=True).start()

    def flush(self) -> None:
        """Write the reads noted since the last flush to their files' access times (after any
        flush under way: a scan for eviction must see every read before it)."""
        with self._flush_lock:
            with self._reads_lock:
                reads, self._reads = self._reads, {}
                self._flush_at = time.monotonic() + FLUSH_EVERY_S
            self._touch(reads)

    def _touch(self, reads: dict[str, int]) -> None:
        for key, read_ns in reads.items():
            path = self.objects.path_for(key)
            try:
                # The mtime stays: it is the object's version (and its ETag cache's fingerprint).
                os.utime(path, ns=(read_ns, path.stat().st_mtime_ns))
            except FileNotFoundError:
                continue  # evicted meanwhile: the next request renders it again

    def stored(self, key: str, size: int) -> None:
        with self._lock:
            if self._total is None:
                self._total = sum(size for _, size, _ in self._files())
            else:
                self._total += size
            if self._total > self.budget_bytes:
                self._evict()

    def dropped(self, key: str, size: int) -> None:
        with self._lock:
            if self._total is not None:
                self._total = max(0, self._total - size)

    def total_bytes(self) -> int:
        """What the folder holds now (a scan)."""
        return sum(size for _, size, _ in self._files())

    def _evict(self) -> None:
        """Delete the least recently read results down to LOW_WATER of the budget."""
        self.flush()
        files = sorted(self._files())
        total = sum(size for _, size, _ in files)
        target = int(self.budget_bytes * LOW_WATER)
        evicted = 0
        for _, size, path in files:
            if total <= target:
                break
            self.objects.delete(self.objects.key_for(path))
            total -= size
            evicted += 1
        self._total = total
        if evicted:
            self.metrics.incr("derived_evicted", evicted)

    def _files(self) -> Iterator[tuple[int, int, Path]]:
        """(access time in ns, size, path) of every file under derived/."""
        for folder, _, names in os.walk(self.folder):
            for name in names:
                path = Path(folder, name)
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                yield st.st_atime_ns, st.st_size, path
