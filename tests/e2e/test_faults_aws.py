"""Faults on the AWS path, offline: the worker Lambda against moto through a fault proxy.

The handler's boto3 clients (made by build_aws, standard retry mode, 5 attempts in all) talk
to tests/faultproxy.py, a real HTTP proxy in front of moto's server that answers S3 and
DynamoDB requests with AWS-shaped throttling and 5xx errors when told to. The test's own
clients (the Stack's) talk to moto directly, so what they see is the truth, not the faults.

In every case: one record per key, the newest version wins, nothing is lost (a message either
succeeded or is reported in batchItemFailures, and its redelivery finishes it), poison ends
FAILED and acknowledged, and the reason is on the record.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
from test_aws_flow import (
    Stack,
    as_aws_sends,
    assert_renditions,
    cold_start,
    event_key,
    next_sequencer,
    put_original,
    stack,
)

import imagegen
from faultproxy import (
    FaultProxy,
    Rule,
    dynamodb_internal_error,
    dynamodb_throttled,
    s3_internal_error,
    s3_slow_down,
)
from imgpipe.core.keys import image_id_for
from imgpipe.core.model import Status
from motoserver import aws, moto_endpoint

__all__ = ["aws", "moto_endpoint", "stack"]  # fixtures

BOTO_ATTEMPTS = 5  # bootstrap.aws_clients: standard mode, max_attempts=4 retries


@pytest.fixture(scope="module")
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_endpoint) as running:
        yield running


@pytest.fixture
def faulty(stack: Stack, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The stack, with the worker's clients going through the fault proxy."""
    proxy.clear()
    monkeypatch.setenv("IMGPIPE_AWS__ENDPOINT_URL", proxy.url)
    cold_start()
    for test_event in stack.receive():  # the S3 test event, sent when notifications were set
        stack.clients.sqs.delete_message(
            QueueUrl=stack.queues.url, ReceiptHandle=test_event["ReceiptHandle"]
        )
    yield stack
    proxy.clear()


def uploads(stack: Stack, images: dict[str, bytes]) -> list[dict[str, Any]]:
    """Put each original (as `aws s3 cp` would) and return its notification, completed with
    what AWS sends and moto leaves out (versionId, sequencer), in the order given."""
    versions = {key: put_original(stack, key, data) for key, data in images.items()}
    notes = {event_key(m): m for m in stack.notifications()}
    assert sorted(notes) == sorted(images)
    return [as_aws_sends(notes[k], versions[k], next_sequencer()) for k in images]


def redeliver(stack: Stack, sent: list[dict[str, Any]], failed: list[str]) -> list[dict[str, Any]]:
    """What SQS delivers again once the visibility timeout of the failed messages ran out
    (shortened here to now); their bodies as first sent (moto's, completed as AWS sends)."""
    by_id = {m["MessageId"]: m for m in sent}
    for message_id in failed:
        stack.clients.sqs.change_message_visibility(
            QueueUrl=stack.queues.url,
            ReceiptHandle=by_id[message_id]["ReceiptHandle"],
            VisibilityTimeout=0,
        )
    again = stack.receive()
    assert sorted(m["MessageId"] for m in again) == sorted(failed)
    assert all(int(m["Attributes"]["ApproximateReceiveCount"]) == 2 for m in again)
    return [{**m, "Body": by_id[m["MessageId"]]["Body"]} for m in again]


def rendition_puts(proxy: FaultProxy) -> int:
    """Renditions written through the proxy (6 per render)."""
    return sum("/renditions/" in e.call.path for e in proxy.calls("s3", "PUT", faulted=False))


def queue_is_empty(stack: Stack) -> bool:
    counts = stack.clients.sqs.get_queue_attributes(
        QueueUrl=stack.queues.url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return set(counts.values()) == {"0"}


# -- ordering and vanished originals ---------------------------------------------------------


def test_two_versions_delivered_newest_first_leave_the_newest(
    faulty: Stack, proxy: FaultProxy
) -> None:
    # GIVEN two uploads to one key of the versioned bucket, v1 400x300 then v2 500x250
    key = "uploads/faults/reorder.jpg"
    [first] = uploads(faulty, {key: imagegen.photo_jpeg(400, 300)})
    [second] = uploads(faulty, {key: imagegen.photo_jpeg(500, 250)})
    v2 = json.loads(second["Body"])["Records"][0]["s3"]["object"]["versionId"]

    # WHEN SQS hands the worker their notifications in reverse order, in one batch
    assert faulty.work([second, first]) == []

    # THEN the record is v2's, rendered once (v1's late event was skipped as stale)
    record = faulty.record(key)
    assert_renditions(faulty, record, 500, 250)
    assert (record.version_id, record.attempts) == (v2, 1)
    assert rendition_puts(proxy) == 6

    # WHEN the older event comes once more, alone THEN nothing changes
    assert faulty.work([first]) == []
    assert faulty.record(key).revision == record.revision
    assert [r.key for r in faulty.records.list(None, 10, None).items] == [key]


def test_an_original_deleted_before_its_event_is_processed(faulty: Stack) -> None:
    # GIVEN an upload whose notification waits in the queue, and the original is then deleted
    key = "uploads/faults/gone.jpg"
    [note] = uploads(faulty, {key: imagegen.photo_jpeg(300, 200)})
    faulty.clients.s3.delete_object(Bucket=faulty.bucket, Key=key)  # a delete marker

    # WHEN the worker gets the notification THEN it succeeds and makes no record, no renditions
    assert faulty.work([note]) == []
    assert faulty.records.get(image_id_for(key)) is None
    assert list(faulty.objects.list(f"renditions/{image_id_for(key)}/")) == []
    assert queue_is_empty(faulty)


# -- throttling and 5xx ----------------------------------------------------------------------


def test_a_few_throttles_and_5xx_are_absorbed_by_boto3_retries(
    faulty: Stack, proxy: FaultProxy
) -> None:
    # GIVEN S3 and DynamoDB that throttle, or fail, a few times in a row
    key = "uploads/faults/throttled.jpg"
    [note] = uploads(faulty, {key: imagegen.photo_jpeg(640, 480)})
    proxy.add(Rule("s3", s3_slow_down(), operation="PUT", path_contains="/renditions/", times=2))
    proxy.add(Rule("dynamodb", dynamodb_throttled(), operation="PutItem", times=1))
    proxy.add(Rule("dynamodb", dynamodb_internal_error(), operation="GetItem", times=1))
    proxy.add(Rule("s3", s3_internal_error(), operation="GET", times=1))

    # WHEN the worker processes the notification
    failed = faulty.work([note])

    # THEN every fault was served, and retried away: no batch failure, processed on 1st attempt
    assert len(proxy.calls(faulted=True)) == 5
    assert failed == []
    record = faulty.record(key)
    assert_renditions(faulty, record, 640, 480)
    assert record.attempts == 1
    assert queue_is_empty(faulty)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(
            Rule(
                "dynamodb",
                dynamodb_internal_error(),
                operation="PutItem",
                body_contains=(b'"PROCESSED#',),  # the commit, after the renditions were written
                times=BOTO_ATTEMPTS,
            ),
            id="dynamodb-commit-500",
        ),
        pytest.param(
            Rule(
                "s3",
                s3_internal_error(),
                operation="PUT",
                path_contains="/renditions/",
                times=BOTO_ATTEMPTS,
            ),
            id="s3-rendition-put-500",
        ),
    ],
)
def test_more_failures_than_retries_fail_the_record_over_to_a_redelivery(
    faulty: Stack, proxy: FaultProxy, fault: Rule
) -> None:
    # GIVEN a 5xx on every one of boto3's attempts at one request of the processing
    key = "uploads/faults/outage.jpg"
    [note] = uploads(faulty, {key: imagegen.photo_jpeg(640, 480)})
    rule = proxy.add(dataclasses.replace(fault))

    # WHEN the worker processes the notification
    failed = faulty.work([note])

    # THEN boto3 gave up after its attempts, and the worker reported the message for a retry
    assert rule.faulted == BOTO_ATTEMPTS
    assert failed == [note["MessageId"]]
    # ... leaving the record not PROCESSED, its lease given back, the reason on it
    record = faulty.record(key)
    assert record.status is Status.PENDING
    assert record.lease_until is None and record.renditions == []
    assert record.error is not None and record.error.code == "store_unavailable"
    assert fault.reply.code in record.error.message

    # WHEN the faults have stopped and SQS redelivers the message
    assert faulty.work(redeliver(faulty, [note], failed)) == []

    # THEN it is processed, on its second attempt, and nothing is left in the queue
    done = faulty.record(key)
    assert_renditions(faulty, done, 640, 480)
    assert (done.attempts, done.error, done.revision) == (2, None, record.revision + 2)
    assert queue_is_empty(faulty)


def test_a_poison_message_in_a_batch_of_ten_while_dynamodb_throttles(
    faulty: Stack, proxy: FaultProxy
) -> None:
    # GIVEN nine photos and one corrupt file, queued as one batch of ten
    images = {f"uploads/faults/batch/{n}.jpg": imagegen.photo_jpeg(300 + n, 200) for n in range(9)}
    poison_key = "uploads/faults/batch/poison.jpg"
    images[poison_key] = imagegen.truncated_jpeg()
    batch = uploads(faulty, images)
    assert len(batch) == 10
    unlucky = "uploads/faults/batch/3.jpg"
    # ... and DynamoDB throttling intermittently: every 3rd write, every 4th read, a few 500s,
    # and one image's commit failing more often than boto3 retries
    burst = proxy.add(
        Rule(
            "dynamodb",
            dynamodb_internal_error(),
            operation="PutItem",
            body_contains=(f'"{image_id_for(unlucky)}"'.encode(), b'"PROCESSED#'),
            times=BOTO_ATTEMPTS,
        )
    )
    throttled_writes = proxy.add(
        Rule("dynamodb", dynamodb_throttled(), operation="PutItem", every=3, times=3)
    )
    throttled_reads = proxy.add(
        Rule("dynamodb", dynamodb_throttled(), operation="GetItem", every=4, times=2)
    )
    failing_reads = proxy.add(
        Rule("dynamodb", dynamodb_internal_error(), operation="GetItem", every=5, times=2)
    )

    # WHEN the worker gets the batch
    failed = faulty.work(batch)

    # THEN the faults were served, and only good images are left to retry (here: the unlucky
    # one, whose commit outlasted boto3's retries); the poison is not among them
    assert (burst.faulted, throttled_writes.faulted) == (BOTO_ATTEMPTS, 3)
    assert (throttled_reads.faulted, failing_reads.faulted) == (2, 2)
    by_key = {event_key(m): m["MessageId"] for m in batch}
    assert failed == [by_key[unlucky]]
    # ... the poison is FAILED with the reason, and acknowledged (gone from the queue)
    poison = faulty.record(poison_key)
    assert poison.status is Status.FAILED
    assert poison.error is not None and poison.error.code == "corrupt_image"
    assert poison.error.message

    # WHEN SQS redelivers what failed, with the faults over
    proxy.clear()
    assert faulty.work(redeliver(faulty, batch, failed)) == []

    # THEN the nine are PROCESSED with their renditions, the poison still FAILED, nothing queued
    for n in range(9):
        assert_renditions(faulty, faulty.record(f"uploads/faults/batch/{n}.jpg"), 300 + n, 200)
    assert faulty.record(poison_key).status is Status.FAILED
    assert len(faulty.records.list(None, 50, None).items) == 10
    assert queue_is_empty(faulty)
    dlq = faulty.clients.sqs.get_queue_attributes(
        QueueUrl=faulty.queues.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert dlq["ApproximateNumberOfMessages"] == "0"
