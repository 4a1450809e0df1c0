"""Events on AWS: image events as EventBridge entries, put on the configured bus.

An entry is `Source` "imgpipe", `DetailType` the event's type, `Detail` the whole event (its
`id` lets a consumer drop a redelivered one), `Time` the record's update time. PutEvents can
fail per entry (an ErrorCode in its answer) without an error: `put_events` reports those, and
calls that fail outright, per event and retries nothing itself beyond the client's own retries
(throttling of the call): whoever called it delivers the event again (the events function
through Lambda's retries of its stream records; see adapters/aws/table_stream.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from imgpipe.core.events import SOURCE

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

MAX_ENTRIES: Final = 10  # the most one PutEvents call takes


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def event_entry(event: Mapping[str, Any], bus: str) -> PutEventsRequestEntryTypeDef:
    """The PutEvents entry for an image event."""
    entry: PutEventsRequestEntryTypeDef = {
        "Source": SOURCE,
        "DetailType": str(event["type"]),
        "Detail": json.dumps(dict(event), separators=(",", ":")),
        "EventBusName": bus,
    }
    when = _time(event.get("time"))
    if when is not None:
        entry["Time"] = when
    return entry


def put_events(
    client: EventBridgeClient, bus: str, events: Sequence[Mapping[str, Any]]
) -> list[str | None]:
    """Put `events` on `bus`, MAX_ENTRIES a call; for each event, in order, None when it was
    put, or why it was not."""
    outcomes: list[str | None] = []
    for start in range(0, len(events), MAX_ENTRIES):
        outcomes.extend(_put_chunk(client, bus, events[start : start + MAX_ENTRIES]))
    return outcomes


def _put_chunk(
    client: EventBridgeClient, bus: str, chunk: Sequence[Mapping[str, Any]]
) -> list[str | None]:
    try:
        response = client.put_events(Entries=[event_entry(event, bus) for event in chunk])
    except (ClientError, BotoCoreError) as exc:
        return [f"{type(exc).__name__}: {exc}"] * len(chunk)
    results = list(response.get("Entries", []))
    outcomes: list[str | None] = []
    for index in range(len(chunk)):
        # The answer lists one result per entry, in order; a missing one was not put.
        result = results[index] if index < len(results) else None
        if result is None:
            outcomes.append("PutEvents answered no result for this entry")
        elif result.get("ErrorCode"):
            outcomes.append(f"{result.get('ErrorCode')}: {result.get('ErrorMessage', '')}")
        else:
            outcomes.append(None)
    return outcomes
