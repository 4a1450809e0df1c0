"""duplicateOf: which earlier image has the same bytes, found as an image is processed, and the
copies linked after its commit (README: Near-duplicates)."""

from __future__ import annotations

import contextlib

from imgpipe.core import similarity
from imgpipe.core.errors import TransientError
from imgpipe.core.model import ImageRecord, Status
from imgpipe.service.context import ServiceContext

DUPLICATE_CANDIDATES = 5  # index entries read for duplicateOf, earliest first


def earliest_with_same_bytes(ctx: ServiceContext, record: ImageRecord) -> str | None:
    """duplicateOf: the earliest upload (then imageId) with the same sha256, if it came
    before this one; a fact at processing time, not kept in step with later deletes."""
    if record.sha256 is None:
        return None
    for other_id in ctx.records.with_sha256(record.sha256, DUPLICATE_CANDIDATES):
        other = ctx.records.get(other_id) if other_id != record.image_id else None
        if other is None or other.sha256 != record.sha256:
            continue  # itself, or an index entry that lags a delete or a new version
        return other_id if similarity.uploaded_before(other, record) else None
    return None


def link_copies(ctx: ServiceContext, record: ImageRecord) -> ImageRecord:
    """Two copies processed at once may each look for the other before either is
    indexed, and neither gets duplicateOf. So after its commit a worker looks again: the
    later of the two commits sees both, and points every later copy that names no
    original at the earliest. Returns `record` as stored now."""
    if record.status is not Status.PROCESSED or record.sha256 is None:
        return record
    ids = ctx.records.with_sha256(record.sha256, DUPLICATE_CANDIDATES)
    if not any(i != record.image_id for i in ids):
        return record
    copies = [record] + [
        other
        for other in (ctx.records.get(i) for i in ids if i != record.image_id)
        if other is not None and other.sha256 == record.sha256 and other.status is Status.PROCESSED
    ]
    earliest = min(copies, key=lambda r: (r.uploaded_at, r.image_id))
    for copy in copies:
        if copy is earliest or copy.duplicate_of is not None or copy.lease_until is not None:
            continue  # a leased copy is being re-rendered: its worker's write must land
        linked = copy.model_copy(update={"duplicate_of": earliest.image_id})
        with contextlib.suppress(TransientError):  # best effort: a fact, not a job
            written = ctx.records.put(linked, copy.revision)
            if written is not None and copy is record:
                record = written
    return record
