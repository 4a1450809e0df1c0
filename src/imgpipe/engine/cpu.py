"""CPU policy: the cores this process may use and how many threads the machine runs now.

A render's encodes get a helper thread only while a core is idle; these two readings are
what it decides by.
"""

from __future__ import annotations

import functools
import os


@functools.cache
def usable_cores() -> int:
    """The cores this process may run on (its affinity: taskset, cpusets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def runnable_threads() -> int:
    """Threads running or ready to run on the whole machine now, the caller included (the
    fourth field of /proc/loadavg); where it cannot be read (not Linux), a count so high that
    no helper thread ever starts."""
    try:
        with open("/proc/loadavg", "rb") as stats:
            return int(stats.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return 1 << 30
