"""The port contracts over the AWS adapters, against moto's server on 127.0.0.1.

Where moto is laxer than AWS, the rule is covered another way (tests/unit/test_aws_units.py):
- presigned POST conditions are not enforced by moto: the policy document is decoded and its
  conditions checked;
- DynamoDB reserved words are not checked by moto: every expression the store sends is
  checked against them, and every name goes through a #placeholder anyway;
- IAM is not enforced by moto at all: the template's tests own least privilege;
- an SSE-KMS bucket (the template's) answers ETags that are not MD5s; the contract's ETag
  checks (MD5 for S3) hold on moto only, and nothing in imgpipe relies on them.
Where SQS itself differs from the local queue (no dedup on a standard queue, no oldest-message
age but from CloudWatch, best-effort order, whole seconds), the contract's flags or an
override below say so.
"""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from PIL import Image

from contract.job_queue_contract import (
    MAX_RECEIVES,
    JobQueueContract,
    drain_concurrently,
    receive_one,
)
from contract.metadata_store_contract import (
    MetadataStoreContract,
    SimilarityIndexContract,
    make_record,
)
from contract.object_store_contract import ObjectStoreContract
from imgpipe.adapters.aws import dynamodb_store
from imgpipe.adapters.aws.dynamodb_store import DynamoMetadataStore
from imgpipe.adapters.aws.s3_store import S3ObjectStore
from imgpipe.adapters.aws.sqs_queue import SqsJobQueue
from imgpipe.bootstrap import AwsClients
from imgpipe.core.errors import StoreUnavailableError
from imgpipe.core.model import ImageRecord, Status
from imgpipe.core.ports import JobQueue
from motoserver import aws, create_bucket, create_queues, create_table, moto_endpoint, unique

__all__ = ["aws", "moto_endpoint"]  # fixtures


# -- S3 -------------------------------------------------------------------------------------


@pytest.fixture
def s3_store(aws: AwsClients) -> S3ObjectStore:
    return S3ObjectStore(aws.s3, create_bucket(aws, unique("contract")))


class TestS3ObjectStore(ObjectStoreContract):
    @pytest.fixture
    def object_store(self, s3_store: S3ObjectStore) -> S3ObjectStore:
        return s3_store


def test_head_and_put_carry_the_version(s3_store: S3ObjectStore) -> None:
    first = s3_store.put("uploads/v/a.jpg", b"one", "image/jpeg")
    second = s3_store.put("uploads/v/a.jpg", b"two", "image/jpeg")

    head = s3_store.head("uploads/v/a.jpg")

    assert first.version_id and second.version_id and first.version_id != second.version_id
    assert head is not None
    assert (head.version_id, head.sequencer) == (second.version_id, None)  # S3 HEAD: none
    assert head.last_modified is not None and head.last_modified.endswith("Z")
    # an older version stays readable by its id (the worker GETs the version it was told of)
    assert s3_store.get("uploads/v/a.jpg", version_id=first.version_id) == b"one"


def test_a_deleted_object_of_a_versioned_bucket_is_gone(s3_store: S3ObjectStore) -> None:
    info = s3_store.put("uploads/d/a.jpg", b"one", "image/jpeg")

    s3_store.delete("uploads/d/a.jpg")  # a delete marker on a versioned bucket

    assert s3_store.head("uploads/d/a.jpg") is None
    assert s3_store.get("uploads/d/a.jpg", version_id=info.version_id) == b"one"


def test_presigned_get_serves_the_bytes(s3_store: S3ObjectStore) -> None:
    import httpx

    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), "red").save(buffer, "PNG")
    s3_store.put("renditions/x/thumb.png", buffer.getvalue(), "image/png")

    url = s3_store.presigned_get("renditions/x/thumb.png", 60)

    response = httpx.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (4, 3)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url


def test_an_unreachable_endpoint_is_transient(moto_endpoint: str) -> None:
    import boto3
    from botocore.config import Config

    # a port nothing listens on: the connection is refused
    client = boto3.session.Session().client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    try:
        with pytest.raises(StoreUnavailableError):
            S3ObjectStore(client, "any").head("uploads/a.jpg")
    finally:
        client.close()


# -- DynamoDB -------------------------------------------------------------------------------


@pytest.fixture
def dynamo_store(aws: AwsClients) -> DynamoMetadataStore:
    return DynamoMetadataStore(aws.dynamodb, create_table(aws, unique("contract")))


class TestDynamoMetadataStore(MetadataStoreContract):
    @pytest.fixture
    def metadata_store(self, dynamo_store: DynamoMetadataStore) -> DynamoMetadataStore:
        return dynamo_store


class TestDynamoSimilarityIndex(SimilarityIndexContract):
    @pytest.fixture
    def metadata_store(self, dynamo_store: DynamoMetadataStore) -> DynamoMetadataStore:
        return dynamo_store


def test_the_item_layout_the_template_indexes(dynamo_store: DynamoMetadataStore) -> None:
    record = make_record("uploads/a.jpg", status=Status.FAILED)
    dynamo_store.put(record, None)

    item = dynamo_store.client.get_item(
        TableName=dynamo_store.table, Key={"imageId": {"S": record.image_id}}
    )["Item"]

    shard = dynamodb_store.shard_of(record.image_id)
    assert 0 <= shard < 8
    assert set(item) == {"imageId", "revision", "doc", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"}
    assert item["gsi1pk"]["S"] == f"FAILED#{shard}"
    assert item["gsi2pk"]["S"] == f"all#{shard}"
    assert item["gsi1sk"]["S"] == item["gsi2sk"]["S"] == f"{record.uploaded_at}#{record.image_id}"
    assert item["revision"]["N"] == "1"


def written_by_an_older_version(
    store: DynamoMetadataStore, record: ImageRecord, without: set[str]
) -> dict[str, Any]:
    """The item as a version of imgpipe before some index wrote it: `without` those keys."""
    item = dynamodb_store.to_item(record, 1)
    old = {k: v for k, v in item.items() if k not in without}
    store.client.put_item(TableName=store.table, Item=old)  # type: ignore[arg-type]
    return old


NEAR_DUPLICATE_KEYS = {"sha256", "phash", "phb0", "phb1", "phb2", "phb3"}
STATUS_KEYS = {"gsi1pk", "gsi1sk"}


def test_backfill_makes_records_of_older_versions_findable(
    dynamo_store: DynamoMetadataStore,
) -> None:
    store = dynamo_store
    # GIVEN a processed record written before byStatus and the near-duplicate indexes, a
    # pending one written before byStatus, and one written by this version
    done = make_record("uploads/old.jpg", status=Status.PROCESSED, sha256="ab" * 32, phash="0f" * 8)
    pending = make_record("uploads/pending.jpg", uploaded_at="2026-01-02T03:04:06.000Z")
    current = make_record("uploads/new.jpg", status=Status.PROCESSED, sha256="cd" * 32)
    written_by_an_older_version(store, done, STATUS_KEYS | NEAR_DUPLICATE_KEYS)
    written_by_an_older_version(store, pending, STATUS_KEYS)
    assert store.put(current, None) is not None
    assert store.with_sha256("ab" * 32, 10) == []
    assert store.near_phash("0f" * 8, 0, 10) == []
    assert store.list(Status.PROCESSED, 10, None).items == [store.get(current.image_id)]

    # WHEN the backfill stops after its first page, and is resumed where that page says
    first = next(store.backfill_index_keys(page_size=1))
    assert first.scanned == 1 and first.resume is not None
    rest = list(store.backfill_index_keys(first.resume, page_size=1))

    # THEN every record was read once, and only the two older ones were rewritten
    assert first.scanned + sum(p.scanned for p in rest) == 3
    assert first.rewritten + sum(p.rewritten for p in rest) == 2
    assert rest[-1].resume is None
    # AND the old records are found through every index, as they were written (same revision)
    assert store.with_sha256("ab" * 32, 10) == [done.image_id]
    assert [hit.image_id for hit in store.near_phash("0f" * 8, 0, 10)] == [done.image_id]
    processed = store.list(Status.PROCESSED, 10, None).items
    assert {r.image_id for r in processed} == {done.image_id, current.image_id}
    assert [r.image_id for r in store.list(Status.PENDING, 10, None).items] == [pending.image_id]
    assert store.get(done.image_id) == done.model_copy(update={"revision": 1})
    # AND a second run finds nothing to do
    assert sum(p.rewritten for p in store.backfill_index_keys()) == 0


def test_backfill_never_overwrites_a_newer_write(dynamo_store: DynamoMetadataStore) -> None:
    store = dynamo_store
    # GIVEN a processed record of an older version, as a backfill's scan read it
    old = make_record("uploads/raced.jpg", status=Status.PROCESSED, sha256="ef" * 32)
    scanned = written_by_an_older_version(store, old, STATUS_KEYS | NEAR_DUPLICATE_KEYS)
    # AND, before the backfill gets to it, the record is reprocessed and fails
    failed = old.model_copy(update={"status": Status.FAILED})
    assert store.put(failed, expected_revision=1) is not None

    # WHEN the backfill handles what it scanned
    outcome = store.backfill_item(scanned)

    # THEN it loses to the newer write, whose keys stand (FAILED, not the scan's PROCESSED)
    assert outcome == "raced"
    assert store.get(old.image_id) == failed.model_copy(update={"revision": 2})
    assert [r.image_id for r in store.list(Status.FAILED, 10, None).items] == [old.image_id]
    assert store.list(Status.PROCESSED, 10, None).items == []


# -- SQS ------------------------------------------------------------------------------------


class TestSqsJobQueue(JobQueueContract):
    visibility_s = 1  # SQS counts whole seconds
    fifo = False  # a standard queue: best-effort order

    @pytest.fixture
    def job_queue(self, aws: AwsClients) -> SqsJobQueue:
        queues = create_queues(aws, unique("contract"), max_receives=MAX_RECEIVES)
        return SqsJobQueue(aws.sqs, queues.url, queues.dlq_url)

    def test_dedup_while_waiting_or_in_flight(self, job_queue: JobQueue) -> None:
        """Overrides the contract: a standard queue has no deduplication (FIFO queues take no
        S3 notifications), so both copies are delivered; the record's CAS makes the second
        one a no-op (tests/e2e/test_aws_flow.py: a duplicate event does no second work)."""
        job_queue.send({"n": 1}, dedup_id="uploads/a.jpg@0a")
        job_queue.send({"n": 1}, dedup_id="uploads/a.jpg@0a")

        assert job_queue.stats().visible == 2

    def test_an_ack_with_a_stale_receipt_does_nothing(self, job_queue: JobQueue) -> None:
        """Overrides the contract: SQS may still honour an older receipt (moto always does;
        AWS says the message "might not be deleted"). Nothing relies on it: on AWS the Lambda
        event source deletes messages, and the record's lease and CAS guard the work. What
        holds: a stale receipt is not an error, and the current holder's ack ends the job."""
        job_queue.send({"n": 1})
        [slow] = job_queue.receive(1, self.visibility_s)
        fast = receive_one(job_queue, 30)

        job_queue.ack(slow)
        job_queue.release(slow, 0)
        job_queue.ack(fast)

        assert job_queue.receive(1, 30) == []
        stats = job_queue.stats()
        assert (stats.visible, stats.in_flight) == (0, 0)

    def test_concurrent_receivers_never_share_a_lease(self, job_queue: JobQueue) -> None:
        """Overrides the contract: moto's ReceiveMessage takes no lock, so two receivers at once
        can both find a message visible and both take it (a CI run saw it once). AWS leases a
        message atomically, but a standard queue is at-least-once: "on rare occasions" it
        delivers a copy again. What holds on both: every message reaches a receiver, none is
        lost. That a lease hides a message is held one receiver at a time by
        test_a_lease_hides_the_message_until_it_expires, and that a second delivery does no
        second work by the record's CAS (tests/e2e/test_aws_flow.py)."""
        for n in range(40):
            job_queue.send({"n": n})

        assert set(drain_concurrently(job_queue, receivers=4)) == set(range(40))

    def test_stats_count_waiting_messages_and_their_age(self, job_queue: JobQueue) -> None:
        """Overrides the contract: SQS gives the oldest message's age only as the CloudWatch
        metric ApproximateAgeOfOldestMessage (the alarms use it), so oldest_age_s is 0."""
        job_queue.send({"n": 1})
        job_queue.send({"n": 2})
        time.sleep(0.05)

        stats = job_queue.stats()

        assert (stats.visible, stats.in_flight, stats.dead, stats.oldest_age_s) == (2, 0, 0, 0)


def test_receive_takes_at_most_ten(aws: AwsClients) -> None:
    queues = create_queues(aws, unique("ten"), max_receives=MAX_RECEIVES)
    queue = SqsJobQueue(aws.sqs, queues.url, queues.dlq_url)
    for n in range(12):
        queue.send({"n": n})

    got = queue.receive(50, 30)

    assert 1 <= len(got) <= 10


def test_a_presigned_put_for_a_declared_size_is_good_once(s3_store: S3ObjectStore) -> None:
    from urllib.parse import parse_qs, urlsplit

    import httpx

    # GIVEN a presigned PUT for a declared size (POST /uploads with `size`, on AWS)
    body = b"\xff\xd8" + b"x" * 998
    url, headers, _ = s3_store.presigned_put("uploads/once/a.jpg", "image/jpeg", len(body), 600)

    # WHEN the client PUTs the bytes with the headers it was given THEN S3 stores them
    assert httpx.put(url, content=body, headers=headers).status_code == 200
    assert s3_store.get("uploads/once/a.jpg") == body
    # WHEN the URL is used again THEN S3 refuses (If-None-Match: *), and the first bytes stay
    again = httpx.put(url, content=b"\xff\xd8" + b"y" * 998, headers=headers)
    assert again.status_code == 412, again.text
    assert s3_store.get("uploads/once/a.jpg") == body

    # moto does not check a presigned URL's signature, so it cannot show S3 refusing another
    # length: the length and the condition are in the signed headers, which S3 verifies.
    signed = parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";")
    assert {"content-length", "content-type", "if-none-match", "host"} <= set(signed)
