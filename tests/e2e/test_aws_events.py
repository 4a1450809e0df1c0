"""Events out on AWS, offline: images go through the worker handler as in test_aws_flow, with
IMGPIPE_EVENTS__EVENT_BUS set, and their events come back through EventBridge rules whose
target is an SQS queue, all in moto's server on 127.0.0.1.

Where moto differs from AWS: it does not check the queue policy that lets EventBridge send to a
queue, nor IAM (the template's events:PutEvents grant is checked in tests/unit/test_template.py),
and it cannot be made to fail an entry of a valid PutEvents (FailedEntryCount > 0): the retry of
failed entries is covered in tests/unit/test_events_out.py, the retry of failed calls here
(a bus that does not exist).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from test_aws_flow import Stack, as_aws_sends, event_key, next_sequencer, put_original, stack

import imagegen
from imgpipe.adapters.aws.eventbridge import EventBridgePublisher
from imgpipe.bootstrap import AwsClients
from imgpipe.core.model import Status
from imgpipe.entrypoints import lambda_worker
from motoserver import REGION, aws, moto_endpoint, queue_arn, unique

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

__all__ = ["aws", "moto_endpoint", "stack"]  # fixtures


@pytest.fixture
def events(moto_endpoint: str) -> Iterator[EventBridgeClient]:
    client = boto3.session.Session().client(
        "events", endpoint_url=moto_endpoint, region_name=REGION
    )
    yield client
    client.close()


def rule_to_queue(
    events: EventBridgeClient, clients: AwsClients, bus: str, pattern: dict[str, Any]
) -> str:
    """A rule on `bus` matching `pattern`, whose target is a new SQS queue; the queue's url."""
    name = unique("imgpipe-rule")
    url = clients.sqs.create_queue(QueueName=unique("imgpipe-events"))["QueueUrl"]
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(
        Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn(clients, url)}]
    )
    return url


def drain_queue(clients: AwsClients, url: str) -> list[dict[str, Any]]:
    """Every message body in the queue (deleted as read), parsed."""
    bodies: list[dict[str, Any]] = []
    while True:
        found = clients.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not found:
            return bodies
        for message in found:
            bodies.append(json.loads(message["Body"]))
            clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_finished_images_arrive_through_eventbridge_rules(
    stack: Stack, events: EventBridgeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a bus with two rules: every imgpipe event, and (as the template's example rule)
    # image.failed only, each to a queue; the worker is told the bus by its environment
    bus = events.create_event_bus(Name=unique("imgpipe-bus"))["EventBusArn"].split("/")[-1]
    everything = rule_to_queue(events, stack.clients, bus, {"source": ["imgpipe"]})
    failures = rule_to_queue(
        events, stack.clients, bus, {"source": ["imgpipe"], "detail-type": ["image.failed"]}
    )
    monkeypatch.setenv("IMGPIPE_EVENTS__EVENT_BUS", bus)

    # WHEN a photo and a corrupt file land in the bucket and the worker processes them
    stack.receive()  # the S3 test event
    good, bad = "uploads/events/photo.jpg", "uploads/events/broken.jpg"
    versions = {
        good: put_original(stack, good, imagegen.photo_jpeg(400, 300)),
        bad: put_original(stack, bad, imagegen.truncated_jpeg()),
    }
    notes = {event_key(m): m for m in stack.notifications()}
    batch = [as_aws_sends(notes[k], versions[k], next_sequencer()) for k in (good, bad)]
    assert stack.work(batch) == []
    processed, failed = stack.record(good), stack.record(bad)
    assert (processed.status, failed.status) == (Status.PROCESSED, Status.FAILED)

    # THEN the catch-all rule's queue holds both events, as EventBridge wraps them
    received = {e["detail-type"]: e for e in drain_queue(stack.clients, everything)}
    assert set(received) == {"image.processed", "image.failed"}
    for kind, record in (("image.processed", processed), ("image.failed", failed)):
        envelope = received[kind]
        assert envelope["source"] == "imgpipe"
        detail = envelope["detail"]
        assert detail["id"] == f"{record.image_id}-{record.revision}"
        assert (detail["type"], detail["source"]) == (kind, "imgpipe")
        assert detail["time"] == record.updated_at
        assert detail["data"]["imageId"] == record.image_id
        assert detail["data"]["key"] == record.key
        assert detail["data"]["status"] == record.status.value
    ok = received["image.processed"]["detail"]["data"]
    assert (ok["width"], ok["height"], len(ok["renditions"])) == (400, 300, 6)
    error = received["image.failed"]["detail"]["data"]["error"]
    assert failed.error is not None and error["code"] == failed.error.code

    # AND the image.failed rule's queue holds only the failure
    [only] = drain_queue(stack.clients, failures)
    assert only["detail-type"] == "image.failed"
    assert only["detail"]["data"]["imageId"] == failed.image_id


def test_the_worker_publishes_nothing_without_a_bus(
    stack: Stack, events: EventBridgeClient
) -> None:
    # GIVEN a rule on the default bus, and no IMGPIPE_EVENTS__EVENT_BUS
    catch_all = rule_to_queue(
        events, stack.clients, "default", {"source": ["imgpipe"], "detail-type": ["image.failed"]}
    )
    stack.receive()
    key = "uploads/events/quiet.jpg"
    version = put_original(stack, key, imagegen.truncated_jpeg())
    [note] = stack.notifications()
    # WHEN the worker processes an image
    assert stack.work([as_aws_sends(note, version, next_sequencer())]) == []
    # THEN it built no EventBridge client and sent nothing
    assert stack.record(key).status is Status.FAILED
    assert lambda_worker.app().clients.events is None
    assert drain_queue(stack.clients, catch_all) == []


class CountingMetrics:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def incr(self, name: str, value: float = 1.0, **labels: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + int(value)

    def timing(self, name: str, seconds: float, **labels: str) -> None:
        return None


def test_a_bus_that_does_not_answer_is_retried_then_counted_never_raised(
    events: EventBridgeClient,
) -> None:
    # GIVEN a bus that does not exist (moto answers ResourceNotFoundException)
    metrics = CountingMetrics()
    slept: list[float] = []
    publisher = EventBridgePublisher(
        lambda: events, unique("no-such-bus"), metrics, sleep=slept.append
    )
    # WHEN an event is published THEN it is tried three times, counted, and nothing raises
    publisher.publish(
        {"id": "X-1", "type": "image.processed", "source": "imgpipe", "time": None, "data": {}}
    )
    assert slept == [0.1, 0.2]
    assert metrics.counts == {"events_failed": 1}
