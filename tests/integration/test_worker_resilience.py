"""The local job threads against a database that fails under them (a real SQLite file, locked
by another connection or made immutable), a thread that dies, and a job that waits for
another's lease: none of it stalls the work for longer than the fault lasts, and `/health`
says so meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import imagegen
from imgpipe.bootstrap import LocalApp, build_local
from imgpipe.config import Settings
from imgpipe.core.files import OpenFile
from imgpipe.core.model import ImageRecord, Status
from imgpipe.core.rendering import RenderOptions, RenderResult
from imgpipe.engine import InProcessRenderer
from imgpipe.entrypoints.local_server import create_local_app

DEADLINE_S = 30.0  # a hang guard: the work drains in a few seconds


class GatedRenderer:
    """Renders in-process; the first render signals `started`, then waits for `go` (so a
    test can act while a job holds its image), or raises `first_raises` instead."""

    def __init__(self, first_raises: BaseException | None = None) -> None:
        self.inner = InProcessRenderer()
        self.started = threading.Event()
        self.go = threading.Event()
        self.first_raises = first_raises
        self.calls = 0
        self._lock = threading.Lock()

    def render(self, original: bytes | OpenFile, options: RenderOptions) -> RenderResult:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            self.started.set()
            if self.first_raises is not None:
                raise self.first_raises
            assert self.go.wait(DEADLINE_S)
        return self.inner.render(original, options)


def served(settings: Settings, renderer: GatedRenderer, **server: object) -> LocalApp:
    """`imgpipe serve`'s wiring, its job threads running, the database's writes waiting at
    most 0.3 s for a lock (so that a lock is a failure the test can see quickly)."""
    changed = settings.model_copy(
        update={
            "local": settings.local.model_copy(update={"busy_timeout_s": 0.3}),
            "server": settings.server.model_copy(update={"workers": 1, **server}),
        }
    )
    return build_local(changed, renderer=renderer)


def upload(app: LocalApp, count: int) -> list[str]:
    ids = [
        app.service.ingest.upload(
            f"p{n}.jpg", imagegen.photo_jpeg(320 + n, 240), "image/jpeg"
        ).image_id
        for n in range(count)
    ]
    app.wake()
    return ids


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, f"not within {DEADLINE_S:g} s: {what}"
        time.sleep(0.05)


def all_processed(app: LocalApp, ids: list[str]) -> bool:
    records = [app.records.get(i) for i in ids]
    return all(r is not None and r.status is Status.PROCESSED for r in records)


def statuses(app: LocalApp, ids: list[str]) -> list[str]:
    return [str(r.status) if (r := app.records.get(i)) else "missing" for i in ids]


@contextlib.contextmanager
def locked(db: Path) -> Iterator[None]:
    """Another connection holding the database's write lock (`sqlite3` `BEGIN EXCLUSIVE`)."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=10)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def db_path(app: LocalApp) -> Path:
    return app.records.db_path


def test_a_locked_database_stalls_the_job_threads_only_while_it_lasts(
    settings: Settings,
) -> None:
    # GIVEN imgpipe serve's job threads with a backlog, one job in the middle of its render
    renderer = GatedRenderer()
    app = served(settings, renderer)
    with TestClient(create_local_app(app)) as client:
        ids = upload(app, 6)
        assert renderer.started.wait(DEADLINE_S)

        # WHEN the database is locked while that render finishes, for two seconds
        with locked(db_path(app)):
            renderer.go.set()
            # THEN /health answers 503 degraded, naming the database, while it lasts
            wait_for(lambda: "database" in app.health.problems(), "the database is degraded")
            health = client.get("/health")
            assert health.status_code == 503, health.text
            assert health.json()["status"] == "degraded"
            assert "database" in health.json()["problems"]
            time.sleep(2)

        # THEN once it is free again, without a restart, every upload is processed
        wait_for(lambda: all_processed(app, ids), f"all processed: {statuses(app, ids)}")
        wait_for(lambda: not app.health.problems(), "healthy again")
        assert client.get("/health").json()["status"] == "ok"
        assert app.pool is not None and app.pool.alive() == app.pool.workers
        stats = app.queue.stats()
        assert (stats.visible, stats.in_flight, stats.dead) == (0, 0, 0)
        # AND the fall was counted once, not per retry
        exposition = app.metrics.exposition().decode()
        assert 'imgpipe_degraded_total{part="database"} 1.0' in exposition


def _chattr_works(path: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        return False
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)
    return done.returncode == 0


def test_a_read_only_database_file_stalls_the_job_threads_only_while_it_lasts(
    settings: Settings,
) -> None:
    renderer = GatedRenderer()
    app = served(settings, renderer)
    db = db_path(app)
    if not _chattr_works(db):
        message = "needs root and chattr on a file system with the immutable flag"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run this: {message}")
        pytest.skip(message)
    # The file and its WAL, as the soak did: not the -shm, which SQLite maps into memory
    # (a write to an immutable mapping is a SIGBUS that kills the process, not an error).
    files = [db, db.with_name(db.name + "-wal")]
    # GIVEN imgpipe serve's job threads with a backlog, one job in the middle of its render
    with TestClient(create_local_app(app)):
        ids = upload(app, 6)
        assert renderer.started.wait(DEADLINE_S)
        # WHEN the database file and its WAL are made immutable (`chattr +i`) for two seconds
        try:
            subprocess.run(["chattr", "+i", *map(str, files)], check=True)
            renderer.go.set()
            wait_for(lambda: "database" in app.health.problems(), "the database is degraded")
            time.sleep(2)
        finally:
            subprocess.run(["chattr", "-i", *map(str, files)], check=True)
        # THEN once it is writable again, without a restart, every upload is processed
        wait_for(lambda: all_processed(app, ids), f"all processed: {statuses(app, ids)}")
        wait_for(lambda: not app.health.problems(), "healthy again")
        assert app.pool is not None and app.pool.alive() == app.pool.workers


class ThreadKiller(BaseException):
    """What no `except Exception` catches: it ends the job thread it is raised in."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_job_thread_that_dies_is_replaced_and_its_job_runs_again(settings: Settings) -> None:
    # GIVEN imgpipe serve's job threads, and a render that ends its thread
    renderer = GatedRenderer(first_raises=ThreadKiller("the thread ends here"))
    app = served(settings, renderer)
    with TestClient(create_local_app(app)):
        ids = upload(app, 3)
        assert renderer.started.wait(DEADLINE_S)

        # THEN another thread takes its place, and the job it held (its queue lease and its
        # record's lease) runs again at once rather than when the leases lapse
        wait_for(lambda: all_processed(app, ids), f"all processed: {statuses(app, ids)}")
        assert app.pool is not None and app.pool.alive() == app.pool.workers
        exposition = app.metrics.exposition().decode()
        assert "imgpipe_worker_restarts_total 1.0" in exposition
        assert 'imgpipe_degraded_total{part="workers"} 1.0' in exposition
        assert not app.health.problems()


def test_a_second_version_waits_only_as_long_as_the_first_is_processed(
    settings: Settings,
) -> None:
    # GIVEN two rendering processes' job threads, one job holding an image (its render held
    # back), and a new version of the same key
    renderer = GatedRenderer()
    app = served(settings, renderer, workers=2)
    with TestClient(create_local_app(app)):
        key = "uploads/same/photo.jpg"
        first = app.service.ingest.upload_to(key, imagegen.photo_jpeg(320, 240), "image/jpeg")
        app.wake()
        assert renderer.started.wait(DEADLINE_S)
        info = app.objects.put(key, imagegen.photo_jpeg(400, 300), "image/jpeg")
        app.service.ingest.accept(info)
        app.wake()
        # ... whose job finds the image busy and is put off until the first one's lease ends
        wait_for(lambda: app.queue.stats().extra["delayed"] == 1, "the second job waits")

        # WHEN the first job finishes (its lease, 90 s, far from over)
        renderer.go.set()

        # THEN the second version is processed right after, not when the lease would lapse
        def second_done() -> bool:
            record = app.records.get(first.image_id)
            return _is_version(record, info.sequencer) and record.status is Status.PROCESSED

        wait_for(second_done, "the second version processed")
        record = app.records.get(first.image_id)
        assert record is not None and (record.width, record.height) == (400, 300)
        assert app.settings.lease_s > DEADLINE_S  # a wait for the lease would have failed


def _is_version(record: ImageRecord | None, sequencer: str | None) -> bool:
    return record is not None and record.sequencer == sequencer


def test_a_connection_opened_while_the_database_was_read_only_recovers(tmp_path: Path) -> None:
    from imgpipe.adapters.local.sqlite_queue import SqliteJobQueue
    from imgpipe.core.errors import StoreUnavailableError

    # GIVEN a queue whose database file and WAL are made immutable
    queue = SqliteJobQueue(tmp_path / "q.db", busy_timeout_s=0.2)
    queue.send({"type": "removed", "key": "uploads/a/b.jpg"})
    db = tmp_path / "q.db"
    if not _chattr_works(db):
        message = "needs root and chattr on a file system with the immutable flag"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run this: {message}")
        pytest.skip(message)
    files = [db, db.with_name(db.name + "-wal")]
    outcomes: list[str] = []

    def a_thread_that_starts_during_the_fault(writable: threading.Event) -> None:
        # ... and a thread whose first use of the database (its connection) falls in it
        outcomes.append(f"stats {queue.stats().visible}")
        assert writable.wait(DEADLINE_S)
        for _ in range(3):  # as a job thread retries
            try:
                outcomes.append(f"received {len(queue.receive(1, 30))}")
                return
            except StoreUnavailableError as exc:
                outcomes.append(f"failed: {exc}")

    writable = threading.Event()
    thread = threading.Thread(target=a_thread_that_starts_during_the_fault, args=(writable,))
    subprocess.run(["chattr", "+i", *map(str, files)], check=True)
    try:
        thread.start()
        wait_for(lambda: len(outcomes) == 1, "the thread read the database")
    finally:
        subprocess.run(["chattr", "-i", *map(str, files)], check=True)
    # WHEN the files are writable again THEN the thread's retries get through
    writable.set()
    thread.join(DEADLINE_S)
    assert outcomes[0] == "stats 1"
    assert outcomes[-1] == "received 1", outcomes
    queue.close()
