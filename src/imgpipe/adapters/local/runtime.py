"""The local server's runtime: starting and stopping its threads, and what it holds on disk.

`imgpipe serve` runs, beside its API, the job threads, the uploads watcher, the webhook
senders and a sampler of the queue's depth; `LocalRuntime` starts them together and stops them
together, closing what they used. The server holds an exclusive lock on its data folder for
as long as it runs, so the leases it finds at start can only be a dead predecessor's, and the
folder keeps the key that signs its upload and rendition URLs.
"""

from __future__ import annotations

import fcntl
import logging
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from imgpipe.adapters.local.timeseries import BUCKET_S
from imgpipe.core.errors import DataDirBusyError

if TYPE_CHECKING:
    from collections.abc import Callable

    from imgpipe.adapters.local.events import JsonlEventLog
    from imgpipe.adapters.local.sqlite_queue import SqliteJobQueue
    from imgpipe.adapters.local.sqlite_store import SqliteMetadataStore
    from imgpipe.adapters.local.timeseries import TimeSeries
    from imgpipe.adapters.local.watcher import UploadsWatcher
    from imgpipe.adapters.local.webhooks import WebhookPublisher
    from imgpipe.adapters.local.worker_pool import LocalWorkerPool
    from imgpipe.core.ports import Renderer

# The sampler logged under this name while the runtime lived in bootstrap; log queries keep it.
log = logging.getLogger("imgpipe.bootstrap")

SECRET_NAME = "signing.key"  # noqa: S105 - a file name, not a secret


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


def signing_key_file(state_dir: Path) -> bytes:
    """The data folder's signing key: made once (32 random bytes, readable by its owner only,
    written whole), then read back by every later run, so its signed URLs stay valid."""
    path = state_dir / SECRET_NAME
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(secrets.token_bytes(32))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_bytes()


@dataclass
class LocalRuntime:
    """The threads of `imgpipe serve` (each part that is None does not run) and what they use:
    started and stopped together. `lock` is the data folder's, when this server holds it."""

    queue: SqliteJobQueue
    records: SqliteMetadataStore
    # What a start catches up on: the image leases a dead predecessor held (the use cases'
    # lease recovery), and originals with no finished record (their backfill).
    recover_leases: Callable[[], object]
    backfill: Callable[[], object]
    renderer: Renderer
    series: TimeSeries
    pool: LocalWorkerPool | None = None
    watcher: UploadsWatcher | None = None
    event_log: JsonlEventLog | None = None
    webhooks: WebhookPublisher | None = None
    lock: IO[bytes] | None = None
    _started: bool = field(default=False, repr=False)
    _sampling: threading.Event = field(default_factory=threading.Event, repr=False)

    def start(self) -> None:
        """Start workers and the watcher, then queue whatever a crash or a stop left behind."""
        if self._started:
            return
        self._started = True
        if self.pool is not None:
            # The sole consumer of this queue (build_local took the lock): leases still held
            # belong to a dead predecessor.
            self.queue.recover_in_flight()
            self.recover_leases()
            self.pool.start()
        if self.watcher is not None:
            self.watcher.start()
        if self.webhooks is not None:
            # Holding the data folder's lock, leases left in the outbox are a dead server's.
            self.webhooks.start(recover=self.lock is not None)
        self._sampling.clear()
        threading.Thread(target=self._sample, name="imgpipe-sampler", daemon=True).start()
        self.backfill()
        self.wake()

    def _sample(self) -> None:
        """Queue depth into the dashboard's series, every bucket, until stop()."""
        while not self._sampling.wait(BUCKET_S):
            try:
                self.series.sample_queue()
            except Exception:  # a busy database must not end the sampling
                log.exception("could not sample the queue")

    def wake(self) -> None:
        """New work was queued: the job threads stop idling."""
        if self.pool is not None:
            self.pool.wake()

    def stop(self) -> None:
        """Stop every thread, then close what they used and give the data folder's lock up."""
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
        if self.lock is not None:
            self.lock.close()
            self.lock = None
        self._started = False
