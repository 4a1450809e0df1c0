"""Ingest: an original stored and accepted as one unit (queued, shown PENDING), or refused
with nothing left behind; retries under an Idempotency-Key answered with the first upload."""

from __future__ import annotations

import logging
from typing import BinaryIO

from imgpipe.core import lifecycle
from imgpipe.core.errors import (
    IdempotencyKeyReusedError,
    ImageBusyError,
    InvalidRequestError,
    RequestInProgressError,
)
from imgpipe.core.jobs import event_from_info
from imgpipe.core.keys import image_id_for, is_upload_key, new_upload_key, validate_key
from imgpipe.core.model import ImageRecord, ObjectEvent, ObjectInfo
from imgpipe.service.context import CAS_RETRIES, ServiceContext

log = logging.getLogger("imgpipe.service")


class Ingest:
    """Uploads (POST /images, signed upload URLs) and originals that land by other means."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def spool(self) -> BinaryIO:
        """Somewhere to write an upload as it arrives, then pass to upload() (the caller
        closes it): the object store's spool (ObjectStore.spool)."""
        return self._ctx.objects.spool()

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
        found = self.stored_under(prefix)
        if found is None:
            return None
        if found != key:
            raise IdempotencyKeyReusedError(
                "this Idempotency-Key was used for another upload "
                f"({found.rsplit('/', 1)[-1]!r}): send a new key for a new upload"
            )
        record = self._ctx.records.get(image_id_for(key))
        if record is None:
            raise RequestInProgressError(
                "an upload with this Idempotency-Key is still being stored: retry shortly"
            )
        return record

    def stored_under(self, prefix: str) -> str | None:
        """The key of an original stored under `prefix` (an Idempotency-Key's), if any."""
        found = next(iter(self._ctx.objects.list(prefix)), None)
        return None if found is None else found.key

    def exists(self, key: str) -> bool:
        """Whether an original is stored at `key` (a signed upload URL is used once)."""
        return self._ctx.objects.head(key) is not None

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
        info = self._ctx.objects.put(key, body, content_type, if_absent=if_absent)
        self._ctx.metrics.incr("uploads")
        try:
            return self.accept(info)
        except BaseException:
            self._withdraw(info)
            raise

    def _withdraw(self, info: ObjectInfo) -> None:
        """Remove a refused upload's original, unless another write replaced it since."""
        try:
            now = self._ctx.objects.head(info.key)
            if now is not None and _same_version(now, info):
                self._ctx.objects.delete(info.key)
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
        if not self._ctx.options.store_notifies:
            self._ctx.queue_processing(event)
        return mark_pending(self._ctx, event)


def mark_pending(ctx: ServiceContext, event: ObjectEvent) -> ImageRecord:
    """The record of `event`'s version, PENDING unless it is there already."""
    for _ in range(CAS_RETRIES):
        current = ctx.records.get(image_id_for(event.key))
        fresh = lifecycle.decide_pending(current, event, ctx.objects.bucket, ctx.clock())
        if fresh is None:
            assert current is not None
            return current
        written = ctx.records.put(fresh, current.revision if current else None)
        if written is not None:
            return written
    raise ImageBusyError(f"record of {event.key!r} kept changing")


def _same_version(a: ObjectInfo, b: ObjectInfo) -> bool:
    return (a.etag, a.version_id, a.sequencer) == (b.etag, b.version_id, b.sequencer)
