"""The derived cache's size budget in the data folder (`derived/`, the /img route's results):
least recently used first out.

Recency is each file's access time, set explicitly on every read (os.utime, whatever the
mount's atime option: relatime and noatime only change what a read does by itself), so it
needs no database write per hit and survives a restart. The size is counted as results are
written, once the folder has been scanned; past the budget the folder is scanned again and
the least recently read files are deleted until it holds LOW_WATER of the budget, so that a
full cache is not scanned on every write. docs/operations.md ("The derived cache") has the
measurements.
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


class LocalDerivedCache:
    """The DerivedCache port over a FilesystemObjectStore's `derived/` folder."""

    def __init__(self, objects: FilesystemObjectStore, budget_bytes: int, metrics: Metrics) -> None:
        self.objects = objects
        self.budget_bytes = budget_bytes
        self.metrics = metrics
        self.folder = objects.root / DERIVED_PREFIX.rstrip("/")
        self._lock = threading.Lock()
        self._total: int | None = None  # bytes under derived/; None until first scanned

    def read(self, key: str) -> None:
        path = self.objects.path_for(key)
        try:
            # The mtime stays: it is the object's version (and its ETag cache's fingerprint).
            os.utime(path, ns=(time.time_ns(), path.stat().st_mtime_ns))
        except FileNotFoundError:
            return  # evicted meanwhile: the next request renders it again

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
