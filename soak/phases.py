"""The soak's timeline: batches of uploads, each phase with its fault, and what each showed.

Every phase uploads while its fault happens, then waits for the backlog to drain *without a
restart* (a dead worker thread shows up there), and notes the server's memory. A backlog that
does not drain by the deadline is a violation ("stalled"); the harness then restarts the
server, as an operator would, so that the phases after it still mean something.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from soak.check import Finding
from soak.client import AnswerLog, Outcome, Reader, Uploader
from soak.plan import Upload
from soak.server import Serve

BATCH_DEADLINE_S = 300.0  # hang guard: an upload's retries take at most ~2 min
SETTLE_S = 2.0  # idle rendering processes hand memory back after 1 s
HEALTH_EVERY_S = 1.0
END_WAIT_S = 180.0  # beyond the server's default visibility timeout (120 s) and its margin


@dataclass
class PhaseReport:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)
    health: Counter[str] = field(default_factory=Counter)
    drained_s: float | None = None
    memory: tuple[float, float, int] = (0.0, 0.0, 0)
    pid: int = 0  # the server process the memory is of
    notes: list[str] = field(default_factory=list)

    def row(self) -> str:
        accepted = sum(o.accepted for o in self.outcomes)
        refused = sum(o.refused for o in self.outcomes)
        unanswered = len(self.outcomes) - accepted - refused
        drained = "STALLED" if self.drained_s is None else f"{self.drained_s:.0f}s"
        rss, renderers, fds = self.memory
        line = (
            f"{self.name:<16} {len(self.outcomes):>5} {accepted:>5} {refused:>5} {unanswered:>5}"
            f" {drained:>8} {rss:>6.0f} {renderers:>6.0f} {fds:>4}"
        )
        extra = [f"health {dict(self.health)}"] if self.health else []
        return "  ".join([line, *extra, *self.notes]).rstrip()


HEADER = (
    f"{'phase':<16} {'sent':>5} {'2xx':>5} {'refsd':>5} {'no-an':>5} {'drained':>8}"
    f" {'rssMB':>6} {'rendMB':>6} {'fds':>4}"
)


class Timeline:
    """Runs uploads and faults against one server; keeps every outcome and phase report."""

    def __init__(
        self, serve: Serve, uploader: Uploader, log: AnswerLog, concurrency: int, drain_s: float
    ) -> None:
        self.serve = serve
        self.uploader = uploader
        self.log = log
        self.reader = Reader(serve.url, log)
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="soak-upload")
        self.drain_s = drain_s
        self.last_phase = False  # set for the last: it waits out a job's lease too
        self.reports: list[PhaseReport] = []
        self.stalled = Finding("stalled")
        self.crashed = Finding("server exited")
        self._seen_drops: set[str] = set()

    def close(self) -> None:
        self.uploader.stopping.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.uploader.close()
        self.reader.close()

    @property
    def outcomes(self) -> list[Outcome]:
        return [o for r in self.reports for o in r.outcomes]

    @contextlib.contextmanager
    def phase(
        self,
        name: str,
        uploads: Sequence[Upload],
        offsets: Sequence[float] = (),
        *,
        settle: bool = False,
    ) -> Iterator[PhaseReport]:
        """Sends each upload at its offset (seconds; all at once without) while the block
        runs (the fault); then waits for them and for the backlog to drain, and notes the
        memory (`settle`: once idle rendering processes have handed theirs back)."""
        report = PhaseReport(name)
        self.reports.append(report)
        futures: list[Future[Outcome]] = []
        offsets = offsets or [0.0] * len(uploads)
        pacer = threading.Thread(target=self._pace, args=(uploads, offsets, name, futures))
        pacer.start()
        try:
            yield report
        except BaseException:
            self.uploader.stopping.set()  # Ctrl-C or a harness error: send nothing more
            raise
        finally:
            pacer.join()
        for future in futures:
            report.outcomes.append(future.result(timeout=BATCH_DEADLINE_S))
        self._check_alive(report)
        self.drain(report)
        if self.last_phase:
            self._wait_for_the_end(report)
        if settle:
            time.sleep(SETTLE_S)
        report.memory, report.pid = self.serve.memory(), self.serve.pid
        if len(self.reports) == 1:
            print(HEADER, flush=True)
        print(report.row(), flush=True)

    def _pace(
        self,
        uploads: Sequence[Upload],
        offsets: Sequence[float],
        name: str,
        out: list[Future[Outcome]],
    ) -> None:
        start = time.monotonic()
        for upload, offset in zip(uploads, offsets, strict=True):
            if not at(start, offset, self.uploader.stopping):
                return
            out.append(self.pool.submit(self.uploader.upload, upload, name))

    def _check_alive(self, report: PhaseReport) -> None:
        """The server must not have ended by itself: if it did, note it and start it again."""
        code = self.serve.exit_code()
        if code is not None:
            self.crashed.add(f"{report.name}: exit code {code}")
            report.notes.append(f"the server exited by itself ({code}); started again")
            self.serve.start()

    def drain(self, report: PhaseReport) -> None:
        """Wait until no record is PENDING or PROCESSING and every dropped file has one; if
        that takes longer than the deadline, the phase stalled: restart and wait again."""
        report.drained_s, state = self._wait_drained(self.drain_s)
        if report.drained_s is not None:
            return
        report.notes.append("restarted")
        self.stalled.add(f"{report.name}: {state} {self.drain_s:.0f}s on, without a restart")
        self.restart()
        drained, state = self._wait_drained(self.drain_s)
        if drained is None:
            report.notes.append(f"not drained after the restart either: {state}")

    def _wait_for_the_end(self, report: PhaseReport) -> None:
        """Before the records are judged: a job can be held back for as long as a lease a
        dead job thread left (the server's visibility timeout); a record not finished past
        that counts as lost."""
        if self._wait_drained(END_WAIT_S)[0] is None:
            report.notes.append(f"not drained {END_WAIT_S:.0f}s after the last restart")

    def _wait_drained(self, deadline_s: float) -> tuple[float | None, str]:
        start = time.monotonic()
        state = "no answer from /stats"
        while time.monotonic() - start < deadline_s:
            stats = self.reader.stats()
            if stats is not None:
                counts, queue = stats["counts"], stats["queue"]
                busy = counts.get("PENDING", 0) + counts.get("PROCESSING", 0)
                missing = self._drops_without_record()
                state = (
                    f"{counts.get('PENDING', 0)} PENDING, {counts.get('PROCESSING', 0)} PROCESSING;"
                    f" jobs: {queue['visible']} visible, {queue['inFlight']} leased,"
                    f" {queue['dead']} dead"
                    + (f"; {missing} dropped files without a record" if missing else "")
                )
                if busy == 0 and missing == 0:
                    return time.monotonic() - start, state
            time.sleep(1.0)
        return None, state

    def _drops_without_record(self) -> int:
        drops = [o.image_id for o in self.outcomes if o.upload.route == "drop" and o.image_id]
        for image_id in drops:
            if image_id not in self._seen_drops and self.reader.exists(image_id):
                self._seen_drops.add(image_id)
        return sum(1 for i in drops if i not in self._seen_drops)

    def restart(self, workers: int | None = None) -> None:
        """Stopped as an operator stops it (Ctrl-C), started again on the same folder."""
        self.serve.stop()
        self.serve.start(workers)

    @contextlib.contextmanager
    def health_watch(self, report: PhaseReport) -> Iterator[None]:
        """What /health answered, once a second, while the block runs."""
        done = threading.Event()
        reader = Reader(self.serve.url, self.log)

        def watch() -> None:
            while not done.wait(HEALTH_EVERY_S):
                report.health[reader.health()] += 1

        watcher = threading.Thread(target=watch, name="soak-health")
        watcher.start()
        try:
            yield
        finally:
            done.set()
            watcher.join()
            reader.close()


def spread(count: int, seconds: float) -> list[float]:
    """Offsets for `count` uploads evenly over `seconds`."""
    return [seconds * n / count for n in range(count)]


def at(start: float, offset_s: float, stop: threading.Event) -> bool:
    """Sleep until `offset_s` after `start`; False if the soak is stopping."""
    return not stop.wait(max(0.0, start + offset_s - time.monotonic()))


def every(count: int, interval_s: float, action: Callable[[], None], stop: threading.Event) -> None:
    start = time.monotonic()
    for n in range(count):
        if not at(start, interval_s * (n + 0.5), stop):
            return
        action()
