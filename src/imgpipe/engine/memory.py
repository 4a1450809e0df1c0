"""Memory: what glibc keeps from earlier images, handed back to the system (malloc_trim).

glibc keeps memory a render freed for the process's own later allocations rather than return
it; after a large decode that can be much of the decode's size, for as long as the process
lives. A rendering process hands it back once it is idle (render_child), and a render before a
decode that sets the process's peak (pipeline: a progressive JPEG).
"""

from __future__ import annotations

import functools
from collections.abc import Callable


def hand_back_free_memory() -> None:
    """Return to the system what glibc keeps from earlier images (malloc_trim), before a decode
    that sets a process's peak: libjpeg holds every DCT coefficient of a progressive JPEG at
    full size, whatever the shrink-on-load. Only then: after every render it cost 2.2% of
    images/s (docs/benchmarks.md), as later images fault the memory back in."""
    trim = malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library is not glibc."""
    import ctypes

    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
