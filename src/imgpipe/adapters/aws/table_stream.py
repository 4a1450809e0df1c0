"""The images table's DynamoDB stream as image events: which writes call for one, and
putting those on EventBridge.

A stream record is one write to the table, with the item before and after it
(NEW_AND_OLD_IMAGES). `stream_event` turns it into the event that write calls for (the rule
is core.events.finishes, the one the local side publishes by) or None. `publish` puts the
events of a run of records on the bus and returns the records whose event was not put, or
that could not be read, in stream order: the caller has those delivered again (the events
function: as batch item failures, so Lambda retries them; `imgpipe replay-events`: by keeping
the failure message). Whatever is delivered again is published again under the same `id`.

When Lambda gives up on a batch it sends the mapping's failure queue where the batch lies in
the stream (`DDBStreamBatchInfo`: stream, shard, first and last sequence number), not its
records: `replay_failed_batches` reads each such range back from the stream, which keeps
records 24 hours, publishes it, and deletes the message once every event of it is put.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from imgpipe.adapters.aws.dynamodb_store import from_item
from imgpipe.adapters.aws.eventbridge import put_events
from imgpipe.core.events import transition_event
from imgpipe.core.model import ImageRecord

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("imgpipe.events")

# GetRecords may answer an empty page before the records of an open shard: a few are read past.
EMPTY_PAGES: Final = 5
RECEIVE_VISIBILITY_S: Final = 120  # a message kept is seen again after this, not this run


class StreamReader(Protocol):
    """The two DynamoDB Streams calls a replay makes (boto3's `dynamodbstreams` client)."""

    def get_shard_iterator(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def get_records(self, **kwargs: Any) -> Mapping[str, Any]: ...


class StreamRecordError(ValueError):
    """A stream record that is not a write of an image record as DynamoMetadataStore keeps it."""


@dataclass(frozen=True)
class Failure:
    """A stream record whose event is still to be put, and why."""

    sequence_number: str
    reason: str


def _record(image: Mapping[str, Any] | None) -> ImageRecord | None:
    return from_item(image) if image else None


def stream_event(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The image event the write in `record` calls for, or None."""
    change = record.get("dynamodb")
    if not isinstance(change, Mapping):
        raise StreamRecordError("a stream record without its `dynamodb` change")
    try:
        before = _record(change.get("OldImage"))
        after = _record(change.get("NewImage"))
    except (KeyError, TypeError, ValueError) as exc:  # a pydantic ValidationError is a ValueError
        raise StreamRecordError(f"not an image record: {type(exc).__name__}: {exc}") from exc
    return transition_event(before, after)


def sequence_number(record: Mapping[str, Any]) -> str:
    change = record.get("dynamodb")
    return str(change.get("SequenceNumber", "")) if isinstance(change, Mapping) else ""


def publish(
    client: EventBridgeClient, bus: str, records: Sequence[Mapping[str, Any]]
) -> tuple[int, list[Failure]]:
    """Put the events of `records` on `bus`: how many were put, and the records still to
    deliver, in the order given."""
    failed: dict[int, Failure] = {}
    events: list[tuple[int, dict[str, Any]]] = []
    for index, record in enumerate(records):
        try:
            event = stream_event(record)
        except StreamRecordError as exc:
            failed[index] = Failure(sequence_number(record), str(exc))
            continue
        if event is not None:
            events.append((index, event))
    outcomes = put_events(client, bus, [event for _, event in events])
    for (index, _), problem in zip(events, outcomes, strict=True):
        if problem is not None:
            failed[index] = Failure(sequence_number(records[index]), problem)
    put = sum(problem is None for problem in outcomes)
    return put, [failed[index] for index in sorted(failed)]


@dataclass(frozen=True)
class FailedBatch:
    """Where a batch Lambda gave up on lies in the stream (its on-failure message)."""

    stream_arn: str
    shard_id: str
    first: str
    last: str

    @classmethod
    def from_message(cls, body: str) -> FailedBatch:
        """From the message Lambda sends a stream mapping's on-failure destination."""
        try:
            info = json.loads(body)["DDBStreamBatchInfo"]
            return cls(
                str(info["streamArn"]),
                str(info["shardId"]),
                str(info["startSequenceNumber"]),
                str(info["endSequenceNumber"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StreamRecordError(f"not a stream batch Lambda gave up on: {exc}") from exc


def read_batch(streams: StreamReader, batch: FailedBatch) -> list[dict[str, Any]]:
    """The batch's records, read back from the stream (ClientError once the stream no longer
    holds them: TrimmedDataAccessException, ResourceNotFoundException)."""
    iterator = streams.get_shard_iterator(
        StreamArn=batch.stream_arn,
        ShardId=batch.shard_id,
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=batch.first,
    ).get("ShardIterator")
    records: list[dict[str, Any]] = []
    empty = 0
    while iterator and empty < EMPTY_PAGES:
        page = streams.get_records(ShardIterator=iterator)
        empty = 0 if page.get("Records") else empty + 1
        for record in page.get("Records", []):
            if int(sequence_number(record) or 0) > int(batch.last):
                return records
            records.append(dict(record))
        if records and sequence_number(records[-1]) == batch.last:
            return records
        iterator = page.get("NextShardIterator")
    return records


@dataclass
class ReplayReport:
    """What `replay_failed_batches` did: batches whose events are all on the bus now (their
    messages deleted), events put, and why each kept message was kept."""

    replayed: int = 0
    events: int = 0
    kept: list[str] = field(default_factory=list)


def replay_failed_batches(
    sqs: SQSClient, queue_url: str, streams: StreamReader, events: EventBridgeClient, bus: str
) -> ReplayReport:
    """Publish the events of every batch in the failure queue; a message is deleted only
    once every event of its batch is put, else kept (seen again after a while)."""
    report = ReplayReport()
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=RECEIVE_VISIBILITY_S
        ).get("Messages", [])
        if not messages:
            return report
        for message in messages:
            problem = _replay_one(message.get("Body", ""), streams, events, bus, report)
            if problem is None:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                report.replayed += 1
            else:
                log.warning("kept a failed batch", extra={"reason": problem})
                report.kept.append(problem)


def _replay_one(
    body: str, streams: StreamReader, events: EventBridgeClient, bus: str, report: ReplayReport
) -> str | None:
    """Publish one failed batch; None when all of it is on the bus, else why not."""
    try:
        batch = FailedBatch.from_message(body)
        records = read_batch(streams, batch)
    except StreamRecordError as exc:
        return str(exc)
    except (ClientError, BotoCoreError) as exc:
        return f"{type(exc).__name__}: {exc} (the stream keeps records 24 hours)"
    put, failures = publish(events, bus, records)
    report.events += put
    if failures:
        return f"{len(failures)} event(s) not put: {failures[0].reason}"
    return None
