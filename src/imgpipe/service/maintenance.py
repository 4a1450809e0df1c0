"""Keeping stores and queue in step: delete, originals removed by other means, the backfill,
dead letters redriven, and leases a stopped or failed worker left behind."""

from __future__ import annotations

from imgpipe.core import jobs, lifecycle
from imgpipe.core.jobs import event_from_info
from imgpipe.core.keys import image_id_for, is_upload_key
from imgpipe.core.model import ImageRecord, Status
from imgpipe.service.context import ServiceContext
from imgpipe.service.delivery import drop_derived
from imgpipe.service.ingest import mark_pending


class Maintenance:
    """DELETE /images/{id}, the `removed` job, `imgpipe backfill` and `redrive`, and what a
    local server does as it starts and after its database failed."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def delete(self, image_id: str) -> None:
        """DELETE /images/{id}: the original, its renditions and its record."""
        record = self._ctx.record(image_id)
        self._ctx.objects.delete(record.key)
        self._forget(record)

    def queue_removed(self, key: str) -> None:
        """The original of `key` was deleted by other means (the uploads watcher saw it go):
        queue the removal of its renditions and record."""
        self._ctx.send(jobs.Removed(key))

    def on_removed(self, key: str) -> None:
        """The original was deleted by other means: drop renditions and record."""
        if self._ctx.objects.head(key) is not None:
            return  # re-uploaded since: the created event handles it
        record = self._ctx.records.get(image_id_for(key))
        if record is not None:
            self._forget(record)

    def _forget(self, record: ImageRecord) -> None:
        for r in record.renditions:
            self._ctx.objects.delete(r.key)
        drop_derived(self._ctx, record.image_id)
        self._ctx.records.delete(record.image_id)
        self._ctx.metrics.incr("images_deleted")

    def backfill(self, prefix: str = "uploads/") -> int:
        """Queue every original under `prefix` that no record describes at its version."""
        ctx = self._ctx
        count = 0
        for info in ctx.objects.list(prefix):
            if not is_upload_key(info.key):
                continue
            record = ctx.records.get(image_id_for(info.key))
            behind = (
                record is not None and lifecycle.version_order(event_from_info(info), record) > 0
            )
            unfinished = record is not None and not record.status.terminal
            if record is None or behind or unfinished:
                event = event_from_info(info)
                mark_pending(ctx, event)
                ctx.queue_processing(event)  # even on S3: no notification will come for these
                count += 1
        return count

    def redrive(self) -> int:
        """Move the dead-lettered jobs back to the queue; how many."""
        return self._ctx.queue.redrive()

    def recover_leases(self, reason: str = "the server stopped while processing") -> int:
        """After a crash of the sole local server, its workers' leases are void; after the
        database did not answer, those of jobs no longer running in this process are (a
        lease its job could not give back). Give them back so the redelivered jobs start at
        once instead of waiting for the leases to lapse."""
        ctx = self._ctx
        count = 0
        cursor: str | None = None
        while True:
            page = ctx.records.list(Status.PROCESSING, 100, cursor)
            for record in page.items:
                if record.key in ctx.running:
                    continue
                freed = lifecycle.released(record, "worker_crashed", reason, ctx.clock())
                if ctx.records.put(freed, record.revision) is not None:
                    count += 1
            cursor = page.next_cursor
            if cursor is None:
                return count
