"""`imgpipe reprocess --stale`: queue a re-render of every stale record, then see them done.

A record is stale when it is PROCESSED and its renditionHash is not the one the current
settings make (core.lifecycle.is_stale). The PROCESSED records are read page by page through
the store's status index; each stale one gets one `rerender` job. Then, with --wait:
- locally, when `imgpipe serve` holds the data folder, its workers run the jobs and this
  command watches the records; when no server runs, this command runs a worker pool of its
  own (with its rendering processes) until the jobs are done;
- on AWS, the Lambda workers run them from SQS and this command watches the records.
Watching stops when no queued record is stale any more, at the timeout, or (with a pool of
its own) when the queue has nothing left to run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from imgpipe.core.model import Status

if TYPE_CHECKING:
    from imgpipe.config import Settings
    from imgpipe.core.ports import JobQueue
    from imgpipe.service import UseCases

LOCAL_POLL_S = 0.2
AWS_POLL_S = 2.0


@dataclass
class StaleRun:
    """What `reprocess --stale` did: the counts it prints at the end."""

    checked: int = 0
    queued: list[str] = field(default_factory=list)
    waited: bool = False
    worked_here: bool = False
    rerendered: int = 0
    failed: int = 0
    gone: int = 0
    left: int = 0

    def summary(self) -> list[str]:
        lines = [
            f"checked {self.checked} processed record(s): {len(self.queued)} stale, "
            f"queued {len(self.queued)} re-render job(s)"
        ]
        if self.waited:
            lines.append(
                f"re-rendered {self.rerendered}, failed {self.failed}, gone {self.gone}, "
                f"still stale {self.left}"
            )
        return lines


def queue_stale(service: UseCases, on_record: Callable[[], None] | None = None) -> StaleRun:
    """Queue one re-render job per stale record (the image ids are in `queued`)."""
    run = StaleRun()
    for record in service.queries.processed_records():
        run.checked += 1
        if service.rerendering.is_stale(record):
            service.rerendering.queue(record)
            run.queued.append(record.image_id)
        if on_record is not None:
            on_record()
    return run


def wait_until_fresh(
    service: UseCases,
    run: StaleRun,
    *,
    timeout_s: float,
    poll_s: float,
    queue_idle: Callable[[], bool] | None = None,
    on_progress: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> StaleRun:
    """Watch the queued records until none is stale (counted in `run`). A record is done when
    it is PROCESSED with the current renditionHash and no lease, FAILED, or gone; one that is
    PENDING or PROCESSING (a new version under way) is waited for."""
    run.waited = True
    pending = list(run.queued)
    deadline = clock() + timeout_s
    while pending:
        idle = queue_idle() if queue_idle is not None else False
        pending = list(_still_pending(service, pending, run))
        if on_progress is not None:
            on_progress(len(run.queued) - len(pending))
        if not pending or idle or clock() >= deadline:
            break
        sleep(poll_s)
    run.left = len(pending)
    return run


def _still_pending(service: UseCases, image_ids: Iterable[str], run: StaleRun) -> Iterable[str]:
    for image_id in image_ids:
        record = service.queries.find(image_id)
        if record is None:
            run.gone += 1
        elif record.status is Status.FAILED:
            run.failed += 1
        elif (
            record.status is Status.PROCESSED
            and record.lease_until is None
            and not service.rerendering.is_stale(record)
        ):
            run.rerendered += 1
        else:
            yield image_id


def _idle(queue: JobQueue) -> Callable[[], bool]:
    def idle() -> bool:
        stats = queue.stats()
        return stats.visible + stats.in_flight + stats.extra.get("delayed", 0) == 0

    return idle


class _Shown:
    """The command's progress bars: records checked, then re-renders done."""

    def __init__(self, console: Console, timeout_s: float) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self.timeout_s = timeout_s
        self.scan = self.progress.add_task("checking records", total=None)

    def queue(self, service: UseCases) -> StaleRun:
        run = queue_stale(service, lambda: self.progress.advance(self.scan))
        self.progress.update(self.scan, total=run.checked)
        return run

    def watch(
        self, service: UseCases, run: StaleRun, poll_s: float, idle_queue: JobQueue | None = None
    ) -> None:
        task = self.progress.add_task("re-rendering", total=len(run.queued))
        wait_until_fresh(
            service,
            run,
            timeout_s=self.timeout_s,
            poll_s=poll_s,
            queue_idle=_idle(idle_queue) if idle_queue is not None else None,
            on_progress=lambda done: self.progress.update(task, completed=done),
        )


def reprocess_stale(
    settings: Settings, *, wait: bool, timeout_s: float, console: Console
) -> StaleRun:
    """The command: queue the stale records' re-renders on the configured backend, and with
    `wait` see them done, with a progress bar on a terminal."""
    shown = _Shown(console, timeout_s)
    with shown.progress:
        if settings.backend == "aws":
            return _on_aws(settings, shown, wait=wait)
        return _locally(settings, shown, wait=wait)


def _on_aws(settings: Settings, shown: _Shown, *, wait: bool) -> StaleRun:
    """The Lambda workers run the jobs from SQS: this command watches the records."""
    from imgpipe.bootstrap import build_aws

    aws = build_aws(settings)
    try:
        run = shown.queue(aws.service)
        if wait and run.queued:
            shown.watch(aws.service, run, AWS_POLL_S)
    finally:
        aws.close()
    return run


def _locally(settings: Settings, shown: _Shown, *, wait: bool) -> StaleRun:
    """The server that holds the data folder runs the jobs, and this command watches the
    records; with no server, this command runs a worker pool of its own until they are done."""
    from imgpipe.bootstrap import build_local
    from imgpipe.core.errors import DataDirBusyError

    local = build_local(settings, with_workers=False)
    try:
        run = shown.queue(local.service)
    finally:
        local.stop()
    if not (wait and run.queued):
        return run
    try:
        # No server holds the data folder: run its queue here, as `imgpipe serve` would.
        worker = build_local(settings, with_watcher=False)
    except DataDirBusyError:
        watching = build_local(settings, with_workers=False)
        try:
            shown.watch(watching.service, run, LOCAL_POLL_S)
        finally:
            watching.stop()
        return run
    try:
        assert worker.pool is not None
        run.worked_here = True
        worker.queue.recover_in_flight()  # we hold the lock: leases left are a dead server's
        worker.service.maintenance.recover_leases()
        worker.pool.start()
        shown.watch(worker.service, run, LOCAL_POLL_S, worker.queue)
    finally:
        worker.stop()
    return run
