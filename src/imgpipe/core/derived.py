"""On-request results as the cache sees them: which image a URL's source names, whether that
image can be served, and the version tag its cached results are filed under.

Pure: the `/img` use case (service/delivery.py) reads and writes; this decides. A source is
an imgpipe image, never a location: its imageId, or its original's key (`uploads/...`, also
as imgproxy's `local:///uploads/...`). The key is never opened as given: it only names a
record, and what is read is the key that record holds.
"""

from __future__ import annotations

import hashlib

from imgpipe.core.errors import NotFoundError, NotProcessedError, UnrenderableError
from imgpipe.core.keys import image_id_for, is_image_id, is_upload_key, validate_key
from imgpipe.core.model import ImageRecord, Status
from imgpipe.core.transform import TWIN_SHRINK, Transform

LOCAL_SCHEME = "local:///"


def image_id_of(source: str) -> str:
    """The imageId a URL's source names; NotFoundError (404) for anything else (a URL to
    fetch, a path outside uploads/): imgpipe serves its own images only."""
    if source.startswith(LOCAL_SCHEME):
        source = source[len(LOCAL_SCHEME) :]
    if is_image_id(source):
        return source
    if is_upload_key(source):
        return image_id_for(validate_key(source))
    raise NotFoundError(f"the source {source[:200]!r} is not an image of this imgpipe")


def check_servable(record: ImageRecord) -> None:
    """Raise unless results can be made of `record`: a FAILED image is a 422 with its own
    error code; one not yet processed a 409. A reprocess under way (PROCESSING, the metadata
    of the last processing still on the record) serves on from the same original."""
    if record.status is Status.FAILED:
        error = record.error
        raise UnrenderableError(
            error.code if error else "internal",
            f"image {record.image_id} failed: {error.message if error else 'no reason kept'}",
        )
    ready = record.status is Status.PROCESSED or (
        record.status is Status.PROCESSING and record.has_alpha is not None
    )
    if not ready:
        raise NotProcessedError(f"image {record.image_id} is {record.status}: not processed yet")


def version_tag(record: ImageRecord) -> str:
    """What changes when the original changes or is processed again (its sequencer, S3
    version and processedAt): 16 hex. Results are filed under it, so a new version or a
    reprocess makes the old ones unreachable before they are removed."""
    parts = (record.sequencer, record.version_id or "", record.processed_at or "")
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:16]


def twin_may_serve(record: ImageRecord, transform: Transform) -> bool:
    """Whether a render of `transform` might read `record`'s twin: never for one that asks
    for more than 1/TWIN_SHRINK of the image's longer side, or for no size at all. The
    engine decides; this spares the lookup (an S3 GET on AWS) where it cannot serve."""
    if record.format != "jpeg" or not record.width or not record.height:
        return False
    t = transform
    side = max(t.width, t.height, t.min_width, t.min_height)
    asked = side * t.dpr * max(t.zoom_x, t.zoom_y)
    return 0 < asked <= max(record.width, record.height) / TWIN_SHRINK
