"""The `/img` route's small results kept in memory: from a request as sent (its path and its
Accept variant) to the answer, under a byte budget, least recently used out.

A hit served from here skips the URL's parse and signature check, the record's read and
parse, the object's HEAD and the file's read; what it still checks is the record's stamp
(MetadataStore.stamp), so a delete, a reprocess or a new version is never answered from
memory. Pure bookkeeping: service.delivery decides what goes in and when it is still good.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")

# One result may take at most this share of the budget, so that one large answer does not
# push out the many small ones that make the hits.
LARGEST_SHARE = 16


class Remembered(NamedTuple, Generic[T]):
    """One answer: whose (image and the stamp its record had), the answer, its size."""

    image_id: str
    stamp: tuple[int, str]
    answer: T
    size: int


class HitMemory(Generic[T]):
    """A byte-budgeted LRU map; safe for many threads."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[tuple[str, str], Remembered[T]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    @property
    def total_bytes(self) -> int:
        return self._total

    def __len__(self) -> int:
        return len(self._entries)

    def fits(self, size: int) -> bool:
        return self.budget_bytes > 0 and size <= self.budget_bytes // LARGEST_SHARE

    def get(self, key: tuple[str, str]) -> Remembered[T] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: tuple[str, str], entry: Remembered[T]) -> None:
        """Keep `entry` (if it fits), dropping the least recently used past the budget."""
        if not self.fits(entry.size):
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._total -= old.size
            self._entries[key] = entry
            self._total += entry.size
            while self._total > self.budget_bytes:
                _, gone = self._entries.popitem(last=False)
                self._total -= gone.size

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._total -= old.size
