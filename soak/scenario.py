"""The phases in their order, each with its share of the uploads and its fault.

warmup; the server killed (kill -9) and restarted, several times; rendering processes killed;
a restart with `--workers 1` (one rendering process, two job threads: a dead thread shows);
a baseline batch, twice; the database read-only (chattr +i), locked (BEGIN EXCLUSIVE) and the
disk full, each while uploads go on and with a backlog; the baseline batch a third time (the
memory against the first); then a last restart, which backfills every original left in the
folder (a refused upload's included).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soak import faults
from soak.phases import PhaseReport, Timeline, at, every, spread
from soak.plan import Planner, Upload

# Each phase's share of the uploads.
SHARES = {
    "warmup": 0.09,
    "kill-server": 0.22,
    "kill-renderer": 0.12,
    "baseline": 0.06,  # three times
    "read-only": 0.13,
    "locked": 0.13,
    "full-disk": 0.13,
}
KILL_SERVER_AT = 0.4  # of the phase's uploads' spread
UPLOADS_PER_S = 8.0  # while the server is killed and restarted
RENDERER_KILL_EVERY_S = 3.0
# A database fault's uploads: a quarter spread over the BEFORE_FAULT_S before it, half at
# once just before it (the backlog it finds: both job threads busy), the rest spread over
# the fault and AFTER_FAULT_S.
BEFORE_FAULT_S = 3.0
AFTER_FAULT_S = 3.0
BACKLOG_AHEAD_S = 0.3
FAULT_SETTLED_S = 0.5
BACKLOG_SHARE = 0.5


@dataclass(frozen=True)
class Durations:
    """How long each database fault lasts, how many kills (the command line's defaults)."""

    read_only_s: float
    locked_s: float
    full_disk_s: float
    server_kills: int
    renderer_kills: int


@dataclass
class Result:
    """The identical batches' reports: before the database faults (twice), and after them."""

    baseline: PhaseReport
    repeat: PhaseReport
    final: PhaseReport


def run(
    timeline: Timeline,
    planner: Planner,
    n: int,
    durations: Durations,
    skip: dict[str, str],
) -> Result:
    """All phases; `skip`: fault -> why it cannot run here (its phase uploads all the same)."""
    counts = {name: max(1, round(n * share)) for name, share in SHARES.items()}
    with timeline.phase("warmup", planner.take(counts["warmup"])):
        pass
    kill_server(timeline, planner.take(counts["kill-server"]), durations.server_kills, skip)
    kill_renderer(timeline, planner.take(counts["kill-renderer"]), durations.renderer_kills, skip)
    timeline.restart(workers=1)
    batch = planner.take(counts["baseline"])
    baseline = identical_batch(timeline, "baseline", batch)
    repeat = identical_batch(timeline, "baseline again", planner.again(batch))
    state_dir = timeline.serve.data_dir / ".imgpipe"
    database_faults: list[tuple[str, float, Callable[[], contextlib.AbstractContextManager[Any]]]]
    database_faults = [
        ("read-only", durations.read_only_s, lambda: faults.read_only_db(state_dir)),
        ("locked", durations.locked_s, lambda: faults.locked_db(state_dir)),
        ("full-disk", durations.full_disk_s, lambda: faults.full_disk(timeline.serve.data_dir)),
    ]
    for name, seconds, fault in database_faults:
        database_fault(timeline, name, planner.take(counts[name]), seconds, fault, skip)
    final = identical_batch(timeline, "baseline 3rd", planner.again(batch))
    timeline.last_phase = True
    with timeline.phase("restart", []) as restart:
        timeline.restart(workers=2)
        restart.notes.append("stopped (SIGINT), started again: backfills the folder")
    return Result(baseline, repeat, final)


def identical_batch(timeline: Timeline, name: str, uploads: list[Upload]) -> PhaseReport:
    with timeline.phase(name, uploads, settle=True) as report:
        pass
    return report


def kill_server(
    timeline: Timeline, uploads: list[Upload], kills: int, skip: dict[str, str]
) -> None:
    stop = timeline.uploader.stopping
    for k in range(kills):
        part = uploads[k::kills]
        seconds = max(6.0, len(part) / UPLOADS_PER_S)
        with timeline.phase(f"kill-server {k + 1}", part, spread(len(part), seconds)) as report:
            if "kill-server" in skip:
                report.notes.append(f"SKIPPED: {skip['kill-server']}")
            elif at(time.monotonic(), seconds * KILL_SERVER_AT, stop):
                outlived = timeline.serve.kill()
                timeline.serve.start()
                report.notes.append(f"killed -9, restarted; {outlived} renderers outlived it")


def kill_renderer(
    timeline: Timeline, uploads: list[Upload], kills: int, skip: dict[str, str]
) -> None:
    seconds = kills * RENDERER_KILL_EVERY_S + 2.0
    with timeline.phase("kill-renderer", uploads, spread(len(uploads), seconds)) as report:
        if "kill-renderer" in skip:
            report.notes.append(f"SKIPPED: {skip['kill-renderer']}")
            return
        killed: list[int] = []

        def kill_one() -> None:
            pid = faults.busiest(timeline.serve.renderers())
            if pid is not None and faults.kill(pid):
                killed.append(pid)

        every(kills, RENDERER_KILL_EVERY_S, kill_one, timeline.uploader.stopping)
        report.notes.append(f"{len(killed)} rendering processes killed -9")


def database_fault(
    timeline: Timeline,
    name: str,
    uploads: list[Upload],
    seconds: float,
    fault: Callable[[], contextlib.AbstractContextManager[Any]],
    skip: dict[str, str],
) -> None:
    """Uploads before, during and after `seconds` of the fault; /health watched meanwhile."""
    stop = timeline.uploader.stopping
    with timeline.phase(name, uploads, fault_schedule(len(uploads), seconds)) as report:
        if name in skip:
            report.notes.append(f"SKIPPED: {skip[name]}")
            return
        if not at(time.monotonic(), BEFORE_FAULT_S, stop):
            return
        with fault() as detail, timeline.health_watch(report):
            stop.wait(seconds)
        report.notes.append(f"{seconds:.0f}s{_detail(detail)}")


def fault_schedule(count: int, seconds: float) -> list[float]:
    """When a database fault's uploads go: see BACKLOG_SHARE. The first upload after the
    fault began comes FAULT_SETTLED_S into it, so that it meets the fault for sure."""
    before = round(count * 0.25)
    backlog = round(count * BACKLOG_SHARE)
    during = count - before - backlog
    start = BEFORE_FAULT_S + FAULT_SETTLED_S
    return [
        *spread(before, BEFORE_FAULT_S - BACKLOG_AHEAD_S),
        *[BEFORE_FAULT_S - BACKLOG_AHEAD_S] * backlog,
        *(start + t for t in spread(during, seconds + AFTER_FAULT_S - FAULT_SETTLED_S)),
    ]


def _detail(detail: object) -> str:
    if isinstance(detail, int):
        return f", filler {detail / 2**20:.0f} MB"
    if isinstance(detail, list):
        return f", chattr +i {' '.join(detail)}"
    return ""


def files_on_disk(data_dir: Path) -> dict[str, int]:
    """Every object under uploads/ and renditions/: key -> size."""
    found: dict[str, int] = {}
    for top in ("uploads", "renditions"):
        for path in (data_dir / top).rglob("*"):
            if path.is_file():
                found[path.relative_to(data_dir).as_posix()] = path.stat().st_size
    return found
