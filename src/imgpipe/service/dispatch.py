"""The one dispatcher of jobs, and what giving up on one does: shared by the local worker and
the Lambda worker, which only receive, acknowledge and retry."""

from __future__ import annotations

from imgpipe.core import jobs
from imgpipe.service.use_cases import UseCases


def dispatch(job: jobs.Job, service: UseCases) -> None:
    """Run one job through the use case it names."""
    match job:
        case jobs.Created(event):
            service.processing.process(event)
        case jobs.Removed(key):
            service.maintenance.on_removed(key)
        case jobs.Rerender(key):
            service.rerendering.rerender(key)


def give_up(job: jobs.Job, exc: BaseException, attempts: int, service: UseCases) -> None:
    """A job failed on its last attempt (jobs.gives_up) and the queue will dead-letter it:
    make that visible on the record. Only a created job's record ends FAILED; a failed
    removal or re-render leaves the record as it stands."""
    if isinstance(job, jobs.Created):
        service.processing.give_up(job.event, exc, attempts)


class UseCaseJobs:
    """The use cases as a worker's JobHandler (core.ports): what the local job threads are
    given, so that they need not know the service."""

    def __init__(self, service: UseCases) -> None:
        self.service = service

    def run(self, job: jobs.Job) -> None:
        dispatch(job, self.service)

    def give_up(self, job: jobs.Job, exc: BaseException, attempts: int) -> None:
        give_up(job, exc, attempts, self.service)

    def recover_leases(self, reason: str) -> int:
        return self.service.maintenance.recover_leases(reason)
