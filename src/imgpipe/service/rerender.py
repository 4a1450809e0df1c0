"""Re-rendering (README: Versioned renditions): bring a PROCESSED record's renditions up to this
worker's rendition settings, rendering only the stale presets, from one decode."""

from __future__ import annotations

import logging
import time

from imgpipe.core import jobs, lifecycle
from imgpipe.core.errors import ImageBusyError, ImageError, ObjectNotFoundError, TransientError
from imgpipe.core.jobs import event_from_info
from imgpipe.core.keys import image_id_for, rendition_key, validate_key
from imgpipe.core.model import ImageRecord, Rendition, Status
from imgpipe.core.rendering import RenderResult
from imgpipe.service.context import CAS_RETRIES, ServiceContext
from imgpipe.service.records import announce, finish_failed, lease_given_back
from imgpipe.service.renditions import drop_renditions, held, put_renditions, render

log = logging.getLogger("imgpipe.service")


class Rerendering:
    """The `rerender` job, and what `imgpipe reprocess --stale` queues."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    @property
    def rendition_hash(self) -> str:
        """The renditionHash this worker's settings make."""
        return self._ctx.options.rendition_hash

    def is_stale(self, record: ImageRecord) -> bool:
        return lifecycle.is_stale(record, self.rendition_hash)

    def queue(self, record: ImageRecord) -> None:
        """Queue a re-render of `record` (`imgpipe reprocess --stale`). Locally a job for the
        same key and settings still waiting is not queued twice; on SQS a second copy finds
        nothing stale and does nothing."""
        self._ctx.send(jobs.Rerender(record.key, self.rendition_hash), cost=record.file_size or 0)

    def rerender(self, key: str) -> ImageRecord | None:
        """A re-render job: bring a PROCESSED record's renditions up to this worker's settings.

        Only the stale presets (missing, or written with another specHash) are rendered, from
        one decode of the original; up-to-date renditions are not rewritten; renditions of
        presets no longer configured are deleted once the record stops listing them. The
        record stays PROCESSED, listing its current renditions, while this worker holds its
        lease. Returns the record (None when there is none)."""
        with self._ctx.running.of(key):
            return self._rerender(key)

    def _rerender(self, key: str) -> ImageRecord | None:
        ctx = self._ctx
        validate_key(key)
        with ctx.gate:  # as for processing: leased only once a process is free
            claim = self._claim(key)
            if not isinstance(claim, lifecycle.Rerender):
                return claim
            claimed, plan = claim.record, claim.plan
            started = time.perf_counter()
            with lease_given_back(ctx, claimed):
                rendered = self._render_stale(key, claimed, plan)
        with lease_given_back(ctx, claimed):
            fresh = self._written(claimed, rendered)
            if isinstance(fresh, ImageError):
                # The current settings refuse this image (lower limits, say): as a full
                # reprocess would, the record ends FAILED.
                return finish_failed(ctx, claimed, fresh, started)
            final = lifecycle.rerendered(
                claimed, plan, fresh, ctx.options.presets, self.rendition_hash, ctx.clock()
            )
            written = ctx.records.put(final, claimed.revision)
        if written is None:
            log.warning("lost the record to another worker", extra={"imageId": claimed.image_id})
            ctx.metrics.incr("results_discarded")
            return ctx.records.get(claimed.image_id)
        self._done(claim, written, fresh, started)
        return written

    def _render_stale(
        self, key: str, claimed: ImageRecord, plan: lifecycle.RenditionPlan
    ) -> RenderResult | ImageError | None:
        """The stale presets' render from one decode of the original (None: none is stale),
        or the error that fails the record."""
        if not plan.render:
            return None
        try:
            original = self._ctx.objects.open(key, version_id=claimed.version_id)
        except ObjectNotFoundError as exc:
            raise TransientError(f"{key!r} changed while being re-rendered") from exc
        wanted = set(plan.render)
        options = self._ctx.options.render
        options = options._replace(
            renditions=tuple(s for s in options.renditions if s.name in wanted),
        )
        with held(original):
            return render(self._ctx.renderer, original, options)

    def _written(
        self, claimed: ImageRecord, rendered: RenderResult | ImageError | None
    ) -> list[Rendition] | ImageError:
        """The fresh renditions, written (none when nothing was stale), or the image error."""
        if rendered is None:
            return []
        if isinstance(rendered, ImageError):
            return rendered
        try:
            return put_renditions(
                self._ctx.objects,
                rendered,
                lambda name, ext: rendition_key(claimed.image_id, name, ext),
                self._ctx.options.presets,
            )
        except ImageError as exc:
            return exc

    def _done(
        self,
        claim: lifecycle.Rerender,
        written: ImageRecord,
        fresh: list[Rendition],
        started: float,
    ) -> None:
        drop_renditions(self._ctx.objects, claim.record.renditions, written.renditions)
        announce(self._ctx, written)
        self._ctx.metrics.incr("bytes_out", sum(r.bytes for r in fresh))
        log.info(
            "renditions brought up to date",
            extra={
                "imageId": written.image_id,
                "key": written.key,
                "rendered": list(claim.plan.render),
                "dropped": [r.key for r in claim.plan.drop],
                "ms": round((time.perf_counter() - started) * 1000),
            },
        )

    def _claim(self, key: str) -> lifecycle.Rerender | ImageRecord | None:
        """The leased record and its plan, or the record as it is when there is nothing to do."""
        ctx = self._ctx
        for _ in range(CAS_RETRIES):
            current = ctx.records.get(image_id_for(key))
            decision = lifecycle.decide_rerender(
                current,
                ctx.options.presets,
                self.rendition_hash,
                same_version=self._same_version(key, current),
                now=ctx.clock(),
                lease_s=ctx.options.lease_s,
            )
            match decision:
                case lifecycle.Skip(reason):
                    ctx.metrics.incr("events_skipped", reason=reason)
                    return current
                case lifecycle.Busy(until):
                    raise ctx.busy(until)
                case lifecycle.Rerender(record, plan):
                    assert current is not None
                    leased = ctx.records.put(record, current.revision)
                    if leased is not None:
                        return lifecycle.Rerender(leased, plan)
        raise ImageBusyError(f"record of {key!r} kept changing")

    def _same_version(self, key: str, current: ImageRecord | None) -> bool:
        """Whether the original in the store is still the version a PROCESSED record shows."""
        if current is None or current.status is not Status.PROCESSED:
            return False
        info = self._ctx.objects.head(key)
        return info is not None and lifecycle.version_order(event_from_info(info), current) == 0
