"""Events on AWS: each image event becomes one EventBridge entry on the configured bus.

The entry is `Source` "imgpipe", `DetailType` the event's type, `Detail` the whole event (its
`id` lets a consumer drop a redelivered one), `Time` the record's update time. PutEvents can
fail per entry (FailedEntryCount) without an error; those entries, and calls that fail
outright, are retried a few times with a short backoff (the client's own retries cover
throttling of the call itself). After that the event is logged and counted as
`events_failed`, never raised: the image's result stands either way.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from imgpipe.core.events import SOURCE
from imgpipe.core.ports import Metrics

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

log = logging.getLogger("imgpipe.events")

ATTEMPTS: Final = 3
FIRST_BACKOFF_S: Final = 0.1


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


class EventBridgePublisher:
    """EventPublisher onto an EventBridge bus (name or ARN). `connect` returns the client; it
    is called at each publish, so it should hand back the same client every time."""

    def __init__(
        self,
        connect: Callable[[], EventBridgeClient],
        bus: str,
        metrics: Metrics,
        *,
        attempts: int = ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # The client is made at the first event, not at a cold start: the API function
        # rarely publishes, and making an EventBridge client costs ~48 ms.
        self.connect = connect
        self.bus = bus
        self.metrics = metrics
        self.attempts = attempts
        self.sleep = sleep

    def publish(self, event: Mapping[str, Any]) -> None:
        entry = event_entry(event, self.bus)
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(FIRST_BACKOFF_S * 2 ** (attempt - 1))
            try:
                response = self.connect().put_events(Entries=[entry])
            except (ClientError, BotoCoreError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if not response.get("FailedEntryCount"):
                return
            [result] = response["Entries"]
            problem = f"{result.get('ErrorCode', '')}: {result.get('ErrorMessage', '')}"
        log.error(
            "could not put an event on EventBridge: %s",
            problem,
            extra={"eventId": event.get("id"), "eventType": event.get("type"), "bus": self.bus},
        )
        self.metrics.incr("events_failed")
