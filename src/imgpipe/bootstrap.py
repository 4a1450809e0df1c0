"""The composition root: the one place that picks adapters and wires them into the service."""

from __future__ import annotations

import fcntl
import functools
import logging
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from imgpipe.config import EventsOptions, Settings
from imgpipe.core.keys import UPLOADS_PREFIX
from imgpipe.core.model import ObjectInfo
from imgpipe.core.ports import Metrics

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
    from imgpipe.adapters.aws.s3_store import S3ObjectStore
    from imgpipe.adapters.aws.sqs_queue import SqsJobQueue
    from imgpipe.adapters.local.events import JsonlEventLog
    from imgpipe.adapters.local.fs_store import FilesystemObjectStore
    from imgpipe.adapters.local.health import HealthBoard
    from imgpipe.adapters.local.prometheus_metrics import PrometheusMetrics
    from imgpipe.adapters.local.sqlite_queue import SqliteJobQueue
    from imgpipe.adapters.local.sqlite_store import SqliteMetadataStore
    from imgpipe.adapters.local.timeseries import TimeSeries
    from imgpipe.adapters.local.watcher import UploadsWatcher
    from imgpipe.adapters.local.webhooks import WebhookOptions, WebhookPublisher
    from imgpipe.adapters.local.worker_pool import LocalWorkerPool
    from imgpipe.service import Renderer, ServiceOptions, UseCases

log = logging.getLogger("imgpipe.bootstrap")

STATE_DIR = ".imgpipe"
DB_NAME = "imgpipe.db"
SECRET_NAME = "signing.key"  # noqa: S105 - a file name, not a secret
JOB_THREADS_PER_PROCESS = 2


@dataclass
class LocalApp:
    """Everything `imgpipe serve` runs, built once and started/stopped together."""

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
    pool: LocalWorkerPool | None = None
    watcher: UploadsWatcher | None = None
    event_log: JsonlEventLog | None = None
    webhooks: WebhookPublisher | None = None
    _started: bool = field(default=False, repr=False)
    _sampling: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        """Start workers and the watcher, then queue whatever a crash or a stop left behind."""
        if self._started:
            return
        self._started = True
        if self.pool is not None:
            # The sole consumer of this queue (build_local took the lock): leases still held
            # belong to a dead predecessor.
            self.queue.recover_in_flight()
            self.service.maintenance.recover_leases()
            self.pool.start()
        if self.watcher is not None:
            self.watcher.start()
        if self.webhooks is not None:
            # Holding the data folder's lock, leases left in the outbox are a dead server's.
            self.webhooks.start(recover=self._lock is not None)
        self._sampling.clear()
        threading.Thread(target=self._sample, name="imgpipe-sampler", daemon=True).start()
        self.service.maintenance.backfill(UPLOADS_PREFIX)
        self.wake()

    def _sample(self) -> None:
        """Queue depth into the dashboard's series, every bucket, until stop()."""
        from imgpipe.adapters.local.timeseries import BUCKET_S

        while not self._sampling.wait(BUCKET_S):
            try:
                self.series.sample_queue()
            except Exception:  # a busy database must not end the sampling
                log.exception("could not sample the queue")

    def wake(self) -> None:
        if self.pool is not None:
            self.pool.wake()

    def stop(self) -> None:
        self._sampling.set()
        if self.watcher is not None:
            self.watcher.stop()
        if self.pool is not None:
            self.pool.stop()
        close = getattr(self.renderer, "close", None)
        if close is not None:
            close()
        if self.webhooks is not None:
            self.webhooks.stop()
            self.webhooks.outbox.close()
        if self.event_log is not None:
            self.event_log.close()
        self.records.close()
        self.queue.close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        self._started = False


class DataDirBusyError(RuntimeError):
    """Another `imgpipe serve` already works on this data folder."""


def hold_server_lock(state_dir: Path) -> IO[bytes]:
    """An exclusive lock on the data folder for as long as the returned file stays open."""
    lock = (state_dir / "serve.lock").open("ab")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        lock.close()
        raise DataDirBusyError(
            f"another imgpipe serve is using {state_dir.parent}; stop it or pick another --data-dir"
        ) from exc
    return lock


def _signing_key(settings: Settings, state_dir: Path) -> bytes:
    if settings.server.signing_secret:
        return settings.server.signing_secret.encode("utf-8")
    path = state_dir / SECRET_NAME
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(secrets.token_bytes(32))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_bytes()


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


def webhook_options(events: EventsOptions) -> WebhookOptions:
    """The settings' events section as the plain values the webhook publisher is given."""
    from imgpipe.adapters.local.webhooks import Webhook, WebhookOptions

    return WebhookOptions(
        webhooks=tuple(Webhook(t.url, t.secret, frozenset(t.events)) for t in events.webhooks),
        max_attempts=events.max_attempts,
        backoff_s=events.backoff_s,
        max_backoff_s=events.max_backoff_s,
        timeout_s=events.timeout_s,
        senders=events.webhook_senders,
    )


def _local_events(
    settings: Settings, state_dir: Path, db: Path, metrics: Metrics
) -> tuple[JsonlEventLog | None, WebhookPublisher | None]:
    """The JSONL event log (unless turned off) and the webhooks' outbox (when any is set)."""
    from imgpipe.adapters.local.events import EVENT_LOG_NAME, JsonlEventLog
    from imgpipe.adapters.local.webhook_outbox import SqliteWebhookOutbox
    from imgpipe.adapters.local.webhooks import WebhookPublisher

    options = settings.events
    event_log = JsonlEventLog(state_dir / EVENT_LOG_NAME, metrics) if options.log else None
    webhooks = (
        WebhookPublisher(
            SqliteWebhookOutbox(db, settings.local.busy_timeout_s),
            webhook_options(options),
            metrics,
        )
        if options.webhooks
        else None
    )
    return event_log, webhooks


def build_local(
    settings: Settings,
    *,
    renderer: Renderer | None = None,
    with_workers: bool = True,
    with_watcher: bool | None = None,
) -> LocalApp:
    """The embedded default: a data folder, SQLite, a pool of rendering processes."""
    from imgpipe.adapters.local.events import FanOutEvents
    from imgpipe.adapters.local.fs_store import FilesystemObjectStore
    from imgpipe.adapters.local.health import HealthBoard
    from imgpipe.adapters.local.prometheus_metrics import PrometheusMetrics
    from imgpipe.adapters.local.sqlite_queue import SqliteJobQueue
    from imgpipe.adapters.local.sqlite_store import SqliteMetadataStore
    from imgpipe.adapters.local.timeseries import TeeMetrics, TimeSeries
    from imgpipe.adapters.local.watcher import UploadsWatcher
    from imgpipe.adapters.local.worker_pool import DATABASE, WORKERS, LocalWorkerPool
    from imgpipe.engine import InProcessRenderer, SubprocessRenderer
    from imgpipe.service import UseCases

    root = settings.local.data_dir.resolve()
    state_dir = root / STATE_DIR
    state_dir.mkdir(parents=True, exist_ok=True)
    (root / UPLOADS_PREFIX).mkdir(parents=True, exist_ok=True)
    db = state_dir / DB_NAME
    lock = hold_server_lock(state_dir) if with_workers else None

    objects = FilesystemObjectStore(root, bucket=settings.local.bucket_name)
    busy_s = settings.local.busy_timeout_s
    records = SqliteMetadataStore(db, busy_s)
    queue = SqliteJobQueue(
        db,
        max_receives=settings.server.max_attempts,
        busy_timeout_s=busy_s,
        runs_at_once=settings.server.workers,
    )
    metrics = PrometheusMetrics()
    metrics.watch_state(queue.stats, records.count_by_status)
    series = TimeSeries(queue.stats)
    if renderer is None:
        renderer = (
            SubprocessRenderer(
                settings.server.workers,
                settings.limits.processing_timeout_s,
                memory_mb=settings.limits.worker_memory_mb,
            )
            if with_workers
            else InProcessRenderer()
        )
    tee = TeeMetrics(metrics, series)
    event_log, webhooks = _local_events(settings, state_dir, db, tee)
    if webhooks is not None:
        metrics.watch_webhook_outbox(webhooks.counts)
    events = FanOutEvents([p for p in (event_log, webhooks) if p is not None], tee)
    service = UseCases.build(
        objects,
        records,
        queue,
        renderer,
        tee,
        service_options(settings, renders_at_once=settings.server.workers),
        events=events,
    )
    app = LocalApp(
        settings,
        objects,
        records,
        queue,
        metrics,
        renderer,
        service,
        _signing_key(settings, state_dir),
        series,
        HealthBoard(tee),
    )
    app._lock = lock
    metrics.watch_health(app.health.problems, (DATABASE, WORKERS))
    app.event_log, app.webhooks = event_log, webhooks
    if with_workers:
        app.pool = LocalWorkerPool(
            service,
            queue,
            # Two job threads per rendering process: while one writes an image's renditions
            # and record, the other's image renders (the service's gate leases no more images
            # than there are processes). With one, a process sat idle for those writes.
            workers=settings.server.workers * JOB_THREADS_PER_PROCESS,
            visibility_s=settings.server.visibility_timeout_s,
            max_attempts=settings.server.max_attempts,
            health=app.health,
            metrics=tee,
            wake_waiting=queue.wake_waiting,
            recover_in_flight=queue.recover_in_flight,
        )
    watching = with_workers and settings.server.watch_uploads
    if with_watcher if with_watcher is not None else watching:

        def _accept(info: ObjectInfo) -> None:
            if objects.wrote(info):
                return  # the API's own upload: it accepts it, or withdraws it if refused
            service.ingest.accept(info)
            app.wake()

        def _removed(key: str) -> None:
            service.maintenance.queue_removed(key)
            app.wake()

        app.watcher = UploadsWatcher(
            root / UPLOADS_PREFIX, objects.key_for, objects.head, _accept, _removed
        )
    return app


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
    return AwsApp(settings, clients, objects, records, queue, metrics, service)


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
