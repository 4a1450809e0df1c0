"""Local webhooks: a durable outbox in SQLite and the threads that deliver it.

`publish` only inserts one outbox row per (event, subscribed webhook) in the database file the
records and jobs live in, and wakes the senders: a slow or dead receiver never holds up a
worker. Sender threads (started by `LocalApp.start()`) claim due rows with a lease, POST the
signed body, and delete the row on a 2xx; anything else schedules a retry with exponential
backoff and jitter, and after `max_attempts` the row stays as a dead letter (status `dead`,
its attempts and last error). Rows survive a restart; a lease held by a crashed server lapses
(or is given back at once by `recover_leases` when this server is the data folder's only one).
Delivery is at least once and unordered: receivers drop repeats by `X-Imgpipe-Event-Id`.
"""

from __future__ import annotations

import http.client
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from imgpipe import __version__
from imgpipe.adapters.local.sqlite_store import BUSY_TIMEOUT_S, SqliteTables
from imgpipe.config import EventsOptions, WebhookTarget
from imgpipe.core.ports import Metrics
from imgpipe.core.webhooks import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    event_body,
    is_delivered,
    retry_delay,
    signature_header,
)

log = logging.getLogger("imgpipe.webhooks")

PENDING: Final = "pending"
DEAD: Final = "dead"
IDLE_POLL_S: Final = 5.0  # rows added by another process (a CLI run) are seen this soon
MAX_ERROR_CHARS: Final = 500
MAX_RESPONSE_BYTES: Final = 64 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    url          TEXT NOT NULL,
    body         BLOB NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    leased       INTEGER NOT NULL DEFAULT 0,
    next_at      REAL NOT NULL,
    created_at   REAL NOT NULL,
    last_error   TEXT,
    dead_at      REAL,
    UNIQUE (event_id, url)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due
    ON webhook_deliveries (status, next_at, seq);
"""


@dataclass(frozen=True)
class Delivery:
    """One outbox row: an event's body for one webhook."""

    seq: int
    event_id: str
    event_type: str
    url: str
    body: bytes
    status: str
    attempts: int
    last_error: str | None


_COLUMNS = "seq, event_id, event_type, url, body, status, attempts, last_error"


def _delivery(row: tuple[Any, ...]) -> Delivery:
    seq, event_id, event_type, url, body, status, attempts, last_error = row
    return Delivery(seq, event_id, event_type, url, bytes(body), status, attempts, last_error)


class SqliteWebhookOutbox(SqliteTables):
    """The webhook deliveries still to make, and the dead letters, in SQLite."""

    def __init__(self, db_path: Path, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        super().__init__(db_path, _SCHEMA, busy_timeout_s)

    def add(
        self,
        event_id: str,
        event_type: str,
        urls: Sequence[str],
        body: bytes,
        now: float | None = None,
    ) -> int:
        """One pending row per url, due `now`; an (event, url) already there is not added
        twice."""
        now = time.time() if now is None else now
        with self._db.write() as conn:
            added = 0
            for url in urls:
                added += conn.execute(
                    "INSERT INTO webhook_deliveries"
                    " (event_id, event_type, url, body, next_at, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (event_id, event_type, url, body, now, now),
                ).rowcount
            return added

    def claim(self, now: float, lease_s: float) -> Delivery | None:
        """The oldest due pending row, leased for `lease_s` (no other sender takes it meanwhile),
        of a url with no delivery under a live lease: one request in flight per webhook, so a
        receiver that hangs holds one sender, never all of them."""
        with self._db.write() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM webhook_deliveries"  # noqa: S608 - constant columns
                " WHERE status = ? AND next_at <= ? AND url NOT IN ("
                "   SELECT url FROM webhook_deliveries"
                "   WHERE status = ? AND leased = 1 AND next_at > ?)"
                " ORDER BY next_at, seq LIMIT 1",
                (PENDING, now, PENDING, now),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE webhook_deliveries SET leased = 1, next_at = ? WHERE seq = ?",
                (now + lease_s, row[0]),
            )
            return _delivery(row)

    def delivered(self, seq: int) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM webhook_deliveries WHERE seq = ?", (seq,))

    def retry(self, seq: int, attempts: int, error: str, at: float) -> None:
        with self._db.write() as conn:
            conn.execute(
                "UPDATE webhook_deliveries SET attempts = ?, last_error = ?, next_at = ?,"
                " leased = 0 WHERE seq = ?",
                (attempts, error[:MAX_ERROR_CHARS], at, seq),
            )

    def dead(self, seq: int, attempts: int, error: str) -> None:
        with self._db.write() as conn:
            conn.execute(
                "UPDATE webhook_deliveries SET status = ?, attempts = ?, last_error = ?,"
                " leased = 0, dead_at = ? WHERE seq = ?",
                (DEAD, attempts, error[:MAX_ERROR_CHARS], time.time(), seq),
            )

    def recover_leases(self) -> int:
        """Make leased rows due now: for the data folder's only server, restarting after a
        crash, whose leases can only be its dead predecessor's. Attempts are kept."""
        with self._db.write() as conn:
            return conn.execute(
                "UPDATE webhook_deliveries SET leased = 0, next_at = ?"
                " WHERE status = ? AND leased = 1",
                (time.time(), PENDING),
            ).rowcount

    def redrive(self) -> int:
        """Dead letters become pending again, due now, with their attempts reset."""
        with self._db.write() as conn:
            return conn.execute(
                "UPDATE webhook_deliveries SET status = ?, attempts = 0, next_at = ?,"
                " dead_at = NULL WHERE status = ?",
                (PENDING, time.time(), DEAD),
            ).rowcount

    def next_due(self, now: float | None = None) -> float | None:
        """When `claim` may next find a row: the soonest pending row of a url with nothing in
        flight, or the soonest lease to lapse (rows queued behind a lease wait for it, or for
        the sender holding it, which claims again as soon as it is done)."""
        now = time.time() if now is None else now
        row = self._db.read(
            lambda c: c.execute(
                "SELECT MIN(next_at) FROM webhook_deliveries WHERE status = ? AND ("
                "   (leased = 1 AND next_at > ?) OR url NOT IN ("
                "     SELECT url FROM webhook_deliveries"
                "     WHERE status = ? AND leased = 1 AND next_at > ?))",
                (PENDING, now, PENDING, now),
            ).fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    def rows(self, status: str | None = None) -> list[Delivery]:
        """Rows in outbox order (all, or those with `status`): for /stats and tests."""
        return self._db.read(
            lambda c: [
                _delivery(r)
                for r in c.execute(
                    f"SELECT {_COLUMNS} FROM webhook_deliveries"  # noqa: S608 - constant columns
                    " WHERE ? IS NULL OR status = ? ORDER BY seq",
                    (status, status),
                ).fetchall()
            ]
        )

    def counts(self) -> dict[str, int]:
        found = dict(
            self._db.read(
                lambda c: c.execute(
                    "SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status"
                ).fetchall()
            )
        )
        return {PENDING: int(found.get(PENDING, 0)), DEAD: int(found.get(DEAD, 0))}


Sender = Callable[[str, bytes, Mapping[str, str], float], int]


def http_post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
    """POST `body` to `url` and return the status. Redirects are not followed. Raises OSError
    (refused, reset, timed out: socket timeouts apply to the connect and to each read) or
    http.client.HTTPException (a reply that is not HTTP)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout_s, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout_s)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", path, body=body, headers=dict(headers))
        response = conn.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        return response.status
    finally:
        conn.close()


class WebhookPublisher:
    """EventPublisher into the outbox, and the sender threads that empty it."""

    def __init__(
        self,
        outbox: SqliteWebhookOutbox,
        options: EventsOptions,
        metrics: Metrics,
        *,
        sender: Sender = http_post,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.outbox = outbox
        self.options = options
        self.metrics = metrics
        self.sender = sender
        self.clock = clock
        self.jitter = jitter
        self.targets: dict[str, WebhookTarget] = {t.url: t for t in options.webhooks}
        # A lease outlasts a request that keeps answering just inside its socket timeout.
        self.lease_s = max(30.0, 4 * options.timeout_s)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- publishing (the workers' side: a database insert, nothing slower) ----------------------

    def publish(self, event: Mapping[str, Any]) -> None:
        kind = str(event.get("type", ""))
        urls = [t.url for t in self.options.webhooks if kind in t.events]
        if not urls:
            return
        try:
            self.outbox.add(str(event["id"]), kind, urls, event_body(event), self.clock())
        except Exception:  # a store that does not answer loses this event, not the image
            log.exception("could not queue a webhook delivery", extra={"eventId": event.get("id")})
            self.metrics.incr("events_failed")
            return
        self._wake.set()

    # -- delivering ------------------------------------------------------------------------------

    def start(self, *, recover: bool = False) -> None:
        """Start the sender threads; `recover`: this is the data folder's only server, so
        leases left in the outbox are a crashed predecessor's and are given back now."""
        if self._threads:
            return
        if recover:
            self.outbox.recover_leases()
        self._stopping.clear()
        for n in range(self.options.webhook_senders):
            thread = threading.Thread(target=self._run, name=f"imgpipe-webhooks-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop claiming rows. A request in flight finishes (within its timeout) on its own
        daemon thread; an unfinished one is claimed again after its lease."""
        self._stopping.set()
        self._wake.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._wake.clear()  # a publish after this sets it again: no wake-up is lost
                if self.deliver_one():
                    continue
                due = self.outbox.next_due(self.clock())
                wait = IDLE_POLL_S if due is None else due - self.clock()
                self._wake.wait(min(IDLE_POLL_S, max(0.01, wait)))
            except Exception:  # a busy or closed database: try again shortly
                if self._stopping.is_set():
                    return
                log.exception("webhook sender failed; retrying")
                self._stopping.wait(1.0)

    def deliver_one(self) -> bool:
        """Claim one due delivery and make one attempt at it; False when none was due."""
        delivery = self.outbox.claim(self.clock(), self.lease_s)
        if delivery is None:
            return False
        self.attempt(delivery)
        return True

    def attempt(self, delivery: Delivery) -> None:
        target = self.targets.get(delivery.url)
        attempts = delivery.attempts + 1
        if target is None:
            self.outbox.dead(delivery.seq, attempts, "the webhook is no longer configured")
            self.metrics.incr("webhook_deliveries", outcome="dead")
            return
        error = self._post(target, delivery)
        if error is None:
            self.outbox.delivered(delivery.seq)
            self.metrics.incr("webhook_deliveries", outcome="delivered")
            return
        context = {"eventId": delivery.event_id, "url": delivery.url, "attempts": attempts}
        if attempts >= self.options.max_attempts:
            self.outbox.dead(delivery.seq, attempts, error)
            self.metrics.incr("webhook_deliveries", outcome="dead")
            log.warning("webhook delivery dead-lettered: %s", error, extra=context)
            return
        delay = retry_delay(
            attempts, self.options.backoff_s, self.options.max_backoff_s, self.jitter()
        )
        self.outbox.retry(delivery.seq, attempts, error, self.clock() + delay)
        self.metrics.incr("webhook_deliveries", outcome="retry")
        log.info("webhook delivery failed, retrying in %.1f s: %s", delay, error, extra=context)

    def _post(self, target: WebhookTarget, delivery: Delivery) -> str | None:
        """One POST; None when delivered, else what went wrong."""
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"imgpipe/{__version__}",
            EVENT_ID_HEADER: delivery.event_id,
            EVENT_TYPE_HEADER: delivery.event_type,
            SIGNATURE_HEADER: signature_header(target.secret, delivery.body, timestamp),
        }
        try:
            status = self.sender(delivery.url, delivery.body, headers, self.options.timeout_s)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return None if is_delivered(status) else f"HTTP {status}"

    def counts(self) -> dict[str, int]:
        return self.outbox.counts()
