"""moto's server on 127.0.0.1 for the AWS tests, and the resources as infra/template.yaml
declares them (made with boto3: versioned bucket, table with both sharded GSIs, queue + DLQ).

Nothing is patched: the adapters talk HTTP to moto through ordinary boto3 clients, with fake
credentials from the environment. moto keeps its state per process, so each test makes
resources of its own (uniquely named) rather than resetting the server.

moto's DynamoDB takes no lock: a conditional write reads the item, checks the condition and
stores, so two writes at once can both pass a condition that AWS lets exactly one pass. The
server here applies one DynamoDB request at a time, as AWS applies each atomically; without
that, the store's compare-and-set races fail now and then for moto's sake, not imgpipe's.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from imgpipe.adapters.aws import dynamodb_store
from imgpipe.bootstrap import AwsClients, aws_clients
from imgpipe.config import AwsBackend, Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3.type_defs import NotificationConfigurationTypeDef

REGION = "us-east-1"
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's fake credentials
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}
CLEARED_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE")


@contextmanager
def running_moto(
    env: Mapping[str, str] = FAKE_ENV, cleared: Iterable[str] = CLEARED_ENV
) -> Iterator[str]:
    """A moto server on a free loopback port, with `env` (fake credentials) set meanwhile."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        for name in cleared:
            patch.delenv(name, raising=False)
        app = OneDynamoDbRequestAtATime(DomainDispatcherApplication(create_backend_app))
        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}"
        finally:
            server.shutdown()
            thread.join()
            server.server_close()


class OneDynamoDbRequestAtATime:
    """moto's app, with DynamoDB (and DynamoDB Streams) requests applied one at a time."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            with self.lock:  # the backend's work is done inside the call, not in the body
                return self.app(environ, start_response)
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto server on a free loopback port for this module, with fake credentials."""
    with running_moto() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def aws(moto_endpoint: str) -> Iterator[AwsClients]:
    """The clients build_aws would make, pointed at moto (closed afterwards)."""
    settings = Settings(aws=AwsBackend(region=REGION, endpoint_url=moto_endpoint))
    clients = aws_clients(settings, boto3.session.Session())
    yield clients
    clients.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create_bucket(clients: AwsClients, name: str, *, versioned: bool = True) -> str:
    clients.s3.create_bucket(Bucket=name)
    if versioned:
        clients.s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def create_table(clients: AwsClients, name: str) -> str:
    """The table of infra/template.yaml: key imageId; GSIs byStatus and byUpload, and the
    near-duplicate GSIs (bySha256, byPhash0..3) as the store declares them; a stream of every
    write with the item before and after it (TableStream reads it)."""
    attributes = ["imageId", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"]
    attributes += dynamodb_store.SIMILARITY_KEY_ATTRIBUTES
    clients.dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in attributes],
        KeySchema=[{"AttributeName": "imageId", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": pk, "KeyType": "HASH"},
                    {"AttributeName": sk, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, pk, sk in (
                ("byStatus", "gsi1pk", "gsi1sk"),
                ("byUpload", "gsi2pk", "gsi2sk"),
            )
        ]
        + dynamodb_store.similarity_indexes(),
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return name


class TableStream:
    """A table's stream read as Lambda's event source mapping reads it for the events
    function: every shard from its oldest record, in order, each record handed out once, in
    the shape the function receives (`eventSourceARN` added, the creation time in epoch
    seconds). moto keeps the stream but runs no event source mapping, so tests call the
    handler with these; the mapping's filter is not applied (the handler applies the whole
    rule itself: the filter only saves invocations, and test_template checks it)."""

    def __init__(self, clients: AwsClients, endpoint: str, table: str) -> None:
        described = clients.dynamodb.describe_table(TableName=table)["Table"]
        self.arn = described["LatestStreamArn"]
        self.client = boto3.session.Session().client(
            "dynamodbstreams", endpoint_url=endpoint, region_name=REGION
        )
        self.seen: set[str] = set()

    def new_records(self) -> list[dict[str, Any]]:
        """The records written since the last call, oldest first."""
        found: list[dict[str, Any]] = []
        shards = self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        for shard in shards:
            iterator = self.client.get_shard_iterator(
                StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            ).get("ShardIterator")
            while iterator:
                page = self.client.get_records(ShardIterator=iterator)
                if not page["Records"]:
                    break
                found.extend(self._as_lambda(r) for r in page["Records"])
                iterator = page.get("NextShardIterator")
        fresh = [r for r in found if r["dynamodb"]["SequenceNumber"] not in self.seen]
        self.seen.update(r["dynamodb"]["SequenceNumber"] for r in fresh)
        return fresh

    def _as_lambda(self, record: Mapping[str, Any]) -> dict[str, Any]:
        change = dict(record["dynamodb"])
        change["ApproximateCreationDateTime"] = change["ApproximateCreationDateTime"].timestamp()
        return {**record, "dynamodb": change, "eventSourceARN": self.arn}

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class Queues:
    url: str
    arn: str
    dlq_url: str
    dlq_arn: str


def queue_arn(clients: AwsClients, url: str) -> str:
    found = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return found["Attributes"]["QueueArn"]


def create_queues(
    clients: AwsClients, name: str, *, max_receives: int, visibility_s: int = 30
) -> Queues:
    """A standard queue dead-lettering after `max_receives` receives, and its DLQ."""
    dlq_url = clients.sqs.create_queue(
        QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"}
    )["QueueUrl"]
    dlq_arn = queue_arn(clients, dlq_url)
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)}
    url = clients.sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_s),
            "RedrivePolicy": json.dumps(redrive),
        },
    )["QueueUrl"]
    return Queues(url, queue_arn(clients, url), dlq_url, dlq_arn)


def notify_uploads(clients: AwsClients, bucket: str, queue: Queues) -> None:
    """ObjectCreated and ObjectRemoved under uploads/ go to the queue (renditions/: nothing)."""
    config: NotificationConfigurationTypeDef = {
        "QueueConfigurations": [
            {
                "Id": "uploads",
                "QueueArn": queue.arn,
                "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}},
            }
        ]
    }
    clients.s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=config
    )


def rule_to_queue(
    events: EventBridgeClient, clients: AwsClients, bus: str, pattern: Mapping[str, Any]
) -> str:
    """A rule on `bus` matching `pattern`, whose target is a new SQS queue; the queue's url.
    moto delivers to it, without checking the queue policy AWS would need."""
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
