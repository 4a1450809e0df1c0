"""Events out, locally: the real wiring (files, SQLite, the outbox and its sender threads) and
real HTTP receivers on 127.0.0.1 that check the signature as the README tells them to.

Images are processed with `drain` in the test's own thread: were `publish` to wait for a
receiver, these tests would hang right there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import imagegen
from conftest import drain
from imgpipe.bootstrap import STATE_DIR, LocalApp, build_local
from imgpipe.config import Settings
from imgpipe.core.model import ImageRecord, Status
from imgpipe.engine import InProcessRenderer
from imgpipe.entrypoints.local_server import create_local_app

SECRET = "whsec-test-0123456789abcdef"


# The README's receiver-side check, verbatim.
def verify(secret: bytes, body: bytes, header: str, tolerance_s: int = 300) -> bool:
    fields = dict(part.split("=", 1) for part in header.split(","))
    t = int(fields["t"])
    expected = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - t) <= tolerance_s and hmac.compare_digest(expected, fields["v1"])


@dataclass
class Received:
    event: dict[str, Any]
    headers: dict[str, str]
    signed: bool
    status: int


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: answers `status(n)` to its n-th request (from 0),
    after waiting for `release` while `hang` is set."""

    status: Callable[[int], int] = lambda n: 200
    hang: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def seen(self) -> list[Received]:
        with self.lock:
            return list(self.requests)

    def delivered(self) -> list[Received]:
        return [r for r in self.seen() if 200 <= r.status < 300]


@contextmanager
def serving(receiver: Receiver) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            signed = verify(SECRET.encode(), body, self.headers["X-Imgpipe-Signature"])
            with receiver.lock:
                status = receiver.status(len(receiver.requests))
                receiver.requests.append(
                    Received(json.loads(body), dict(self.headers), signed, status)
                )
            if receiver.hang:
                receiver.release.wait(30)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/imgpipe?src=test"
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    """Start receivers as a test needs them; all stopped afterwards."""
    with ExitStack() as stack:
        yield lambda **kw: stack.enter_context(serving(Receiver(**kw)))


def events_settings(tmp_path: Path, *receivers: Receiver, **events: Any) -> Settings:
    return Settings(
        local={"data_dir": tmp_path / "data"},
        server={"watch_uploads": False},
        events={
            "webhooks": [{"url": r.url, "secret": SECRET} for r in receivers],
            "backoff_s": 0.05,
            "max_backoff_s": 0.2,
            "timeout_s": 5.0,
            **events,
        },
    )


@contextmanager
def started(settings: Settings) -> Iterator[LocalApp]:
    app = build_local(settings, renderer=InProcessRenderer(), with_workers=False)
    app.start()
    try:
        yield app
    finally:
        app.stop()


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def process(app: LocalApp, name: str, data: bytes) -> ImageRecord:
    uploaded = app.service.ingest.upload(name, data, "image/jpeg")
    drain(app)
    return app.service.queries.get(uploaded.image_id)


def event_log(settings: Settings) -> list[dict[str, Any]]:
    path = settings.local.data_dir.resolve() / STATE_DIR / "events.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def metric(app: LocalApp, outcome: str) -> float:
    value = app.metrics.registry.get_sample_value(
        "imgpipe_webhook_deliveries_total", {"outcome": outcome}
    )
    return value or 0.0


# ----------------------------------------------------------------------------------------------


def test_each_finished_image_is_logged_and_posted_signed(
    tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    # GIVEN a server with one webhook, and the event log on (the default)
    hook = receivers()
    settings = events_settings(tmp_path, hook)
    with started(settings) as app:
        # WHEN two photos and a corrupt file are processed
        records = [
            process(app, "a.jpg", imagegen.photo_jpeg(320, 240)),
            process(app, "b.jpg", imagegen.photo_jpeg(200, 300)),
            process(app, "bad.jpg", imagegen.truncated_jpeg()),
        ]
        assert [r.status for r in records] == [Status.PROCESSED, Status.PROCESSED, Status.FAILED]
        wait_for(lambda: len(hook.delivered()) == 3)

        # THEN the receiver got each event once, signed, with its id and type in headers
        got = {r.event["id"]: r for r in hook.seen()}
        assert set(got) == {f"{r.image_id}-{r.revision}" for r in records}
        for record in records:
            received = got[f"{record.image_id}-{record.revision}"]
            assert received.signed
            kind = "image.processed" if record.status is Status.PROCESSED else "image.failed"
            assert received.event["type"] == kind
            assert received.headers["X-Imgpipe-Event-Type"] == kind
            assert received.headers["X-Imgpipe-Event-Id"] == received.event["id"]
            assert received.headers["Content-Type"] == "application/json"
            assert received.event["data"]["imageId"] == record.image_id
            assert received.event["data"]["status"] == record.status.value
        processed = got[f"{records[0].image_id}-{records[0].revision}"].event["data"]
        assert (processed["width"], processed["height"]) == (320, 240)
        assert len(processed["renditions"]) == 6
        failed = got[f"{records[2].image_id}-{records[2].revision}"].event["data"]
        assert failed["error"]["code"] == records[2].error.code  # type: ignore[union-attr]

        # AND the JSONL log has one line per finished image, the same events
        logged = event_log(settings)
        assert [e["id"] for e in logged] == [f"{r.image_id}-{r.revision}" for r in records]
        assert logged == [got[e["id"]].event for e in logged]

        # AND the outbox is empty, the deliveries counted, /stats shows the outbox
        wait_for(lambda: app.webhooks is not None and app.webhooks.counts()["pending"] == 0)
        assert metric(app, "delivered") == 3
        stats = TestClient(create_local_app(app)).get("/stats").json()
        assert stats["webhooks"] == {"pending": 0, "dead": 0}


def test_a_receiver_failing_at_first_gets_the_event_on_a_retry(
    tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    # GIVEN a receiver that answers 503 twice, then 200
    flaky = receivers(status=lambda n: 503 if n < 2 else 200)
    with started(events_settings(tmp_path, flaky)) as app:
        # WHEN an image is processed
        record = process(app, "a.jpg", imagegen.photo_jpeg(160, 120))
        assert record.status is Status.PROCESSED
        # THEN the third attempt delivers it: the same event, signed afresh each time
        wait_for(lambda: len(flaky.delivered()) == 1)
        seen = flaky.seen()
        assert [r.status for r in seen] == [503, 503, 200]
        assert {r.event["id"] for r in seen} == {f"{record.image_id}-{record.revision}"}
        assert all(r.signed for r in seen)
        wait_for(lambda: metric(app, "delivered") == 1)
        assert metric(app, "retry") == 2
        assert app.webhooks is not None and app.webhooks.counts() == {"pending": 0, "dead": 0}


def test_a_receiver_always_failing_is_dead_lettered_after_max_attempts(
    tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    # GIVEN a receiver that always answers 500, and three attempts allowed
    broken = receivers(status=lambda n: 500)
    with started(events_settings(tmp_path, broken, max_attempts=3)) as app:
        record = process(app, "a.jpg", imagegen.photo_jpeg(160, 120))
        assert app.webhooks is not None
        # THEN after three attempts the delivery is a dead letter, kept with its last error
        wait_for(lambda: app.webhooks is not None and app.webhooks.counts()["dead"] == 1)
        time.sleep(0.5)  # and nothing tries again
        assert len(broken.seen()) == 3
        [dead] = app.webhooks.outbox.rows("dead")
        assert (dead.event_id, dead.attempts, dead.last_error) == (
            f"{record.image_id}-{record.revision}",
            3,
            "HTTP 500",
        )
        assert (metric(app, "retry"), metric(app, "dead")) == (2, 1)
        stats = TestClient(create_local_app(app)).get("/stats").json()
        assert stats["webhooks"] == {"pending": 0, "dead": 1}
        # AND Prometheus sees the outbox as /stats does
        for state, expected in (("pending", 0), ("dead", 1)):
            gauge = app.metrics.registry.get_sample_value(
                "imgpipe_webhook_outbox", {"state": state}
            )
            assert gauge == expected
        # AND the image itself is unaffected
        assert app.service.queries.get(record.image_id).status is Status.PROCESSED


def test_a_hanging_receiver_holds_up_neither_images_nor_other_webhooks(
    tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    # GIVEN one receiver that never answers (within a 30 s timeout) and one that does
    stuck = receivers(hang=True)
    healthy = receivers()
    settings = events_settings(tmp_path, stuck, healthy, timeout_s=30.0)
    with started(settings) as app:
        first = process(app, "first.jpg", imagegen.photo_jpeg(160, 120))
        wait_for(lambda: len(stuck.seen()) == 1)  # its delivery is in flight, hanging

        # WHEN more images are processed while it hangs
        began = time.monotonic()
        more = [process(app, f"{n}.jpg", imagegen.photo_jpeg(160 + n, 120)) for n in range(4)]
        elapsed = time.monotonic() - began

        # THEN they all finish, well before the hung request could time out
        assert all(r.status is Status.PROCESSED for r in [first, *more])
        assert elapsed < 20, elapsed
        assert len(event_log(settings)) == 5
        # AND the healthy webhook gets every event meanwhile
        wait_for(lambda: len(healthy.delivered()) == 5)
        assert len(stuck.seen()) == 1  # one request in flight per webhook, not one per event
        assert not stuck.release.is_set()

        # WHEN the stuck receiver answers at last THEN its other four follow
        stuck.release.set()
        wait_for(lambda: len(stuck.delivered()) == 5)


def test_pending_deliveries_survive_a_restart(
    tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    # GIVEN an image processed by a server whose senders never ran (it stopped first)
    hook = receivers()
    settings = events_settings(tmp_path, hook)
    app = build_local(settings, renderer=InProcessRenderer(), with_workers=False)
    try:
        record = process(app, "a.jpg", imagegen.photo_jpeg(160, 120))
        assert app.webhooks is not None and app.webhooks.counts()["pending"] == 1
    finally:
        app.stop()
    assert hook.seen() == []

    # WHEN the server starts again on the same data folder
    with started(settings) as again:
        # THEN the delivery left in the outbox is made
        wait_for(lambda: len(hook.delivered()) == 1)
        assert hook.seen()[0].event["id"] == f"{record.image_id}-{record.revision}"
        wait_for(lambda: again.webhooks is not None and again.webhooks.counts()["pending"] == 0)


def test_a_delivery_in_flight_when_the_server_died_is_made_on_restart(
    tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    # GIVEN an outbox row that a server had claimed (leased for minutes) when it was killed
    hook = receivers()
    settings = events_settings(tmp_path, hook)
    app = build_local(settings, renderer=InProcessRenderer(), with_workers=False)
    try:
        record = process(app, "a.jpg", imagegen.photo_jpeg(160, 120))
        assert app.webhooks is not None
        assert app.webhooks.outbox.claim(time.time(), lease_s=600) is not None
    finally:
        app.stop()

    # WHEN the server starts again, holding the data folder's lock (with its workers)
    again = build_local(settings, renderer=InProcessRenderer())
    again.start()
    try:
        # THEN it gives the dead server's lease back and delivers at once, not in 10 minutes
        wait_for(lambda: len(hook.delivered()) == 1, timeout_s=10)
        assert hook.seen()[0].event["id"] == f"{record.image_id}-{record.revision}"
    finally:
        again.stop()


def test_no_webhooks_and_no_log_when_turned_off(tmp_path: Path) -> None:
    settings = Settings(
        local={"data_dir": tmp_path / "data"},
        server={"watch_uploads": False},
        events={"log": False},
    )
    with started(settings) as app:
        record = process(app, "a.jpg", imagegen.photo_jpeg(160, 120))
        assert record.status is Status.PROCESSED
        assert app.webhooks is None and app.event_log is None
        assert not (settings.local.data_dir.resolve() / STATE_DIR / "events.jsonl").exists()
        assert TestClient(create_local_app(app)).get("/stats").json()["webhooks"] is None
        # and no outbox gauge either
        assert (
            app.metrics.registry.get_sample_value("imgpipe_webhook_outbox", {"state": "dead"})
            is None
        )
