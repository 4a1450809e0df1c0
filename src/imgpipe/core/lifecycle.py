"""A record's state machine as pure functions: which event starts work, which is stale.

PENDING -> PROCESSING -> PROCESSED | FAILED. One record per key; `sequencer` orders versions
of that key. An event older than the record is stale; an equal one on a finished record is a
duplicate (unless forced, or the record failed for a transient reason); an image whose lease
is held by another worker is busy, so versions of one key are never rendered concurrently.

Re-rendering (README: Versioned renditions) keeps a PROCESSED record PROCESSED: its renditions
stay listed and served while a worker holds a lease on it and renders only the presets whose
specHash differs from the worker's settings (`plan_renditions`, `decide_rerender`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from imgpipe.core.formats import OutputFormat
from imgpipe.core.keys import compare_sequencers, image_id_for
from imgpipe.core.model import (
    ErrorInfo,
    ImageMetadata,
    ImageRecord,
    ObjectEvent,
    Rendition,
    Status,
    iso,
)

# Codes a record may end with that say nothing about the image: any later event retries.
RETRYABLE_CODES = frozenset({"transient", "store_unavailable", "image_busy", "worker_crashed"})


@dataclass(frozen=True)
class Skip:
    reason: Literal["stale", "duplicate", "not_processed", "up_to_date"]


@dataclass(frozen=True)
class Busy:
    lease_until: str


@dataclass(frozen=True)
class Start:
    record: ImageRecord


Decision = Skip | Busy | Start


def version_order(event: ObjectEvent, current: ImageRecord) -> int:
    """How the event's version compares with the record's: <0 older, 0 the same, >0 newer.

    S3 puts a sequencer only in its notifications; a HEAD (behind a reprocess or a backfill)
    gives none ("0"). So an event naming the record's own versionId (on an unversioned
    bucket: the same ETag) is that version whatever its sequencer says; otherwise the
    sequencers decide, and an unknown one is older than any real one."""
    if event.version_id and event.version_id == current.version_id:
        return 0
    unversioned = not event.version_id and not current.version_id
    if unversioned and event.etag and event.etag == current.etag:
        return 0
    return compare_sequencers(event.sequencer, current.sequencer)


def _later(sequencer: str, current: ImageRecord) -> str:
    """The newer of two sequencers of one version (a HEAD's "0" never replaces a real one)."""
    return sequencer if compare_sequencers(sequencer, current.sequencer) > 0 else current.sequencer


def _lease_held(record: ImageRecord, now: datetime) -> bool:
    """A worker holds the image: processing it (PROCESSING), or re-rendering some of its
    presets (a PROCESSED record with a lease)."""
    return record.lease_until is not None and record.lease_until > iso(now)


def _retryable(record: ImageRecord) -> bool:
    return record.status is Status.FAILED and (
        record.error is None or record.error.code in RETRYABLE_CODES
    )


def new_version(
    event: ObjectEvent, bucket: str, now: datetime, status: Status = Status.PENDING
) -> ImageRecord:
    """A fresh record for a version of a key that no record describes yet."""
    stamp = iso(now)
    return ImageRecord(
        imageId=image_id_for(event.key),
        key=event.key,
        bucket=bucket,
        versionId=event.version_id,
        etag=event.etag,
        sequencer=event.sequencer,
        status=status,
        fileSize=event.size,
        uploadedAt=event.event_time or stamp,
        updatedAt=stamp,
    )


def decide_pending(
    current: ImageRecord | None, event: ObjectEvent, bucket: str, now: datetime
) -> ImageRecord | None:
    """The PENDING record to show right after an upload; None when the record is newer, or
    while a worker holds its lease: replacing the record would void that lease and two
    versions would render to the same rendition keys. The queued event waits for the lease."""
    if current is not None and _lease_held(current, now):
        return None
    if current is None or version_order(event, current) > 0:
        return new_version(event, bucket, now)
    return None


def decide_start(
    current: ImageRecord | None,
    event: ObjectEvent,
    *,
    bucket: str,
    now: datetime,
    lease_s: float,
) -> Decision:
    """Whether `event` starts processing, and the PROCESSING record to write if so."""
    lease_until = iso(now + timedelta(seconds=lease_s))
    if current is None:
        fresh = new_version(event, bucket, now, Status.PROCESSING)
        return Start(fresh.model_copy(update={"attempts": 1, "lease_until": lease_until}))
    order = version_order(event, current)
    if order < 0:
        return Skip("stale")
    if _lease_held(current, now):
        return Busy(current.lease_until or lease_until)
    if order == 0:
        if current.status.terminal and not event.force and not _retryable(current):
            return Skip("duplicate")
        base = current.model_copy(update={"sequencer": _later(event.sequencer, current)})
    else:
        base = new_version(event, bucket, now).model_copy(
            update={"renditions": current.renditions, "revision": current.revision}
        )
    return Start(
        base.model_copy(
            update={
                "status": Status.PROCESSING,
                "attempts": (base.attempts if order == 0 else 0) + 1,
                "lease_until": lease_until,
                "error": None,
                "updated_at": iso(now),
            }
        )
    )


def processed(
    claimed: ImageRecord,
    metadata: ImageMetadata,
    renditions: list[Rendition],
    now: datetime,
    duration_ms: int,
    rendition_hash: str | None = None,
) -> ImageRecord:
    stamp = iso(now)
    return claimed.model_copy(
        update={
            **{name: getattr(metadata, name) for name in ImageMetadata.model_fields},
            "status": Status.PROCESSED,
            "error": None,
            "lease_until": None,
            "renditions": renditions,
            "rendition_hash": rendition_hash,
            "processed_at": stamp,
            "updated_at": stamp,
            "duration_ms": duration_ms,
        }
    )


def failed(
    claimed: ImageRecord, code: str, message: str, now: datetime, duration_ms: int | None = None
) -> ImageRecord:
    stamp = iso(now)
    return claimed.model_copy(
        update={
            "status": Status.FAILED,
            "error": ErrorInfo(code=code, message=message),
            "lease_until": None,
            "renditions": [],
            "rendition_hash": None,
            "processed_at": stamp,
            "updated_at": stamp,
            "duration_ms": duration_ms,
        }
    )


def released(claimed: ImageRecord, code: str, message: str, now: datetime) -> ImageRecord:
    """A transient failure: give the lease back so the retry can start at once."""
    return claimed.model_copy(
        update={
            "status": Status.PENDING,
            "error": ErrorInfo(code=code, message=message),
            "lease_until": None,
            "updated_at": iso(now),
        }
    )


# -- re-rendering after the rendition settings changed -----------------------------------------


@dataclass(frozen=True)
class Preset:
    """A configured rendition preset as a record should show it: its name, the hash of the
    settings that shape its bytes, and the formats it is written in."""

    name: str
    spec_hash: str
    formats: tuple[OutputFormat, ...]


@dataclass(frozen=True)
class RenditionPlan:
    """What bringing a record's renditions up to date takes.

    `render`: the presets to render again (missing, or written with another specHash), in
    configured order; `keep`: the renditions that are up to date, left as they are; `drop`:
    the renditions of presets no longer configured, deleted once the record no longer lists
    them."""

    render: tuple[str, ...]
    keep: tuple[Rendition, ...]
    drop: tuple[Rendition, ...]

    @property
    def changes_renditions(self) -> bool:
        return bool(self.render or self.drop)


def plan_renditions(current: list[Rendition], presets: Sequence[Preset]) -> RenditionPlan:
    """Compare a record's renditions with the configured presets (pure)."""
    by_name: dict[str, list[Rendition]] = {}
    for r in current:
        by_name.setdefault(r.name, []).append(r)
    render: list[str] = []
    keep: list[Rendition] = []
    for preset in presets:
        have = by_name.get(preset.name, [])
        up_to_date = (
            bool(have)
            and all(r.spec_hash == preset.spec_hash for r in have)
            and sorted(r.format for r in have) == sorted(preset.formats)
        )
        if up_to_date:
            keep.extend(have)
        else:
            render.append(preset.name)
    configured = {p.name for p in presets}
    drop = tuple(r for r in current if r.name not in configured)
    return RenditionPlan(tuple(render), tuple(keep), drop)


@dataclass(frozen=True)
class Rerender:
    """Re-render: `record` is the record with this worker's lease (still PROCESSED, its
    renditions still listed), `plan` what to render, keep and drop."""

    record: ImageRecord
    plan: RenditionPlan


RerenderDecision = Skip | Busy | Rerender


def decide_rerender(
    current: ImageRecord | None,
    presets: Sequence[Preset],
    rendition_hash: str,
    *,
    same_version: bool,
    now: datetime,
    lease_s: float,
) -> RerenderDecision:
    """Whether a re-render job for `current` has work, and the leased record if so.

    Only a PROCESSED record can be stale: a FAILED, PENDING or PROCESSING one, or none, is left
    to the normal path (reprocess, backfill, its own event). `same_version` says whether the
    original in the store is still the version the record describes; if not, the newer
    version's own processing renders it with the current settings. While another worker holds
    the image, the job waits (Busy) like any event."""
    if current is None or current.status is not Status.PROCESSED:
        return Skip("not_processed")
    if _lease_held(current, now):
        return Busy(current.lease_until or iso(now))
    if not same_version:
        return Skip("stale")
    plan = plan_renditions(current.renditions, presets)
    if not plan.changes_renditions and current.rendition_hash == rendition_hash:
        return Skip("up_to_date")
    lease_until = iso(now + timedelta(seconds=lease_s))
    return Rerender(current.model_copy(update={"lease_until": lease_until}), plan)


def rerendered(
    claimed: ImageRecord,
    plan: RenditionPlan,
    fresh: Sequence[Rendition],
    presets: Sequence[Preset],
    rendition_hash: str,
    now: datetime,
) -> ImageRecord:
    """The record once the stale presets are rendered again: kept and fresh renditions in the
    configured order, the new renditionHash, the lease given back. Still PROCESSED."""
    rendered = set(plan.render)
    renditions: list[Rendition] = []
    for preset in presets:
        source = fresh if preset.name in rendered else plan.keep
        renditions.extend(r for r in source if r.name == preset.name)
    return claimed.model_copy(
        update={
            "renditions": renditions,
            "rendition_hash": rendition_hash,
            "lease_until": None,
            "updated_at": iso(now),
        }
    )


def unleased(claimed: ImageRecord) -> ImageRecord:
    """A re-render that failed for a transient reason: the record as it was, lease given back."""
    return claimed.model_copy(update={"lease_until": None})


def is_stale(record: ImageRecord, rendition_hash: str) -> bool:
    """A PROCESSED record whose renditions were made with other settings. FAILED and
    unfinished records are never stale: reprocess and backfill are for those."""
    return record.status is Status.PROCESSED and record.rendition_hash != rendition_hash
