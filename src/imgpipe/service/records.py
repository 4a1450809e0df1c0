"""How a leased job ends on its record: the commit, the event it publishes, the lease given
back when the job fails for a reason a retry may not meet. Shared by processing and
re-rendering.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from imgpipe.core import lifecycle
from imgpipe.core.errors import ImageError, TransientError
from imgpipe.core.events import image_event
from imgpipe.core.model import ImageRecord
from imgpipe.service.context import ServiceContext
from imgpipe.service.renditions import drop_renditions, finished

log = logging.getLogger("imgpipe.service")


def commit(ctx: ServiceContext, claimed: ImageRecord, final: ImageRecord) -> ImageRecord:
    """Write `final` over the record this worker leased, and announce it; the record as it
    stands when another worker took over meanwhile."""
    written = ctx.records.put(final, claimed.revision)
    if written is None:
        # Our lease lapsed and another worker took over: its result stands.
        log.warning("lost the record to another worker", extra={"imageId": claimed.image_id})
        ctx.metrics.incr("results_discarded")
        return ctx.records.get(claimed.image_id) or final
    announce(ctx, written)
    return written


def announce(ctx: ServiceContext, record: ImageRecord) -> None:
    """Publish image.processed / image.failed for a record this worker just finished.
    A publisher buffers and retries on its own; should one raise anyway, the image's
    result stands and the failure is counted, never turned into a retry of the image."""
    event = image_event(record)
    if event is None:
        return
    try:
        ctx.events.publish(event)
    except Exception:
        log.exception("publishing an event failed", extra={"imageId": record.image_id})
        ctx.metrics.incr("events_failed")


def finish_failed(
    ctx: ServiceContext, claimed: ImageRecord, exc: ImageError, started: float
) -> ImageRecord:
    """End the leased record FAILED for a bad image, its renditions deleted."""
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    final = finished(claimed, exc, ctx.clock(), elapsed_ms, ctx.options.rendition_hash)
    record = commit(ctx, claimed, final)
    drop_renditions(ctx.objects, claimed.renditions, [])
    ctx.metrics.incr("images_failed", code=exc.code)
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


def release(ctx: ServiceContext, claimed: ImageRecord, exc: TransientError) -> None:
    """Give the lease of a job that failed transiently back (PENDING, with the reason), so
    that its retry starts at once instead of finding the image busy."""
    with contextlib.suppress(TransientError):  # if not, the lease lapses by itself
        ctx.records.put(
            lifecycle.released(claimed, exc.code, str(exc), ctx.clock()), claimed.revision
        )


@contextlib.contextmanager
def lease_given_back(ctx: ServiceContext, claimed: ImageRecord) -> Iterator[None]:
    """A re-render's lease, given back (the record as it was) should the block fail
    transiently; the error is raised on."""
    try:
        yield
    except TransientError:
        with contextlib.suppress(TransientError):  # if not, the lease lapses by itself
            ctx.records.put(lifecycle.unleased(claimed), claimed.revision)
        raise
