"""The ObjectStore contract: every implementation (fake, local folder, S3) passes it.

A test module provides an `object_store` fixture (a fresh, empty store per test) and
subclasses `ObjectStoreContract`; see tests/integration/test_local_contracts.py.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import threading

import pytest

from imgpipe.adapters.local.fs_store import FilesystemObjectStore
from imgpipe.core.errors import InvalidRequestError, ObjectNotFoundError, UploadExistsError
from imgpipe.core.files import OpenFile
from imgpipe.core.keys import compare_sequencers
from imgpipe.core.ports import ObjectStore

# Keys any S3 bucket accepts; none is a folder of another, so every store holds them all.
ODD_KEYS = [
    "uploads/abc/IMG 0001.jpg",
    "uploads/ünïcödé/写真 📷.jpg",
    "uploads/plus+sign & amp=eq;semi,comma'quote\"dq(paren)~tilde.jpg",
    "uploads/100% off %zz %4.jpg",
    "uploads/%41starts-with-percent.jpg",
    "uploads/%+looks-like-a-chunk.jpg",
    "uploads/../dot-dot.jpg",
    "uploads/./dot.jpg",
    "uploads/back\\slash.jpg",
    "uploads//double-slash.jpg",
    "uploads/trailing-slash/",
    "/leading-slash.jpg",
    "..",
    ".imgpipe/state.jpg",
    "uploads/tab\tin name.jpg",
    "uploads/" + "L" * 300 + ".jpg",
    "uploads/" + "長" * 150 + ".jpg",
]


def etag_of(store: ObjectStore, data: bytes) -> str:
    """The ETag `store` gives `data`: the local folder's is its sha256 (fs_store says why); S3's
    (unencrypted or SSE-S3, as moto serves it) and the fake's are its MD5."""
    if isinstance(store, FilesystemObjectStore):
        return hashlib.sha256(data).hexdigest()
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def utf8_order(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda k: k.encode("utf-8"))


class ObjectStoreContract:
    """put/get/head/delete/list, as the core relies on them."""

    @pytest.mark.parametrize("key", ODD_KEYS)
    def test_put_then_get_and_head_round_trip(self, object_store: ObjectStore, key: str) -> None:
        body = f"body of {key}".encode()

        info = object_store.put(key, body, "image/jpeg")

        assert (info.key, info.size, info.etag) == (key, len(body), etag_of(object_store, body))
        assert object_store.get(key) == body
        assert object_store.get(key, version_id=info.version_id) == body
        head = object_store.head(key)
        assert head is not None
        assert (head.key, head.size, head.etag) == (key, len(body), etag_of(object_store, body))
        assert head.version_id == info.version_id
        assert head.sequencer == info.sequencer

    def test_odd_keys_live_side_by_side(self, object_store: ObjectStore) -> None:
        for key in ODD_KEYS:
            object_store.put(key, key.encode(), "application/octet-stream")

        assert [o.key for o in object_store.list("")] == utf8_order(ODD_KEYS)
        for key in ODD_KEYS:
            assert object_store.get(key) == key.encode()

    def test_a_file_object_is_streamed_in(self, object_store: ObjectStore) -> None:
        body = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB, not a multiple of any chunk size

        info = object_store.put("uploads/big/stream.bin", io.BytesIO(body), "image/png")

        assert (info.size, info.etag) == (len(body), etag_of(object_store, body))
        assert object_store.get("uploads/big/stream.bin") == body

    @pytest.mark.parametrize(
        ("name", "content_type"),
        [("photo.jpg", "image/jpeg"), ("pic.png", "image/png"), ("thumb.webp", "image/webp")],
    )
    def test_content_type_of_images(
        self, object_store: ObjectStore, name: str, content_type: str
    ) -> None:
        info = object_store.put(f"renditions/x/{name}", b"x", content_type)

        head = object_store.head(f"renditions/x/{name}")
        assert info.content_type == content_type
        assert head is not None
        assert head.content_type == content_type

    def test_an_empty_object(self, object_store: ObjectStore) -> None:
        info = object_store.put("uploads/empty", b"", "application/octet-stream")

        assert (info.size, info.etag) == (0, etag_of(object_store, b""))
        assert object_store.get("uploads/empty") == b""

    def test_open_gives_what_get_gives_and_refuses_what_get_refuses(
        self, object_store: ObjectStore
    ) -> None:
        # GIVEN an object, and an empty one
        body = bytes(range(256)) * 5000  # 1.28 MB: more than one read's worth
        info = object_store.put("uploads/o/a.jpg", body, "image/jpeg")
        object_store.put("uploads/o/empty.jpg", b"", "image/jpeg")

        # WHEN each is opened (the version given or not) THEN it reads as get() reads
        for key, expected, version in [
            ("uploads/o/a.jpg", body, info.version_id),
            ("uploads/o/a.jpg", body, None),
            ("uploads/o/empty.jpg", b"", None),
        ]:
            opened = object_store.open(key, version_id=version)
            if isinstance(opened, OpenFile):  # the caller's to close
                with opened:
                    assert opened.size == len(expected)
                    assert opened.read() == expected
                    assert opened.sha256() == hashlib.sha256(expected).hexdigest()
            else:
                assert opened == expected

        # THEN a missing key, or a version that does not exist, is not found
        with pytest.raises(ObjectNotFoundError):
            object_store.open("uploads/o/none.jpg")
        with pytest.raises(ObjectNotFoundError):
            object_store.open("uploads/o/a.jpg", version_id="no-such-version")

    def test_a_spool_written_in_pieces_is_put_whole_and_one_dropped_stores_nothing(
        self, object_store: ObjectStore
    ) -> None:
        # GIVEN a body written into the store's spool in pieces
        body = bytes(range(256)) * 5000
        with object_store.spool() as spool:
            for at in range(0, len(body), 100_000):
                spool.write(body[at : at + 100_000])
            spool.seek(0)

            # WHEN it is put THEN the object is the whole body, with the store's ETag for it
            info = object_store.put("uploads/s/a.jpg", spool, "image/jpeg")
        assert (info.size, info.etag) == (len(body), etag_of(object_store, body))
        assert object_store.get("uploads/s/a.jpg") == body

        # WHEN a spool is closed without a put THEN nothing is stored
        with object_store.spool() as spool:
            spool.write(b"dropped")
        assert [o.key for o in object_store.list("uploads/")] == ["uploads/s/a.jpg"]

    def test_a_put_if_absent_writes_once(self, object_store: ObjectStore) -> None:
        # GIVEN a key written with if_absent (a signed upload URL's write)
        object_store.put("uploads/once/a.jpg", b"first", "image/jpeg", if_absent=True)

        # WHEN it is written so again, from bytes or from a spool
        # THEN the store refuses, and the first bytes stay
        with pytest.raises(UploadExistsError):
            object_store.put("uploads/once/a.jpg", b"second", "image/jpeg", if_absent=True)
        with object_store.spool() as spool:
            spool.write(b"third")
            spool.seek(0)
            with pytest.raises(UploadExistsError):
                object_store.put("uploads/once/a.jpg", spool, "image/jpeg", if_absent=True)
        assert object_store.get("uploads/once/a.jpg") == b"first"
        # AND a plain put still replaces it
        object_store.put("uploads/once/a.jpg", b"fourth", "image/jpeg")
        assert object_store.get("uploads/once/a.jpg") == b"fourth"

    def test_of_writers_racing_if_absent_one_wins(self, object_store: ObjectStore) -> None:
        won: list[bytes] = []
        lost: list[bytes] = []

        def write(body: bytes) -> None:
            try:
                object_store.put("uploads/race/a.jpg", body, "image/jpeg", if_absent=True)
                won.append(body)
            except UploadExistsError:
                lost.append(body)

        threads = [threading.Thread(target=write, args=(bytes([i]) * 1000,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1 and len(lost) == 7
        assert object_store.get("uploads/race/a.jpg") == won[0]

    def test_a_missing_key(self, object_store: ObjectStore) -> None:
        assert object_store.head("uploads/nothing/here.jpg") is None
        with pytest.raises(ObjectNotFoundError):
            object_store.get("uploads/nothing/here.jpg")

    def test_a_version_that_does_not_exist(self, object_store: ObjectStore) -> None:
        object_store.put("uploads/v/a.jpg", b"one", "image/jpeg")

        with pytest.raises(ObjectNotFoundError):
            object_store.get("uploads/v/a.jpg", version_id="no-such-version")

    def test_an_overwrite_replaces_the_bytes_and_orders_after(
        self, object_store: ObjectStore
    ) -> None:
        # GIVEN an object, WHEN a new version is written quickly, again and again
        infos = [object_store.put("uploads/v/a.jpg", b"v%d" % i, "image/jpeg") for i in range(8)]

        # THEN the last bytes win, and every sequencer orders after the previous one
        assert object_store.get("uploads/v/a.jpg") == b"v7"
        head = object_store.head("uploads/v/a.jpg")
        assert head is not None
        assert head.etag == etag_of(object_store, b"v7")
        for older, newer in itertools.pairwise(infos):
            if older.sequencer is not None and newer.sequencer is not None:
                assert compare_sequencers(newer.sequencer, older.sequencer) > 0
            if older.version_id is not None:
                assert newer.version_id != older.version_id

    def test_delete_is_idempotent(self, object_store: ObjectStore) -> None:
        object_store.put("uploads/d/a.jpg", b"a", "image/jpeg")

        object_store.delete("uploads/d/a.jpg")
        object_store.delete("uploads/d/a.jpg")
        object_store.delete("uploads/never/was.jpg")

        assert object_store.head("uploads/d/a.jpg") is None
        with pytest.raises(ObjectNotFoundError):
            object_store.get("uploads/d/a.jpg")
        assert list(object_store.list("uploads/")) == []

    def test_delete_keeps_the_neighbours(self, object_store: ObjectStore) -> None:
        for key in ("uploads/d/1.jpg", "uploads/d/2.jpg", "uploads/d/sub/3.jpg"):
            object_store.put(key, b"x", "image/jpeg")

        object_store.delete("uploads/d/1.jpg")
        object_store.delete("uploads/d/sub/3.jpg")

        assert [o.key for o in object_store.list("uploads/")] == ["uploads/d/2.jpg"]

    def test_a_key_can_be_written_again_after_delete(self, object_store: ObjectStore) -> None:
        object_store.put("uploads/again/a.jpg", b"1", "image/jpeg")
        object_store.delete("uploads/again/a.jpg")

        object_store.put("uploads/again/a.jpg", b"2", "image/jpeg")

        assert object_store.get("uploads/again/a.jpg") == b"2"

    def test_list_filters_by_prefix_and_sorts_by_key(self, object_store: ObjectStore) -> None:
        keys = [
            "uploads/b/z.jpg",
            "uploads/a/é.jpg",
            "uploads/a/e.jpg",
            "uploads/ab/x.jpg",
            "uploads/a b/x.jpg",
            "uploads/A/x.jpg",
            "uploads/a/sub/deep.jpg",
            "renditions/i/thumb.webp",
        ]
        for key in keys:
            object_store.put(key, key.encode(), "image/jpeg")

        listed = list(object_store.list("uploads/"))
        assert [o.key for o in listed] == utf8_order([k for k in keys if k.startswith("uploads/")])
        assert all(
            (o.size, o.etag) == (len(o.key.encode()), etag_of(object_store, o.key.encode()))
            for o in listed
        )
        # a prefix may end in the middle of a name
        assert [o.key for o in object_store.list("uploads/a")] == utf8_order(
            [k for k in keys if k.startswith("uploads/a")]
        )
        assert [o.key for o in object_store.list("uploads/a/")] == utf8_order(
            [k for k in keys if k.startswith("uploads/a/")]
        )
        assert [o.key for o in object_store.list("")] == utf8_order(keys)
        assert list(object_store.list("nothing/")) == []

    @pytest.mark.parametrize("key", ["", "x" * 1025, "uploads/" + "é" * 509])
    def test_keys_s3_refuses_are_refused(self, object_store: ObjectStore, key: str) -> None:
        with pytest.raises(InvalidRequestError):
            object_store.put(key, b"x", "image/jpeg")

    def test_readers_never_see_half_an_object(self, object_store: ObjectStore) -> None:
        bodies = [b"a" * 600_000, b"b" * 400_000]
        object_store.put("uploads/atomic/a.bin", bodies[0], "application/octet-stream")
        stop = threading.Event()

        def write() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                object_store.put("uploads/atomic/a.bin", bodies[i % 2], "image/jpeg")

        writer = threading.Thread(target=write)
        writer.start()
        try:
            seen = {object_store.get("uploads/atomic/a.bin") for _ in range(40)}
        finally:
            stop.set()
            writer.join()
        assert seen <= set(bodies)

    def test_threads_writing_different_keys(self, object_store: ObjectStore) -> None:
        keys = [f"uploads/t/{i}/{j}.jpg" for i in range(4) for j in range(10)]

        def write(part: list[str]) -> None:
            for key in part:
                object_store.put(key, key.encode(), "image/jpeg")

        threads = [threading.Thread(target=write, args=(keys[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert [o.key for o in object_store.list("uploads/t/")] == utf8_order(keys)
