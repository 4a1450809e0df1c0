"""`imgpipe serve`'s wiring: a data folder, SQLite, a pool of rendering processes, built in
named steps (bootstrap.local) and held in one LocalApp."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from imgpipe.bootstrap.options import (
    DB_NAME,
    STATE_DIR,
    delivery_options,
    local_unsafe_allowed,
    service_options,
)
from imgpipe.config import Settings
from imgpipe.core.keys import UPLOADS_PREFIX

# The local adapters are imported inside build_local: a Lambda cold start loads none of them.
if TYPE_CHECKING:
    from imgpipe.adapters.local.derived_cache import LocalDerivedCache
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
    from imgpipe.service import Renderer, UseCases


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
    derived: LocalDerivedCache

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
        self.derived.flush()  # the reads noted since the last flush, onto their files


def build_local(
    settings: Settings,
    *,
    renderer: Renderer | None = None,
    with_workers: bool = True,
    with_watcher: bool | None = None,
) -> LocalApp:
    """The embedded default: a data folder, SQLite, a pool of rendering processes."""
    from imgpipe.adapters.local.health import HealthBoard
    from imgpipe.adapters.local.runtime import hold_server_lock
    from imgpipe.adapters.local.worker_pool import DATABASE, WORKERS
    from imgpipe.bootstrap import local as step

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
    delivery = delivery_options(
        settings, unsafe_allowed=local_unsafe_allowed(settings), hits_in_memory=True
    )
    options = service_options(settings, renders_at_once=settings.server.workers, delivery=delivery)
    derived = step.derived_cache(settings, objects, tee)
    service = step.local_service(stores, renderer, tee, options, (event_log, webhooks), derived)
    signing_key = step.signing_key(settings, state_dir)
    links = step.local_links(settings, objects, signing_key)
    health = HealthBoard(tee)
    metrics.watch_health(health.problems, (DATABASE, WORKERS))
    pool = step.worker_pool(settings, service, queue, health, tee) if with_workers else None
    if with_watcher is None:
        with_watcher = with_workers and settings.server.watch_uploads
    watcher = step.uploads_watcher(root, objects, service, pool) if with_watcher else None
    runtime = step.local_runtime(
        stores, service, renderer, series, (pool, watcher), (event_log, webhooks), lock
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
        derived,
    )
