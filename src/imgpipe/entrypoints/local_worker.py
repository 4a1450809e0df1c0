"""The local worker pool: threads that lease queue messages and hand them to the service.

Each message is acknowledged only after the service finished with it, so a crash at any
point leaves it in the queue, and its lease lapses into a redelivery. Transient failures are
released with backoff; on the last allowed attempt the record is marked FAILED and the queue
dead-letters the message (`imgpipe redrive` brings it back).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from imgpipe.core.errors import ImageBusyError
from imgpipe.core.keys import image_id_for
from imgpipe.core.model import ObjectEvent
from imgpipe.core.ports import JobQueue, Message
from imgpipe.service import ImageService

log = logging.getLogger("imgpipe.worker")

IDLE_POLL_S = 0.25


def handle_message(service: ImageService, body: Mapping[str, Any]) -> None:
    """Translate one queue message into one service call."""
    kind = body.get("type")
    if kind == "created":
        service.process(ObjectEvent.model_validate({k: v for k, v in body.items() if k != "type"}))
    elif kind == "removed":
        service.on_removed(str(body["key"]))
    elif kind == "rerender":
        service.rerender(str(body["key"]))
    else:
        log.error("dropping a message of unknown type", extra={"body": dict(body)})


def backoff_s(receive_count: int) -> float:
    """Exponential backoff with full jitter, capped at a minute."""
    ceiling: float = min(60.0, 0.5 * 2.0**receive_count)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto


class LocalWorkerPool:
    def __init__(
        self,
        service: ImageService,
        queue: JobQueue,
        workers: int,
        visibility_s: float,
        max_attempts: int,
        backoff: Callable[[int], float] = backoff_s,
    ) -> None:
        self.service = service
        self.backoff = backoff
        self.queue = queue
        self.workers = workers
        self.visibility_s = visibility_s
        self.max_attempts = max_attempts
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self.workers):
            thread = threading.Thread(target=self._run, name=f"imgpipe-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """New work was queued: stop idling."""
        with self._wake:
            self._wake.notify_all()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self.queue.receive(1, self.visibility_s)
            except Exception:
                log.exception("queue receive failed")
                messages = []
            if not messages:
                with self._wake:
                    self._wake.wait(IDLE_POLL_S)
                continue
            for message in messages:
                self.run_one(message)

    def run_one(self, message: Message) -> None:
        key = str(message.body.get("key", ""))
        context = {
            "imageId": image_id_for(key) if key else None,
            "key": key,
            "attempt": message.receive_count,
            "job": message.body.get("type"),
        }
        started = time.perf_counter()
        try:
            handle_message(self.service, message.body)
        except Exception as exc:
            self._retry_or_give_up(message, exc)
        else:
            self.queue.ack(message)
            log.info(
                "job done", extra={**context, "ms": round((time.perf_counter() - started) * 1000)}
            )

    def _retry_or_give_up(self, message: Message, exc: Exception) -> None:
        attempts = message.receive_count
        log.warning(
            "job failed; will retry" if attempts < self.max_attempts else "job failed; giving up",
            extra={
                "key": message.body.get("key"),
                "attempt": attempts,
                "error": repr(exc),
                "imageId": image_id_for(str(message.body.get("key", ""))),
            },
        )
        if attempts >= self.max_attempts and message.body.get("type") == "created":
            try:
                event = ObjectEvent.model_validate(
                    {k: v for k, v in message.body.items() if k != "type"}
                )
                self.service.give_up(event, exc, attempts)
            except Exception:
                log.exception("could not mark the record FAILED")
        if attempts >= self.max_attempts:
            delay = 0.0
        elif isinstance(exc, ImageBusyError):
            delay = exc.retry_after_s + 0.5  # retry as the other worker's lease ends
        else:
            delay = self.backoff(attempts)
        self.queue.release(message, delay)
