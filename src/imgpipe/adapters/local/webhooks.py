"""Local webhooks: events into the durable outbox, and the threads that deliver it.

`publish` only inserts one outbox row per (event, subscribed webhook) (webhook_outbox.py) and
wakes the senders: a slow or dead receiver never holds up a worker. Sender threads (started
with the server's runtime) claim due rows with a lease, POST the signed body, and delete the
row on a 2xx; anything else schedules a retry with exponential backoff and jitter, and after
`max_attempts` the row stays as a dead letter. Rows survive a restart; a lease held by a
crashed server lapses (or is given back at once when this server is the data folder's only
one). Delivery is at least once and unordered: receivers drop repeats by
`X-Imgpipe-Event-Id`.
"""

from __future__ import annotations

import http.client
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from imgpipe import __version__
from imgpipe.adapters.local.webhook_outbox import Delivery, SqliteWebhookOutbox
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

IDLE_POLL_S: Final = 5.0  # rows added by another process (a CLI run) are seen this soon
MAX_RESPONSE_BYTES: Final = 64 * 1024


@dataclass(frozen=True)
class Webhook:
    """A receiver of signed POSTs: where, the HMAC key of its signatures, the event types."""

    url: str
    secret: str = field(repr=False)
    events: frozenset[str]


@dataclass(frozen=True)
class WebhookOptions:
    """What the publisher and its senders are given (bootstrap converts the settings' events
    section): the webhooks in their order, the retries, the timeout, the sender threads."""

    webhooks: tuple[Webhook, ...]
    max_attempts: int
    backoff_s: float
    max_backoff_s: float
    timeout_s: float
    senders: int


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
        options: WebhookOptions,
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
        self.targets: dict[str, Webhook] = {t.url: t for t in options.webhooks}
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
        for n in range(self.options.senders):
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

    def _post(self, target: Webhook, delivery: Delivery) -> str | None:
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
