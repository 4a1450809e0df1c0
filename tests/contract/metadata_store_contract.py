"""The MetadataStore contract: every implementation (fake, SQLite, DynamoDB) passes it.

A test module provides a `metadata_store` fixture (a fresh, empty store per test) and
subclasses `MetadataStoreContract`; see tests/integration/test_local_contracts.py.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from contract.concurrency import race
from imgpipe.core.errors import InvalidRequestError
from imgpipe.core.keys import image_id_for
from imgpipe.core.model import (
    ErrorInfo,
    Exif,
    ImageRecord,
    Rendition,
    Status,
)
from imgpipe.core.ports import MetadataStore

T = TypeVar("T")


def make_record(
    key: str,
    uploaded_at: str = "2026-01-02T03:04:05.000Z",
    status: Status = Status.PENDING,
    **fields: object,
) -> ImageRecord:
    return ImageRecord.model_validate(
        {
            "imageId": image_id_for(key),
            "key": key,
            "bucket": "contract",
            "sequencer": "0a",
            "status": status,
            "uploadedAt": uploaded_at,
            "updatedAt": uploaded_at,
            **fields,
        }
    )


def all_pages(store: MetadataStore, status: Status | None, limit: int) -> list[list[str]]:
    """The imageIds of every page, following cursors to the end."""
    pages: list[list[str]] = []
    cursor: str | None = None
    for _ in range(1000):
        page = store.list(status, limit, cursor)
        assert len(page.items) <= limit
        pages.append([r.image_id for r in page.items])
        cursor = page.next_cursor
        if cursor is None:
            return pages
    raise AssertionError("the cursor never ran out")


def newest_first(records: list[ImageRecord]) -> list[str]:
    ordered = sorted(records, key=lambda r: (r.uploaded_at, r.image_id), reverse=True)
    return [r.image_id for r in ordered]


class MetadataStoreContract:
    """get/put (compare-and-set)/delete/list/count_by_status, as the core relies on them."""

    def test_a_missing_record(self, metadata_store: MetadataStore) -> None:
        assert metadata_store.get(image_id_for("uploads/none.jpg")) is None

    def test_insert_if_absent(self, metadata_store: MetadataStore) -> None:
        record = make_record("uploads/a.jpg")

        written = metadata_store.put(record, None)

        assert written is not None
        assert written.revision == 1
        assert metadata_store.get(record.image_id) == written
        # a second insert loses: the record exists now
        assert metadata_store.put(make_record("uploads/a.jpg", attempts=9), None) is None
        assert metadata_store.get(record.image_id) == written

    def test_the_stamp_changes_with_every_write_and_a_record_made_again(
        self, metadata_store: MetadataStore
    ) -> None:
        record = make_record("uploads/a.jpg")
        assert metadata_store.stamp(record.image_id) is None
        first = metadata_store.put(record, None)
        assert first is not None
        assert metadata_store.stamp(record.image_id) == (1, first.uploaded_at)
        second = metadata_store.put(first.model_copy(update={"attempts": 1}), 1)
        assert second is not None
        assert metadata_store.stamp(record.image_id) == (2, first.uploaded_at)
        # deleted and made again: the revision starts over, the uploadedAt does not repeat
        metadata_store.delete(record.image_id)
        assert metadata_store.stamp(record.image_id) is None
        later = make_record("uploads/a.jpg", uploaded_at="2026-01-02T03:04:06.000Z")
        assert metadata_store.put(later, None) is not None
        assert metadata_store.stamp(record.image_id) == (1, later.uploaded_at)

    def test_update_with_the_current_revision_wins_and_bumps_it(
        self, metadata_store: MetadataStore
    ) -> None:
        first = metadata_store.put(make_record("uploads/a.jpg"), None)
        assert first is not None

        second = metadata_store.put(
            first.model_copy(update={"status": Status.PROCESSING, "attempts": 1}), 1
        )

        assert second is not None
        assert (second.revision, second.status, second.attempts) == (2, Status.PROCESSING, 1)
        assert metadata_store.get(first.image_id) == second

    def test_a_stale_revision_loses(self, metadata_store: MetadataStore) -> None:
        first = metadata_store.put(make_record("uploads/a.jpg"), None)
        assert first is not None
        second = metadata_store.put(first.model_copy(update={"attempts": 1}), 1)
        assert second is not None

        # GIVEN a writer that read revision 1, WHEN it writes after someone wrote revision 2
        late = metadata_store.put(first.model_copy(update={"status": Status.FAILED}), 1)

        # THEN its write is refused and the newer record stays
        assert late is None
        assert metadata_store.get(first.image_id) == second

    def test_update_of_a_missing_record_loses(self, metadata_store: MetadataStore) -> None:
        assert metadata_store.put(make_record("uploads/a.jpg"), 3) is None
        assert metadata_store.get(image_id_for("uploads/a.jpg")) is None

    def test_the_revision_comes_from_the_store_not_the_record(
        self, metadata_store: MetadataStore
    ) -> None:
        first = metadata_store.put(make_record("uploads/a.jpg", revision=41), None)
        assert first is not None
        assert first.revision == 1

        second = metadata_store.put(first.model_copy(update={"revision": 0}), 1)

        assert second is not None
        assert second.revision == 2
        stored = metadata_store.get(first.image_id)
        assert stored is not None
        assert stored.revision == 2

    def test_concurrent_inserts_exactly_one_wins(self, metadata_store: MetadataStore) -> None:
        results = race(
            8, lambda i: metadata_store.put(make_record("uploads/a.jpg", attempts=i), None)
        )

        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert metadata_store.get(image_id_for("uploads/a.jpg")) == winners[0]

    def test_concurrent_updates_exactly_one_wins(self, metadata_store: MetadataStore) -> None:
        first = metadata_store.put(make_record("uploads/a.jpg"), None)
        assert first is not None

        results = race(8, lambda i: metadata_store.put(first.model_copy(update={"attempts": i}), 1))

        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert winners[0].revision == 2
        assert metadata_store.get(first.image_id) == winners[0]

    def test_every_field_round_trips(self, metadata_store: MetadataStore) -> None:
        key = "uploads/ünï/写真.heic"
        record = make_record(
            key,
            status=Status.FAILED,
            versionId="v1",
            etag="e" * 32,
            error=ErrorInfo(code="corrupt_image", message="truncated"),
            attempts=3,
            leaseUntil="2026-01-02T03:05:05.000Z",
            contentType="image/heic",
            format="heif",
            fileSize=1234,
            width=4032,
            height=3024,
            orientation=6,
            hasAlpha=False,
            colorSpace="srgb",
            frames=1,
            exif=Exif(make="Apple", model="iPhone", iso=50, gps={"lat": 1.5, "lon": -2.25}),
            sha256="0" * 64,
            phash="f" * 16,
            blurhash="LEHV6nWB2yk8pyo0adR*.7kCMdnj",
            dominantColor="#aabbcc",
            renditions=[
                Rendition(
                    name="thumb",
                    format="webp",
                    key=f"renditions/{image_id_for(key)}/thumb.webp",
                    width=256,
                    height=192,
                    bytes=999,
                )
            ],
            processedAt="2026-01-02T03:04:06.000Z",
            durationMs=87,
        )

        written = metadata_store.put(record, None)

        assert written == record.model_copy(update={"revision": 1})
        assert metadata_store.get(record.image_id) == written

    def test_delete(self, metadata_store: MetadataStore) -> None:
        written = metadata_store.put(make_record("uploads/a.jpg"), None)
        assert written is not None

        metadata_store.delete(written.image_id)
        metadata_store.delete(written.image_id)
        metadata_store.delete(image_id_for("uploads/never.jpg"))

        assert metadata_store.get(written.image_id) is None
        assert metadata_store.put(make_record("uploads/a.jpg"), None) is not None

    def _fill(self, store: MetadataStore, n: int) -> list[ImageRecord]:
        statuses = list(Status)
        records = [
            # three records share each second, so ties are ordered by imageId
            make_record(
                f"uploads/{i}.jpg",
                uploaded_at=f"2026-01-02T03:04:{i // 3:02d}.000Z",
                status=statuses[i % len(statuses)],
            )
            for i in range(n)
        ]
        for record in records:
            assert store.put(record, None) is not None
        return records

    def test_list_is_newest_first_ties_by_image_id(self, metadata_store: MetadataStore) -> None:
        records = self._fill(metadata_store, 12)

        page = metadata_store.list(None, 100, None)

        assert [r.image_id for r in page.items] == newest_first(records)
        assert page.next_cursor is None
        assert page.items[0].revision == 1

    @pytest.mark.parametrize("limit", [1, 4, 5, 23, 24, 100])
    def test_pages_cover_every_record_exactly_once(
        self, metadata_store: MetadataStore, limit: int
    ) -> None:
        records = self._fill(metadata_store, 23)

        pages = all_pages(metadata_store, None, limit)

        assert [i for page in pages for i in page] == newest_first(records)
        assert all(len(page) == limit for page in pages[:-1] if page)

    @pytest.mark.parametrize("status", list(Status))
    def test_status_filter_with_pages(self, metadata_store: MetadataStore, status: Status) -> None:
        records = self._fill(metadata_store, 23)

        pages = all_pages(metadata_store, status, 2)

        expected = newest_first([r for r in records if r.status == status])
        assert [i for page in pages for i in page] == expected

    def test_a_status_change_moves_the_record_between_filters(
        self, metadata_store: MetadataStore
    ) -> None:
        first = metadata_store.put(make_record("uploads/a.jpg"), None)
        assert first is not None

        metadata_store.put(first.model_copy(update={"status": Status.PROCESSED}), 1)

        assert metadata_store.list(Status.PENDING, 10, None).items == []
        assert [r.image_id for r in metadata_store.list(Status.PROCESSED, 10, None).items] == [
            first.image_id
        ]

    def test_an_empty_store_lists_nothing(self, metadata_store: MetadataStore) -> None:
        page = metadata_store.list(None, 10, None)
        assert (page.items, page.next_cursor) == ([], None)

    @pytest.mark.parametrize(
        "cursor",
        [
            "not a cursor!",
            "%%%",
            "e30",  # base64 of {}
            base64.urlsafe_b64encode(b"[1, 2]").decode(),
            base64.urlsafe_b64encode(b'["only one"]').decode(),
            base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        ],
    )
    def test_a_bad_cursor_is_a_bad_request(
        self, metadata_store: MetadataStore, cursor: str
    ) -> None:
        self._fill(metadata_store, 3)
        with pytest.raises(InvalidRequestError):
            metadata_store.list(None, 10, cursor)

    def test_count_by_status_names_every_status(self, metadata_store: MetadataStore) -> None:
        assert metadata_store.count_by_status() == dict.fromkeys(Status, 0)

        self._fill(metadata_store, 9)

        counts = metadata_store.count_by_status()
        assert counts == {
            Status.PENDING: 3,
            Status.PROCESSING: 2,
            Status.PROCESSED: 2,
            Status.FAILED: 2,
        }


# -- near-duplicates ----------------------------------------------------------------------

SHA_A = "a" * 64
SHA_B = "b" * 64
BASE_PHASH = 0x9F3A_61C4_0B7E_D258


def phash_off(bits: list[int], base: int = BASE_PHASH) -> str:
    """The base pHash with the given bit positions (0 = least significant) flipped."""
    value = base
    for bit in bits:
        value ^= 1 << bit
    return f"{value:016x}"


def settle(check: Callable[[], T], ok: Callable[[T], bool], timeout_s: float = 5.0) -> T:
    """`check()` until `ok` says yes (indexes such as DynamoDB's GSIs lag a write), else the
    last answer, for the assertion to show."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


class SimilarityIndexContract:
    """with_sha256 / near_phash (core.similarity's band index), as Queries.similar and
    duplicateOf rely on them. Stores whose indexes lag writes set `eventually = True`."""

    def _put(self, store: MetadataStore, key: str, **fields: object) -> ImageRecord:
        written = store.put(make_record(key, status=Status.PROCESSED, **fields), None)
        assert written is not None
        return written

    def test_same_bytes_earliest_upload_first(self, metadata_store: MetadataStore) -> None:
        late = self._put(
            metadata_store, "uploads/late.jpg", uploaded_at="2026-01-03T00:00:00.000Z", sha256=SHA_A
        )
        early = self._put(
            metadata_store,
            "uploads/early.jpg",
            uploaded_at="2026-01-01T00:00:00.000Z",
            sha256=SHA_A,
        )
        self._put(
            metadata_store,
            "uploads/other.jpg",
            uploaded_at="2026-01-02T00:00:00.000Z",
            sha256=SHA_B,
        )
        metadata_store.put(make_record("uploads/pending.jpg"), None)  # no sha256 yet

        found = settle(lambda: metadata_store.with_sha256(SHA_A, 10), lambda f: len(f) == 2)

        assert found == [early.image_id, late.image_id]
        assert metadata_store.with_sha256(SHA_A, 1) == [early.image_id]
        assert metadata_store.with_sha256("c" * 64, 10) == []

    def test_ties_in_upload_time_order_by_image_id(self, metadata_store: MetadataStore) -> None:
        records = [self._put(metadata_store, f"uploads/{i}.jpg", sha256=SHA_A) for i in range(4)]

        found = settle(lambda: metadata_store.with_sha256(SHA_A, 10), lambda f: len(f) == 4)

        assert found == sorted(r.image_id for r in records)

    def test_near_phash_finds_within_distance_only(self, metadata_store: MetadataStore) -> None:
        target = phash_off([])
        # one flipped bit in each band, then six spread over two bands, then eight
        near = self._put(metadata_store, "uploads/near.jpg", phash=phash_off([3, 20, 40, 60]))
        edge = self._put(metadata_store, "uploads/edge.jpg", phash=phash_off([0, 1, 2, 16, 17, 18]))
        far = self._put(
            metadata_store, "uploads/far.jpg", phash=phash_off([0, 1, 16, 17, 32, 33, 48, 49])
        )
        same = self._put(metadata_store, "uploads/same.jpg", phash=target.upper())
        self._put(metadata_store, "uploads/none.jpg")  # no pHash: in no band
        self._put(metadata_store, "uploads/bad.jpg", phash="not a hash")

        hits = settle(lambda: metadata_store.near_phash(target, 6, 10), lambda h: len(h) == 3)

        assert [(h.image_id, h.distance) for h in hits] == [
            (same.image_id, 0),
            (near.image_id, 4),
            (edge.image_id, 6),
        ]
        assert far.image_id not in {h.image_id for h in metadata_store.near_phash(target, 7, 10)}
        assert [h.image_id for h in metadata_store.near_phash(target, 5, 10)] == [
            same.image_id,
            near.image_id,
        ]
        assert [h.image_id for h in metadata_store.near_phash(target, 6, 1)] == [same.image_id]

    def test_a_hash_differing_in_every_band_is_found(self, metadata_store: MetadataStore) -> None:
        # GIVEN 7 flipped bits spread so that no band matches exactly (2 + 2 + 2 + 1)
        spread = self._put(
            metadata_store, "uploads/spread.jpg", phash=phash_off([1, 9, 17, 25, 33, 41, 63])
        )

        hits = settle(
            lambda: metadata_store.near_phash(phash_off([]), 7, 10), lambda h: len(h) == 1
        )

        # THEN the probes one bit around each band still find it
        assert [(h.image_id, h.distance) for h in hits] == [(spread.image_id, 7)]

    def test_deleted_records_vanish_from_both_indexes(self, metadata_store: MetadataStore) -> None:
        gone = self._put(metadata_store, "uploads/gone.jpg", sha256=SHA_A, phash=phash_off([5]))
        kept = self._put(metadata_store, "uploads/kept.jpg", sha256=SHA_A, phash=phash_off([6]))
        settle(lambda: metadata_store.with_sha256(SHA_A, 10), lambda f: len(f) == 2)

        metadata_store.delete(gone.image_id)

        assert settle(
            lambda: metadata_store.with_sha256(SHA_A, 10), lambda f: f == [kept.image_id]
        ) == [kept.image_id]
        hits = settle(
            lambda: metadata_store.near_phash(phash_off([]), 6, 10), lambda h: len(h) == 1
        )
        assert [h.image_id for h in hits] == [kept.image_id]

    def test_an_updated_hash_moves_buckets(self, metadata_store: MetadataStore) -> None:
        first = self._put(metadata_store, "uploads/a.jpg", sha256=SHA_A, phash=phash_off([]))
        moved = first.model_copy(
            update={"sha256": SHA_B, "phash": phash_off(list(range(0, 64, 2)))}
        )

        assert metadata_store.put(moved, first.revision) is not None

        assert settle(lambda: metadata_store.with_sha256(SHA_A, 10), lambda f: f == []) == []
        assert settle(lambda: metadata_store.with_sha256(SHA_B, 10), lambda f: len(f) == 1) == [
            first.image_id
        ]
        assert (
            settle(lambda: metadata_store.near_phash(phash_off([]), 7, 10), lambda h: h == []) == []
        )
        hits = settle(
            lambda: metadata_store.near_phash(phash_off(list(range(0, 64, 2))), 0, 10),
            lambda h: len(h) == 1,
        )
        assert [(h.image_id, h.distance) for h in hits] == [(first.image_id, 0)]

    def test_a_status_change_keeps_the_record_indexed(self, metadata_store: MetadataStore) -> None:
        first = self._put(metadata_store, "uploads/a.jpg", sha256=SHA_A, phash=phash_off([]))

        again = metadata_store.put(first.model_copy(update={"status": Status.PROCESSING}), 1)

        assert again is not None
        assert settle(lambda: metadata_store.with_sha256(SHA_A, 10), lambda f: len(f) == 1) == [
            first.image_id
        ]
        assert [h.image_id for h in metadata_store.near_phash(phash_off([]), 0, 10)] == [
            first.image_id
        ]
