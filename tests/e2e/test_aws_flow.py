"""End to end on AWS, offline: moto's server on 127.0.0.1 holds the bucket, table and queues
(made as infra/template.yaml declares them); the Lambda handlers are called the way Lambda
calls them, with SQS and API Gateway events; renditions are fetched back and decoded.

Where moto differs from AWS, the test says so where it matters:
- moto delivers S3 notifications to SQS, but without `sequencer` and `versionId`, which AWS
  always sends for a versioned bucket: `as_aws_sends` adds them to the notification read from
  the queue (increasing sequencers, the version the upload made), nothing else is changed;
- moto keeps the table's stream but runs no event source mapping: `Stack.publish_events` hands
  the stream's records to the events handler as Lambda would (motoserver.TableStream);
- moto does not enforce presigned POST conditions (tests/integration/test_aws_contracts.py
  checks the policy document instead), IAM, or API Gateway's authorizer (the handler here is
  called directly, as API Gateway would after authorizing).
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote_plus, unquote_plus, urlencode

import boto3
import httpx
import pytest
from PIL import Image

import imagegen
from contract.metadata_store_contract import make_record
from imgpipe.adapters.aws import dynamodb_store
from imgpipe.adapters.aws.dynamodb_store import DynamoMetadataStore
from imgpipe.adapters.aws.s3_store import S3ObjectStore
from imgpipe.bootstrap import AwsClients
from imgpipe.core.keys import image_id_for
from imgpipe.core.model import ImageRecord, Status, iso, utcnow
from imgpipe.entrypoints import lambda_api, lambda_events, lambda_worker
from motoserver import (
    REGION,
    Queues,
    TableStream,
    aws,
    create_bucket,
    create_queues,
    create_table,
    drain_queue,
    moto_endpoint,
    notify_uploads,
    rule_to_queue,
    unique,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["aws", "moto_endpoint"]  # fixtures

MAX_ATTEMPTS = 5  # settings.server.max_attempts; the template's maxReceiveCount
SIZES = {"thumb": 256, "medium": 800, "large": 1600}
_sequencers = itertools.count(0x0062FA3D1B9C4E0001)


def next_sequencer() -> str:
    """What S3 puts in notifications: a hex string that grows for each change of a key."""
    return f"{next(_sequencers):018X}"


@dataclass
class FakeLambdaContext:
    function_name: str = "imgpipe-worker"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:imgpipe-worker"
    memory_limit_in_mb: int = 1769
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/imgpipe-worker"
    log_stream_name: str = "2026/01/01/[$LATEST]0123456789abcdef"
    remaining_ms: int = 300_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Stack:
    clients: AwsClients
    bucket: str
    table: str
    queues: Queues
    objects: S3ObjectStore
    records: DynamoMetadataStore
    stream: TableStream

    # -- the events function, fed by the table's stream ----------------------------------------

    def publish_events(self, records: list[dict[str, Any]]) -> list[str]:
        """Hand `records` to the events handler as Lambda's mapping does, at most 10 at a time
        (its BatchSize); the sequence numbers it reported failed."""
        failed: list[str] = []
        for start in range(0, len(records), 10):
            context = cast("LambdaContext", FakeLambdaContext(function_name="imgpipe-events"))
            response = lambda_events.handler({"Records": records[start : start + 10]}, context)
            failed.extend(f["itemIdentifier"] for f in response["batchItemFailures"])
        return failed

    # -- SQS as Lambda's event source sees it -------------------------------------------------

    def receive(self, visibility_s: int = 30) -> list[dict[str, Any]]:
        """Every visible message of the queue (as the event source polls them)."""
        got: list[dict[str, Any]] = []
        while True:
            found = self.clients.sqs.receive_message(
                QueueUrl=self.queues.url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=visibility_s,
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            if not found:
                return got
            got.extend(dict(m) for m in found)

    def receive_once(self, visibility_s: int) -> list[dict[str, Any]]:
        found = self.clients.sqs.receive_message(
            QueueUrl=self.queues.url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=visibility_s,
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        return [dict(m) for m in found]

    def sqs_event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The event Lambda's SQS event source hands the worker."""
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": {
                        "ApproximateReceiveCount": m["Attributes"]["ApproximateReceiveCount"],
                        "SentTimestamp": m["Attributes"]["SentTimestamp"],
                        "SenderId": m["Attributes"].get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
                        "ApproximateFirstReceiveTimestamp": m["Attributes"].get(
                            "ApproximateFirstReceiveTimestamp", m["Attributes"]["SentTimestamp"]
                        ),
                    },
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queues.arn,
                    "awsRegion": REGION,
                }
                for m in messages
            ]
        }

    def work(self, messages: list[dict[str, Any]], remaining_ms: int = 300_000) -> list[str]:
        """Run the worker handler on a batch; the ids it reports as failed. Succeeded messages
        are deleted, as the event source does with a partial batch response."""
        context = cast("LambdaContext", FakeLambdaContext(remaining_ms=remaining_ms))
        response = lambda_worker.handler(self.sqs_event(messages), context)
        failed = [str(f["itemIdentifier"]) for f in response["batchItemFailures"]]
        for m in messages:
            if m["MessageId"] not in failed:
                self.clients.sqs.delete_message(
                    QueueUrl=self.queues.url, ReceiptHandle=m["ReceiptHandle"]
                )
        return failed

    def notifications(self) -> list[dict[str, Any]]:
        """What landed in the queue, without the s3:TestEvent sent when notifications were set."""
        return [m for m in self.receive() if "s3:TestEvent" not in m["Body"]]

    def record(self, key: str) -> ImageRecord:
        found = self.records.get(image_id_for(key))
        assert found is not None, f"no record of {key}"
        return found


def s3_event(bucket: str, name: str, obj: dict[str, Any]) -> dict[str, Any]:
    """An S3 event notification as AWS documents it (notification-content-structure)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": iso(utcnow()),
                "eventName": name,
                "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
                "requestParameters": {"sourceIPAddress": "203.0.113.7"},
                "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "x"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "uploads",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "A3NL1KOZZKEXAMPLE"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": obj,
                },
            }
        ]
    }


def event_key(message: dict[str, Any]) -> str:
    return unquote_plus(json.loads(message["Body"])["Records"][0]["s3"]["object"]["key"])


def as_aws_sends(message: dict[str, Any], version_id: str, sequencer: str) -> dict[str, Any]:
    """moto's notification, completed with the two fields AWS adds for a versioned bucket."""
    body = json.loads(message["Body"])
    [record] = body["Records"]
    record["s3"]["object"].setdefault("versionId", version_id)
    record["s3"]["object"].setdefault("sequencer", sequencer)
    return {**message, "Body": json.dumps(body)}


@pytest.fixture
def stack(aws: AwsClients, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A fresh deployment; the handlers read its names from the environment, as on Lambda."""
    name = unique("imgpipe")
    bucket = create_bucket(aws, name)
    table = create_table(aws, name)
    queues = create_queues(aws, name, max_receives=MAX_ATTEMPTS, visibility_s=360)
    notify_uploads(aws, bucket, queues)
    for key, value in {
        "IMGPIPE_BACKEND": "aws",
        "IMGPIPE_AWS__BUCKET": bucket,
        "IMGPIPE_AWS__TABLE": table,
        "IMGPIPE_AWS__QUEUE_URL": queues.url,
        "IMGPIPE_AWS__DLQ_URL": queues.dlq_url,
        "IMGPIPE_AWS__ENDPOINT_URL": moto_endpoint,  # tests only: boto3 talks to moto
        "IMGPIPE_LIMITS__PROCESSING_TIMEOUT_S": "60",
        "POWERTOOLS_SERVICE_NAME": "imgpipe",
        "POWERTOOLS_METRICS_NAMESPACE": "imgpipe",
    }.items():
        monkeypatch.setenv(key, value)
    cold_start()
    built = Stack(
        aws,
        bucket,
        table,
        queues,
        S3ObjectStore(aws.s3, bucket),
        DynamoMetadataStore(aws.dynamodb, table),
        TableStream(aws, moto_endpoint, table),
    )
    yield built
    built.stream.close()
    cold_start()


def cold_start() -> None:
    """Forget what the handlers built (and close its clients): the next call builds anew."""
    for module in (lambda_worker, lambda_api, lambda_events):
        if module.app.cache_info().currsize:
            module.app().close()
        module.app.cache_clear()
    lambda_api.asgi.cache_clear()


def put_original(stack: Stack, key: str, data: bytes) -> str:
    """An object put into the bucket by other means (as `aws s3 cp` would); its version id."""
    written = stack.clients.s3.put_object(
        Bucket=stack.bucket, Key=key, Body=data, ContentType="image/jpeg"
    )
    return written["VersionId"]


def assert_renditions(stack: Stack, record: ImageRecord, width: int, height: int) -> None:
    assert record.status is Status.PROCESSED, record.error
    assert (record.width, record.height) == (width, height)
    assert len(record.renditions) == 6
    for r in record.renditions:
        assert (
            r.key
            == f"renditions/{record.image_id}/{r.name}.{'jpg' if r.format == 'jpeg' else r.format}"
        )
        with Image.open(io.BytesIO(stack.objects.get(r.key))) as im:
            assert im.format == {"jpeg": "JPEG", "webp": "WEBP"}[r.format]
            assert im.size == (r.width, r.height)
            assert max(im.size) == min(SIZES[r.name], max(width, height))


# -- the worker -------------------------------------------------------------------------------


def test_a_presigned_post_upload_is_processed_by_the_worker(
    stack: Stack, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a rule on the stack's event bus that sends imgpipe's events to a queue
    events = boto3.session.Session().client(
        "events", endpoint_url=moto_endpoint, region_name=REGION
    )
    bus = unique("imgpipe-bus")
    events.create_event_bus(Name=bus)
    seen = rule_to_queue(events, stack.clients, bus, {"source": ["imgpipe"]})
    monkeypatch.setenv("IMGPIPE_EVENTS__EVENT_BUS", bus)  # the events function's environment
    # AND a presigned POST from the API, used as a browser would
    ticket = call_api(
        "rest",
        "POST",
        "/uploads",
        json_body={"filename": "my photo ü+1.jpg", "contentType": "image/jpeg"},
    )
    assert ticket.status == 201, ticket.body
    data = imagegen.photo_jpeg(1200, 900)
    posted = httpx.post(
        ticket.json["uploadUrl"],
        data=ticket.json["fields"],
        files={"file": ("my photo ü+1.jpg", data, "image/jpeg")},
    )
    assert posted.status_code in (200, 204), posted.text
    key = ticket.json["key"]
    assert key.startswith("uploads/") and key.endswith("/my_photo_ü_1.jpg")

    # WHEN the notification S3 queued reaches the worker (the S3 test event comes first)
    messages = stack.receive()
    [test_event] = [m for m in messages if "s3:TestEvent" in m["Body"]]
    [created] = [m for m in messages if m is not test_event]
    body = json.loads(created["Body"])["Records"][0]
    assert body["eventName"].startswith("ObjectCreated:")
    head = stack.objects.head(key)
    assert head is not None
    failed = stack.work([test_event, as_aws_sends(created, str(head.version_id), next_sequencer())])

    # THEN the record is PROCESSED with six renditions that decode at the right sizes
    assert failed == []
    record = stack.record(key)
    assert record.image_id == ticket.json["imageId"]
    assert (record.version_id, record.attempts) == (head.version_id, 1)
    assert_renditions(stack, record, 1200, 900)
    assert stack.receive() == []  # the test event and the notification are gone

    # WHEN the user asks for a reprocess: our message carries no S3 sequencer (HEAD has none)
    assert call_api("http", "POST", f"/images/{record.image_id}/reprocess").status == 202
    assert stack.work(stack.receive()) == []

    # THEN it is still the same version, processed again rather than skipped as older
    again = stack.record(key)
    assert (again.attempts, again.sequencer, again.status) == (
        2,
        record.sequencer,
        Status.PROCESSED,
    )

    # WHEN the events function reads the table's stream
    assert drain_queue(stack.clients, seen) == []  # the worker and the API published nothing
    assert stack.publish_events(stack.stream.new_records()) == []
    # THEN each processing published image.processed once, under its own id
    published = drain_queue(stack.clients, seen)
    assert [(e["detail-type"], e["detail"]["id"]) for e in published] == [
        ("image.processed", f"{record.image_id}-{record.revision}"),
        ("image.processed", f"{again.image_id}-{again.revision}"),
    ]
    events.close()


def test_a_batch_with_a_poison_and_a_busy_message(stack: Stack) -> None:
    # GIVEN seven photos, one corrupt file and one image another worker is processing
    stack.receive()  # the S3 test event
    keys = [f"uploads/batch/{n}.jpg" for n in range(9)]
    versions = {}
    for n, key in enumerate(keys[:7]):
        versions[key] = put_original(stack, key, imagegen.photo_jpeg(320 + n, 240))
    versions[keys[7]] = put_original(stack, keys[7], imagegen.truncated_jpeg())
    versions[keys[8]] = put_original(stack, keys[8], imagegen.photo_jpeg(300, 200))
    notes = {event_key(m): m for m in stack.notifications()}
    assert len(notes) == 9
    batch = [as_aws_sends(notes[k], versions[k], next_sequencer()) for k in keys]
    busy_seq = json.loads(batch[8]["Body"])["Records"][0]["s3"]["object"]["sequencer"]
    lease = ImageRecord.model_validate(
        {
            "imageId": image_id_for(keys[8]),
            "key": keys[8],
            "bucket": stack.bucket,
            "sequencer": busy_seq,
            "status": Status.PROCESSING,
            "attempts": 1,
            "leaseUntil": iso(utcnow() + timedelta(minutes=5)),
            "uploadedAt": iso(utcnow()),
            "updatedAt": iso(utcnow()),
        }
    )
    assert stack.records.put(lease, None) is not None

    # WHEN the worker gets them, and a second delivery of the first (standard queues may)
    duplicate = {**batch[0], "MessageId": str(uuid.uuid4())}
    started = time.monotonic()
    failed = stack.work([*batch, duplicate])

    # THEN only the busy message is a batch item failure, to be retried
    assert failed == [batch[8]["MessageId"]]
    for n, key in enumerate(keys[:7]):
        assert_renditions(stack, stack.record(key), 320 + n, 240)
    assert stack.record(keys[0]).attempts == 1  # the duplicate did no second work
    poison = stack.record(keys[7])
    assert poison.status is Status.FAILED
    assert poison.error is not None and poison.error.code == "corrupt_image"
    assert stack.record(keys[8]).status is Status.PROCESSING  # untouched
    assert time.monotonic() - started < 20

    # WHEN it is received for the last time THEN the record shows the failure before SQS
    # dead-letters the message
    last = {**batch[8], "Attributes": {**batch[8]["Attributes"], "ApproximateReceiveCount": "5"}}
    assert stack.work([last]) == [last["MessageId"]]
    gave_up = stack.record(keys[8])
    assert gave_up.status is Status.FAILED
    assert gave_up.error is not None and gave_up.error.code == "image_busy"


def test_duplicates_older_events_and_removal(stack: Stack) -> None:
    stack.receive()  # the S3 test event
    key = "uploads/versions/a.jpg"
    v1 = put_original(stack, key, imagegen.photo_jpeg(400, 300))
    [n1] = stack.notifications()
    v2 = put_original(stack, key, imagegen.photo_jpeg(500, 250))
    [n2] = stack.notifications()
    first = as_aws_sends(n1, v1, next_sequencer())
    second = as_aws_sends(n2, v2, next_sequencer())

    # GIVEN the newer version processed first
    assert stack.work([second]) == []
    newer = stack.record(key)
    assert_renditions(stack, newer, 500, 250)

    # WHEN the same event comes again, and then the older version's event arrives late
    assert stack.work([second]) == []
    assert stack.work([first]) == []

    # THEN nothing was done again and nothing was overwritten
    after = stack.record(key)
    assert (after.revision, after.version_id, after.width) == (newer.revision, v2, 500)

    # WHEN the original is deleted: on a versioned bucket a delete marker, for which AWS
    # sends ObjectRemoved:DeleteMarkerCreated. moto sends nothing in that case, so the
    # notification is built as AWS documents it and goes through the queue like the others.
    deleted = stack.clients.s3.delete_object(Bucket=stack.bucket, Key=key)
    assert stack.notifications() == []
    stack.clients.sqs.send_message(
        QueueUrl=stack.queues.url,
        MessageBody=json.dumps(
            s3_event(
                stack.bucket,
                "ObjectRemoved:DeleteMarkerCreated",
                {
                    "key": quote_plus(key),
                    "versionId": deleted["VersionId"],
                    "sequencer": next_sequencer(),
                },
            )
        ),
    )
    assert stack.work(stack.receive()) == []

    # THEN renditions and record are gone
    assert stack.records.get(image_id_for(key)) is None
    assert list(stack.objects.list(f"renditions/{newer.image_id}/")) == []


def test_the_size_limit_is_checked_by_head_before_any_get(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGPIPE_LIMITS__MAX_BYTES", "20000")
    stack.receive()
    key = "uploads/big/a.jpg"
    version = put_original(stack, key, imagegen.photo_jpeg(1200, 900))
    [note] = stack.notifications()
    runtime = lambda_worker.app()

    def no_get(key: str, version_id: str | None = None) -> bytes:
        raise AssertionError(f"GET {key}: the HEAD should have refused it")

    monkeypatch.setattr(runtime.objects, "get", no_get)

    assert stack.work([as_aws_sends(note, version, next_sequencer())]) == []

    record = stack.record(key)
    assert record.status is Status.FAILED
    assert record.error is not None and record.error.code == "too_large"


def test_malformed_and_foreign_messages_are_dropped(stack: Stack) -> None:
    stack.receive()
    for body in ("not json", json.dumps({"hello": "world"}), json.dumps({"type": "created"})):
        stack.clients.sqs.send_message(QueueUrl=stack.queues.url, MessageBody=body)

    assert stack.work(stack.receive()) == []
    assert stack.receive() == []


def test_backfill_and_redrive_on_aws(stack: Stack) -> None:
    stack.receive()
    keys = ["uploads/old/1.jpg", "uploads/old/2.jpg"]
    for key in keys:
        put_original(stack, key, imagegen.photo_jpeg(300, 200))
    stack.notifications()  # GIVEN their notifications were lost (received and dropped)
    runtime = lambda_worker.app()

    # WHEN `imgpipe backfill` runs THEN both are queued (our own messages) and processed
    assert runtime.service.maintenance.backfill("uploads/") == 2
    queued = stack.receive()
    assert sorted(json.loads(m["Body"])["key"] for m in queued) == keys
    assert all(json.loads(m["Body"])["type"] == "created" for m in queued)
    assert stack.work(queued) == []
    for key in keys:
        assert_renditions(stack, stack.record(key), 300, 200)
    assert runtime.service.maintenance.backfill("uploads/") == 0

    # GIVEN a job that failed on every receive and was dead-lettered by SQS
    runtime.queue.send({"type": "removed", "key": "uploads/old/1.jpg"})
    for attempt in range(1, MAX_ATTEMPTS + 1):
        [message] = stack.receive_once(visibility_s=0)
        assert message["Attributes"]["ApproximateReceiveCount"] == str(attempt)
    assert stack.receive_once(visibility_s=0) == []  # the 6th receive moved it to the DLQ
    assert runtime.queue.stats().dead == 1

    # WHEN `imgpipe redrive` runs THEN it is back, with a fresh receive count
    assert runtime.queue.redrive() == 1
    [back] = stack.receive()
    assert back["Attributes"]["ApproximateReceiveCount"] == "1"
    assert json.loads(back["Body"]) == {"type": "removed", "key": "uploads/old/1.jpg"}
    assert runtime.queue.stats().dead == 0


# -- the API ----------------------------------------------------------------------------------


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def api_event(
    kind: str,
    method: str,
    path: str,
    query: dict[str, str] | None,
    body: bytes,
    headers: dict[str, str],
) -> dict[str, Any]:
    """A REST API (v1) or HTTP API (v2) proxy event, as API Gateway sends after authorizing."""
    headers = {
        "host": "abc123.execute-api.us-east-1.amazonaws.com",
        "user-agent": "pytest",
        **headers,
    }
    encoded = base64.b64encode(body).decode() if body else None
    if kind == "rest":
        return {
            "resource": "/{proxy+}",
            "path": path,
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()}
            if query
            else None,
            "pathParameters": {"proxy": path.lstrip("/")},
            "stageVariables": None,
            "requestContext": {
                "resourcePath": "/{proxy+}",
                "httpMethod": method,
                "path": f"/Prod{path}",
                "stage": "Prod",
                "requestId": str(uuid.uuid4()),
                "accountId": "123456789012",
                "apiId": "abc123",
                "identity": {
                    "sourceIp": "203.0.113.7",
                    "userArn": "arn:aws:iam::123456789012:user/t",
                },
                "protocol": "HTTP/1.1",
            },
            "body": encoded,
            "isBase64Encoded": bool(body),
        }
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "headers": headers,
        "queryStringParameters": query or None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "pytest",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
        },
        "body": encoded,
        "isBase64Encoded": bool(body),
    }


def call_api(
    kind: str,
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    json_body: Any = None,
    files: dict[str, tuple[str, bytes, str]] | None = None,
) -> ApiResponse:
    body, headers = b"", {}
    if json_body is not None or files is not None:
        request = httpx.Request("POST", "http://api/", json=json_body, files=files)
        body = request.read()
        headers = {"content-type": request.headers["content-type"]}
    out = lambda_api.handler(
        api_event(kind, method, path, query, body, headers), FakeLambdaContext()
    )
    text = base64.b64decode(out["body"]).decode() if out.get("isBase64Encoded") else out["body"]
    return ApiResponse(out["statusCode"], {k.lower(): v for k, v in out["headers"].items()}, text)


@pytest.mark.parametrize("kind", ["rest", "http"])
def test_every_route_through_api_gateway(stack: Stack, kind: str) -> None:
    stack.receive()  # the S3 test event
    health = call_api(kind, "GET", "/health")
    assert (health.status, health.json["backend"]) == (200, "aws")

    # POST /uploads: a presigned POST limited to one key, type and size
    ticket = call_api(
        kind, "POST", "/uploads", json_body={"filename": "a.png", "contentType": "image/png"}
    )
    assert ticket.status == 201
    assert ticket.json["method"] == "POST" and "policy" in ticket.json["fields"]
    assert ticket.json["fields"]["key"] == ticket.json["key"]
    assert (
        call_api(
            kind,
            "POST",
            "/uploads",
            json_body={"filename": "a.svg", "contentType": "image/svg+xml"},
        ).status
        == 415
    )

    # POST /images (multipart, base64 through API Gateway): PENDING; S3 itself queues the work
    uploaded = call_api(
        kind,
        "POST",
        "/images",
        files={"file": ("cat.jpg", imagegen.photo_jpeg(640, 480), "image/jpeg")},
    )
    assert uploaded.status == 202, uploaded.body
    image_id, key = uploaded.json["imageId"], uploaded.json["key"]
    assert uploaded.json["status"] == "PENDING"
    [note] = stack.notifications()  # only S3's notification: the API sent no message of its own
    assert json.loads(note["Body"])["Records"][0]["eventName"].startswith("ObjectCreated:")

    # POST /process-image: 200 processed, 404 missing, 422 not an image, 400 without key
    done = call_api(kind, "POST", "/process-image", json_body={"key": key})
    assert done.status == 200, done.body
    assert (done.json["status"], done.json["width"], done.json["height"]) == ("PROCESSED", 640, 480)
    assert (
        call_api(kind, "POST", "/process-image", json_body={"key": "uploads/none.jpg"}).status
        == 404
    )
    stack.objects.put("uploads/api/bad.jpg", b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg")
    bad = call_api(kind, "POST", "/process-image", json_body={"key": "uploads/api/bad.jpg"})
    assert (bad.status, bad.json["status"]) == (422, "FAILED")
    assert call_api(kind, "POST", "/process-image", json_body={}).status == 400

    # GET /images/{id}: rendition URLs are presigned S3 GETs that serve the bytes
    got = call_api(kind, "GET", f"/images/{image_id}")
    assert got.status == 200
    thumb = next(
        r for r in got.json["renditions"] if r["name"] == "thumb" and r["format"] == "webp"
    )
    fetched = httpx.get(thumb["url"])
    assert fetched.status_code == 200
    assert Image.open(io.BytesIO(fetched.content)).size == (256, 192)
    assert call_api(kind, "GET", "/images/" + "a" * 26).status == 404

    # GET /images: newest first, status filter, paging with an opaque cursor
    page = call_api(kind, "GET", "/images", query={"limit": "1"})
    assert page.status == 200 and len(page.json["items"]) == 1 and page.json["nextCursor"]
    rest = call_api(kind, "GET", "/images", query={"limit": "1", "cursor": page.json["nextCursor"]})
    ids = {page.json["items"][0]["imageId"], rest.json["items"][0]["imageId"]}
    assert ids == {image_id, image_id_for("uploads/api/bad.jpg")}
    assert rest.json["nextCursor"] is None
    failed_only = call_api(kind, "GET", "/images", query={"status": "FAILED"})
    assert [r["imageId"] for r in failed_only.json["items"]] == [
        image_id_for("uploads/api/bad.jpg")
    ]
    assert call_api(kind, "GET", "/images", query={"cursor": "nope!"}).status == 400

    # GET /images/{id}/renditions/thumb.webp: a redirect to a presigned URL
    redirect = call_api(kind, "GET", f"/images/{image_id}/renditions/thumb.webp")
    assert redirect.status == 307
    with Image.open(io.BytesIO(httpx.get(redirect.headers["location"]).content)) as im:
        assert (im.format, im.size) == ("WEBP", (256, 192))
    assert call_api(kind, "GET", f"/images/{image_id}/renditions/huge.webp").status == 404

    # POST /images/{id}/reprocess: 202, and the job is in the queue; the worker redoes it
    stack.notifications()  # the notification of bad.jpg
    again = call_api(kind, "POST", f"/images/{image_id}/reprocess")
    assert again.status == 202
    [job] = stack.receive()
    assert json.loads(job["Body"])["type"] == "created" and json.loads(job["Body"])["force"] is True
    assert stack.work([job]) == []
    redone = stack.record(key)
    assert (redone.status, redone.attempts) == (Status.PROCESSED, 2)

    # DELETE /images/{id}: original, renditions and record
    assert call_api(kind, "DELETE", f"/images/{image_id}").status == 204
    assert stack.objects.head(key) is None
    assert list(stack.objects.list(f"renditions/{image_id}/")) == []
    assert call_api(kind, "GET", f"/images/{image_id}").status == 404
    assert call_api(kind, "GET", "/metrics").status == 404  # no Prometheus on AWS


def multipart_of(size: int, image: bytes) -> tuple[bytes, dict[str, str]]:
    """A POST /images body of exactly `size` bytes: `image`, then zero bytes to fill."""

    def body(pad: int) -> tuple[bytes, dict[str, str]]:
        files = {"file": ("big.jpg", image + b"\0" * pad, "image/jpeg")}
        request = httpx.Request("POST", "http://api/", files=files)
        return request.read(), {"content-type": request.headers["content-type"]}

    framing = len(body(0)[0])
    made, headers = body(size - framing)
    assert len(made) == size
    return made, headers


@pytest.mark.parametrize("kind", ["rest", "http"])
def test_post_images_over_the_lambda_bound_is_imgpipes_413(stack: Stack, kind: str) -> None:
    """Lambda refuses an invocation payload over 6 MB, and POST /images' body arrives base64-
    encoded in it: over lambda_api.MAX_IMAGES_BODY the handler answers imgpipe's own 413 (with
    the way out) instead of letting a photo that barely fits fail further on. moto plays no part
    in that limit; it holds the bucket, so the test can show nothing was stored."""
    stack.receive()  # the S3 test event
    limit = lambda_api.MAX_IMAGES_BODY
    image = imagegen.photo_jpeg(64, 48)

    def post(body: bytes, headers: dict[str, str]) -> ApiResponse:
        event = api_event(kind, "POST", "/images", None, body, headers)
        out = lambda_api.handler(event, FakeLambdaContext())
        return ApiResponse(out["statusCode"], out["headers"], out["body"])

    # GIVEN a body one byte over the bound
    # WHEN it is posted through API Gateway
    over = post(*multipart_of(limit + 1, image))
    # THEN imgpipe answers 413 too_large, naming the limit and the route for large files
    assert over.status == 413
    assert over.headers["content-type"] == "application/json"
    error = over.json["error"]
    assert error["code"] == "too_large"
    assert str(limit) in error["message"] and "POST /uploads" in error["message"]
    # AND nothing was stored or queued
    assert list(stack.objects.list("uploads/")) == []
    assert stack.notifications() == []

    # GIVEN a body of exactly the bound, whose event is within Lambda's 6 MiB request limit
    body, headers = multipart_of(limit, image)
    event = api_event(kind, "POST", "/images", None, body, headers)
    assert len(json.dumps(event)) < 6 * 1024 * 1024
    # THEN it is taken (202, PENDING)
    taken = post(body, headers)
    assert taken.status == 202, taken.body
    assert taken.json["status"] == "PENDING"


def test_the_413_comes_before_the_body_is_decoded(stack: Stack) -> None:
    """The size is read from the base64 text's length: a body too long is refused even when it
    is not base64 at all (decoding it first would have failed otherwise)."""
    event = api_event("http", "POST", "/images", None, b"x", {"content-type": "image/jpeg"})
    event["body"] = "!" * (4 * lambda_api.MAX_IMAGES_BODY // 3 + 8)
    out = lambda_api.handler(event, FakeLambdaContext())
    assert out["statusCode"] == 413
    assert json.loads(out["body"])["error"]["code"] == "too_large"


def test_the_api_module_does_not_import_pyvips() -> None:
    import subprocess
    import sys

    code = (
        "import sys, imgpipe.entrypoints.lambda_api, imgpipe.entrypoints.lambda_worker;"
        "print(sorted(m for m in ('pyvips', 'numpy', 'PIL', 'boto3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_cli_backfills_and_redrives_on_aws(stack: Stack) -> None:
    """`imgpipe backfill` and `imgpipe redrive` as a user runs them, with IMGPIPE_BACKEND=aws
    (the stack fixture's environment, inherited by the subprocess)."""
    import subprocess
    import sys

    stack.receive()
    put_original(stack, "uploads/cli/1.jpg", imagegen.photo_jpeg(120, 90))
    stack.notifications()  # the notification was lost

    def imgpipe(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "imgpipe.entrypoints.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "queued 1 object(s) under uploads/" in imgpipe("backfill")
    assert [json.loads(m["Body"])["key"] for m in stack.receive()] == ["uploads/cli/1.jpg"]
    assert "moved 0 dead-lettered job(s)" in imgpipe("redrive")


def test_the_cli_backfills_index_keys_on_aws(stack: Stack) -> None:
    """`imgpipe backfill --index-keys`: a record written before the near-duplicate indexes
    (no sha256 or pHash band keys) becomes findable through them."""
    import subprocess
    import sys

    record = make_record(
        "uploads/cli/old.jpg", status=Status.PROCESSED, sha256="ab" * 32, phash="0f" * 8
    )
    item = dynamodb_store.to_item(record, 1)
    for name in ("sha256", "phash", "phb0", "phb1", "phb2", "phb3"):
        del item[name]
    stack.clients.dynamodb.put_item(TableName=stack.table, Item=item)
    assert stack.records.with_sha256("ab" * 32, 10) == []

    done = subprocess.run(
        [sys.executable, "-m", "imgpipe.entrypoints.cli", "backfill", "--index-keys"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "scanned 1 record(s), rewrote 1" in done.stdout
    assert stack.records.with_sha256("ab" * 32, 10) == [record.image_id]
    assert [h.image_id for h in stack.records.near_phash("0f" * 8, 0, 10)] == [record.image_id]


def test_records_are_not_started_without_time_for_a_render(stack: Stack) -> None:
    # GIVEN two uploads, and an invocation with less time left than one render may take
    stack.receive()
    keys = ["uploads/late/1.jpg", "uploads/late/2.jpg"]
    for key in keys:
        put_original(stack, key, imagegen.photo_jpeg(200, 150))
    batch = stack.notifications()
    # WHEN the worker gets the batch with 10 s left (the stack's render limit is 60 s)
    failed = stack.work(batch, remaining_ms=10_000)
    # THEN both go back to SQS untouched, and a later invocation processes them
    assert sorted(failed) == sorted(m["MessageId"] for m in batch)
    assert all(stack.records.get(image_id_for(k)) is None for k in keys)
    assert stack.work(batch) == []
    assert all(stack.record(k).status is Status.PROCESSED for k in keys)


def test_near_duplicates_on_aws(stack: Stack) -> None:
    """duplicateOf and GET /images/{id}/similar through DynamoDB's sha256 and pHash-band GSIs."""
    stack.receive()  # the S3 test event
    photo = imagegen.photo_pixels(640, 480)

    def jpeg(image: Image.Image, quality: int) -> bytes:
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality)
        return out.getvalue()

    def process(key: str, data: bytes) -> ImageRecord:
        version = put_original(stack, key, data)
        [created] = stack.notifications()
        assert stack.work([as_aws_sends(created, version, next_sequencer())]) == []
        return stack.record(key)

    # GIVEN a photo, the same file again later, and a smaller re-encode of it
    first = process("uploads/near/a.jpg", jpeg(photo, 90))
    time.sleep(1.1)  # a later upload time, whatever the resolution of S3's eventTime
    copy = process("uploads/near/b.jpg", jpeg(photo, 90))
    small = process("uploads/near/small.jpg", jpeg(photo.resize((400, 300)), 55))

    # THEN the copy names the first; /similar lists both, the same bytes first
    assert (first.duplicate_of, copy.duplicate_of, small.duplicate_of) == (
        None,
        first.image_id,
        None,
    )
    found = call_api("http", "GET", f"/images/{first.image_id}/similar")
    assert found.status == 200, found.body
    items = [(i["imageId"], i["distance"], i["sameBytes"]) for i in found.json["items"]]
    assert items[0] == (copy.image_id, 0, True)
    assert {i for i, _, _ in items} == {copy.image_id, small.image_id}
    assert all(i["renditions"][0]["url"].startswith("http") for i in found.json["items"])
