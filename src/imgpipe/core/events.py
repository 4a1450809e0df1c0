"""The events imgpipe publishes when an image ends PROCESSED or FAILED (pure).

One shape everywhere: the JSONL log and webhooks carry it as is; on AWS it is an EventBridge
entry (`source` = "imgpipe", `detail-type` = the type, `detail` = the whole event).
`id` is the imageId and the record's revision, so a consumer can drop a redelivered event.

Which writes call for an event (`finishes`): locally the service publishes right after the
writes that finish work on an image; on AWS the events function reads every write from the
table's stream and picks the same ones by comparing the record before and after the write.
"""

from __future__ import annotations

from typing import Any, Final

from imgpipe.core.model import ImageRecord, Status

SOURCE: Final = "imgpipe"
PROCESSED: Final = "image.processed"
FAILED: Final = "image.failed"
EVENT_TYPES: Final = (PROCESSED, FAILED)

# The record's fields an event carries: enough to act on without a GET, nothing internal.
SUMMARY_FIELDS: Final = (
    "imageId",
    "key",
    "bucket",
    "versionId",
    "etag",
    "status",
    "error",
    "attempts",
    "contentType",
    "format",
    "fileSize",
    "width",
    "height",
    "sha256",
    "phash",
    "blurhash",
    "dominantColor",
    "duplicateOf",
    "renditionHash",
    "uploadedAt",
    "processedAt",
    "durationMs",
)


def event_type(record: ImageRecord) -> str | None:
    """The event a record's status calls for; None while it is not finished."""
    if record.status is Status.PROCESSED:
        return PROCESSED
    if record.status is Status.FAILED:
        return FAILED
    return None


def image_event(record: ImageRecord) -> dict[str, Any] | None:
    """The event to publish for a record just written; None when it calls for none."""
    kind = event_type(record)
    if kind is None:
        return None
    public = record.public()
    summary = {name: public.get(name) for name in SUMMARY_FIELDS}
    summary["renditions"] = [
        {k: r[k] for k in ("name", "format", "key", "width", "height", "bytes")}
        for r in public["renditions"]
    ]
    return {
        "id": f"{record.image_id}-{record.revision}",
        "type": kind,
        "source": SOURCE,
        "time": record.updated_at,
        "data": summary,
    }


def finishes(before: ImageRecord | None, after: ImageRecord | None) -> bool:
    """Whether the write that turned `before` into `after` finished work on the image, as the
    writes the service publishes after (ImageService._announce) do: `after` is PROCESSED or
    FAILED, holds no lease, and the write changed its status or its updatedAt.

    Every finishing step stamps updatedAt (processed, failed, give_up on a FAILED record, a
    finished re-render); the bookkeeping writes keep it: a duplicateOf link, a re-render's
    lease taken (the record stays PROCESSED, leased) or handed back after a transient
    failure. A delete (`after` None) finishes nothing."""
    if after is None or event_type(after) is None or after.lease_until is not None:
        return False
    return (
        before is None or before.status is not after.status or before.updated_at != after.updated_at
    )


def transition_event(
    before: ImageRecord | None, after: ImageRecord | None
) -> dict[str, Any] | None:
    """The event a write from `before` to `after` calls for; None when it calls for none."""
    return image_event(after) if after is not None and finishes(before, after) else None
