"""Faults on the local path, over the real wiring (a data folder, SQLite, in-process rendering):
duplicate and concurrent events, versions out of order, originals deleted or overwritten
before processing, a full disk (a real RLIMIT_FSIZE, in a child process), and SQLite under
several worker processes.

In every case: one record per key, the newest version wins, nothing is lost, poison ends
FAILED or dead-lettered, and the reason is on the record (or in the error the caller gets).
(A worker killed mid-job: tests/integration/test_local_contracts.py.)
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing as mp
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import imagegen
import imgpipe
from conftest import drain
from imgpipe.adapters.local.sqlite_queue import SqliteJobQueue
from imgpipe.adapters.local.sqlite_store import SqliteMetadataStore
from imgpipe.adapters.local.worker_pool import LocalWorkerPool
from imgpipe.bootstrap import LocalApp, build_local
from imgpipe.config import LocalBackend, Server, Settings
from imgpipe.core import lifecycle
from imgpipe.core.errors import (
    ImageBusyError,
    StoreUnavailableError,
    TransientError,
    WorkerCrashedError,
)
from imgpipe.core.files import OpenFile
from imgpipe.core.jobs import event_from_info
from imgpipe.core.keys import image_id_for
from imgpipe.core.model import ImageRecord, ObjectEvent, Status, utcnow
from imgpipe.core.rendering import RenderOptions, RenderResult
from imgpipe.engine import InProcessRenderer
from imgpipe.service import UseCaseJobs, UseCases

SRC = Path(imgpipe.__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parents[1]


class CountingRenderer:
    """The real in-process renderer, counted; `hold_first` parks the first render until
    `release` is set (to land another event while it runs)."""

    def __init__(self, *, hold_first: bool = False) -> None:
        self.inner = InProcessRenderer()
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self._lock = threading.Lock()

    def render(self, original: bytes | OpenFile, options: RenderOptions) -> RenderResult:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            self.entered.set()
            assert self.release.wait(30)
        return self.inner.render(original, options)


@pytest.fixture
def renderer() -> CountingRenderer:
    return CountingRenderer()


@pytest.fixture
def app(settings: Settings, renderer: CountingRenderer) -> Iterator[LocalApp]:
    built = build_local(settings, renderer=renderer, with_workers=False)
    yield built
    built.stop()


def worker(app: LocalApp) -> LocalWorkerPool:
    """What runs each queue message in `imgpipe serve` (called here in the test's thread)."""
    return LocalWorkerPool(
        UseCaseJobs(app.service),
        app.queue,
        workers=1,
        visibility_s=30,
        max_attempts=5,
        backoff=lambda _: 0.0,
    )


def only_record(app: LocalApp) -> ImageRecord:
    page = app.records.list(None, 10, None)
    assert len(page.items) == 1, [r.key for r in page.items]
    return page.items[0]


def assert_shows(app: LocalApp, record: ImageRecord, width: int, height: int) -> None:
    """PROCESSED at `width` x `height`, with six renditions whose files decode at their sizes."""
    assert record.status is Status.PROCESSED, record.error
    assert (record.width, record.height) == (width, height)
    assert len(record.renditions) == 6
    for r in record.renditions:
        with Image.open(io.BytesIO(app.objects.get(r.key))) as im:
            im.load()
            assert im.size == (r.width, r.height)
            assert im.width / im.height == pytest.approx(width / height, rel=0.02)


def queue_is_empty(app: LocalApp) -> bool:
    stats = app.queue.stats()
    return (stats.visible, stats.in_flight, stats.dead, stats.extra["delayed"]) == (0, 0, 0, 0)


# -- 1. the same event twice at once, and again later ------------------------------------------


def process_at_once(
    service: UseCases,
    event: ObjectEvent,
    barrier: threading.Barrier,
    outcomes: list[ImageRecord | BaseException | None],
) -> None:
    barrier.wait()
    try:
        outcomes.append(service.processing.process(event))
    except Exception as exc:
        outcomes.append(exc)


def test_the_same_event_twice_at_once_and_again_later_renders_once(
    app: LocalApp, renderer: CountingRenderer
) -> None:
    service = app.service
    for n in range(4):
        # GIVEN an upload, and its event delivered to two workers at the same moment
        key = f"uploads/twice/{n}.jpg"
        service.ingest.upload_to(key, imagegen.photo_jpeg(320 + 16 * n, 240), "image/jpeg")
        info = app.objects.head(key)
        assert info is not None
        event = event_from_info(info)
        barrier = threading.Barrier(2)
        outcomes: list[ImageRecord | BaseException | None] = []
        threads = [
            threading.Thread(target=process_at_once, args=(service, event, barrier, outcomes))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        # THEN one of them rendered; the other was told the image is busy (transient: the
        # queue retries it) or found it done
        assert renderer.calls == n + 1
        busy = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(isinstance(o, ImageBusyError) and o.retry_after_s > 0 for o in busy), busy
        assert len(busy) <= 1 and len(outcomes) == 2
        record = app.records.get(image_id_for(key))
        assert record is not None
        assert_shows(app, record, 320 + 16 * n, 240)
        assert record.attempts == 1

        # WHEN the same event comes again later THEN it does no work and changes nothing
        again = service.processing.process(event)
        assert again is not None and again.revision == record.revision
        assert renderer.calls == n + 1

    # WHEN the queued copies of those events run (the upload queued one each) THEN no work
    assert drain(app) == 4
    assert renderer.calls == 4
    assert queue_is_empty(app)
    # ... and one record per key
    keys = [r.key for r in app.records.list(None, 100, None).items]
    assert sorted(keys) == [f"uploads/twice/{n}.jpg" for n in range(4)]


# -- 2. versions of one key out of order -------------------------------------------------------


@pytest.mark.parametrize("order", ["older-event-last", "older-event-first"])
def test_versions_of_one_key_processed_out_of_order_leave_the_newest(
    app: LocalApp, renderer: CountingRenderer, order: str
) -> None:
    # GIVEN two versions uploaded to one key, v1 400x300 then v2 500x250: two queued events
    key = "uploads/versions/a.jpg"
    app.service.ingest.upload_to(key, imagegen.photo_jpeg(400, 300), "image/jpeg")
    app.service.ingest.upload_to(key, imagegen.photo_jpeg(500, 250), "image/jpeg")
    messages = app.queue.receive(10, 30)
    assert len(messages) == 2
    v1, v2 = sorted(messages, key=lambda m: str(m.body["sequencer"]))
    assert v1.body["sequencer"] < v2.body["sequencer"]

    # WHEN the workers run them out of order (or in order, with v1's arriving after v2 landed)
    pool = worker(app)
    for message in [v2, v1] if order == "older-event-last" else [v1, v2]:
        pool.run_one(message)

    # THEN the record is v2's, rendered once, and both jobs are done
    record = only_record(app)
    assert_shows(app, record, 500, 250)
    head = app.objects.head(key)
    assert head is not None and record.version_id == head.version_id
    assert renderer.calls == 1
    assert queue_is_empty(app)


def test_a_new_version_landing_while_the_old_one_renders_wins(settings: Settings) -> None:
    # GIVEN v1 being rendered by one worker (held inside the renderer)
    renderer = CountingRenderer(hold_first=True)
    app = build_local(settings, renderer=renderer, with_workers=False)
    try:
        key = "uploads/versions/b.jpg"
        app.service.ingest.upload_to(key, imagegen.photo_jpeg(400, 300), "image/jpeg")
        [job1] = app.queue.receive(1, 30)
        pool = worker(app)
        first = threading.Thread(target=pool.run_one, args=(job1,))
        first.start()
        assert renderer.entered.wait(10)

        # WHEN v2 is uploaded to the key meanwhile, and a second worker takes its event
        app.service.ingest.upload_to(key, imagegen.photo_jpeg(500, 250), "image/jpeg")
        [job2] = app.queue.receive(1, 30)
        event2 = ObjectEvent.model_validate({k: v for k, v in job2.body.items() if k != "type"})
        try:
            app.service.processing.process(event2)
            busy = False
        except ImageBusyError:
            busy = True  # one image is rendered by one worker at a time
        renderer.release.set()
        first.join(30)
        if busy:
            pool.run_one(job2)  # the queue's retry, once v1's worker is done
        else:
            app.queue.ack(job2)

        # THEN the record and its rendition files are v2's
        record = only_record(app)
        assert_shows(app, record, 500, 250)
        assert renderer.calls == 2
        assert queue_is_empty(app)
    finally:
        renderer.release.set()
        app.stop()


# -- 3. the original deleted or overwritten before processing ----------------------------------


@pytest.mark.parametrize("first", ["created", "removed"])
def test_an_original_deleted_before_processing(
    app: LocalApp, renderer: CountingRenderer, first: str
) -> None:
    # GIVEN an upload whose job is queued, then the file is deleted (and the removal queued,
    # as the uploads watcher does)
    key = "uploads/deleted/a.jpg"
    uploaded = app.service.ingest.upload_to(key, imagegen.photo_jpeg(300, 200), "image/jpeg")
    (app.objects.path_for(key)).unlink()
    app.service.maintenance.queue_removed(key)
    messages = {m.body["type"]: m for m in app.queue.receive(10, 30)}
    assert set(messages) == {"created", "removed"}

    # WHEN the workers run them, in either order
    pool = worker(app)
    created = messages["created"]
    if first == "created":
        pool.run_one(created)
        # THEN the created event, finding no original, ends the record FAILED not_found
        failed = app.records.get(uploaded.image_id)
        assert failed is not None and failed.status is Status.FAILED
        assert failed.error is not None and failed.error.code == "not_found"
        assert "no longer exists" in failed.error.message
    pool.run_one(messages["removed"])
    if first == "removed":
        pool.run_one(created)

    # THEN nothing was rendered or crashed, the removal took the record away, nothing is queued
    assert renderer.calls == 0
    assert app.records.get(uploaded.image_id) is None
    assert list(app.objects.list("renditions/")) == []
    assert queue_is_empty(app)


def test_an_original_overwritten_before_processing(
    app: LocalApp, renderer: CountingRenderer
) -> None:
    # GIVEN an upload whose job is queued, then the file is replaced by other means (a copy
    # into the uploads folder), before the watcher reports it
    key = "uploads/overwritten/a.jpg"
    app.service.ingest.upload_to(key, imagegen.photo_jpeg(400, 300), "image/jpeg")
    newer = app.objects.put(key, imagegen.photo_jpeg(500, 250), "image/jpeg")

    # WHEN the old job runs THEN it processes what is there now
    assert drain(app) == 1
    record = only_record(app)
    assert_shows(app, record, 500, 250)
    assert record.version_id == newer.version_id

    # WHEN the newer version's own event arrives afterwards THEN it is a duplicate: no work
    app.service.ingest.accept(newer)
    assert drain(app) == 1
    assert renderer.calls == 1
    assert only_record(app).revision == record.revision
    assert queue_is_empty(app)


def open_files_under(folder: Path) -> list[str]:
    """What this process's descriptors have open inside `folder`."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the listing's own, closed by now
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(f"{folder}/"):
                found.append(target)
    return found


class FailsOnce(InProcessRenderer):
    """The real renderer, whose first call fails as a crashed rendering process would."""

    def __init__(self) -> None:
        self.failed = False

    def render(self, original: bytes | OpenFile, options: RenderOptions) -> RenderResult:
        assert isinstance(original, OpenFile)  # the local store hands over an open file
        if not self.failed:
            self.failed = True
            raise WorkerCrashedError("the rendering process died (exit code -9)")
        return super().render(original, options)


def test_every_original_opened_for_a_render_is_closed_whatever_the_outcome(
    settings: Settings,
) -> None:
    # GIVEN the local store, which hands the renderer each original as an open file, and a
    # render that fails once as a crash would
    app = build_local(settings, renderer=FailsOnce(), with_workers=False)
    try:
        app.service.ingest.upload_to(
            "uploads/fd/good.jpg", imagegen.photo_jpeg(300, 200), "image/jpeg"
        )
        app.service.ingest.upload_to(
            "uploads/fd/bad.jpg", b"\xff\xd8\xff" + b"junk" * 100, "image/jpeg"
        )
        uploads = app.objects.path_for("uploads/fd/good.jpg").parent

        # WHEN the jobs run: one crash (retried), one image, one corrupt file
        pool = worker(app)
        for _ in range(5):
            for message in app.queue.receive(10, 30):
                pool.run_one(message)
                assert open_files_under(uploads) == []
            if queue_is_empty(app):
                break

        # THEN both records are final, and no descriptor is left open
        statuses = {r.key: r.status for r in app.records.list(None, 10, None).items}
        assert statuses == {
            "uploads/fd/good.jpg": Status.PROCESSED,
            "uploads/fd/bad.jpg": Status.FAILED,
        }
        assert open_files_under(uploads) == []
    finally:
        app.stop()


# -- 4. disk full: a real file size limit (RLIMIT_FSIZE) in a child process ---------------------

LIMIT = 128 * 1024  # above what SQLite writes here, below the 1600 px original and rendition
SQLITE_LIMIT = 4096  # less than one WAL frame: every SQLite write fails


def _outcome(fn: Callable[[], object]) -> dict[str, Any]:
    try:
        fn()
    except Exception as exc:
        return {
            "raised": type(exc).__name__,
            "transient": isinstance(exc, TransientError),
            "message": str(exc),
            "cause": repr(exc.__cause__),
        }
    return {"raised": None}


def _checkpoint(db: Path) -> None:
    """Empty the WAL, so SQLite's next writes start at its beginning."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0


def _file_size_limit(limit: int) -> None:
    """The soft limit only: the hard one stays, so the limit can be lifted again."""
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))


def disk_full_child(data_dir: str) -> None:
    """Run in a child process: drive the local service against a file size limit and print
    what happened as JSON (the parent asserts)."""
    from starlette.testclient import TestClient

    from imgpipe.entrypoints.local_server import create_local_app

    # Writes past the limit fail with EFBIG instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    settings = Settings(
        local=LocalBackend(data_dir=Path(data_dir)), server=Server(watch_uploads=False)
    )
    app = build_local(settings, renderer=InProcessRenderer(), with_workers=False)
    service = app.service
    client = TestClient(create_local_app(app), raise_server_exceptions=False)
    db = app.records.db_path
    small = imagegen.photo_jpeg(48, 32, camera=False)
    options = settings.render_options()
    app.renderer.render(small, options)  # load the engine before the limit
    photo = imagegen.photo_jpeg(1600, 1200)
    sizes = [len(r.data) for r in app.renderer.render(photo, options).renditions]
    queued = service.ingest.upload("queued.jpg", photo, "image/jpeg")
    out: dict[str, Any] = {"photo": len(photo), "renditions": sizes, "queued": queued.image_id}
    pool = worker(app)
    _checkpoint(db)

    _file_size_limit(LIMIT)
    out["upload"] = _outcome(lambda: service.ingest.upload("big.jpg", photo, "image/jpeg"))
    out["put_stream"] = _outcome(
        lambda: app.objects.put("uploads/stream/big.jpg", io.BytesIO(photo), "image/jpeg")
    )
    answer = client.post("/images", files={"file": ("api.jpg", photo, "image/jpeg")})
    out["api_upload"] = {
        "status": answer.status_code,
        "retryAfter": answer.headers.get("retry-after"),
        "body": answer.json(),
    }
    # the queued photo's job: its largest renditions cannot be written
    [job] = app.queue.receive(1, 30)
    pool.run_one(job)
    after = app.records.get(queued.image_id)
    assert after is not None
    out["rendered"] = after.model_dump(mode="json", by_alias=True)
    stats = app.queue.stats()
    out["jobs"] = {"visible": stats.visible, "inFlight": stats.in_flight, "dead": stats.dead}
    out["written"] = sorted(info.key for info in app.objects.list(f"renditions/{after.image_id}/"))

    # SQLite itself cannot write
    _file_size_limit(resource.RLIM_INFINITY)
    _checkpoint(db)
    _file_size_limit(SQLITE_LIMIT)
    record = app.records.get(queued.image_id)
    assert record is not None
    out["sqlite_put"] = _outcome(lambda: app.records.put(record, record.revision))
    out["sqlite_send"] = _outcome(lambda: app.queue.send({"type": "noop"}))
    out["sqlite_read"] = _outcome(lambda: app.records.get(queued.image_id))
    answer = client.post("/images", files={"file": ("tiny.jpg", small, "image/jpeg")})
    out["api_upload_sqlite_full"] = {
        "status": answer.status_code,
        "retryAfter": answer.headers.get("retry-after"),
        "body": answer.json(),
    }
    _file_size_limit(resource.RLIM_INFINITY)
    out["sqlite_put_after"] = _outcome(lambda: app.records.put(record, record.revision))
    app.stop()
    print("RESULT " + json.dumps(out), flush=True)


def run_child(function: str, *args: str, timeout_s: float = 60) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        str(p) for p in (SRC, TESTS, Path(__file__).parent, env.get("PYTHONPATH")) if p
    )
    code = f"import sys, {__name__} as t; t.{function}(*sys.argv[1:])"
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return result


def test_a_full_disk_fails_writes_with_a_transient_error_and_loses_nothing(
    settings: Settings,
) -> None:
    data = settings.local.data_dir
    # GIVEN a queued 1600x1200 photo, and a process whose files cannot grow past 128 KB
    out = run_child("disk_full_child", str(data))
    assert out["photo"] > LIMIT and min(out["renditions"]) < LIMIT < max(out["renditions"])

    # WHEN it stores an upload bigger than that THEN a transient "disk full" error, not OSError
    for case in ("upload", "put_stream"):
        assert out[case]["raised"] == "StoreUnavailableError", out[case]
        assert "disk is full" in out[case]["message"]
        assert "File too large" in out[case]["cause"]
    # ... and the API answers 503 with Retry-After (not 500), naming the reason
    assert out["api_upload"]["status"] == 503, out["api_upload"]
    assert out["api_upload"]["retryAfter"]
    assert out["api_upload"]["body"]["error"]["code"] == "store_unavailable"
    assert "disk is full" in out["api_upload"]["body"]["error"]["message"]

    # WHEN a rendition write fails mid-processing THEN the record is not PROCESSED: it is
    # PENDING again with the reason, free for the retry (the job went back to the queue)
    rendered = out["rendered"]
    assert rendered["status"] == "PENDING" and rendered["leaseUntil"] is None
    assert rendered["error"]["code"] == "store_unavailable"
    assert "disk is full" in rendered["error"]["message"]
    assert rendered["renditions"] == []
    assert out["jobs"] == {"visible": 1, "inFlight": 0, "dead": 0}
    # ... the failure came mid-way: the smaller renditions were written, whole (checked below)
    folder = f"renditions/{out['queued']}"
    assert f"{folder}/thumb.jpg" in out["written"]
    assert f"{folder}/large.jpg" not in out["written"]

    # WHEN SQLite itself cannot write THEN its writes fail transiently, reads still work,
    # the API answers 503, and once space is back the same write succeeds
    for case in ("sqlite_put", "sqlite_send"):
        assert out[case]["raised"] == "StoreUnavailableError", out[case]
        assert "disk" in out[case]["message"] or "full" in out[case]["message"]
    assert out["sqlite_read"] == {"raised": None}
    assert out["api_upload_sqlite_full"]["status"] == 503, out["api_upload_sqlite_full"]
    assert out["api_upload_sqlite_full"]["retryAfter"]
    assert out["sqlite_put_after"] == {"raised": None}

    # THEN, looking at the data folder: no temp file left, no object half-written
    assert list((data / ".imgpipe" / "tmp").iterdir()) == []
    app = build_local(settings, renderer=InProcessRenderer(), with_workers=False)
    try:
        uploads = [info.key for info in app.objects.list("uploads/")]
        # the queued photo only: the tiny upload answered 503 when SQLite failed was withdrawn
        # (a client retries it as told; kept, it would have become a second image)
        assert len(uploads) == 1
        for info in app.objects.list(""):
            with Image.open(io.BytesIO(app.objects.get(info.key))) as im:
                im.load()  # every object there is whole
        with contextlib.closing(sqlite3.connect(app.records.db_path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

        # WHEN space is back, and the backfill `imgpipe serve` runs on start finds the photo,
        # unfinished (its job is queued)
        assert app.service.maintenance.backfill() == 1
        drain(app)

        # THEN every stored upload is PROCESSED, one record each; nothing is queued
        records = app.records.list(None, 10, None).items
        assert sorted(r.key for r in records) == sorted(uploads)
        photo = app.records.get(out["queued"])
        assert photo is not None
        assert_shows(app, photo, 1600, 1200)
        assert all(r.status is Status.PROCESSED for r in records)
        assert queue_is_empty(app)
    finally:
        app.stop()


# -- 5. SQLite busy under concurrent worker processes --------------------------------------------

PROCESSES = 4
LOOPS = 100
MESSAGES = 400


def cas_child(db: str, image_id: str, barrier: Any, out: str) -> None:
    """LOOPS read-modify-write increments of `attempts`, each retried until its CAS wins."""
    store = SqliteMetadataStore(Path(db))
    wins = conflicts = 0
    errors: list[str] = []
    barrier.wait()
    while wins < LOOPS and len(errors) < 10:
        try:
            current = store.get(image_id)
            assert current is not None
            bumped = current.model_copy(update={"attempts": current.attempts + 1})
            if store.put(bumped, current.revision) is None:
                conflicts += 1
            else:
                wins += 1
        except StoreUnavailableError as exc:
            errors.append(str(exc))
    store.close()
    Path(out).write_text(json.dumps({"wins": wins, "conflicts": conflicts, "errors": errors}))


def queue_child(db: str, barrier: Any, out: str) -> None:
    """Receive and ack until the queue is empty; what was acked, by message id."""
    queue = SqliteJobQueue(Path(db))
    acked: list[list[Any]] = []
    errors: list[str] = []
    barrier.wait()
    while len(errors) < 10:
        try:
            messages = queue.receive(5, 60)
            if not messages:
                break
            for message in messages:
                queue.ack(message)
                acked.append([message.message_id, message.body["n"], message.receive_count])
        except StoreUnavailableError as exc:
            errors.append(str(exc))
    queue.close()
    Path(out).write_text(json.dumps({"acked": acked, "errors": errors}))


def run_processes(target: Callable[..., None], *args: Any, out_dir: Path) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    outs = [out_dir / f"result-{n}.json" for n in range(PROCESSES)]
    processes = [ctx.Process(target=target, args=(*args, barrier, str(o))) for o in outs]
    for process in processes:
        process.start()
    for process in processes:
        process.join(20)
    for process in processes:
        if process.is_alive():
            process.kill()
    assert [p.exitcode for p in processes] == [0] * PROCESSES
    return [json.loads(o.read_text()) for o in outs]


def test_concurrent_compare_and_set_from_four_processes_loses_no_write(tmp_path: Path) -> None:
    # GIVEN one record in a SQLite file
    db = tmp_path / "imgpipe.db"
    event = ObjectEvent(key="uploads/busy.jpg", sequencer="1")
    with SqliteMetadataStore(db) as store:
        assert store.put(lifecycle.new_version(event, "local", utcnow()), None) is not None

    # WHEN 4 processes each make 100 read-modify-write increments of it at once
    started = time.monotonic()
    results = run_processes(cas_child, str(db), image_id_for(event.key), out_dir=tmp_path)

    # THEN no "database is locked" reached them, and no increment was lost
    assert [r["errors"] for r in results] == [[]] * PROCESSES
    wins = sum(r["wins"] for r in results)
    assert wins == PROCESSES * LOOPS
    with SqliteMetadataStore(db) as store:
        final = store.get(image_id_for(event.key))
    assert final is not None
    assert final.attempts == wins
    assert final.revision == 1 + wins  # the insert, then every successful write
    assert time.monotonic() - started < 20


def test_four_processes_draining_one_queue_ack_every_message_once(tmp_path: Path) -> None:
    # GIVEN 400 messages in one SQLite queue
    db = tmp_path / "imgpipe.db"
    with SqliteJobQueue(db) as queue:
        for n in range(MESSAGES):
            queue.send({"type": "created", "n": n}, dedup_id=str(n))

    # WHEN 4 processes receive and ack from it at once, until it is empty
    started = time.monotonic()
    results = run_processes(queue_child, str(db), out_dir=tmp_path)

    # THEN no "database is locked" reached them; each message was received once, by one
    # process, on its first receive, and acked: the queue is empty
    assert [r["errors"] for r in results] == [[]] * PROCESSES
    acked = [entry for r in results for entry in r["acked"]]
    assert sorted(n for _, n, _ in acked) == list(range(MESSAGES))
    assert len({message_id for message_id, _, _ in acked}) == MESSAGES
    assert {count for _, _, count in acked} == {1}
    with SqliteJobQueue(db) as queue:
        stats = queue.stats()
    assert (stats.visible, stats.in_flight, stats.dead, stats.extra["delayed"]) == (0, 0, 0, 0)
    assert time.monotonic() - started < 20
