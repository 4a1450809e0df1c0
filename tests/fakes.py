"""In-memory fakes of the ports, for tests; the contract suites keep them honest."""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import json
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from imgpipe.core import similarity
from imgpipe.core.errors import InvalidRequestError, ObjectNotFoundError, UploadExistsError
from imgpipe.core.files import memory_spool
from imgpipe.core.keys import validate_key
from imgpipe.core.model import ImageRecord, ObjectInfo, RecordPage, Status, iso, utcnow
from imgpipe.core.ports import Message, QueueStats


class InMemoryObjectStore:
    """ObjectStore in a dict; keeps only the current version of each key (like the local one)."""

    def __init__(self, bucket: str = "memory") -> None:
        self.bucket = bucket
        self._objects: dict[str, tuple[bytes, ObjectInfo]] = {}
        self._lock = threading.Lock()
        self._version = 0

    def head(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        with self._lock:
            found = self._objects.get(key)
        return None if found is None else found[1]

    def get(self, key: str, version_id: str | None = None) -> bytes:
        validate_key(key)
        with self._lock:
            found = self._objects.get(key)
        if found is None:
            raise ObjectNotFoundError(f"no object {key!r}")
        if version_id is not None and version_id != found[1].version_id:
            raise ObjectNotFoundError(f"{key!r} has no version {version_id!r}")
        return found[0]

    def open(self, key: str, version_id: str | None = None) -> bytes:
        return self.get(key, version_id)

    def spool(self) -> BinaryIO:
        return memory_spool()

    def put(
        self,
        key: str,
        body: bytes | BinaryIO,
        content_type: str,
        *,
        if_absent: bool = False,
        durable: bool = True,
    ) -> ObjectInfo:
        validate_key(key)
        data = bytes(body) if isinstance(body, bytes | bytearray | memoryview) else body.read()
        with self._lock:
            if if_absent and key in self._objects:
                raise UploadExistsError(f"{key!r} has been uploaded already")
            self._version += 1
            version = format(self._version, "x")
            info = ObjectInfo(
                key=key,
                size=len(data),
                etag=hashlib.md5(data, usedforsecurity=False).hexdigest(),
                content_type=content_type,
                version_id=version,
                sequencer=version,
                last_modified=iso(utcnow()),
            )
            self._objects[key] = (data, info)
        return info

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        with self._lock:
            found = sorted((k, v[1]) for k, v in self._objects.items() if k.startswith(prefix))
        for _, info in found:
            yield info


def _encode_cursor(record: ImageRecord) -> str:
    raw = json.dumps([record.uploaded_at, record.image_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequestError("invalid cursor") from exc
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise InvalidRequestError("invalid cursor")
    return value[0], value[1]


class InMemoryMetadataStore:
    """MetadataStore in a dict, with the same compare-and-set and ordering as the real ones,
    and in-memory indexes by sha256 and by pHash band kept up to date on every put and delete
    (so `with_sha256` and `near_phash` look up, as the real stores do, rather than scan)."""

    def __init__(self) -> None:
        self._records: dict[str, ImageRecord] = {}
        self._lock = threading.Lock()
        self._by_sha256: dict[str, set[str]] = defaultdict(set)
        self._by_band: dict[tuple[int, str], set[str]] = defaultdict(set)

    def _index_keys(self, record: ImageRecord) -> tuple[str | None, list[tuple[int, str]]]:
        if not similarity.valid_phash(record.phash):
            return record.sha256, []
        return record.sha256, list(enumerate(similarity.bands(record.phash)))

    def _unindex(self, image_id: str) -> None:
        old = self._records.get(image_id)
        if old is None:
            return
        sha, bands = self._index_keys(old)
        if sha is not None:
            self._by_sha256[sha].discard(image_id)
        for band in bands:
            self._by_band[band].discard(image_id)

    def _index(self, record: ImageRecord) -> None:
        sha, bands = self._index_keys(record)
        if sha is not None:
            self._by_sha256[sha].add(record.image_id)
        for band in bands:
            self._by_band[band].add(record.image_id)

    def get(self, image_id: str) -> ImageRecord | None:
        with self._lock:
            return self._records.get(image_id)

    def stamp(self, image_id: str) -> tuple[int, str] | None:
        record = self.get(image_id)
        return None if record is None else (record.revision, record.uploaded_at)

    def put(self, record: ImageRecord, expected_revision: int | None) -> ImageRecord | None:
        with self._lock:
            current = self._records.get(record.image_id)
            if (current.revision if current is not None else None) != expected_revision:
                return None
            written = record.model_copy(update={"revision": (expected_revision or 0) + 1})
            self._unindex(record.image_id)
            self._records[record.image_id] = written
            self._index(written)
            return written

    def delete(self, image_id: str) -> None:
        with self._lock:
            self._unindex(image_id)
            self._records.pop(image_id, None)

    def with_sha256(self, sha256: str, limit: int) -> builtins.list[str]:
        with self._lock:
            found = [self._records[i] for i in self._by_sha256.get(sha256, ())]
        found.sort(key=lambda r: (r.uploaded_at, r.image_id))
        return [r.image_id for r in found[:limit]]

    def near_phash(
        self, phash: str, max_distance: int, limit: int
    ) -> builtins.list[similarity.PhashHit]:
        candidates: dict[str, str] = {}
        with self._lock:
            for probe in similarity.probes(phash, max_distance):
                ids = sorted(self._by_band.get(probe, ()))[: similarity.CANDIDATES_PER_LOOKUP]
                for image_id in ids:
                    candidates[image_id] = self._records[image_id].phash or ""
        return similarity.nearest(candidates, phash, max_distance, limit)

    def list(self, status: Status | None, limit: int, cursor: str | None) -> RecordPage:
        if limit < 1:
            raise InvalidRequestError("limit must be at least 1")
        after = _decode_cursor(cursor) if cursor is not None else None
        with self._lock:
            records = [r for r in self._records.values() if status is None or r.status == status]
        records.sort(key=lambda r: (r.uploaded_at, r.image_id), reverse=True)
        if after is not None:
            records = [r for r in records if (r.uploaded_at, r.image_id) < after]
        page = records[:limit]
        more = len(records) > limit
        return RecordPage(items=page, next_cursor=_encode_cursor(page[-1]) if more else None)

    def count_by_status(self) -> dict[Status, int]:
        counts = dict.fromkeys(Status, 0)
        with self._lock:
            for record in self._records.values():
                counts[record.status] += 1
        return counts


@dataclass
class _Entry:
    message_id: str
    body: dict[str, Any]
    dedup_id: str | None
    sent_at: float
    visible_at: float
    receive_count: int = 0
    receipt: str | None = None
    leased: bool = False
    dead: bool = False


class InMemoryJobQueue:
    """JobQueue in a list: leases, receive counts, dead letters after `max_receives`."""

    def __init__(self, max_receives: int = 5, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_receives = max_receives
        self._clock = clock
        self._entries: list[_Entry] = []
        self._lock = threading.Lock()

    def send(self, body: Mapping[str, Any], dedup_id: str | None = None, cost: int = 0) -> None:
        """Oldest first always: `cost` is ignored, as SQS ignores it."""
        with self._lock:
            if dedup_id is not None and any(
                e.dedup_id == dedup_id and not e.dead for e in self._entries
            ):
                return
            now = self._clock()
            entry = _Entry(uuid.uuid4().hex, json.loads(json.dumps(dict(body))), dedup_id, now, now)
            self._entries.append(entry)

    def receive(self, max_messages: int, visibility_s: float) -> builtins.list[Message]:
        if max_messages < 1:
            raise InvalidRequestError("max_messages must be at least 1")
        out: list[Message] = []
        with self._lock:
            now = self._clock()
            for entry in self._entries:
                if len(out) == max_messages:
                    break
                if entry.dead or entry.visible_at > now:
                    continue
                if entry.receive_count >= self.max_receives:
                    entry.dead, entry.leased, entry.receipt = True, False, None
                    continue
                entry.receive_count += 1
                entry.receipt = uuid.uuid4().hex
                entry.leased = True
                entry.visible_at = now + visibility_s
                out.append(
                    Message(entry.body, entry.receipt, entry.receive_count, entry.message_id)
                )
        return out

    def _holding(self, message: Message) -> _Entry | None:
        for entry in self._entries:
            if entry.message_id == message.message_id and entry.receipt == message.receipt:
                return entry
        return None

    def ack(self, message: Message) -> None:
        with self._lock:
            entry = self._holding(message)
            if entry is not None:
                self._entries.remove(entry)

    def release(self, message: Message, delay_s: float) -> None:
        with self._lock:
            entry = self._holding(message)
            if entry is not None and not entry.dead:
                entry.visible_at = self._clock() + max(delay_s, 0.0)
                entry.leased = False

    def stats(self) -> QueueStats:
        with self._lock:
            now = self._clock()
            live = [e for e in self._entries if not e.dead]
            return QueueStats(
                visible=sum(e.visible_at <= now for e in live),
                in_flight=sum(e.visible_at > now and e.leased for e in live),
                dead=len(self._entries) - len(live),
                oldest_age_s=max(0.0, now - min(e.sent_at for e in live)) if live else 0.0,
                extra={"delayed": sum(e.visible_at > now and not e.leased for e in live)},
            )

    def redrive(self) -> int:
        with self._lock:
            now = self._clock()
            dead = [e for e in self._entries if e.dead]
            live_dedup = {e.dedup_id for e in self._entries if not e.dead and e.dedup_id}
            for entry in reversed(dead):  # newest first: it wins a dedup_id
                if entry.dedup_id is not None and entry.dedup_id in live_dedup:
                    self._entries.remove(entry)
                    continue
                entry.dead, entry.receive_count, entry.receipt = False, 0, None
                entry.visible_at, entry.leased = now, False
                if entry.dedup_id is not None:
                    live_dedup.add(entry.dedup_id)
            return len(dead)

    def dead_letters(self, limit: int = 100) -> builtins.list[Message]:
        with self._lock:
            return [
                Message(e.body, "", e.receive_count, e.message_id) for e in self._entries if e.dead
            ][:limit]
