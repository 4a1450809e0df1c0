"""Events out on AWS, offline: images go through the worker handler as in test_aws_flow, the
table's stream is read back from moto (motoserver.TableStream) and handed to the events
handler as Lambda's event source mapping would, and the events come back through EventBridge
rules whose target is an SQS queue, all in moto's server on 127.0.0.1.

Where moto differs from AWS:
- it runs no event source mapping, so nothing here retries by itself: a test delivers again
  what the handler reported failed, from the first failed record on, as Lambda does (its
  settings, the filter, the failure destination and the alarms are checked in
  tests/unit/test_template.py);
- it cannot be made to fail an entry of a valid PutEvents (an ErrorCode in the answer), nor
  to fail the call: tests/faultproxy.py answers for it, as EventBridge does;
- it checks neither IAM nor the queue policy EventBridge needs to send to a queue.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from test_aws_flow import (
    Stack,
    as_aws_sends,
    call_api,
    event_key,
    next_sequencer,
    put_original,
    stack,
)

import imagegen
from faultproxy import FaultProxy, Reply, Rule
from imgpipe.adapters.aws import table_stream
from imgpipe.adapters.aws.sqs_queue import SqsJobQueue
from imgpipe.bootstrap import service_options
from imgpipe.config import Settings, load_settings
from imgpipe.core.errors import TransientError
from imgpipe.core.events import image_event
from imgpipe.core.model import ImageRecord, ObjectEvent, Status
from imgpipe.core.ports import NullMetrics
from imgpipe.core.rendering import RenderOptions, RenderResult
from imgpipe.engine import InProcessRenderer
from imgpipe.entrypoints import lambda_events
from imgpipe.service import UseCases
from motoserver import REGION, aws, drain_queue, moto_endpoint, rule_to_queue, unique

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


@pytest.fixture
def bus(events: EventBridgeClient, monkeypatch: pytest.MonkeyPatch) -> str:
    """A bus of its own; the events function is told it by its environment, as on Lambda."""
    name = unique("imgpipe-bus")
    events.create_event_bus(Name=name)
    monkeypatch.setenv("IMGPIPE_EVENTS__EVENT_BUS", name)
    return name


def process(stack: Stack, originals: dict[str, bytes]) -> dict[str, ImageRecord]:
    """Put the originals in the bucket and run the worker on their notifications."""
    stack.receive()  # the S3 test event
    versions = {key: put_original(stack, key, data) for key, data in originals.items()}
    notes = {event_key(m): m for m in stack.notifications()}
    batch = [as_aws_sends(notes[k], versions[k], next_sequencer()) for k in originals]
    assert stack.work(batch) == []
    return {key: stack.record(key) for key in originals}


def test_finished_images_arrive_through_eventbridge_rules(
    stack: Stack, events: EventBridgeClient, bus: str
) -> None:
    # GIVEN two rules on the bus: every imgpipe event, and (as the template's example rule)
    # image.failed only, each to a queue
    everything = rule_to_queue(events, stack.clients, bus, {"source": ["imgpipe"]})
    failures = rule_to_queue(
        events, stack.clients, bus, {"source": ["imgpipe"], "detail-type": ["image.failed"]}
    )
    # WHEN a photo and a corrupt file land in the bucket and the worker processes them
    good, bad = "uploads/events/photo.jpg", "uploads/events/broken.jpg"
    done = process(stack, {good: imagegen.photo_jpeg(400, 300), bad: imagegen.truncated_jpeg()})
    processed, failed = done[good], done[bad]
    assert (processed.status, failed.status) == (Status.PROCESSED, Status.FAILED)
    # THEN the worker published nothing itself: no event before the events function runs
    assert drain_queue(stack.clients, everything) == []

    # WHEN the events function gets the table's stream (PENDING, PROCESSING, final writes)
    records = stack.stream.new_records()
    assert len(records) >= 4
    assert stack.publish_events(records) == []

    # THEN the catch-all rule's queue holds the two events, as EventBridge wraps them
    received = {e["detail-type"]: e for e in drain_queue(stack.clients, everything)}
    assert set(received) == {"image.processed", "image.failed"}
    for kind, record in (("image.processed", processed), ("image.failed", failed)):
        envelope = received[kind]
        assert envelope["source"] == "imgpipe"
        detail = envelope["detail"]
        assert detail == image_event(record)  # the event the local side publishes
        assert detail["id"] == f"{record.image_id}-{record.revision}"
        assert detail["time"] == record.updated_at
        assert detail["data"]["status"] == record.status.value
    ok = received["image.processed"]["detail"]["data"]
    assert (ok["width"], ok["height"], len(ok["renditions"])) == (400, 300, 6)
    error = received["image.failed"]["detail"]["data"]["error"]
    assert failed.error is not None and error["code"] == failed.error.code

    # AND the image.failed rule's queue holds only the failure
    [only] = drain_queue(stack.clients, failures)
    assert only["detail-type"] == "image.failed"
    assert only["detail"]["data"]["imageId"] == failed.image_id


def test_the_worker_and_the_api_publish_nothing_even_with_a_bus(
    stack: Stack, events: EventBridgeClient, bus: str
) -> None:
    # GIVEN a bus in the environment and a rule for every imgpipe event on it
    everything = rule_to_queue(events, stack.clients, bus, {"source": ["imgpipe"]})
    # WHEN the worker processes an image and the API processes another one synchronously
    process(stack, {"uploads/events/quiet.jpg": imagegen.truncated_jpeg()})
    key = "uploads/events/now.jpg"
    put_original(stack, key, imagegen.photo_jpeg(200, 150))
    answer = call_api("http", "POST", "/process-image", json_body={"key": key})
    assert answer.status == 200, answer.body
    # THEN nothing is on the bus until the events function reads the stream: no double sends
    assert drain_queue(stack.clients, everything) == []
    assert stack.publish_events(stack.stream.new_records()) == []
    assert len(drain_queue(stack.clients, everything)) == 2


def deliver_until_done(stack: Stack, records: list[dict[str, Any]], tries: int) -> list[int]:
    """Lambda's retries: hand the batch over; while the handler reports failures, hand over
    again from the first failed record on. The failures reported by each call."""
    reported: list[int] = []
    for _ in range(tries):
        failed = stack.publish_events(records)
        reported.append(len(failed))
        if not failed:
            return reported
        first = min(int(n) for n in failed)
        records = [r for r in records if int(r["dynamodb"]["SequenceNumber"]) >= first]
    return reported


def test_a_bus_that_refuses_the_events_gets_them_on_redelivery(
    stack: Stack, events: EventBridgeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the events function pointed at a bus that does not exist yet: PutEvents fails
    # outright (ResourceNotFoundException, not retried by the client)
    name = unique("imgpipe-late-bus")
    monkeypatch.setenv("IMGPIPE_EVENTS__EVENT_BUS", name)
    done = process(stack, {"uploads/events/late.jpg": imagegen.photo_jpeg(300, 200)})
    records = stack.stream.new_records()
    finishing = [r for r in records if table_stream.stream_event(r) is not None]
    assert len(finishing) == 1
    # WHEN the handler gets the batch THEN it reports the finishing write as failed
    # (and, before this function existed, the worker logged the event and dropped it)
    failed = stack.publish_events(records)
    assert failed == [finishing[0]["dynamodb"]["SequenceNumber"]]

    # WHEN the bus exists by the time Lambda delivers the record again
    events.create_event_bus(Name=name)
    queue = rule_to_queue(events, stack.clients, name, {"source": ["imgpipe"]})
    assert deliver_until_done(stack, [r for r in records if r in finishing], tries=3) == [0]
    # THEN the event arrives, once
    [event] = drain_queue(stack.clients, queue)
    record = done["uploads/events/late.jpg"]
    assert event["detail"]["id"] == f"{record.image_id}-{record.revision}"


def entry_failure(reply_entries: int) -> Reply:
    """PutEvents' answer when EventBridge could not take its entries: HTTP 200, each entry an
    ErrorCode (botocore does not retry this: it is not an error of the call)."""
    failed = {"ErrorCode": "InternalFailure", "ErrorMessage": "Internal service error"}
    body = json.dumps({"FailedEntryCount": reply_entries, "Entries": [failed] * reply_entries})
    return Reply(200, "InternalFailure", body.encode(), "application/x-amz-json-1.1")


def events_internal_error() -> Reply:
    """EventBridge failing the call: HTTP 500 InternalException (botocore retries it)."""
    body = b'{"__type":"InternalException","message":"Internal service error"}'
    return Reply(500, "InternalException", body, "application/x-amz-json-1.1")


@pytest.mark.parametrize(
    ("reply", "times"),
    [
        (entry_failure(1), 1),  # one answer with the entry failed
        # every attempt the client makes: the first and its 4 retries (bootstrap.client_config)
        (events_internal_error(), 5),
    ],
    ids=["entry-failed", "call-failed"],
)
def test_a_failed_put_is_reported_and_published_on_redelivery(
    stack: Stack,
    events: EventBridgeClient,
    bus: str,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    reply: Reply,
    times: int,
) -> None:
    queue = rule_to_queue(events, stack.clients, bus, {"source": ["imgpipe"]})
    done = process(stack, {"uploads/events/flaky.jpg": imagegen.photo_jpeg(320, 240)})
    record = done["uploads/events/flaky.jpg"]
    records = stack.stream.new_records()
    with FaultProxy(moto_endpoint) as proxy:
        # GIVEN the events function's EventBridge client behind a proxy that fails PutEvents
        monkeypatch.setenv("IMGPIPE_AWS__ENDPOINT_URL", proxy.url)
        proxy.add(Rule("events", reply, operation="PutEvents", times=times))
        # WHEN Lambda hands over the stream records, and again what the handler reported
        reported = deliver_until_done(stack, records, tries=3)
        # THEN the first delivery reported the finishing write, the second published it
        assert reported == [1, 0]
        assert len(proxy.calls("events", "PutEvents", faulted=True)) == times
    [event] = drain_queue(stack.clients, queue)
    assert event["detail"] == image_event(record)


def test_a_record_that_is_not_an_image_record_is_reported_not_dropped(
    stack: Stack, bus: str
) -> None:
    # GIVEN a write to the table that no imgpipe code makes (a doc that is not JSON)
    stack.clients.dynamodb.put_item(
        TableName=stack.table,
        Item={"imageId": {"S": "f" * 32}, "revision": {"N": "1"}, "doc": {"S": "{oops"}},
    )
    [record] = stack.stream.new_records()
    # WHEN the events function gets it THEN it reports it: Lambda retries it, then sends its
    # place to the failure queue (an alarm), rather than losing a write silently
    assert stack.publish_events([record]) == [record["dynamodb"]["SequenceNumber"]]


# -- the rule: the stream's writes give exactly the events the local side publishes ---------


class RecordingEvents:
    """The EventPublisher the local side wires in (JSONL log, webhooks), as a list."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, event: Any) -> None:
        self.published.append(dict(event))


class FailingOnce:
    """Renders for real, except that the first render raises a transient error."""

    def __init__(self) -> None:
        self.failed = False

    def render(self, original: Any, options: RenderOptions) -> RenderResult:
        if not self.failed:
            self.failed = True
            raise TransientError("the renderer's process went away")
        return InProcessRenderer().render(original, options)


def service_for(
    stack: Stack, renderer: Any, published: RecordingEvents, settings: Settings
) -> UseCases:
    """The use cases over the stack's S3, DynamoDB and SQS, publishing to `published`."""
    return UseCases.build(
        stack.objects,
        stack.records,
        SqsJobQueue(stack.clients.sqs, stack.queues.url, stack.queues.dlq_url),
        renderer,
        NullMetrics(),
        service_options(settings, store_notifies=True),
        events=published,
    )


def test_the_stream_gives_the_events_the_local_side_publishes(stack: Stack) -> None:
    """Every kind of write the service makes, through the real DynamoDB store: the events
    the stream rule (core.events.finishes) finds among the writes are exactly, in order, the
    ones the service publishes through its EventPublisher (what the local side emits)."""
    published = RecordingEvents()
    settings = load_settings()
    service = service_for(stack, InProcessRenderer(), published, settings)
    photo = imagegen.photo_jpeg(360, 240)
    infos = {}
    for key, data in (
        ("uploads/rule/a.jpg", photo),
        ("uploads/rule/copy.jpg", photo),
        ("uploads/rule/broken.jpg", imagegen.truncated_jpeg()),
        ("uploads/rule/gone.jpg", imagegen.photo_jpeg(100, 80)),
    ):
        infos[key] = stack.objects.put(key, data, "image/jpeg")

    def event(key: str, second: int) -> ObjectEvent:
        info = infos[key]
        return ObjectEvent(
            key=key,
            sequencer=next_sequencer(),
            size=info.size,
            etag=info.etag,
            version_id=info.version_id,
            event_time=f"2026-01-01T00:00:0{second}.000Z",
        )

    # the later copy first, so that the original's commit links it (a duplicateOf write)
    service.processing.process(event("uploads/rule/copy.jpg", 2))
    service.processing.process(event("uploads/rule/a.jpg", 1))
    assert (
        stack.record("uploads/rule/copy.jpg").duplicate_of
        == stack.record("uploads/rule/a.jpg").image_id
    )
    broken = event("uploads/rule/broken.jpg", 3)
    service.processing.process(broken)  # FAILED
    # FAILED again: published
    service.processing.give_up(broken, TransientError("queue gave up"), 5)
    gone = event("uploads/rule/gone.jpg", 4)
    service.ingest.accept(infos["uploads/rule/gone.jpg"])
    stack.objects.delete("uploads/rule/gone.jpg")
    service.processing.process(gone)  # FAILED not_found
    service.processing.process_key_now("uploads/rule/a.jpg")  # a reprocess
    # a re-render that fails for a transient reason (the lease handed back), then one that works
    wider = [spec.model_copy(update={"width": spec.width + 10}) for spec in settings.renditions]
    changed = service_for(
        stack, FailingOnce(), published, settings.model_copy(update={"renditions": wider})
    )
    with pytest.raises(TransientError):
        changed.rerendering.rerender("uploads/rule/a.jpg")
    changed.rerendering.rerender("uploads/rule/a.jpg")
    service.maintenance.delete(stack.record("uploads/rule/copy.jpg").image_id)

    found = [table_stream.stream_event(r) for r in stack.stream.new_records()]
    from_stream = [e for e in found if e is not None]
    assert [e["id"] for e in from_stream] == [e["id"] for e in published.published]
    assert from_stream == published.published
    kinds = [e["type"] for e in from_stream]
    # copy, a, broken, broken again, gone, a again, a re-rendered
    assert kinds == ["image.processed"] * 2 + ["image.failed"] * 3 + ["image.processed"] * 2
    # and the 10 writes that publish nothing were in the stream too: 2 x PROCESSING (the copy
    # and the original), the copy's duplicateOf link, PENDING (gone), PROCESSING (reprocess),
    # the re-render's lease taken, handed back, taken again, and the delete
    assert len(found) - len(from_stream) == 10


def test_the_events_function_imports_no_service_and_no_imaging() -> None:
    # its cold start loads what it runs: the stream rule, EventBridge, metrics
    import subprocess
    import sys

    code = (
        "import sys, imgpipe.entrypoints.lambda_events;"
        "print(sorted(m for m in ('imgpipe.service', 'imgpipe.engine', 'pyvips', 'PIL',"
        " 'boto3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_handler_module_builds_only_an_eventbridge_client(stack: Stack, bus: str) -> None:
    # a cold start of the events function makes no S3, DynamoDB or SQS client
    runtime = lambda_events.app()
    assert runtime.bus == bus
    assert runtime.events.meta.service_model.service_name == "events"
    assert set(vars(runtime)) == {"events", "bus", "metrics"}


# -- batches Lambda gave up on: `imgpipe replay-events` -----------------------------------------


def given_up(stack: Stack, records: list[dict[str, Any]]) -> str:
    """The message Lambda sends a stream mapping's on-failure destination when it gives up on
    a batch (as the Lambda developer guide documents it): where the batch lies, not its records."""
    [shard] = stack.stream.client.describe_stream(StreamArn=stack.stream.arn)["StreamDescription"][
        "Shards"
    ]
    return json.dumps(
        {
            "requestContext": {
                "requestId": "316aa6d0-8154-4b3c-9af7-85d5f4a6bc81",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:imgpipe-events",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": 1001,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
            "version": "1.0",
            "timestamp": "2026-01-01T00:13:49.717Z",
            "DDBStreamBatchInfo": {
                "shardId": shard["ShardId"],
                "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": "2026-01-01T00:13:19Z",
                "approximateArrivalOfLastRecord": "2026-01-01T00:13:19Z",
                "batchSize": len(records),
                "streamArn": stack.stream.arn,
            },
        }
    )


def imgpipe(*args: str) -> Any:
    """The CLI as a user runs it (the stack's IMGPIPE_* environment, inherited)."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "imgpipe.entrypoints.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_replay_events_publishes_the_batches_lambda_gave_up_on(
    stack: Stack, events: EventBridgeClient, bus: str
) -> None:
    # GIVEN two images finished, and Lambda's failure queue holding the batch of their writes
    # (after the events function failed it MaximumRetryAttempts times)
    seen = rule_to_queue(events, stack.clients, bus, {"source": ["imgpipe"]})
    done = process(
        stack,
        {
            "uploads/replay/a.jpg": imagegen.photo_jpeg(200, 100),
            "uploads/replay/b.jpg": imagegen.truncated_jpeg(),
        },
    )
    records = stack.stream.new_records()
    failures = stack.clients.sqs.create_queue(QueueName=unique("imgpipe-events-failures"))
    url = failures["QueueUrl"]
    stack.clients.sqs.send_message(QueueUrl=url, MessageBody=given_up(stack, records))
    # AND a message about a stream that is gone (older than the stream's 24 hours, say)
    gone = json.loads(given_up(stack, records))
    gone["DDBStreamBatchInfo"]["streamArn"] = stack.stream.arn.replace(stack.table, "gone")
    stack.clients.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(gone))

    # WHEN an operator runs imgpipe replay-events
    ran = imgpipe("replay-events", "--queue-url", url, "--bus", bus)

    # THEN the batch's two events are on the bus, and its message is gone
    assert "replayed 1 batch(es): 2 event(s) put" in ran.stdout, ran.stderr
    ids = sorted(e["detail"]["id"] for e in drain_queue(stack.clients, seen))
    assert ids == sorted(f"{r.image_id}-{r.revision}" for r in done.values())
    # AND the one it could not read back is kept, said, and the command fails
    assert ran.returncode == 1
    assert "kept a batch" in ran.stderr
    attributes = stack.clients.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
