"""A record's state machine as pure functions: which event starts work, which is stale.

PENDING -> PROCESSING -> PROCESSED | FAILED. One record per key; `sequencer` orders versions
of that key. An event older than the record is stale; an equal one on a finished record is a
duplicate (unless forced, or the record failed for a transient reason); an image whose lease
is held by another worker is busy, so versions of one key are never rendered concurrently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

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
    reason: Literal["stale", "duplicate"]


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
    return (
        record.status is Status.PROCESSING
        and record.lease_until is not None
        and record.lease_until > iso(now)
    )


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
) -> ImageRecord:
    stamp = iso(now)
    return claimed.model_copy(
        update={
            **{name: getattr(metadata, name) for name in ImageMetadata.model_fields},
            "status": Status.PROCESSED,
            "error": None,
            "lease_until": None,
            "renditions": renditions,
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
