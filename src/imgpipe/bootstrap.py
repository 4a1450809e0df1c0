"""The composition root: the one place that picks adapters and wires them into the service."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imgpipe.config import Settings
from imgpipe.core.keys import UPLOADS_PREFIX

# Adapters (and the service) are imported inside the builders: a Lambda cold start loads only
# what its function runs (the events function: no service, no imaging).
if TYPE_CHECKING:
    import boto3
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

    from imgpipe.adapters.aws.dynamodb_store import DynamoMetadataStore
    from imgpipe.adapters.aws.emf_metrics import EmfMetrics
    from imgpipe.adapters.aws.links import S3Links
    from imgpipe.adapters.aws.s3_store import S3ObjectStore
    from imgpipe.adapters.aws.sqs_queue import SqsJobQueue
    from imgpipe.adapters.local.events import JsonlEventLog
    from imgpipe.adapters.local.fs_store import FilesystemObjectStore
    from imgpipe.adapters.local.health import HealthBoard
    from imgpipe.adapters.local.links import LocalLinks
    from imgpipe.adapters.local.prometheus_metrics import PrometheusMetrics
    from imgpipe.adapters.local.runtime import LocalRuntime
    from imgpipe.adapters.local.sqlite_queue import SqliteJobQueue
    from imgpipe.adapters.local.sqlite_store import SqliteMetadataStore
    from imgpipe.adapters.local.timeseries import TimeSeries
    from imgpipe.adapters.local.watcher import UploadsWatcher
    from imgpipe.adapters.local.webhooks import WebhookPublisher
    from imgpipe.adapters.local.worker_pool import LocalWorkerPool
    from imgpipe.service import Renderer, ServiceOptions, UseCases

STATE_DIR = ".imgpipe"
DB_NAME = "imgpipe.db"


@dataclass
class LocalApp:
    """Everything `imgpipe serve` runs, built once; its runtime starts and stops the threads."""

    settings: Settings
    objects: FilesystemObjectStore
    records: SqliteMetadataStore
    queue: SqliteJobQueue
    metrics: PrometheusMetrics
    renderer: Renderer
    service: UseCases
    signing_key: bytes
    series: TimeSeries
    health: HealthBoard
    links: LocalLinks
    runtime: LocalRuntime

    # The runtime's parts, where the API, the dashboard and the tests reach them.
    @property
    def pool(self) -> LocalWorkerPool | None:
        return self.runtime.pool

    @property
    def watcher(self) -> UploadsWatcher | None:
        return self.runtime.watcher

    @property
    def event_log(self) -> JsonlEventLog | None:
        return self.runtime.event_log

    @property
    def webhooks(self) -> WebhookPublisher | None:
        return self.runtime.webhooks

    def start(self) -> None:
        self.runtime.start()

    def wake(self) -> None:
        self.runtime.wake()

    def stop(self) -> None:
        self.runtime.stop()


def service_options(
    settings: Settings, *, store_notifies: bool = False, renders_at_once: int | None = None
) -> ServiceOptions:
    """What the use cases take from the settings, as plain values: `store_notifies` when the
    object store queues its new objects itself (S3's notifications); `renders_at_once` to
    gate leases by the rendering processes free (ServiceOptions)."""
    from imgpipe.core.lifecycle import Preset
    from imgpipe.service import ServiceOptions

    spec_hashes = settings.spec_hashes()
    return ServiceOptions(
        render=settings.render_options(),
        presets=tuple(
            Preset(spec.name, spec_hashes[spec.name], tuple(spec.formats))
            for spec in settings.renditions
        ),
        rendition_hash=settings.rendition_hash(),
        lease_s=settings.lease_s,
        max_bytes=settings.limits.max_bytes,
        max_distance=settings.similarity.max_distance,
        store_notifies=store_notifies,
        renders_at_once=renders_at_once,
    )


def build_local(
    settings: Settings,
    *,
    renderer: Renderer | None = None,
    with_workers: bool = True,
    with_watcher: bool | None = None,
) -> LocalApp:
    """The embedded default: a data folder, SQLite, a pool of rendering processes."""
    from imgpipe import bootstrap_local as step
    from imgpipe.adapters.local.health import HealthBoard
    from imgpipe.adapters.local.runtime import LocalRuntime, hold_server_lock
    from imgpipe.adapters.local.worker_pool import DATABASE, WORKERS

    root = settings.local.data_dir.resolve()
    state_dir, db = root / STATE_DIR, root / STATE_DIR / DB_NAME
    state_dir.mkdir(parents=True, exist_ok=True)
    (root / UPLOADS_PREFIX).mkdir(parents=True, exist_ok=True)
    lock = hold_server_lock(state_dir) if with_workers else None
    objects, records, queue = stores = step.local_stores(settings, root, db)
    metrics, series, tee = step.local_metrics(records, queue)
    if renderer is None:
        renderer = step.local_renderer(settings, with_workers)
    event_log, webhooks = step.local_events(settings, state_dir, db, tee)
    if webhooks is not None:
        metrics.watch_webhook_outbox(webhooks.counts)
    options = service_options(settings, renders_at_once=settings.server.workers)
    service = step.local_service(stores, renderer, tee, options, (event_log, webhooks))
    signing_key = step.signing_key(settings, state_dir)
    links = step.local_links(settings, objects, signing_key)
    health = HealthBoard(tee)
    metrics.watch_health(health.problems, (DATABASE, WORKERS))
    pool = step.worker_pool(settings, service, queue, health, tee) if with_workers else None
    if with_watcher is None:
        with_watcher = with_workers and settings.server.watch_uploads
    watcher = step.uploads_watcher(root, objects, service, pool) if with_watcher else None
    runtime = LocalRuntime(
        queue, records, service, renderer, series, pool, watcher, event_log, webhooks, lock
    )
    return LocalApp(
        settings,
        objects,
        records,
        queue,
        metrics,
        renderer,
        service,
        signing_key,
        series,
        health,
        links,
        runtime,
    )


# -- AWS ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsClients:
    """One boto3 client per service, made once per process (Lambda warm starts reuse them)."""

    s3: S3Client
    dynamodb: DynamoDBClient
    sqs: SQSClient

    def close(self) -> None:
        for client in (self.s3, self.dynamodb, self.sqs):
            client.close()


def client_config(settings: Settings) -> Config:
    """Every client's: settings.aws.region (or the environment's), standard retry mode (the
    first attempt and up to 4 retries, with backoff), short connect timeout."""
    from botocore.config import Config

    return Config(
        region_name=settings.aws.region,
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=3,
        read_timeout=30,
        tcp_keepalive=True,
    )


def aws_clients(settings: Settings, session: boto3.session.Session | None = None) -> AwsClients:
    """Clients for settings.aws.region (or the environment's), pointed at endpoint_url when
    it is set (moto in tests)."""
    import boto3
    from botocore.config import Config

    session = session or boto3.session.Session()
    config = client_config(settings)
    endpoint = settings.aws.endpoint_url
    # SigV4 for presigned URLs and POSTs too (botocore would sign a POST policy with SigV2).
    s3_config = config.merge(Config(signature_version="s3v4"))
    return AwsClients(
        s3=session.client("s3", endpoint_url=endpoint, config=s3_config),
        dynamodb=session.client("dynamodb", endpoint_url=endpoint, config=config),
        sqs=session.client("sqs", endpoint_url=endpoint, config=config),
    )


@dataclass
class AwsApp:
    """The AWS wiring: what the Lambda handlers and the CLI's AWS commands run."""

    settings: Settings
    clients: AwsClients
    objects: S3ObjectStore
    records: DynamoMetadataStore
    queue: SqsJobQueue
    metrics: EmfMetrics
    service: UseCases
    links: S3Links

    def close(self) -> None:
        self.clients.close()


def build_aws(
    settings: Settings,
    *,
    session: boto3.session.Session | None = None,
    clients: AwsClients | None = None,
    renderer: Renderer | None = None,
    metrics: EmfMetrics | None = None,
) -> AwsApp:
    """The distributed engine: S3, DynamoDB, SQS, EMF metrics; rendering in this process.
    The bucket's own notifications queue new uploads (store_notifies=True). It publishes no
    events: the events function reads them from the table's stream (build_aws_events)."""
    from imgpipe.adapters.aws.dynamodb_store import DynamoMetadataStore
    from imgpipe.adapters.aws.emf_metrics import EmfMetrics
    from imgpipe.adapters.aws.links import S3Links
    from imgpipe.adapters.aws.s3_store import S3ObjectStore
    from imgpipe.adapters.aws.sqs_queue import SqsJobQueue
    from imgpipe.engine import InProcessRenderer
    from imgpipe.service import UseCases

    aws = settings.aws
    missing = [
        f"aws.{name}"
        for name in ("bucket", "table", "queue_url", "dlq_url")
        if not getattr(aws, name)
    ]
    if missing:
        raise ValueError(f"the AWS backend needs {', '.join(missing)}")
    clients = clients or aws_clients(settings, session)
    records = DynamoMetadataStore(clients.dynamodb, aws.table)

    objects = S3ObjectStore(clients.s3, aws.bucket)
    queue = SqsJobQueue(clients.sqs, aws.queue_url, aws.dlq_url)
    metrics = metrics or EmfMetrics()
    service = UseCases.build(
        objects,
        records,
        queue,
        renderer or InProcessRenderer(),
        metrics,
        service_options(settings, store_notifies=True),
    )
    links = S3Links(objects, aws.presign_ttl_s)
    return AwsApp(settings, clients, objects, records, queue, metrics, service, links)


@functools.cache
def lambda_app() -> AwsApp:
    """The one AwsApp of a Lambda process, from its environment: built on the first invocation
    and reused by every warm one (its clients included)."""
    from imgpipe.config import load_settings

    settings = load_settings()
    if settings.backend != "aws":
        raise RuntimeError("the Lambda handlers need IMGPIPE_BACKEND=aws")
    return build_aws(settings)


@dataclass
class AwsEventsApp:
    """The events function's wiring: the EventBridge client, the bus, EMF metrics. Nothing
    else: its cold start makes one client."""

    events: EventBridgeClient
    bus: str
    metrics: EmfMetrics

    def close(self) -> None:
        self.events.close()


def build_aws_events(
    settings: Settings,
    *,
    session: boto3.session.Session | None = None,
    metrics: EmfMetrics | None = None,
) -> AwsEventsApp:
    """What turns the table's stream into events on settings.events.event_bus."""
    import boto3

    from imgpipe.adapters.aws.emf_metrics import EmfMetrics

    if not settings.events.event_bus:
        raise ValueError("the events function needs events.event_bus")
    session = session or boto3.session.Session()
    client = session.client(
        "events", endpoint_url=settings.aws.endpoint_url, config=client_config(settings)
    )
    return AwsEventsApp(client, settings.events.event_bus, metrics or EmfMetrics())


@functools.cache
def lambda_events_app() -> AwsEventsApp:
    """The one AwsEventsApp of the events function's process, built on its first invocation."""
    from imgpipe.config import load_settings

    settings = load_settings()
    if settings.backend != "aws":
        raise RuntimeError("the Lambda handlers need IMGPIPE_BACKEND=aws")
    return build_aws_events(settings)


# -- the CLI's commands -----------------------------------------------------------------------
# What a command needs of an adapter without the rest of build_local / build_aws, wired here
# so that the CLI imports no adapter.

if TYPE_CHECKING:
    from botocore.client import BaseClient

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
