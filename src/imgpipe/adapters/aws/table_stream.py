"""The images table's DynamoDB stream as image events: which writes call for one, and
putting those on EventBridge.

A stream record is one write to the table, with the item before and after it
(NEW_AND_OLD_IMAGES). `stream_event` turns it into the event that write calls for (the rule
is core.events.finishes, the one the local side publishes by) or None. `publish` puts the
events of a run of records on the bus and returns the records whose event was not put, or
that could not be read, in stream order: the caller has those delivered again (the events
function: as batch item failures, so Lambda retries them; `imgpipe replay-events`: by keeping
the failure message). Whatever is delivered again is published again under the same `id`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgpipe.adapters.aws.dynamodb_store import from_item
from imgpipe.adapters.aws.eventbridge import put_events
from imgpipe.core.events import transition_event
from imgpipe.core.model import ImageRecord

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient


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
