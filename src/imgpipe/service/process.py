"""Processing an original: claim its record (a lease), render, write the renditions, commit
PROCESSED or FAILED; give the lease back on a transient failure, and end the record FAILED
when the queue gives up. Decisions come from core.lifecycle (pure); this module applies them.
"""

from __future__ import annotations

import logging
import time

from imgpipe.core import lifecycle
from imgpipe.core.errors import (
    ImageBusyError,
    ImageError,
    NotFoundError,
    ObjectNotFoundError,
    TooLargeError,
    TransientError,
)
from imgpipe.core.files import OpenFile
from imgpipe.core.jobs import event_from_info
from imgpipe.core.keys import (
    compare_sequencers,
    image_id_for,
    is_upload_key,
    rendition_key,
    validate_key,
)
from imgpipe.core.model import ImageRecord, ObjectEvent, Status
from imgpipe.core.rendering import RenderResult
from imgpipe.service.context import CAS_RETRIES, ServiceContext
from imgpipe.service.delivery import drop_derived_quietly
from imgpipe.service.duplicates import earliest_with_same_bytes, link_copies
from imgpipe.service.records import announce, commit, finish_failed, release
from imgpipe.service.renditions import (
    Rendered,
    drop_renditions,
    finished,
    held,
    render,
    write_result,
)

log = logging.getLogger("imgpipe.service")


class Processing:
    """The `created` job, POST /process-image and reprocessing."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def process(self, event: ObjectEvent) -> ImageRecord | None:
        """Process one object event. Image errors end the record FAILED and return it;
        transient errors raise (the queue retries). Returns None when nothing was done."""
        with self._ctx.running.of(event.key):
            return self._process(event)

    def _process(self, event: ObjectEvent) -> ImageRecord | None:
        validate_key(event.key)
        if not is_upload_key(event.key):
            log.info("ignoring key outside uploads/", extra={"key": event.key})
            return None
        info = self._ctx.objects.head(event.key)
        if info is None:
            return self._gone(event)
        if info.sequencer and compare_sequencers(info.sequencer, event.sequencer) > 0:
            # The object was overwritten since this event: process what is there now.
            event = event_from_info(info, force=event.force)

        # Opened (or read) before the gate, so that a free rendering process waits only for
        # the lease; closed once the render is back.
        original = self._open_original(event, info.size)
        with held(original), self._ctx.gate:  # released before the writes
            claimed = self._claim(event)
            if claimed is None:
                return self._ctx.records.get(image_id_for(event.key))
            started = time.perf_counter()
            outcome: RenderResult | ImageError
            if isinstance(original, ImageError):
                outcome, bytes_in = original, 0
            else:
                bytes_in = original.size if isinstance(original, OpenFile) else len(original)
                outcome = self._render(claimed, original)
        return self._finish(claimed, outcome, started, bytes_in)

    def _open_original(self, event: ObjectEvent, size: int) -> bytes | OpenFile | ImageError:
        """The original (bytes, or the local store's open file: see ObjectStore.open), or the
        error its record will get: one over the size limit is not read. An original gone since
        the event is transient (the retry finds it gone, or overwritten, and acts on that)."""
        limit = self._ctx.options.max_bytes
        if size > limit:
            return TooLargeError(f"{size} bytes; the limit is {limit}")
        try:
            return self._ctx.objects.open(event.key, version_id=event.version_id)
        except ObjectNotFoundError as exc:
            raise TransientError(f"{event.key!r} changed while being processed") from exc

    def _claim(self, event: ObjectEvent) -> ImageRecord | None:
        ctx = self._ctx
        for _ in range(CAS_RETRIES):
            current = ctx.records.get(image_id_for(event.key))
            decision = lifecycle.decide_start(
                current,
                event,
                bucket=ctx.objects.bucket,
                now=ctx.clock(),
                lease_s=ctx.options.lease_s,
            )
            match decision:
                case lifecycle.Skip(reason):
                    ctx.metrics.incr("events_skipped", reason=reason)
                    return None
                case lifecycle.Busy(until):
                    raise ctx.busy(until)
                case lifecycle.Start(record):
                    leased = ctx.records.put(record, current.revision if current else None)
                    if leased is not None:
                        ctx.metrics.incr("attempts")
                        return leased
        raise ImageBusyError(f"record of {event.key!r} kept changing")

    def _render(
        self, claimed: ImageRecord, original: bytes | OpenFile
    ) -> RenderResult | ImageError:
        try:
            return render(self._ctx.renderer, original, self._ctx.options.render)
        except TransientError as exc:
            release(self._ctx, claimed, exc)
            raise

    def _finish(
        self,
        claimed: ImageRecord,
        outcome: RenderResult | ImageError,
        started: float,
        bytes_in: int,
    ) -> ImageRecord:
        """Write the renditions and commit the record. Writing the result can fail
        transiently too (a throttled commit): the lease is given back either way, so the
        redelivery starts at once instead of finding the image busy."""
        try:
            rendered = write_result(
                self._ctx.objects,
                outcome,
                lambda name, ext: rendition_key(claimed.image_id, name, ext),
                self._ctx.options.presets,
            )
            if isinstance(rendered, ImageError):
                record = finish_failed(self._ctx, claimed, rendered, started)
            else:
                record = self._finish_processed(claimed, rendered, started, bytes_in)
        except TransientError as exc:
            release(self._ctx, claimed, exc)
            raise
        # The record's new processedAt (or version) already made them unreachable.
        drop_derived_quietly(self._ctx, claimed.image_id)
        return record

    def _finish_processed(
        self, claimed: ImageRecord, rendered: Rendered, started: float, bytes_in: int
    ) -> ImageRecord:
        ctx = self._ctx
        elapsed = time.perf_counter() - started
        final = finished(
            claimed, rendered, ctx.clock(), round(elapsed * 1000), ctx.options.rendition_hash
        )
        final = final.model_copy(update={"duplicate_of": earliest_with_same_bytes(ctx, final)})
        record = link_copies(ctx, commit(ctx, claimed, final))
        drop_renditions(ctx.objects, claimed.renditions, rendered.renditions)
        ctx.metrics.incr("images_processed")
        ctx.metrics.timing("processing_seconds", elapsed)
        ctx.metrics.incr("bytes_in", bytes_in)
        ctx.metrics.incr("bytes_out", sum(r.bytes for r in rendered.renditions))
        return record

    def _gone(self, event: ObjectEvent) -> ImageRecord | None:
        """The original is not there: fail the record of this version, create none."""
        ctx = self._ctx
        current = ctx.records.get(image_id_for(event.key))
        if current is None or current.status.terminal:
            return current
        if lifecycle.version_order(event, current) < 0:
            return current
        final = lifecycle.failed(
            current, "not_found", f"{event.key!r} no longer exists", ctx.clock()
        )
        written = ctx.records.put(final, current.revision)
        ctx.metrics.incr("images_failed", code="not_found")
        if written is not None:
            announce(ctx, written)
        return written or ctx.records.get(current.image_id)

    def give_up(self, event: ObjectEvent, exc: BaseException, attempts: int) -> None:
        """The queue will dead-letter this event: make the failure visible on the record."""
        ctx = self._ctx
        current = ctx.records.get(image_id_for(event.key))
        if current is None or current.status is Status.PROCESSED:
            return
        if lifecycle.version_order(event, current) < 0:
            return
        code = exc.code if isinstance(exc, TransientError) else "transient"
        final = lifecycle.failed(
            current, code, f"gave up after {attempts} attempts: {exc}", ctx.clock()
        )
        written = ctx.records.put(final, current.revision)
        if written is not None:
            ctx.metrics.incr("dead_letters")
            ctx.metrics.incr("images_failed", code=code)
            announce(ctx, written)

    def process_key_now(self, key: str) -> ImageRecord:
        """POST /process-image: process an existing object synchronously."""
        validate_key(key)
        if not is_upload_key(key):
            raise NotFoundError(f"only keys under uploads/ are processed, not {key!r}")
        info = self._ctx.objects.head(key)
        if info is None:
            raise NotFoundError(f"no object with key {key!r}")
        record = self.process(event_from_info(info, force=True))
        if record is None:
            raise NotFoundError(f"no object with key {key!r}")
        return record

    def reprocess(self, image_id: str) -> ImageRecord:
        """Queue an image to be processed again in full; the record as it is now."""
        record = self._ctx.record(image_id)
        info = self._ctx.objects.head(record.key)
        if info is None:
            raise NotFoundError(f"the original of {image_id} is gone")
        self._ctx.queue_processing(event_from_info(info, force=True))
        return record
