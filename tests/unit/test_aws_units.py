"""The AWS adapters' rules that moto does not check, and the worker's event translation.

No sockets: a boto3 client signs presigned POSTs locally, the rest is pure.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from contract.metadata_store_contract import make_record
from imgpipe.adapters.aws import dynamodb_store
from imgpipe.adapters.aws.client_errors import is_transient
from imgpipe.adapters.aws.emf_metrics import COUNTERS, TIMINGS, EmfMetrics
from imgpipe.adapters.aws.s3_store import S3ObjectStore
from imgpipe.adapters.local import prometheus_metrics
from imgpipe.core.errors import InvalidRequestError
from imgpipe.core.jobs import Job
from imgpipe.entrypoints.lambda_worker import jobs_from

# -- DynamoDB: what AWS checks and moto does not ------------------------------------------------

# Enough of DynamoDB's reserved words to catch the attribute names a record tempts one to use
# (the full list: docs.aws.amazon.com/amazondynamodb/latest/developerguide/ReservedWords.html;
# `doc`, `revision`, `imageId` and `gsi*` are not on it).
RESERVED = frozenset(
    {
        *("status", "key", "size", "format", "bucket", "name", "data", "value", "values"),
        *("count", "item", "items", "attribute", "index", "hash", "range", "time", "date"),
        *("timestamp", "error", "state", "type", "url", "user", "sequence", "table", "level"),
        *("partition", "limit", "order"),
    }
)


def test_expressions_avoid_reserved_words() -> None:
    # moto does not check reserved words; AWS refuses the request. Every attribute in an
    # expression is a #placeholder, and no placeholder stands for a reserved word either.
    functions = {"attribute_not_exists", "AND"}
    for expression in dynamodb_store.EXPRESSIONS:
        bare = re.findall(r"(?<![#:\w])([A-Za-z_]\w*)", expression)
        assert set(bare) <= functions, (expression, bare)
    names = [
        *dynamodb_store.ID_NAMES.values(),
        *dynamodb_store.REVISION_NAMES.values(),
        *(n for names in dynamodb_store.INDEX_NAMES.values() for n in names.values()),
        "doc",
    ]
    assert not {n.lower() for n in names} & RESERVED


def test_records_spread_over_every_shard() -> None:
    shards = [dynamodb_store.shard_of(make_record(f"uploads/{i}.jpg").image_id) for i in range(80)]
    assert set(shards) == set(range(dynamodb_store.SHARDS))
    assert max(shards.count(s) for s in set(shards)) < 25  # no hot shard


def test_an_item_round_trips_and_the_cursor_is_opaque() -> None:
    record = make_record("uploads/ü.jpg", attempts=2)

    item = dynamodb_store.to_item(record, 7)

    assert dynamodb_store.from_item(item) == record.model_copy(update={"revision": 7})
    assert "revision" not in json.loads(item["doc"]["S"])
    cursor = dynamodb_store.encode_cursor(record)
    assert re.fullmatch(r"[A-Za-z0-9_=-]+", cursor)
    assert dynamodb_store.decode_cursor(cursor) == dynamodb_store.sort_key(record)
    with pytest.raises(InvalidRequestError):
        dynamodb_store.decode_cursor(base64.urlsafe_b64encode(b'{"a": 1}').decode())


# -- S3: the presigned POST policy that moto does not enforce ---------------------------------


@pytest.fixture
def offline_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3ObjectStore]:
    """A client that is never connected: presigning happens locally."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    client = boto3.session.Session().client(
        "s3", region_name="eu-west-1", config=Config(signature_version="s3v4")
    )
    yield S3ObjectStore(client, "imgpipe-bucket")
    client.close()


def test_presigned_post_policy_limits_key_type_and_size(offline_s3: S3ObjectStore) -> None:
    # moto accepts a presigned POST without checking its policy; S3 enforces every condition
    # below. So the policy document itself is what to check.
    url, fields, expires = offline_s3.presigned_post("uploads/k/a.jpg", "image/jpeg", 5000, 600)

    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert ["content-length-range", 1, 5000] in conditions
    assert ["eq", "$Content-Type", "image/jpeg"] in conditions
    assert ["eq", "$key", "uploads/k/a.jpg"] in conditions
    assert {"bucket": "imgpipe-bucket"} in conditions
    assert (fields["key"], fields["Content-Type"]) == ("uploads/k/a.jpg", "image/jpeg")
    # SigV4 (SigV2 is refused by newer regions and by SSE-KMS objects)
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert {"x-amz-credential", "x-amz-signature", "x-amz-date"} <= set(fields)
    assert policy["expiration"].startswith(expires.strftime("%Y-%m-%dT%H:%M"))
    assert url.startswith("https://imgpipe-bucket.s3")


def test_presigned_get_is_sigv4_and_short_lived(offline_s3: S3ObjectStore) -> None:
    url = offline_s3.presigned_get("renditions/x/thumb.webp", 300)
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=300" in url


# -- what is worth a retry -------------------------------------------------------------------


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "Op",
    )


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (client_error("SlowDown", 503), True),
        (client_error("ProvisionedThroughputExceededException", 400), True),
        (client_error("ThrottlingException", 400), True),
        (client_error("RequestLimitExceeded", 400), True),
        (client_error("InternalError", 500), True),
        (client_error("Whatever", 502), True),
        (client_error("TooManyRequests", 429), True),
        (client_error("AccessDenied", 403), False),
        (client_error("ResourceNotFoundException", 400), False),
        (client_error("ValidationException", 400), False),
        (EndpointConnectionError(endpoint_url="https://s3"), True),
        (ReadTimeoutError(endpoint_url="https://s3"), True),
        (ValueError("x"), False),
    ],
)
def test_which_failures_are_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


# -- metrics ----------------------------------------------------------------------------------


def test_emf_metric_names_and_labels_are_the_prometheus_ones() -> None:
    assert {n: labels for n, (_, labels) in COUNTERS.items()} == {
        n: labels for n, (_, labels) in prometheus_metrics.COUNTERS.items()
    }
    assert set(TIMINGS) == set(prometheus_metrics.HISTOGRAMS)


def test_emf_metrics_print_embedded_metric_format(capsys: pytest.CaptureFixture[str]) -> None:
    from aws_lambda_powertools.metrics import EphemeralMetrics

    metrics = EmfMetrics(EphemeralMetrics(namespace="imgpipe", service="imgpipe"))  # type: ignore[arg-type]

    metrics.incr("images_processed")
    metrics.incr("images_failed", code="corrupt_image")
    metrics.timing("processing_seconds", 0.25)
    metrics.incr("bytes_out", 1234)
    metrics.flush()
    metrics.flush()  # nothing left: prints nothing, warns nothing

    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(blobs) == 2
    labelled = next(b for b in blobs if "code" in b)
    assert labelled["code"] == "corrupt_image"
    assert labelled["images_failed"] in (1, [1])
    [directive] = labelled["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "imgpipe"
    assert sorted(directive["Dimensions"][0]) == ["code", "service"]
    batch = next(b for b in blobs if "processing_seconds" in b)
    assert batch["images_processed"] == [1] and batch["images_failed"] == [1]
    assert batch["bytes_out"] == [1234]
    units = {m["Name"]: m["Unit"] for m in batch["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert (units["processing_seconds"], units["bytes_out"]) == ("Seconds", "Bytes")
    with pytest.raises(KeyError):
        metrics.incr("image_processed")  # a typo is an error, not a new metric
    with pytest.raises(ValueError, match="labels"):
        metrics.incr("images_processed", imageId="abc")  # never a per-image dimension


# -- the worker's translation of SQS bodies ----------------------------------------------------


def s3_body(name: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventTime": "2026-01-02T03:04:05.678Z",
                "eventName": name,
                "s3": {"bucket": {"name": "b"}, "object": obj},
            }
        ]
    }


def bodies(found: Iterable[Job]) -> list[dict[str, Any]]:
    """The queue bodies of the jobs the Lambda worker found: what it would run."""
    return [job.body() for job in found]


def test_an_object_created_notification_becomes_a_created_message() -> None:
    body = s3_body(
        "ObjectCreated:Put",
        {
            "key": "uploads/a+b/caf%C3%A9+%2B1%25.jpg",  # S3 URL-encodes keys, spaces as +
            "size": 1234,
            "eTag": "0123abcd",
            "versionId": "v1",
            "sequencer": "0062FA3D1B9C4E0001",
        },
    )

    [job] = jobs_from(body)

    assert job.body() == {
        "type": "created",
        "key": "uploads/a b/café +1%.jpg",
        "sequencer": "0062FA3D1B9C4E0001",
        "size": 1234,
        "etag": "0123abcd",
        "version_id": "v1",
        "event_time": "2026-01-02T03:04:05.678Z",
        "force": False,
    }


def test_removed_test_and_own_messages() -> None:
    removed = s3_body("ObjectRemoved:DeleteMarkerCreated", {"key": "uploads/x%2Fy.jpg"})
    assert bodies(jobs_from(removed)) == [{"type": "removed", "key": "uploads/x/y.jpg"}]
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}
    assert bodies(jobs_from(test_event)) == []
    own = {"type": "created", "key": "uploads/a.jpg", "sequencer": "0", "force": True}
    assert bodies(jobs_from(own)) == [own]
    assert bodies(jobs_from({"hello": "world"})) == []
    restore = s3_body("ObjectRestore:Completed", {"key": "uploads/a.jpg"})
    assert bodies(jobs_from(restore)) == []
