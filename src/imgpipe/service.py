"""The use cases over the ports: accept uploads, process, reprocess, delete, list.

The local worker, the Lambda worker, the API and the CLI all call these; none of them holds
logic of its own. Decisions come from core.lifecycle (pure); this module applies them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, BinaryIO, Protocol

from imgpipe.config import Settings
from imgpipe.core import lifecycle
from imgpipe.core.errors import (
    ImageBusyError,
    ImageError,
    InvalidRequestError,
    NotFoundError,
    ObjectNotFoundError,
    TooLargeError,
    TransientError,
)
from imgpipe.core.events import image_event
from imgpipe.core.imaging import RenderOptions, RenderResult
from imgpipe.core.keys import (
    compare_sequencers,
    image_id_for,
    is_upload_key,
    new_upload_key,
    rendition_key,
    validate_key,
)
from imgpipe.core.model import (
    CONTENT_TYPES,
    ImageRecord,
    ObjectEvent,
    ObjectInfo,
    RecordPage,
    Rendition,
    Status,
    utcnow,
)
from imgpipe.core.ports import (
    EventPublisher,
    JobQueue,
    MetadataStore,
    Metrics,
    NullEvents,
    ObjectStore,
)

log = logging.getLogger("imgpipe.service")

CAS_RETRIES = 5


class Renderer(Protocol):
    """Turns an original's bytes into metadata and encoded renditions (in-process or not)."""

    def render(self, data: bytes, options: RenderOptions) -> RenderResult: ...


def created_message(event: ObjectEvent) -> dict[str, Any]:
    return {"type": "created", **event.model_dump(mode="json", exclude_none=True)}


def removed_message(key: str) -> dict[str, Any]:
    return {"type": "removed", "key": key}


def event_from_info(info: ObjectInfo, *, force: bool = False) -> ObjectEvent:
    return ObjectEvent(
        key=info.key,
        sequencer=info.sequencer or "0",
        size=info.size,
        etag=info.etag,
        version_id=info.version_id,
        event_time=info.last_modified,
        force=force,
    )


class ImageService:
    def __init__(
        self,
        objects: ObjectStore,
        records: MetadataStore,
        queue: JobQueue,
        renderer: Renderer,
        settings: Settings,
        metrics: Metrics,
        clock: Callable[[], datetime] = utcnow,
        *,
        store_notifies: bool = False,
        events: EventPublisher | None = None,
    ) -> None:
        self.objects = objects
        self.records = records
        self.queue = queue
        self.renderer = renderer
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        # On S3 the bucket's own event notification queues every new object; locally we do.
        self.store_notifies = store_notifies
        self.events: EventPublisher = events or NullEvents()
        self.options = RenderOptions.from_settings(settings)
        # A lease outlives the slowest allowed render, so it only lapses when a worker died.
        self.lease_s = settings.lease_s

    # -- ingestion -------------------------------------------------------------------------

    def upload(self, filename: str, body: bytes | BinaryIO, content_type: str) -> ImageRecord:
        """Store an original under a server-chosen key and queue it (POST /images)."""
        return self.upload_to(new_upload_key(filename), body, content_type)

    def upload_to(self, key: str, body: bytes | BinaryIO, content_type: str) -> ImageRecord:
        """Store an original at a key the server chose earlier (a signed upload URL)."""
        validate_key(key)
        if not is_upload_key(key):
            raise InvalidRequestError("uploads go under uploads/")
        info = self.objects.put(key, body, content_type)
        self.metrics.incr("uploads")
        return self.accept(info)

    def accept(self, info: ObjectInfo) -> ImageRecord:
        """An original landed: show it as PENDING and queue its processing."""
        event = event_from_info(info)
        record = self._mark_pending(event)
        if not self.store_notifies:
            self.enqueue(event)
        return record

    def enqueue(self, event: ObjectEvent) -> None:
        dedup = f"{event.key}\x00{event.sequencer}\x00{int(event.force)}"
        self.queue.send(created_message(event), dedup_id=dedup)

    def _mark_pending(self, event: ObjectEvent) -> ImageRecord:
        for _ in range(CAS_RETRIES):
            current = self.records.get(image_id_for(event.key))
            fresh = lifecycle.decide_pending(current, event, self.objects.bucket, self.clock())
            if fresh is None:
                assert current is not None
                return current
            written = self.records.put(fresh, current.revision if current else None)
            if written is not None:
                return written
        raise ImageBusyError(f"record of {event.key!r} kept changing")

    # -- processing ------------------------------------------------------------------------

    def process(self, event: ObjectEvent) -> ImageRecord | None:
        """Process one object event. Image errors end the record FAILED and return it;
        transient errors raise (the queue retries). Returns None when nothing was done."""
        validate_key(event.key)
        if not is_upload_key(event.key):
            log.info("ignoring key outside uploads/", extra={"key": event.key})
            return None
        info = self.objects.head(event.key)
        if info is None:
            return self._gone(event)
        if info.sequencer and compare_sequencers(info.sequencer, event.sequencer) > 0:
            # The object was overwritten since this event: process what is there now.
            event = event_from_info(info, force=event.force)

        claimed = self._claim(event)
        if claimed is None:
            return self.records.get(image_id_for(event.key))
        started = time.perf_counter()
        try:
            try:
                if info.size > self.settings.limits.max_bytes:
                    raise TooLargeError(
                        f"{info.size} bytes; the limit is {self.settings.limits.max_bytes}"
                    )
                try:
                    data = self.objects.get(event.key, version_id=event.version_id)
                except ObjectNotFoundError as exc:
                    raise TransientError(f"{event.key!r} changed while being processed") from exc
                result = self.renderer.render(data, self.options)
                renditions = self._write_renditions(claimed.image_id, result)
            except ImageError as exc:
                return self._finish_failed(claimed, exc, started)
            return self._finish_processed(claimed, result, renditions, started, len(data))
        except TransientError as exc:
            # Writing the result can fail too (a throttled commit): give the lease back either
            # way, so the redelivery starts at once instead of finding the image busy.
            self._release(claimed, exc)
            raise

    def _claim(self, event: ObjectEvent) -> ImageRecord | None:
        for _ in range(CAS_RETRIES):
            current = self.records.get(image_id_for(event.key))
            decision = lifecycle.decide_start(
                current, event, bucket=self.objects.bucket, now=self.clock(), lease_s=self.lease_s
            )
            match decision:
                case lifecycle.Skip(reason):
                    self.metrics.incr("events_skipped", reason=reason)
                    return None
                case lifecycle.Busy(until):
                    wait = (datetime.fromisoformat(until) - self.clock()).total_seconds()
                    raise ImageBusyError(
                        f"another worker holds this image until {until}",
                        retry_after_s=max(wait, 0.0),
                    )
                case lifecycle.Start(record):
                    written = self.records.put(record, current.revision if current else None)
                    if written is not None:
                        self.metrics.incr("attempts")
                        return written
        raise ImageBusyError(f"record of {event.key!r} kept changing")

    def _write_renditions(self, image_id: str, result: RenderResult) -> list[Rendition]:
        written: list[Rendition] = []
        for r in result.renditions:
            key = rendition_key(image_id, r.name, r.ext)
            self.objects.put(key, r.data, CONTENT_TYPES[r.format])
            written.append(
                Rendition(
                    name=r.name,
                    format=r.format,
                    key=key,
                    width=r.width,
                    height=r.height,
                    bytes=len(r.data),
                )
            )
        return written

    def _drop_renditions(self, old: list[Rendition], keep: list[Rendition]) -> None:
        kept = {r.key for r in keep}
        for r in old:
            if r.key not in kept:
                self.objects.delete(r.key)

    def _commit(self, claimed: ImageRecord, final: ImageRecord) -> ImageRecord:
        written = self.records.put(final, claimed.revision)
        if written is None:
            # Our lease lapsed and another worker took over: its result stands.
            log.warning("lost the record to another worker", extra={"imageId": claimed.image_id})
            self.metrics.incr("results_discarded")
            return self.records.get(claimed.image_id) or final
        self._announce(written)
        return written

    def _announce(self, record: ImageRecord) -> None:
        """Publish image.processed / image.failed for a record this worker just finished.
        A publisher buffers and retries on its own; should one raise anyway, the image's
        result stands and the failure is counted, never turned into a retry of the image."""
        event = image_event(record)
        if event is None:
            return
        try:
            self.events.publish(event)
        except Exception:
            log.exception("publishing an event failed", extra={"imageId": record.image_id})
            self.metrics.incr("events_failed")

    def _finish_processed(
        self,
        claimed: ImageRecord,
        result: RenderResult,
        renditions: list[Rendition],
        started: float,
        bytes_in: int,
    ) -> ImageRecord:
        elapsed = time.perf_counter() - started
        final = lifecycle.processed(
            claimed, result.metadata, renditions, self.clock(), round(elapsed * 1000)
        )
        record = self._commit(claimed, final)
        self._drop_renditions(claimed.renditions, renditions)
        self.metrics.incr("images_processed")
        self.metrics.timing("processing_seconds", elapsed)
        self.metrics.incr("bytes_in", bytes_in)
        self.metrics.incr("bytes_out", sum(r.bytes for r in renditions))
        return record

    def _finish_failed(self, claimed: ImageRecord, exc: ImageError, started: float) -> ImageRecord:
        elapsed = time.perf_counter() - started
        final = lifecycle.failed(
            claimed, exc.code, str(exc) or exc.code, self.clock(), round(elapsed * 1000)
        )
        record = self._commit(claimed, final)
        self._drop_renditions(claimed.renditions, [])
        self.metrics.incr("images_failed", code=exc.code)
        log.info(
            "image failed",
            extra={
                "imageId": claimed.image_id,
                "key": claimed.key,
                "code": exc.code,
                "attempt": claimed.attempts,
            },
        )
        return record

    def _release(self, claimed: ImageRecord, exc: TransientError) -> None:
        with contextlib.suppress(TransientError):  # if not, the lease lapses by itself
            self.records.put(
                lifecycle.released(claimed, exc.code, str(exc), self.clock()), claimed.revision
            )

    def recover_leases(self) -> int:
        """After a crash of the sole local server: its workers' leases are void. Give them back
        so the redelivered jobs start at once instead of waiting for the leases to lapse."""
        count = 0
        cursor: str | None = None
        while True:
            page = self.records.list(Status.PROCESSING, 100, cursor)
            for record in page.items:
                freed = lifecycle.released(
                    record, "worker_crashed", "the server stopped while processing", self.clock()
                )
                if self.records.put(freed, record.revision) is not None:
                    count += 1
            cursor = page.next_cursor
            if cursor is None:
                return count

    def _gone(self, event: ObjectEvent) -> ImageRecord | None:
        """The original is not there: fail the record of this version, create none."""
        current = self.records.get(image_id_for(event.key))
        if current is None or current.status.terminal:
            return current
        if lifecycle.version_order(event, current) < 0:
            return current
        final = lifecycle.failed(
            current, "not_found", f"{event.key!r} no longer exists", self.clock()
        )
        written = self.records.put(final, current.revision)
        self.metrics.incr("images_failed", code="not_found")
        if written is not None:
            self._announce(written)
        return written or self.records.get(current.image_id)

    def give_up(self, event: ObjectEvent, exc: BaseException, attempts: int) -> None:
        """The queue will dead-letter this event: make the failure visible on the record."""
        current = self.records.get(image_id_for(event.key))
        if current is None or current.status is Status.PROCESSED:
            return
        if lifecycle.version_order(event, current) < 0:
            return
        code = exc.code if isinstance(exc, TransientError) else "transient"
        final = lifecycle.failed(
            current, code, f"gave up after {attempts} attempts: {exc}", self.clock()
        )
        written = self.records.put(final, current.revision)
        if written is not None:
            self.metrics.incr("dead_letters")
            self.metrics.incr("images_failed", code=code)
            self._announce(written)

    # -- user actions ----------------------------------------------------------------------

    def process_key_now(self, key: str) -> ImageRecord:
        """POST /process-image: process an existing object synchronously."""
        validate_key(key)
        if not is_upload_key(key):
            raise NotFoundError(f"only keys under uploads/ are processed, not {key!r}")
        info = self.objects.head(key)
        if info is None:
            raise NotFoundError(f"no object with key {key!r}")
        record = self.process(event_from_info(info, force=True))
        if record is None:
            raise NotFoundError(f"no object with key {key!r}")
        return record

    def reprocess(self, image_id: str) -> ImageRecord:
        record = self.get(image_id)
        info = self.objects.head(record.key)
        if info is None:
            raise NotFoundError(f"the original of {image_id} is gone")
        self.enqueue(event_from_info(info, force=True))
        return record

    def get(self, image_id: str) -> ImageRecord:
        record = self.records.get(image_id)
        if record is None:
            raise NotFoundError(f"no image {image_id}")
        return record

    def list(self, status: Status | None, limit: int, cursor: str | None) -> RecordPage:
        return self.records.list(status, limit, cursor)

    def delete(self, image_id: str) -> None:
        """DELETE /images/{id}: the original, its renditions and its record."""
        record = self.get(image_id)
        self.objects.delete(record.key)
        self._forget(record)

    def on_removed(self, key: str) -> None:
        """The original was deleted by other means: drop renditions and record."""
        if self.objects.head(key) is not None:
            return  # re-uploaded since: the created event handles it
        record = self.records.get(image_id_for(key))
        if record is not None:
            self._forget(record)

    def _forget(self, record: ImageRecord) -> None:
        for r in record.renditions:
            self.objects.delete(r.key)
        self.records.delete(record.image_id)
        self.metrics.incr("images_deleted")

    def backfill(self, prefix: str = "uploads/") -> int:
        """Queue every original under `prefix` that no record describes at its version."""
        count = 0
        for info in self.objects.list(prefix):
            if not is_upload_key(info.key):
                continue
            record = self.records.get(image_id_for(info.key))
            behind = (
                record is not None and lifecycle.version_order(event_from_info(info), record) > 0
            )
            unfinished = record is not None and not record.status.terminal
            if record is None or behind or unfinished:
                event = event_from_info(info)
                self._mark_pending(event)
                self.enqueue(event)  # even on S3: no notification will come for these
                count += 1
        return count
