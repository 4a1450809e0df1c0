"""The local wiring's steps: each part of `imgpipe serve` made from the settings (build_local).

Only bootstrap.build_local imports this module, so it may import the local adapters at the
top: a Lambda process never loads it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import IO

from imgpipe.adapters.local.derived_cache import LocalDerivedCache
from imgpipe.adapters.local.events import EVENT_LOG_NAME, FanOutEvents, JsonlEventLog
from imgpipe.adapters.local.fs_store import FilesystemObjectStore
from imgpipe.adapters.local.health import HealthBoard
from imgpipe.adapters.local.links import LocalLinks
from imgpipe.adapters.local.prometheus_metrics import PrometheusMetrics
from imgpipe.adapters.local.runtime import LocalRuntime, signing_key_file
from imgpipe.adapters.local.sqlite_queue import SqliteJobQueue
from imgpipe.adapters.local.sqlite_store import SqliteMetadataStore
from imgpipe.adapters.local.timeseries import TeeMetrics, TimeSeries
from imgpipe.adapters.local.watcher import UploadsWatcher
from imgpipe.adapters.local.webhook_outbox import SqliteWebhookOutbox
from imgpipe.adapters.local.webhooks import Webhook, WebhookOptions, WebhookPublisher
from imgpipe.adapters.local.worker_pool import LocalWorkerPool
from imgpipe.config import EventsOptions, Settings
from imgpipe.core.keys import UPLOADS_PREFIX
from imgpipe.core.model import ObjectInfo
from imgpipe.core.ports import Metrics, ObjectStore
from imgpipe.engine import InProcessRenderer, SubprocessRenderer
from imgpipe.service import Renderer, ServiceOptions, UseCaseJobs, UseCases

JOB_THREADS_PER_PROCESS = 2

LocalStores = tuple[FilesystemObjectStore, SqliteMetadataStore, SqliteJobQueue]


def signing_key(settings: Settings, state_dir: Path) -> bytes:
    """server.signing_secret when it is set, else the data folder's own key."""
    secret = settings.server.signing_secret
    return secret.encode("utf-8") if secret else signing_key_file(state_dir)


def local_links(settings: Settings, objects: ObjectStore, key: bytes) -> LocalLinks:
    """Upload URLs and rendition links signed with the data folder's key; renditions are
    signed only when the API wants a token (else their plain URLs work)."""
    return LocalLinks(
        objects,
        key,
        settings.server.upload_url_ttl_s,
        sign_renditions=settings.server.api_token is not None,
    )


def local_stores(settings: Settings, root: Path, db: Path) -> LocalStores:
    """The data folder's objects, and the records and the job queue in its SQLite file."""
    objects = FilesystemObjectStore(root, bucket=settings.local.bucket_name)
    busy_s = settings.local.busy_timeout_s
    records = SqliteMetadataStore(db, busy_s)
    queue = SqliteJobQueue(
        db,
        max_receives=settings.server.max_attempts,
        busy_timeout_s=busy_s,
        runs_at_once=settings.server.workers,
    )
    return objects, records, queue


def local_metrics(
    records: SqliteMetadataStore, queue: SqliteJobQueue
) -> tuple[PrometheusMetrics, TimeSeries, TeeMetrics]:
    """Prometheus' registry (it reads the queue and the counts of records when scraped), the
    dashboard's series, and both as the one Metrics that every part counts into."""
    metrics = PrometheusMetrics()
    metrics.watch_state(queue.stats, records.count_by_status)
    series = TimeSeries(queue.stats)
    return metrics, series, TeeMetrics(metrics, series)


def local_renderer(settings: Settings, with_workers: bool) -> Renderer:
    """Rendering processes for a server; in-process for a command that runs no job threads."""
    if not with_workers:
        return InProcessRenderer()
    return SubprocessRenderer(
        settings.server.workers,
        settings.limits.processing_timeout_s,
        memory_mb=settings.limits.worker_memory_mb,
    )


def webhook_options(events: EventsOptions) -> WebhookOptions:
    """The settings' events section as the plain values the webhook publisher is given."""
    return WebhookOptions(
        webhooks=tuple(Webhook(t.url, t.secret, frozenset(t.events)) for t in events.webhooks),
        max_attempts=events.max_attempts,
        backoff_s=events.backoff_s,
        max_backoff_s=events.max_backoff_s,
        timeout_s=events.timeout_s,
        senders=events.webhook_senders,
    )


def local_events(
    settings: Settings, state_dir: Path, db: Path, metrics: Metrics
) -> tuple[JsonlEventLog | None, WebhookPublisher | None]:
    """The JSONL event log (unless turned off) and the webhooks' outbox (when any is set)."""
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


def derived_cache(
    settings: Settings, objects: FilesystemObjectStore, metrics: Metrics
) -> LocalDerivedCache:
    """The /img route's cache in the data folder, kept to its budget."""
    return LocalDerivedCache(objects, settings.transform.cache_budget_mb * 1024 * 1024, metrics)


def local_service(
    stores: LocalStores,
    renderer: Renderer,
    metrics: Metrics,
    options: ServiceOptions,
    publishers: tuple[JsonlEventLog | None, WebhookPublisher | None],
    derived: LocalDerivedCache | None = None,
) -> UseCases:
    """The use cases over the local stores, their events to each publisher there is."""
    events = FanOutEvents([p for p in publishers if p is not None], metrics)
    return UseCases.build(*stores, renderer, metrics, options, events=events, derived=derived)


def worker_pool(
    settings: Settings,
    service: UseCases,
    queue: SqliteJobQueue,
    health: HealthBoard,
    metrics: Metrics,
) -> LocalWorkerPool:
    """The job threads, leasing from the local queue."""
    return LocalWorkerPool(
        UseCaseJobs(service),
        queue,
        # Two job threads per rendering process: while one writes an image's renditions
        # and record, the other's image renders (the service's gate leases no more images
        # than there are processes). With one, a process sat idle for those writes.
        workers=settings.server.workers * JOB_THREADS_PER_PROCESS,
        visibility_s=settings.server.visibility_timeout_s,
        max_attempts=settings.server.max_attempts,
        health=health,
        metrics=metrics,
        wake_waiting=queue.wake_waiting,
        recover_in_flight=queue.recover_in_flight,
    )


def uploads_watcher(
    root: Path, objects: FilesystemObjectStore, service: UseCases, pool: LocalWorkerPool | None
) -> UploadsWatcher:
    """Files dropped into (or removed from) uploads/, handed to the service as they come."""

    def _wake() -> None:
        if pool is not None:
            pool.wake()

    def _accept(info: ObjectInfo) -> None:
        if objects.wrote(info):
            return  # the API's own upload: it accepts it, or withdraws it if refused
        service.ingest.accept(info)
        _wake()

    def _removed(key: str) -> None:
        service.maintenance.queue_removed(key)
        _wake()

    return UploadsWatcher(root / UPLOADS_PREFIX, objects.key_for, objects.head, _accept, _removed)


def local_runtime(
    stores: LocalStores,
    service: UseCases,
    renderer: Renderer,
    series: TimeSeries,
    threads: tuple[LocalWorkerPool | None, UploadsWatcher | None],
    events: tuple[JsonlEventLog | None, WebhookPublisher | None],
    lock: IO[bytes] | None,
) -> LocalRuntime:
    """What starts and stops the threads, and what a start catches up on (leases a dead
    predecessor held, originals with no finished record)."""
    _, records, queue = stores
    pool, watcher = threads
    event_log, webhooks = events
    return LocalRuntime(
        queue,
        records,
        service.maintenance.recover_leases,
        functools.partial(service.maintenance.backfill, UPLOADS_PREFIX),
        renderer,
        series,
        pool,
        watcher,
        event_log,
        webhooks,
        lock,
    )
