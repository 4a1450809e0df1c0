"""Measuring a process tree: resident memory of a process and its descendants from /proc,
sampled while a block runs; a run's seconds and peak, medians of repeats taken in turns."""

from __future__ import annotations

import os
import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _tree(root_pid: int) -> list[tuple[list[str], int]]:
    """Each process of a tree (the root and all its descendants, from /proc): its stat fields
    after the command name, and its resident pages."""
    children: dict[int, list[int]] = {}
    found: dict[int, tuple[list[str], int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            statm = Path(f"/proc/{entry}/statm").read_text().split()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
        found[int(entry)] = (fields, int(statm[1]))
    tree, stack = [], [root_pid]
    while stack:
        pid = stack.pop()
        if pid in found:
            tree.append(found[pid])
        stack.extend(children.get(pid, []))
    return tree


def tree_rss_kb(root_pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    return sum(pages for _, pages in _tree(root_pid)) * PAGE_KB


def tree_cpu_s(root_pid: int) -> float:
    """CPU seconds (user + system, all threads) of a process and its living descendants."""
    ticks = sum(int(fields[11]) + int(fields[12]) for fields, _ in _tree(root_pid))
    return ticks / CLOCK_TICKS


class PeakRss:
    """Samples the tree's RSS every 20 ms while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, tree_rss_kb(self.pid))
            self._stop.wait(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, tree_rss_kb(self.pid))


@dataclass
class Run:
    seconds: float
    peak_mb: float


def median_run(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.seconds for r in runs), statistics.median(r.peak_mb for r in runs)
    )


def interleaved(cases: dict[str, Callable[[], Run]], repeats: int) -> dict[str, Run]:
    results: dict[str, list[Run]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, case in cases.items():
            results[name].append(case())
    return {name: median_run(runs) for name, runs in results.items()}
