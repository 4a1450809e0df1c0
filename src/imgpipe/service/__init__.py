"""The use cases over the ports: accept uploads, process, reprocess, delete, list.

The local worker, the Lambda worker, the API and the CLI all call these; none of them holds
logic of its own. Decisions come from core.lifecycle (pure); this module applies them.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import BinaryIO, Protocol

from imgpipe.config import Settings
from imgpipe.core import jobs, lifecycle, similarity
from imgpipe.core.errors import (
    IdempotencyKeyReusedError,
    ImageBusyError,
    ImageError,
    InvalidRequestError,
    NotFoundError,
    NotProcessedError,
    ObjectNotFoundError,
    RequestInProgressError,
    TooLargeError,
    TransientError,
)
from imgpipe.core.events import image_event
from imgpipe.core.files import OpenFile
from imgpipe.core.formats import CONTENT_TYPES
from imgpipe.core.imaging import RenderOptions, RenderResult
from imgpipe.core.jobs import event_from_info
from imgpipe.core.keys import (
    compare_sequencers,
    image_id_for,
    is_upload_key,
    new_upload_key,
    rendition_key,
    validate_key,
)
from imgpipe.core.model import (
    ImageMetadata,
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
from imgpipe.core.similarity import Match

log = logging.getLogger("imgpipe.service")

CAS_RETRIES = 5
DUPLICATE_CANDIDATES = 5  # index entries read for duplicateOf, earliest first


class Renderer(Protocol):
    """Turns an original (its bytes, or the local store's open file) into metadata and encoded
    renditions (in-process or not)."""

    def render(self, original: bytes | OpenFile, options: RenderOptions) -> RenderResult: ...


def _held(original: object) -> contextlib.AbstractContextManager[object]:
    """Closes an open original when the block ends; bytes (or an error) need nothing."""
    return original if isinstance(original, OpenFile) else contextlib.nullcontext()


def _same_version(a: ObjectInfo, b: ObjectInfo) -> bool:
    return (a.etag, a.version_id, a.sequencer) == (b.etag, b.version_id, b.sequencer)


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
        renders_at_once: int | None = None,
    ) -> None:
        """`renders_at_once`: how many images may be leased and rendering at one time, the
        renderer's process count (None: no limit). The local pool runs more job threads than
        that, so that one thread writes its renditions and record while another's image is
        already rendering; this gate keeps the extra threads from leasing an image before a
        rendering process is free (the lease and durationMs would count the wait)."""
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
        self._render_gate: contextlib.AbstractContextManager[object] = (
            threading.BoundedSemaphore(renders_at_once)
            if renders_at_once is not None
            else contextlib.nullcontext()
        )
        self.options = RenderOptions.from_settings(settings)
        # What this worker's settings make: each preset's specHash, the record's renditionHash.
        spec_hashes = settings.spec_hashes()
        self.presets = tuple(
            lifecycle.Preset(spec.name, spec_hashes[spec.name], tuple(spec.formats))
            for spec in settings.renditions
        )
        self.rendition_hash = settings.rendition_hash()
        # A lease outlives the slowest allowed render, so it only lapses when a worker died.
        self.lease_s = settings.lease_s
        # Keys whose job runs in this process now (by count: a second job of a key may be
        # finding it busy): recover_leases leaves their leases alone.
        self._running: Counter[str] = Counter()
        self._running_lock = threading.Lock()

    # -- ingestion -------------------------------------------------------------------------

    def spool(self) -> BinaryIO:
        """Somewhere to write an upload as it arrives, then pass to upload() (the caller
        closes it): the object store's spool (ObjectStore.spool)."""
        return self.objects.spool()

    def upload(
        self,
        filename: str,
        body: bytes | BinaryIO,
        content_type: str,
        *,
        retry_prefix: str | None = None,
    ) -> ImageRecord:
        """Store an original under a server-chosen key and queue it (POST /images).

        `retry_prefix`: the `uploads/{id}/` an Idempotency-Key names (keys.idempotent_prefix).
        If an attempt with it was accepted, this one returns that upload's record and stores
        nothing; the same key with another file name is IdempotencyKeyReusedError; one still
        being stored is RequestInProgressError."""
        key = new_upload_key(filename, retry_prefix)
        if retry_prefix is not None:
            earlier = self.earlier_upload(retry_prefix, key)
            if earlier is not None:
                return earlier
        return self.upload_to(key, body, content_type)

    def earlier_upload(self, prefix: str, key: str) -> ImageRecord | None:
        """The record of an upload accepted under `prefix` (an Idempotency-Key's), if any."""
        found = next(iter(self.objects.list(prefix)), None)
        if found is None:
            return None
        if found.key != key:
            raise IdempotencyKeyReusedError(
                "this Idempotency-Key was used for another upload "
                f"({found.key.rsplit('/', 1)[-1]!r}): send a new key for a new upload"
            )
        record = self.records.get(image_id_for(key))
        if record is None:
            raise RequestInProgressError(
                "an upload with this Idempotency-Key is still being stored: retry shortly"
            )
        return record

    def upload_to(
        self, key: str, body: bytes | BinaryIO, content_type: str, *, if_absent: bool = False
    ) -> ImageRecord:
        """Store an original at a key the server chose earlier (a signed upload URL, used
        once: `if_absent`) and accept it. The upload is one unit: should accepting it fail,
        the original is removed again and the error raised, so a refused upload leaves
        nothing that a later backfill would turn into an image."""
        validate_key(key)
        if not is_upload_key(key):
            raise InvalidRequestError("uploads go under uploads/")
        info = self.objects.put(key, body, content_type, if_absent=if_absent)
        self.metrics.incr("uploads")
        try:
            return self.accept(info)
        except BaseException:
            self._withdraw(info)
            raise

    def _withdraw(self, info: ObjectInfo) -> None:
        """Remove a refused upload's original, unless another write replaced it since."""
        try:
            now = self.objects.head(info.key)
            if now is not None and _same_version(now, info):
                self.objects.delete(info.key)
        except Exception:
            log.exception(
                "could not remove a refused upload; the next backfill will process it",
                extra={"key": info.key, "imageId": image_id_for(info.key)},
            )

    def accept(self, info: ObjectInfo) -> ImageRecord:
        """An original landed: queue its processing and show it as PENDING.

        The job goes first: should the record's write fail, the job finds either the
        original (a dropped file: it is processed all the same) or nothing (a refused upload,
        withdrawn), and neither leaves a record that no job will ever finish."""
        event = event_from_info(info)
        if not self.store_notifies:
            self.enqueue(event)
        return self._mark_pending(event)

    def enqueue(self, event: ObjectEvent) -> None:
        job = jobs.Created(event)
        self.queue.send(job.body(), dedup_id=job.dedup_id, cost=event.size or 0)

    def enqueue_removed(self, key: str) -> None:
        """The original of `key` was deleted by other means (the uploads watcher saw it go):
        queue the removal of its renditions and record."""
        job = jobs.Removed(key)
        self.queue.send(job.body(), dedup_id=job.dedup_id)

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

    @contextlib.contextmanager
    def _job_of(self, key: str) -> Iterator[None]:
        with self._running_lock:
            self._running[key] += 1
        try:
            yield
        finally:
            with self._running_lock:
                self._running[key] -= 1
                if self._running[key] <= 0:
                    del self._running[key]

    def process(self, event: ObjectEvent) -> ImageRecord | None:
        """Process one object event. Image errors end the record FAILED and return it;
        transient errors raise (the queue retries). Returns None when nothing was done."""
        with self._job_of(event.key):
            return self._process(event)

    def _process(self, event: ObjectEvent) -> ImageRecord | None:
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

        # Opened (or read) before the gate, so that a free rendering process waits only for
        # the lease; closed once the render is back.
        original = self._open_original(event, info.size)
        with _held(original), self._render_gate:  # released before the writes
            claimed = self._claim(event)
            if claimed is None:
                return self.records.get(image_id_for(event.key))
            started = time.perf_counter()
            outcome: RenderResult | ImageError
            bytes_in = 0
            if isinstance(original, ImageError):
                outcome = original
            else:
                bytes_in = original.size if isinstance(original, OpenFile) else len(original)
                try:
                    outcome = self.renderer.render(original, self.options)
                except ImageError as exc:
                    outcome = exc
                except TransientError as exc:
                    self._release(claimed, exc)
                    raise
        try:
            try:
                if isinstance(outcome, ImageError):
                    raise outcome
                metadata = outcome.metadata  # validated before any file is written
                renditions = self._write_renditions(claimed.image_id, outcome)
            except ImageError as exc:
                return self._finish_failed(claimed, exc, started)
            return self._finish_processed(claimed, metadata, renditions, started, bytes_in)
        except TransientError as exc:
            # Writing the result can fail too (a throttled commit): give the lease back either
            # way, so the redelivery starts at once instead of finding the image busy.
            self._release(claimed, exc)
            raise

    def _open_original(self, event: ObjectEvent, size: int) -> bytes | OpenFile | ImageError:
        """The original (bytes, or the local store's open file: see ObjectStore.open), or the
        error its record will get: one over the size limit is not read. An original gone since
        the event is transient (the retry finds it gone, or overwritten, and acts on that)."""
        limit = self.settings.limits.max_bytes
        if size > limit:
            return TooLargeError(f"{size} bytes; the limit is {limit}")
        try:
            return self.objects.open(event.key, version_id=event.version_id)
        except ObjectNotFoundError as exc:
            raise TransientError(f"{event.key!r} changed while being processed") from exc

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
                    raise self._busy(until)
                case lifecycle.Start(record):
                    written = self.records.put(record, current.revision if current else None)
                    if written is not None:
                        self.metrics.incr("attempts")
                        return written
        raise ImageBusyError(f"record of {event.key!r} kept changing")

    def _busy(self, lease_until: str) -> ImageBusyError:
        wait = (datetime.fromisoformat(lease_until) - self.clock()).total_seconds()
        return ImageBusyError(
            f"another worker holds this image until {lease_until}", retry_after_s=max(wait, 0.0)
        )

    def _write_renditions(self, image_id: str, result: RenderResult) -> list[Rendition]:
        spec_hashes = {p.name: p.spec_hash for p in self.presets}
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
                    specHash=spec_hashes.get(r.name),
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
        metadata: ImageMetadata,
        renditions: list[Rendition],
        started: float,
        bytes_in: int,
    ) -> ImageRecord:
        elapsed = time.perf_counter() - started
        final = lifecycle.processed(
            claimed,
            metadata,
            renditions,
            self.clock(),
            round(elapsed * 1000),
            rendition_hash=self.rendition_hash,
        )
        final = final.model_copy(update={"duplicate_of": self._earliest_with_same_bytes(final)})
        record = self._link_copies(self._commit(claimed, final))
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

    def recover_leases(self, reason: str = "the server stopped while processing") -> int:
        """After a crash of the sole local server, its workers' leases are void; after the
        database did not answer, those of jobs no longer running in this process are (a
        lease its job could not give back). Give them back so the redelivered jobs start at
        once instead of waiting for the leases to lapse."""
        count = 0
        cursor: str | None = None
        while True:
            page = self.records.list(Status.PROCESSING, 100, cursor)
            for record in page.items:
                with self._running_lock:
                    if record.key in self._running:
                        continue
                freed = lifecycle.released(record, "worker_crashed", reason, self.clock())
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

    # -- re-rendering (README: Versioned renditions) -------------------------------------

    def rerender(self, key: str) -> ImageRecord | None:
        """See `_rerender`."""
        with self._job_of(key):
            return self._rerender(key)

    def _rerender(self, key: str) -> ImageRecord | None:
        """A re-render job: bring a PROCESSED record's renditions up to this worker's settings.

        Only the stale presets (missing, or written with another specHash) are rendered, from
        one decode of the original; up-to-date renditions are not rewritten; renditions of
        presets no longer configured are deleted once the record stops listing them. The
        record stays PROCESSED, listing its current renditions, while this worker holds its
        lease. Returns the record (None when there is none)."""
        validate_key(key)
        with self._render_gate:  # as for process(): leased only once a process is free
            claim = self._claim_rerender(key)
            if not isinstance(claim, lifecycle.Rerender):
                return claim
            claimed, plan = claim.record, claim.plan
            started = time.perf_counter()
            try:
                rendered = self._render_stale(key, claimed, plan)
            except TransientError:
                with contextlib.suppress(TransientError):  # if not, the lease lapses by itself
                    self.records.put(lifecycle.unleased(claimed), claimed.revision)
                raise
        try:
            fresh: list[Rendition] = []
            try:
                if isinstance(rendered, ImageError):
                    raise rendered
                if rendered is not None:
                    fresh = self._write_renditions(claimed.image_id, rendered)
            except ImageError as exc:
                # The current settings refuse this image (lower limits, say): as a full
                # reprocess would, the record ends FAILED.
                return self._finish_failed(claimed, exc, started)
            final = lifecycle.rerendered(
                claimed, plan, fresh, self.presets, self.rendition_hash, self.clock()
            )
            written = self.records.put(final, claimed.revision)
        except TransientError:
            with contextlib.suppress(TransientError):  # if not, the lease lapses by itself
                self.records.put(lifecycle.unleased(claimed), claimed.revision)
            raise
        if written is None:
            log.warning("lost the record to another worker", extra={"imageId": claimed.image_id})
            self.metrics.incr("results_discarded")
            return self.records.get(claimed.image_id)
        self._drop_renditions(claimed.renditions, written.renditions)
        self._announce(written)
        self.metrics.incr("bytes_out", sum(r.bytes for r in fresh))
        log.info(
            "renditions brought up to date",
            extra={
                "imageId": claimed.image_id,
                "key": key,
                "rendered": list(plan.render),
                "dropped": [r.key for r in plan.drop],
                "ms": round((time.perf_counter() - started) * 1000),
            },
        )
        return written

    def _render_stale(
        self, key: str, claimed: ImageRecord, plan: lifecycle.RenditionPlan
    ) -> RenderResult | ImageError | None:
        """The stale presets' render from one decode of the original (None: none is stale),
        or the error that fails the record."""
        if not plan.render:
            return None
        try:
            original = self.objects.open(key, version_id=claimed.version_id)
        except ObjectNotFoundError as exc:
            raise TransientError(f"{key!r} changed while being re-rendered") from exc
        wanted = set(plan.render)
        options = self.options._replace(
            renditions=tuple(s for s in self.options.renditions if s.name in wanted),
        )
        try:
            with _held(original):
                return self.renderer.render(original, options)
        except ImageError as exc:
            return exc

    def _claim_rerender(self, key: str) -> lifecycle.Rerender | ImageRecord | None:
        """The leased record and its plan, or the record as it is when there is nothing to do."""
        image_id = image_id_for(key)
        for _ in range(CAS_RETRIES):
            current = self.records.get(image_id)
            same_version = False
            if current is not None and current.status is Status.PROCESSED:
                info = self.objects.head(key)
                same_version = (
                    info is not None
                    and lifecycle.version_order(event_from_info(info), current) == 0
                )
            decision = lifecycle.decide_rerender(
                current,
                self.presets,
                self.rendition_hash,
                same_version=same_version,
                now=self.clock(),
                lease_s=self.lease_s,
            )
            match decision:
                case lifecycle.Skip(reason):
                    self.metrics.incr("events_skipped", reason=reason)
                    return current
                case lifecycle.Busy(until):
                    raise self._busy(until)
                case lifecycle.Rerender(record, plan):
                    assert current is not None
                    written = self.records.put(record, current.revision)
                    if written is not None:
                        return lifecycle.Rerender(written, plan)
        raise ImageBusyError(f"record of {key!r} kept changing")

    def processed_records(self, page_size: int = 100) -> Iterator[ImageRecord]:
        """Every PROCESSED record, page by page through the store's status index."""
        cursor: str | None = None
        while True:
            page = self.records.list(Status.PROCESSED, page_size, cursor)
            yield from page.items
            cursor = page.next_cursor
            if cursor is None:
                return

    def is_stale(self, record: ImageRecord) -> bool:
        return lifecycle.is_stale(record, self.rendition_hash)

    def enqueue_rerender(self, record: ImageRecord) -> None:
        """Queue a re-render of `record` (`imgpipe reprocess --stale`). Locally a job for the
        same key and settings still waiting is not queued twice; on SQS a second copy finds
        nothing stale and does nothing."""
        job = jobs.Rerender(record.key, self.rendition_hash)
        self.queue.send(job.body(), dedup_id=job.dedup_id, cost=record.file_size or 0)

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

    # -- near-duplicates (README: Near-duplicates) -------------------------------------------

    def similar(self, image_id: str, max_distance: int | None, limit: int) -> builtins.list[Match]:
        """GET /images/{id}/similar: the images with the same bytes or a pHash within
        `max_distance` (at most the configured one), closest first, as stored now."""
        configured = self.settings.similarity.max_distance
        distance = configured if max_distance is None else max_distance
        if not 0 <= distance <= configured:
            raise InvalidRequestError(f"maxDistance must be 0..{configured}")
        record = self.get(image_id)
        if record.sha256 is None and not similarity.valid_phash(record.phash):
            raise NotProcessedError(f"image {image_id} is {record.status}: not processed yet")
        found: dict[str, None] = {}  # imageIds, closest first, in order
        if record.sha256 is not None:
            found.update(dict.fromkeys(self.records.with_sha256(record.sha256, limit + 1)))
        if similarity.valid_phash(record.phash):
            hits = self.records.near_phash(record.phash, distance, limit + 1)
            found.update(dict.fromkeys(h.image_id for h in hits))
        matches: list[Match] = []
        for other_id in found:
            # The indexes may lag (DynamoDB's GSIs): the record as stored now decides.
            other = self.records.get(other_id) if other_id != image_id else None
            hit = similarity.match(record, other, distance) if other is not None else None
            if hit is not None:
                matches.append(hit)
        return similarity.ranked(matches)[:limit]

    def _earliest_with_same_bytes(self, record: ImageRecord) -> str | None:
        """duplicateOf: the earliest upload (then imageId) with the same sha256, if it came
        before this one; a fact at processing time, not kept in step with later deletes."""
        if record.sha256 is None:
            return None
        for other_id in self.records.with_sha256(record.sha256, DUPLICATE_CANDIDATES):
            other = self.records.get(other_id) if other_id != record.image_id else None
            if other is None or other.sha256 != record.sha256:
                continue  # itself, or an index entry that lags a delete or a new version
            return other_id if similarity.uploaded_before(other, record) else None
        return None

    def _link_copies(self, record: ImageRecord) -> ImageRecord:
        """Two copies processed at once may each look for the other before either is
        indexed, and neither gets duplicateOf. So after its commit a worker looks again: the
        later of the two commits sees both, and points every later copy that names no
        original at the earliest. Returns `record` as stored now."""
        if record.status is not Status.PROCESSED or record.sha256 is None:
            return record
        ids = self.records.with_sha256(record.sha256, DUPLICATE_CANDIDATES)
        if not any(i != record.image_id for i in ids):
            return record
        copies = [record] + [
            other
            for other in (self.records.get(i) for i in ids if i != record.image_id)
            if other is not None
            and other.sha256 == record.sha256
            and other.status is Status.PROCESSED
        ]
        earliest = min(copies, key=lambda r: (r.uploaded_at, r.image_id))
        for copy in copies:
            if copy is earliest or copy.duplicate_of is not None or copy.lease_until is not None:
                continue  # a leased copy is being re-rendered: its worker's write must land
            linked = copy.model_copy(update={"duplicate_of": earliest.image_id})
            with contextlib.suppress(TransientError):  # best effort: a fact, not a job
                written = self.records.put(linked, copy.revision)
                if written is not None and copy is record:
                    record = written
        return record

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


def dispatch(job: jobs.Job, service: ImageService) -> None:
    """Run one job: the one translation of a queue message into a service call, for the local
    worker and the Lambda worker alike."""
    match job:
        case jobs.Created(event):
            service.process(event)
        case jobs.Removed(key):
            service.on_removed(key)
        case jobs.Rerender(key):
            service.rerender(key)


def give_up(job: jobs.Job, exc: BaseException, attempts: int, service: ImageService) -> None:
    """A job failed on its last attempt (jobs.gives_up) and the queue will dead-letter it:
    make that visible on the record. Only a created job's record ends FAILED; a failed
    removal or re-render leaves the record as it stands."""
    if isinstance(job, jobs.Created):
        service.give_up(job.event, exc, attempts)
