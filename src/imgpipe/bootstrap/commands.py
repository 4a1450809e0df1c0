"""What a CLI command needs of an adapter without the rest of build_local / build_aws, wired
here so that the CLI imports no adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from imgpipe.bootstrap.aws import client_config
from imgpipe.bootstrap.options import DB_NAME, STATE_DIR
from imgpipe.config import Settings

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

    from imgpipe.adapters.aws.dynamodb_store import DynamoMetadataStore
    from imgpipe.adapters.aws.table_stream import ReplayReport
    from imgpipe.adapters.local.webhook_outbox import SqliteWebhookOutbox


def local_outbox(settings: Settings) -> SqliteWebhookOutbox:
    """The data folder's webhook outbox (`imgpipe redrive`); the caller closes it."""
    from imgpipe.adapters.local.webhook_outbox import SqliteWebhookOutbox

    return SqliteWebhookOutbox(settings.local.data_dir.resolve() / STATE_DIR / DB_NAME)


def aws_index_backfill(
    dynamodb: DynamoDBClient, table: str, indexes: tuple[str, ...]
) -> DynamoMetadataStore | None:
    """The records store over `table` when any of `indexes`, just added by a deploy, is one of
    its own (records written before lack their keys: `imgpipe deploy` backfills them); else
    None."""
    from imgpipe.adapters.aws.dynamodb_store import INDEX_NAMES, DynamoMetadataStore

    if not set(indexes) & set(INDEX_NAMES):
        return None
    return DynamoMetadataStore(dynamodb, table)


@dataclass
class AwsStreamReplay:
    """`imgpipe replay-events`'s wiring: a client each for the failure queue (SQS), the
    table's stream and EventBridge."""

    sqs: SQSClient
    events: EventBridgeClient
    streams: BaseClient

    def replay(self, queue_url: str, bus: str) -> ReplayReport:
        """Publish on `bus` the events of every batch in the failure queue at `queue_url`."""
        from typing import cast

        from imgpipe.adapters.aws.table_stream import StreamReader, replay_failed_batches

        # No stubs for dynamodbstreams: its client is typed by the two calls the replay makes.
        streams = cast("StreamReader", self.streams)
        return replay_failed_batches(self.sqs, queue_url, streams, self.events, bus)

    def close(self) -> None:
        for client in (self.sqs, self.events, self.streams):
            client.close()


def aws_stream_replay(settings: Settings) -> AwsStreamReplay:
    """Its clients, pointed at settings.aws.endpoint_url and configured as build_aws's."""
    import boto3

    session = boto3.session.Session()
    endpoint, config = settings.aws.endpoint_url, client_config(settings)
    return AwsStreamReplay(
        sqs=session.client("sqs", endpoint_url=endpoint, config=config),
        events=session.client("events", endpoint_url=endpoint, config=config),
        streams=session.client("dynamodbstreams", endpoint_url=endpoint, config=config),
    )


def emf_metric_labels() -> dict[str, tuple[str, ...]] | None:
    """Every metric the AWS side emits, with the names of its labels (`imgpipe cost` counts
    their series); None without the aws extra."""
    try:
        from imgpipe.adapters.aws.emf_metrics import COUNTERS, TIMINGS
    except ImportError:
        return None
    return {name: spec[1] for name, spec in COUNTERS.items()} | dict(TIMINGS)
