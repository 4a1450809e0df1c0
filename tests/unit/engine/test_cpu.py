"""CPU policy: the cores this process may use and the machine's runnable threads, read from
Linux."""

from __future__ import annotations

from imgpipe.engine import cpu


def test_the_machine_load_is_read_from_proc() -> None:
    # GIVEN Linux (CI and Lambda) WHEN the runnable threads are counted
    # THEN the count includes at least this running thread, is no more than every thread on
    # the machine (the total after the slash; not the "unreadable" answer), and this process
    # has a core
    with open("/proc/loadavg") as stats:
        every_thread = int(stats.read().split()[3].split("/")[1])
    assert 1 <= cpu.runnable_threads() <= every_thread
    assert cpu.usable_cores() >= 1
