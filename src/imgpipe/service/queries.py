"""Reading what is stored: records by id and by status, renditions' bytes, and near-duplicates
(README: Near-duplicates)."""

from __future__ import annotations

import builtins
from collections.abc import Iterator

from imgpipe.core import similarity
from imgpipe.core.errors import InvalidRequestError, NotProcessedError
from imgpipe.core.model import ImageRecord, RecordPage, Status
from imgpipe.core.similarity import Match
from imgpipe.service.context import ServiceContext


class Queries:
    """GET /images, /images/{id}, /images/{id}/similar, and the records `imgpipe` watches."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def get(self, image_id: str) -> ImageRecord:
        """The record of `image_id`; NotFoundError when there is none."""
        return self._ctx.record(image_id)

    def find(self, image_id: str) -> ImageRecord | None:
        """The record of `image_id`, or None when there is none (deleted, say)."""
        return self._ctx.records.get(image_id)

    def list(self, status: Status | None, limit: int, cursor: str | None) -> RecordPage:
        return self._ctx.records.list(status, limit, cursor)

    def processed_records(self, page_size: int = 100) -> Iterator[ImageRecord]:
        """Every PROCESSED record, page by page through the store's status index."""
        cursor: str | None = None
        while True:
            page = self._ctx.records.list(Status.PROCESSED, page_size, cursor)
            yield from page.items
            cursor = page.next_cursor
            if cursor is None:
                return

    def similar(self, image_id: str, max_distance: int | None, limit: int) -> builtins.list[Match]:
        """GET /images/{id}/similar: the images with the same bytes or a pHash within
        `max_distance` (at most the configured one), closest first, as stored now."""
        records = self._ctx.records
        configured = self._ctx.options.max_distance
        distance = configured if max_distance is None else max_distance
        if not 0 <= distance <= configured:
            raise InvalidRequestError(f"maxDistance must be 0..{configured}")
        record = self.get(image_id)
        if record.sha256 is None and not similarity.valid_phash(record.phash):
            raise NotProcessedError(f"image {image_id} is {record.status}: not processed yet")
        found: dict[str, None] = {}  # imageIds, closest first, in order
        if record.sha256 is not None:
            found.update(dict.fromkeys(records.with_sha256(record.sha256, limit + 1)))
        if similarity.valid_phash(record.phash):
            hits = records.near_phash(record.phash, distance, limit + 1)
            found.update(dict.fromkeys(h.image_id for h in hits))
        matches: builtins.list[Match] = []
        for other_id in found:
            # The indexes may lag (DynamoDB's GSIs): the record as stored now decides.
            other = records.get(other_id) if other_id != image_id else None
            hit = similarity.match(record, other, distance) if other is not None else None
            if hit is not None:
                matches.append(hit)
        return similarity.ranked(matches)[:limit]
