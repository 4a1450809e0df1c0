"""Events out, the parts that need no socket: the event's shape, which writes call for one,
the webhook signature, the retry schedule, the outbox's dead-lettering, the JSONL log, the
fan-out, and the EventBridge entry and stream records (README: Events out; docs/aws.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from imgpipe.adapters.aws.dynamodb_store import to_item
from imgpipe.adapters.aws.eventbridge import event_entry
from imgpipe.adapters.aws.table_stream import StreamRecordError, stream_event
from imgpipe.adapters.local.events import FanOutEvents, JsonlEventLog
from imgpipe.adapters.local.webhook_outbox import DEAD, PENDING, SqliteWebhookOutbox
from imgpipe.adapters.local.webhooks import WebhookPublisher
from imgpipe.bootstrap.local import webhook_options
from imgpipe.config import EventsOptions, WebhookTarget
from imgpipe.core.events import finishes, image_event, transition_event
from imgpipe.core.model import ErrorInfo, ImageRecord, Status
from imgpipe.core.webhooks import (
    event_body,
    retry_delay,
    signature_header,
    verify_signature,
)

SECRET = "whsec-0123456789abcdef"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z


class RecordingMetrics:
    """The Metrics port, counting what it is told (name and labels)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def incr(self, name: str, value: float = 1.0, **labels: str) -> None:
        self.counts[(name, tuple(sorted(labels.items())))] += int(value)

    def timing(self, name: str, seconds: float, **labels: str) -> None:
        return None

    def count(self, name: str, **labels: str) -> int:
        return self.counts[(name, tuple(sorted(labels.items())))]


def record(status: Status, revision: int = 3, **fields: Any) -> ImageRecord:
    return ImageRecord.model_validate(
        {
            "imageId": "A" * 26,
            "key": "uploads/0123456789abcdef/cat.jpg",
            "bucket": "imgpipe-local",
            "sequencer": "0062FA3D1B9C4E0001",
            "status": status,
            "revision": revision,
            "uploadedAt": "2026-01-01T00:00:00.000Z",
            "updatedAt": "2026-01-01T00:00:01.500Z",
            **fields,
        }
    )


def sample_event(n: int = 0, kind: str = "image.processed") -> dict[str, Any]:
    return {
        "id": f"{'B' * 26}-{n}",
        "type": kind,
        "source": "imgpipe",
        "time": "2026-01-01T00:00:01.500Z",
        "data": {"imageId": "B" * 26, "key": "uploads/x/ünïcode.jpg", "n": n},
    }


# -- the event ---------------------------------------------------------------------------------


def test_a_processed_record_makes_an_image_processed_event() -> None:
    event = image_event(record(Status.PROCESSED, width=640, height=480, format="jpeg"))
    assert event is not None
    assert set(event) == {"id", "type", "source", "time", "data"}
    assert event["id"] == f"{'A' * 26}-3"  # imageId and revision: a redelivery keeps it
    assert (event["type"], event["source"]) == ("image.processed", "imgpipe")
    assert event["time"] == "2026-01-01T00:00:01.500Z"
    data = event["data"]
    assert (data["imageId"], data["status"], data["width"], data["height"]) == (
        "A" * 26,
        "PROCESSED",
        640,
        480,
    )
    assert data["renditions"] == []
    assert "leaseUntil" not in data and "revision" not in data  # nothing internal
    json.dumps(event)  # as it is sent


def test_a_failed_record_makes_an_image_failed_event_with_its_error() -> None:
    failed = record(Status.FAILED, error=ErrorInfo(code="corrupt_image", message="truncated"))
    event = image_event(failed)
    assert event is not None
    assert event["type"] == "image.failed"
    assert event["data"]["error"] == {"code": "corrupt_image", "message": "truncated"}


@pytest.mark.parametrize("status", [Status.PENDING, Status.PROCESSING])
def test_an_unfinished_record_makes_no_event(status: Status) -> None:
    assert image_event(record(status)) is None


# -- which writes call for an event (the rule the events function applies to the stream) -------

LATER = "2026-01-01T00:00:09.000Z"
LEASE = "2026-01-01T00:10:00.000Z"


WRITES: list[tuple[str, ImageRecord | None, ImageRecord | None, bool]] = [
    # work finishing
    ("processed", record(Status.PROCESSING, leaseUntil=LEASE), record(Status.PROCESSED), True),
    ("failed", record(Status.PROCESSING, leaseUntil=LEASE), record(Status.FAILED), True),
    ("gone while pending", record(Status.PENDING), record(Status.FAILED), True),
    ("no record before", None, record(Status.PROCESSED), True),
    # give_up on a record that had failed already: stamped again
    ("failed again", record(Status.FAILED), record(Status.FAILED, updatedAt=LATER), True),
    # a re-render: the lease taken (no), then its result (yes), or a permanent failure (yes)
    (
        "re-render leased",
        record(Status.PROCESSED),
        record(Status.PROCESSED, leaseUntil=LEASE),
        False,
    ),
    (
        "re-rendered",
        record(Status.PROCESSED, leaseUntil=LEASE),
        record(Status.PROCESSED, updatedAt=LATER),
        True,
    ),
    (
        "re-render refused",
        record(Status.PROCESSED, leaseUntil=LEASE),
        record(Status.FAILED, updatedAt=LATER),
        True,
    ),
    # bookkeeping: the lease handed back after a transient failure, a duplicateOf link
    (
        "lease handed back",
        record(Status.PROCESSED, leaseUntil=LEASE),
        record(Status.PROCESSED),
        False,
    ),
    (
        "duplicateOf linked",
        record(Status.PROCESSED),
        record(Status.PROCESSED, duplicateOf="B" * 26),
        False,
    ),
    # not finished, or gone
    ("claimed", record(Status.PENDING), record(Status.PROCESSING, leaseUntil=LEASE), False),
    ("released", record(Status.PROCESSING, leaseUntil=LEASE), record(Status.PENDING), False),
    ("deleted", record(Status.PROCESSED), None, False),
]


@pytest.mark.parametrize(
    ("case", "before", "after", "publishes"), [pytest.param(*w, id=w[0]) for w in WRITES]
)
def test_the_writes_that_finish_work_on_an_image(
    case: str, before: ImageRecord | None, after: ImageRecord | None, publishes: bool
) -> None:
    assert finishes(before, after) is publishes, case
    event = transition_event(before, after)
    assert (event is not None) is publishes
    if event is not None:
        assert event == image_event(after)  # the event of the record as written


def stream_record(before: ImageRecord | None, after: ImageRecord | None) -> dict[str, Any]:
    """A DynamoDB stream record of a write by DynamoMetadataStore, as Lambda hands it over."""
    change: dict[str, Any] = {"SequenceNumber": "100", "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if before is not None:
        change["OldImage"] = to_item(before, before.revision)
    if after is not None:
        change["NewImage"] = to_item(after, after.revision)
    return {"eventName": "MODIFY", "eventSource": "aws:dynamodb", "dynamodb": change}


def test_a_stream_record_gives_the_event_of_the_item_written() -> None:
    before = record(Status.PROCESSING, revision=2, leaseUntil=LEASE)
    after = record(Status.PROCESSED, revision=3, width=640)
    event = stream_event(stream_record(before, after))
    assert event == image_event(after)
    assert event is not None and event["id"] == f"{'A' * 26}-3"  # the revision written
    assert stream_event(stream_record(after, None)) is None  # a delete


@pytest.mark.parametrize(
    "change",
    [
        None,
        {"NewImage": {"imageId": {"S": "x"}}},
        {"NewImage": {"doc": {"S": "{}"}, "revision": {"N": "1"}}},
    ],
    ids=["no change", "no doc", "not a record"],
)
def test_a_stream_record_that_is_no_image_record_is_an_error(change: Any) -> None:
    with pytest.raises(StreamRecordError):
        stream_event({"eventName": "MODIFY", "dynamodb": change})


# -- the signature -----------------------------------------------------------------------------


def test_signature_header_is_stripe_style_over_time_and_body() -> None:
    body = event_body(sample_event())
    header = signature_header(SECRET, body, NOW)
    match = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", header)
    assert match is not None
    assert int(match[1]) == NOW
    # what a receiver computes, with nothing but hmac and the raw body
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + body, hashlib.sha256).hexdigest()
    assert match[2] == expected
    assert verify_signature(SECRET, body, header, now=NOW + 10)


def test_the_body_is_compact_utf8_json_of_the_event() -> None:
    event = sample_event()
    body = event_body(event)
    assert json.loads(body) == event
    assert body == json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize(
    ("case", "secret", "body", "header", "now"),
    [
        ("another secret", "x" * 22, b"{}", signature_header(SECRET, b"{}", NOW), NOW),
        ("an altered body", SECRET, b'{"a":1}', signature_header(SECRET, b"{}", NOW), NOW),
        ("a replay, 6 min later", SECRET, b"{}", signature_header(SECRET, b"{}", NOW), NOW + 360),
        ("from the future", SECRET, b"{}", signature_header(SECRET, b"{}", NOW + 360), NOW),
        ("a retimed header", SECRET, b"{}", signature_header(SECRET, b"{}", NOW), None),
        ("no v1", SECRET, b"{}", f"t={NOW}", NOW),
        ("no t", SECRET, b"{}", "v1=" + "0" * 64, NOW),
        ("garbage", SECRET, b"{}", "sha256=abc", NOW),
        ("a bad time", SECRET, b"{}", "t=soon,v1=" + "0" * 64, NOW),
        ("empty", SECRET, b"{}", "", NOW),
    ],
)
def test_verification_rejects(
    case: str, secret: str, body: bytes, header: str, now: int | None
) -> None:
    if now is None:  # the signature of one time with another time put in its place
        header = header.replace(f"t={NOW}", f"t={NOW + 60}")
        now = NOW + 60
    assert not verify_signature(secret, body, header, now=now), case


def test_verification_accepts_any_of_several_v1_signatures() -> None:
    # a sender rolling its secret may sign with both for a while
    header = signature_header(SECRET, b"{}", NOW) + ",v1=" + "0" * 64
    assert verify_signature(SECRET, b"{}", header, now=NOW)


# -- the retry schedule ------------------------------------------------------------------------


def test_backoff_doubles_from_the_first_delay_up_to_the_cap() -> None:
    schedule = [retry_delay(n, 2.0, 600.0, jitter=0.0) for n in range(1, 12)]
    assert schedule == [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]
    assert retry_delay(10_000, 2.0, 600.0, jitter=0.0) == 600  # no overflow


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.5, 0.999])
def test_jitter_keeps_the_delay_between_half_and_all_of_it(jitter: float) -> None:
    for n in range(1, 12):
        ceiling = min(600.0, 2.0 * 2 ** (n - 1))
        assert ceiling / 2 < retry_delay(n, 2.0, 600.0, jitter) <= ceiling


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        retry_delay(0, 2.0, 600.0, 0.0)


# -- the outbox and its sender (a fake HTTP sender, a clock the test moves) -------------------


class FakeReceiver:
    """Stands in for http_post: answers `statuses` in turn (an exception is raised)."""

    def __init__(self, *statuses: int | Exception) -> None:
        self.statuses = list(statuses)
        self.requests: list[tuple[str, bytes, dict[str, str]]] = []

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
        self.requests.append((url, body, dict(headers)))
        answer = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def options(*targets: WebhookTarget, **fields: Any) -> EventsOptions:
    return EventsOptions(
        webhooks=list(targets), max_attempts=4, backoff_s=2.0, max_backoff_s=5.0, **fields
    )


HOOK = WebhookTarget(url="http://hooks.example/in", secret=SECRET)


@pytest.fixture
def outbox(tmp_path: Path) -> Any:
    box = SqliteWebhookOutbox(tmp_path / "imgpipe.db")
    yield box
    box.close()


def publisher(
    outbox: SqliteWebhookOutbox, receiver: FakeReceiver, clock: Clock, opts: EventsOptions
) -> tuple[WebhookPublisher, RecordingMetrics]:
    metrics = RecordingMetrics()
    made = WebhookPublisher(
        outbox, webhook_options(opts), metrics, sender=receiver, clock=clock, jitter=lambda: 0.0
    )
    return made, metrics


def test_a_delivery_carries_the_signed_body_and_headers(outbox: SqliteWebhookOutbox) -> None:
    receiver, clock = FakeReceiver(204), Clock()
    hooks, metrics = publisher(outbox, receiver, clock, options(HOOK))
    event = sample_event()
    hooks.publish(event)
    assert outbox.counts() == {PENDING: 1, DEAD: 0}

    assert hooks.deliver_one()

    [(url, body, headers)] = receiver.requests
    assert url == HOOK.url and json.loads(body) == event
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Imgpipe-Event-Id"] == event["id"]
    assert headers["X-Imgpipe-Event-Type"] == "image.processed"
    assert verify_signature(SECRET, body, headers["X-Imgpipe-Signature"], now=clock.now)
    assert outbox.counts() == {PENDING: 0, DEAD: 0}  # delivered rows leave the outbox
    assert metrics.count("webhook_deliveries", outcome="delivered") == 1
    assert not hooks.deliver_one()


def test_only_webhooks_subscribed_to_the_type_get_it(outbox: SqliteWebhookOutbox) -> None:
    failures_only = WebhookTarget(url="http://b.example/", secret=SECRET, events=["image.failed"])
    hooks, _ = publisher(outbox, FakeReceiver(200), Clock(), options(HOOK, failures_only))
    hooks.publish(sample_event(1, "image.processed"))
    hooks.publish(sample_event(2, "image.failed"))
    hooks.publish(sample_event(2, "image.failed"))  # the same event again: not queued twice
    rows = [(r.event_id[-1], r.url) for r in outbox.rows()]
    assert rows == [("1", HOOK.url), ("2", HOOK.url), ("2", failures_only.url)]


def test_failures_back_off_then_dead_letter_after_max_attempts(
    outbox: SqliteWebhookOutbox,
) -> None:
    # GIVEN a receiver that always answers 500, and max_attempts 4
    receiver, clock = FakeReceiver(500), Clock()
    hooks, metrics = publisher(outbox, receiver, clock, options(HOOK))
    hooks.publish(sample_event())
    waits = []
    # WHEN each retry is attempted as soon as it is due
    for _ in range(3):
        assert hooks.deliver_one()
        due = outbox.next_due(clock.now)
        assert due is not None
        waits.append(due - clock.now)
        assert not hooks.deliver_one()  # not before its time
        clock.now = due
    assert hooks.deliver_one()
    # THEN the waits doubled up to the cap, and the fourth failure is a dead letter
    assert waits == [2.0, 4.0, 5.0]
    assert len(receiver.requests) == 4
    [dead] = outbox.rows(DEAD)
    assert (dead.attempts, dead.last_error) == (4, "HTTP 500")
    assert outbox.counts() == {PENDING: 0, DEAD: 1}
    assert outbox.next_due(clock.now) is None
    assert metrics.count("webhook_deliveries", outcome="retry") == 3
    assert metrics.count("webhook_deliveries", outcome="dead") == 1
    # AND a redrive makes it pending again, from attempt 0
    assert outbox.redrive() == 1
    [again] = outbox.rows(PENDING)
    assert again.attempts == 0


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "ConnectionRefusedError"),
        (TimeoutError("timed out"), "TimeoutError: timed out"),
        (302, "HTTP 302"),  # a redirect is not followed, so not delivered
        (404, "HTTP 404"),
    ],
)
def test_anything_but_2xx_is_retried(
    outbox: SqliteWebhookOutbox, answer: int | Exception, error: str
) -> None:
    receiver, clock = FakeReceiver(answer, 200), Clock()
    hooks, _ = publisher(outbox, receiver, clock, options(HOOK))
    hooks.publish(sample_event())
    assert hooks.deliver_one()
    [row] = outbox.rows(PENDING)
    assert row.attempts == 1 and row.last_error is not None
    assert row.last_error.startswith(error)
    clock.now += 2.0
    assert hooks.deliver_one()
    assert outbox.rows() == []


def test_a_webhook_removed_from_the_settings_dead_letters_its_rows(
    outbox: SqliteWebhookOutbox,
) -> None:
    before, _ = publisher(outbox, FakeReceiver(500), Clock(), options(HOOK))
    before.publish(sample_event())
    other = WebhookTarget(url="http://other.example/", secret=SECRET)
    after, _ = publisher(outbox, FakeReceiver(200), Clock(), options(other))
    assert after.deliver_one()
    [dead] = outbox.rows(DEAD)
    assert dead.last_error == "the webhook is no longer configured"


def test_a_claimed_row_is_not_claimed_again_until_its_lease_lapses(
    outbox: SqliteWebhookOutbox,
) -> None:
    outbox.add("e-1", "image.processed", [HOOK.url], b"{}", now=NOW)
    assert outbox.claim(NOW + 1, lease_s=30) is not None
    assert outbox.claim(NOW + 2, lease_s=30) is None  # another sender finds nothing
    assert outbox.claim(NOW + 32, lease_s=30) is not None  # the first one died
    # a restarting sole server gives its dead predecessor's leases back at once
    assert outbox.recover_leases() == 1
    assert outbox.claim(time.time() + 1, lease_s=30) is not None


def test_one_delivery_in_flight_per_webhook(outbox: SqliteWebhookOutbox) -> None:
    # GIVEN two events for a slow webhook A and one for webhook B
    a, b = "http://a.example/", "http://b.example/"
    outbox.add("e-1", "image.processed", [a], b"{}", now=NOW)
    outbox.add("e-2", "image.processed", [a, b], b"{}", now=NOW)
    # WHEN A's first delivery is in flight
    first = outbox.claim(NOW, lease_s=30)
    assert first is not None and (first.event_id, first.url) == ("e-1", a)
    # THEN A's second waits, B's is claimed, and nothing else is due before A's lease lapses
    second = outbox.claim(NOW, lease_s=30)
    assert second is not None and (second.event_id, second.url) == ("e-2", b)
    assert outbox.claim(NOW, lease_s=30) is None
    outbox.delivered(second.seq)
    assert outbox.next_due(NOW) == NOW + 30  # no busy polling while A is in flight
    # AND once A's first is answered, its second is due at once
    outbox.delivered(first.seq)
    assert outbox.next_due(NOW) == NOW
    third = outbox.claim(NOW, lease_s=30)
    assert third is not None and (third.event_id, third.url) == ("e-2", a)


def test_publish_never_raises_when_the_outbox_is_gone(outbox: SqliteWebhookOutbox) -> None:
    hooks, metrics = publisher(outbox, FakeReceiver(200), Clock(), options(HOOK))
    outbox.close()
    hooks.publish(sample_event())
    assert metrics.count("events_failed") == 1


def test_webhook_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="listed once"):
        options(HOOK, HOOK)
    with pytest.raises(ValidationError):
        WebhookTarget(url="ftp://x.example/", secret=SECRET)
    with pytest.raises(ValidationError):
        WebhookTarget(url="http://x.example/", secret="short")
    assert SECRET not in repr(HOOK)


# -- the JSONL log and the fan-out -------------------------------------------------------------


def test_the_log_keeps_whole_lines_from_many_threads(tmp_path: Path) -> None:
    path = tmp_path / "state" / "events.jsonl"
    events_log = JsonlEventLog(path, RecordingMetrics())
    big = "x" * 20_000  # larger than a write buffer: still one line, never interleaved

    def write(thread: int) -> None:
        for n in range(100):
            events_log.publish({**sample_event(thread * 1000 + n), "pad": big if n % 10 else ""})

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events_log.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 800
    ids = {json.loads(line)["id"] for line in lines}
    assert len(ids) == 800


def test_a_log_that_cannot_be_written_counts_a_failure(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").mkdir()  # a directory where the file should be
    metrics = RecordingMetrics()
    JsonlEventLog(tmp_path / "events.jsonl", metrics).publish(sample_event())
    assert metrics.count("events_failed") == 1


def test_fan_out_reaches_every_publisher_even_after_one_fails(tmp_path: Path) -> None:
    class Broken:
        def publish(self, event: Mapping[str, Any]) -> None:
            raise RuntimeError("boom")

    seen: list[Mapping[str, Any]] = []

    class Keeps:
        def publish(self, event: Mapping[str, Any]) -> None:
            seen.append(event)

    metrics = RecordingMetrics()
    FanOutEvents([Broken(), Keeps()], metrics).publish(sample_event())
    assert len(seen) == 1 and metrics.count("events_failed") == 1


# -- EventBridge (the entry; the calls themselves run against moto in tests/e2e) ---------------


def test_the_eventbridge_entry_carries_the_whole_event() -> None:
    event = sample_event(kind="image.failed")
    entry = event_entry(event, "imgpipe-bus")
    assert entry["Source"] == "imgpipe"
    assert entry["DetailType"] == "image.failed"
    assert entry["EventBusName"] == "imgpipe-bus"
    assert json.loads(entry["Detail"]) == event
    assert entry["Time"].isoformat() == "2026-01-01T00:00:01.500000+00:00"
