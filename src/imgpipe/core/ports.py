"""The ports the core owns: the few operations it needs from storage, queues and metrics.

Adapters (local files and SQLite, or S3, DynamoDB and SQS) implement these; the core never
imports an adapter. Each port has one contract test suite that every implementation passes.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from imgpipe.core.files import OpenFile
from imgpipe.core.jobs import Job
from imgpipe.core.model import ImageRecord, ObjectInfo, RecordPage, Status
from imgpipe.core.rendering import RenderOptions, RenderResult
from imgpipe.core.similarity import PhashHit
from imgpipe.core.transform import TransformRequest, Variant


class ObjectStore(Protocol):
    """Originals and renditions, by key (a folder on disk, or an S3 bucket)."""

    bucket: str

    def head(self, key: str) -> ObjectInfo | None: ...

    def get(self, key: str, version_id: str | None = None) -> bytes:
        """The object's bytes; raises ObjectNotFoundError when it (or that version) is gone."""
        ...

    def open(self, key: str, version_id: str | None = None) -> bytes | OpenFile:
        """The object to be read once, for a render: get()'s bytes, or, from a store on this
        machine, an open file (the caller closes it) that a rendering process reads itself.
        Raises as get() does."""
        ...

    def put(
        self,
        key: str,
        body: bytes | BinaryIO,
        content_type: str,
        *,
        if_absent: bool = False,
        durable: bool = True,
    ) -> ObjectInfo:
        """Store `body` at `key`, replacing what is there; with `if_absent`, raise
        UploadExistsError instead when the key holds an object (checked as it is written, so
        two writers cannot both succeed). Not `durable`: a power failure may lose the object
        or cut it short (a reader never sees it half-written while the machine runs), for
        objects that are made again when missing (the derived cache); a store that is always
        durable ignores it."""
        ...

    def spool(self) -> BinaryIO:
        """A new, empty, writable file for a body that arrives in pieces (an upload): the
        caller writes it, seeks it to 0, passes it to put(), and closes it. The local store's
        is a file beside its objects, hashed as it is written, that put() moves into place
        instead of copying; the others' hold the body in memory up to a few MB."""
        ...

    def delete(self, key: str) -> None:
        """Idempotent: deleting a missing key is not an error."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...


class MetadataStore(Protocol):
    """Image records, one per original key, written with compare-and-set on `revision`."""

    def get(self, image_id: str) -> ImageRecord | None: ...

    def stamp(self, image_id: str) -> tuple[int, str] | None:
        """The record's (revision, uploadedAt), read without the rest: it changes at every
        write, and a record deleted and made again has a new uploadedAt. None: no record."""
        ...

    def put(self, record: ImageRecord, expected_revision: int | None) -> ImageRecord | None:
        """Write `record` if the stored revision still equals `expected_revision` (None: no
        record yet). The written record has revision expected+1 (or 1) and is returned; None
        when the condition failed (someone else wrote first)."""
        ...

    def delete(self, image_id: str) -> None: ...

    def list(self, status: Status | None, limit: int, cursor: str | None) -> RecordPage:
        """Newest upload first. `cursor` is opaque; a bad one raises InvalidRequestError."""
        ...

    def count_by_status(self) -> dict[Status, int]: ...

    def with_sha256(self, sha256: str, limit: int) -> builtins.list[str]:
        """The imageIds of up to `limit` records with this sha256, earliest `uploadedAt`
        first (ties by imageId), through an index (DynamoDB: a GSI, eventually consistent)."""
        ...

    def near_phash(self, phash: str, max_distance: int, limit: int) -> builtins.list[PhashHit]:
        """Up to `limit` records whose pHash is within `max_distance` bits of `phash`, closest
        first, found through the pHash band index (core.similarity), never by a scan. The
        record itself is among them; DynamoDB's answer is eventually consistent."""
        ...


@dataclass(frozen=True)
class Message:
    """A received queue message; `receipt` acknowledges or releases it."""

    body: Mapping[str, Any]
    receipt: str
    receive_count: int
    message_id: str


@dataclass(frozen=True)
class QueueStats:
    visible: int
    in_flight: int
    dead: int
    oldest_age_s: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)


class JobQueue(Protocol):
    """At-least-once delivery with leases, receive counts and a dead-letter queue (SQS-like)."""

    def send(self, body: Mapping[str, Any], dedup_id: str | None = None, cost: int = 0) -> None:
        """Enqueue; a body with a dedup_id already waiting is not enqueued twice. `cost` is
        what the job weighs (an original's bytes), for a queue that orders by it (the local
        one: SqliteJobQueue._next); others ignore it."""
        ...

    def receive(self, max_messages: int, visibility_s: float) -> list[Message]: ...

    def ack(self, message: Message) -> None: ...

    def release(self, message: Message, delay_s: float) -> None:
        """Make the message visible again after delay_s (a retry)."""
        ...

    def stats(self) -> QueueStats: ...

    def redrive(self) -> int:
        """Move dead letters back to the queue; returns how many."""
        ...


class Metrics(Protocol):
    """Counters and timings with low-cardinality labels (never an imageId)."""

    def incr(self, name: str, value: float = 1.0, **labels: str) -> None: ...

    def timing(self, name: str, seconds: float, **labels: str) -> None: ...


class EventPublisher(Protocol):
    """Where `image.processed` / `image.failed` events go (EventBridge, a JSONL log, webhooks).

    `publish` never raises for a delivery problem and never blocks on a slow receiver: an
    implementation buffers, retries and dead-letters on its own, and reports in metrics."""

    def publish(self, event: Mapping[str, Any]) -> None: ...


class Renderer(Protocol):
    """Turns an original (its bytes, or the local store's open file) into metadata and encoded
    renditions, or into one on-request transform's result (in-process or not)."""

    def render(self, original: bytes | OpenFile, options: RenderOptions) -> RenderResult: ...

    def transform(self, original: bytes | OpenFile, request: TransformRequest) -> Variant:
        """`original` through `request.transform` in the request's format (or the smallest of
        its formats): an ImageError for a bad original, InvalidRequestError (400) for a result
        over the request's limits, WorkerCrashedError where the rendering process died."""
        ...


class DerivedCache(Protocol):
    """What a cache of on-request results (derived/ in the ObjectStore) needs beyond the
    store: locally, the recency of each result and a size budget (least recently used first
    out); on S3 nothing (NullDerivedCache: a lifecycle rule expires the prefix)."""

    def read(self, key: str) -> None:
        """The result at `key` was just read: it is the most recently used."""
        ...

    def stored(self, key: str, size: int) -> None:
        """A result of `size` bytes was written at `key`; past the budget, evict."""
        ...

    def dropped(self, key: str, size: int) -> None:
        """The result at `key` was deleted (its image deleted, reprocessed or replaced)."""
        ...


class NullDerivedCache:
    """No bookkeeping: where the store expires results itself (S3's lifecycle rule)."""

    def read(self, key: str) -> None:
        return None

    def stored(self, key: str, size: int) -> None:
        return None

    def dropped(self, key: str, size: int) -> None:
        return None


class JobHandler(Protocol):
    """What a worker hands its jobs to (the use cases, through service.dispatch): a job to
    run, a job to give up on after its last attempt, and the leases to give back when this
    worker has lost track of its jobs."""

    def run(self, job: Job) -> None: ...

    def give_up(self, job: Job, exc: BaseException, attempts: int) -> None: ...

    def recover_leases(self, reason: str) -> int: ...


class NullEvents:
    """Events that go nowhere: for the CLI and for tests that do not look at events."""

    def publish(self, event: Mapping[str, Any]) -> None:
        return None


class NullMetrics:
    """Metrics that go nowhere: for the CLI and for tests that do not look at metrics."""

    def incr(self, name: str, value: float = 1.0, **labels: str) -> None:
        return None

    def timing(self, name: str, seconds: float, **labels: str) -> None:
        return None
