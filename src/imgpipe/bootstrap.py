"""The composition root: the one place that picks adapters and wires them into the service."""

from __future__ import annotations

import fcntl
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from imgpipe.adapters.local.fs_store import FilesystemObjectStore
from imgpipe.adapters.local.prometheus_metrics import PrometheusMetrics
from imgpipe.adapters.local.sqlite_queue import SqliteJobQueue
from imgpipe.adapters.local.sqlite_store import SqliteMetadataStore
from imgpipe.adapters.local.watcher import UploadsWatcher
from imgpipe.adapters.renderers import InProcessRenderer, SubprocessRenderer
from imgpipe.config import Settings
from imgpipe.core.keys import UPLOADS_PREFIX
from imgpipe.core.model import ObjectInfo
from imgpipe.entrypoints.local_worker import LocalWorkerPool
from imgpipe.service import ImageService, Renderer, removed_message

STATE_DIR = ".imgpipe"
DB_NAME = "imgpipe.db"
SECRET_NAME = "signing.key"  # noqa: S105 - a file name, not a secret


@dataclass
class LocalApp:
    """Everything `imgpipe serve` runs, built once and started/stopped together."""

    settings: Settings
    objects: FilesystemObjectStore
    records: SqliteMetadataStore
    queue: SqliteJobQueue
    metrics: PrometheusMetrics
    renderer: Renderer
    service: ImageService
    signing_key: bytes
    pool: LocalWorkerPool | None = None
    watcher: UploadsWatcher | None = None
    _started: bool = field(default=False, repr=False)
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
            self.service.recover_leases()
            self.pool.start()
        if self.watcher is not None:
            self.watcher.start()
        self.service.backfill(UPLOADS_PREFIX)
        self.wake()

    def wake(self) -> None:
        if self.pool is not None:
            self.pool.wake()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.pool is not None:
            self.pool.stop()
        close = getattr(self.renderer, "close", None)
        if close is not None:
            close()
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


def build_local(
    settings: Settings,
    *,
    renderer: Renderer | None = None,
    with_workers: bool = True,
    with_watcher: bool | None = None,
) -> LocalApp:
    """The embedded default: a data folder, SQLite, a pool of rendering processes."""
    root = settings.local.data_dir.resolve()
    state_dir = root / STATE_DIR
    state_dir.mkdir(parents=True, exist_ok=True)
    (root / UPLOADS_PREFIX).mkdir(parents=True, exist_ok=True)
    db = state_dir / DB_NAME
    lock = hold_server_lock(state_dir) if with_workers else None

    objects = FilesystemObjectStore(root, bucket=settings.local.bucket_name)
    records = SqliteMetadataStore(db)
    queue = SqliteJobQueue(db, max_receives=settings.server.max_attempts)
    metrics = PrometheusMetrics()
    metrics.watch_state(queue.stats, records.count_by_status)
    if renderer is None:
        renderer = (
            SubprocessRenderer(settings.server.workers, settings.limits.processing_timeout_s)
            if with_workers
            else InProcessRenderer()
        )
    service = ImageService(objects, records, queue, renderer, settings, metrics)
    app = LocalApp(
        settings,
        objects,
        records,
        queue,
        metrics,
        renderer,
        service,
        _signing_key(settings, state_dir),
    )
    app._lock = lock
    if with_workers:
        app.pool = LocalWorkerPool(
            service,
            queue,
            workers=settings.server.workers,
            visibility_s=settings.server.visibility_timeout_s,
            max_attempts=settings.server.max_attempts,
        )
    watching = with_workers and settings.server.watch_uploads
    if with_watcher if with_watcher is not None else watching:

        def _accept(info: ObjectInfo) -> None:
            service.accept(info)
            app.wake()

        def _removed(key: str) -> None:
            queue.send(removed_message(key), dedup_id=f"removed\x00{key}")
            app.wake()

        app.watcher = UploadsWatcher(
            root / UPLOADS_PREFIX, objects.key_for, objects.head, _accept, _removed
        )
    return app
