"""The local worker pool: threads that lease queue messages and hand them to the use cases.

Each message is acknowledged only after the service finished with it, so a crash at any
point leaves it in the queue, and its lease lapses into a redelivery. Transient failures are
released with backoff; on the last allowed attempt the record is marked FAILED and the queue
dead-letters the message (`imgpipe redrive` brings it back).

No error of a store ends a job thread: the loop backs off and tries again, and reports the
database degraded on the health board until a receive succeeds. Should a thread end anyway,
the supervisor starts another in its place.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Collection

from imgpipe.adapters.local.health import HealthBoard
from imgpipe.core import jobs
from imgpipe.core.errors import ImageBusyError, StoreUnavailableError
from imgpipe.core.keys import image_id_for
from imgpipe.core.ports import JobHandler, JobQueue, Message, Metrics, NullMetrics

log = logging.getLogger("imgpipe.worker")

IDLE_POLL_S = 0.25
SUPERVISE_S = 1.0
MAX_ERROR_BACKOFF_S = 5.0
DATABASE = "database"
WORKERS = "workers"


def backoff_s(receive_count: int) -> float:
    """Exponential backoff with full jitter, capped at a minute."""
    ceiling: float = min(60.0, 0.5 * 2.0**receive_count)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto


def error_backoff_s(failures: int) -> float:
    """How long a job thread waits after its n-th store error in a row: short at first (a
    busy moment), at most a few seconds (a fault that lasts), with jitter so that the
    threads do not retry in step."""
    ceiling = min(MAX_ERROR_BACKOFF_S, 0.25 * 2.0 ** min(failures, 8))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto


class LocalWorkerPool:
    def __init__(
        self,
        handler: JobHandler,
        queue: JobQueue,
        workers: int,
        visibility_s: float,
        max_attempts: int,
        backoff: Callable[[int], float] = backoff_s,
        *,
        health: HealthBoard | None = None,
        metrics: Metrics | None = None,
        wake_waiting: Callable[[str, str], object] | None = None,
        recover_in_flight: Callable[[Collection[str]], int] | None = None,
    ) -> None:
        """`wake_waiting(key, message_id)`: make the other jobs of `key` that wait for this
        one's lease visible now (the local queue's `wake_waiting`); without it they wait until
        the lease would have lapsed. `recover_in_flight(keep)`: give back the queue's leases
        but those of `keep` (the local queue's, whose only consumer this pool is): after the
        database failed its threads, so that the jobs they could not release run again at
        once rather than when their leases lapse."""
        self.handler = handler
        self.backoff = backoff
        self.queue = queue
        self.workers = workers
        self.visibility_s = visibility_s
        self.max_attempts = max_attempts
        self.health = health or HealthBoard()
        self.metrics: Metrics = metrics or NullMetrics()
        self._wake_waiting = wake_waiting
        self._recover_in_flight = recover_in_flight
        self._held: dict[int, Message] = {}  # by thread: the job each thread runs
        self._held_lock = threading.Lock()
        self._lost_track = False  # a job may have been left leased: sweep once all is well
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._supervisor: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._threads = [self._spawn(n) for n in range(self.workers)]
        self._supervisor = threading.Thread(
            target=self._supervise, name="imgpipe-worker-supervisor", daemon=True
        )
        self._supervisor.start()

    def _spawn(self, n: int) -> threading.Thread:
        thread = threading.Thread(target=self._run, name=f"imgpipe-worker-{n}", daemon=True)
        thread.start()
        return thread

    def wake(self) -> None:
        """New work was queued: stop idling."""
        with self._wake:
            self._wake.notify_all()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self.wake()
        for thread in [*self._threads, *([self._supervisor] if self._supervisor else [])]:
            thread.join(timeout_s)
        self._threads.clear()
        self._supervisor = None

    def alive(self) -> int:
        """How many job threads are running."""
        return sum(thread.is_alive() for thread in self._threads)

    def _supervise(self) -> None:
        while not self._stop.wait(SUPERVISE_S):
            self.replace_dead()

    def replace_dead(self) -> int:
        """Start a new job thread in the place of each that ended; returns how many."""
        dead = [n for n, thread in enumerate(self._threads) if not thread.is_alive()]
        if not dead or self._stop.is_set():
            return 0
        self.health.degraded(WORKERS, f"{len(dead)} job thread(s) ended unexpectedly")
        with self._held_lock:
            alive = {thread.ident for thread in self._threads if thread.is_alive()}
            for ident in [i for i in self._held if i not in alive]:
                del self._held[ident]  # its job is given back by the sweep
            self._lost_track = True
        for n in dead:
            self._threads[n] = self._spawn(n)
        self.metrics.incr("worker_restarts", len(dead))
        self.health.recovered(WORKERS)
        return len(dead)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._step()
                failures = 0
            except Exception as exc:
                failures += 1
                self._store_failed("receiving a job", exc)
                self._stop.wait(error_backoff_s(failures))

    def _step(self) -> None:
        me = threading.get_ident()
        with self._held_lock:  # a sweep never gives back a job that a thread just received
            messages = self.queue.receive(1, self.visibility_s)
            if messages:
                self._held[me] = messages[0]
        try:
            self.health.recovered(DATABASE)  # a receive is a write: the database answers
            if self._lost_track:
                self._sweep()
            if not messages:
                with self._wake:
                    self._wake.wait(IDLE_POLL_S)
                return
            for message in messages:
                self.run_one(message)
        finally:
            with self._held_lock:
                self._held.pop(me, None)

    def _sweep(self) -> None:
        """After a store failure: give back the leases, on jobs and on records, that no
        thread of this pool holds any more (a release or an acknowledgement that failed, a
        thread that ended)."""
        with self._held_lock:
            self._lost_track = False
            running = list(self._held.values())
            try:
                released = (
                    self._recover_in_flight([m.message_id for m in running])
                    if self._recover_in_flight is not None
                    else 0
                )
                leases = self.handler.recover_leases(
                    "the database failed while it was being processed"
                )
            except BaseException:
                self._lost_track = True
                raise
        if released or leases:
            log.info(
                "jobs given back after a store failure", extra={"jobs": released, "leases": leases}
            )

    def _store_failed(self, doing: str, exc: Exception) -> None:
        log.error("%s failed; retrying", doing, exc_info=exc)
        self.health.degraded(DATABASE, f"{doing} failed: {exc}")
        self._lost_track = True

    def run_one(self, message: Message) -> None:
        key = str(message.body.get("key", ""))
        context = {
            "imageId": image_id_for(key) if key else None,
            "key": key,
            "attempt": message.receive_count,
            "job": message.body.get("type"),
        }
        started = time.perf_counter()
        if self._attempt(message):
            self._settle("acknowledging a job", lambda: self.queue.ack(message))
            log.info(
                "job done", extra={**context, "ms": round((time.perf_counter() - started) * 1000)}
            )
        wake = self._wake_waiting
        if key and wake is not None:
            self._settle("waking the jobs that wait", lambda: wake(key, message.message_id))

    def _attempt(self, message: Message) -> bool:
        """Run the message's job. True: it is done (acknowledge it); False: it failed, and was
        released for a retry or left to be dead-lettered. A message of an unknown type is
        dropped (done); a malformed one fails as any job does, and ends dead-lettered."""
        job: jobs.Job | None = None
        try:
            job = jobs.parse(message.body)
            self.handler.run(job)
        except jobs.UnknownJobError:
            log.error("dropping a message of unknown type", extra={"body": dict(message.body)})
        except Exception as exc:
            self._retry_or_give_up(message, job, exc)
            return False
        return True

    def _settle(self, doing: str, step: Callable[[], object]) -> None:
        """Acknowledge or release a job without letting a store error end the thread: left
        alone, the job's lease lapses and the queue delivers it again, which a finished job
        shrugs off (its record says so)."""
        try:
            step()
        except Exception as exc:
            self._store_failed(doing, exc)

    def _retry_or_give_up(self, message: Message, job: jobs.Job | None, exc: Exception) -> None:
        attempts = message.receive_count
        last = jobs.gives_up(attempts, self.max_attempts)
        log.warning(
            "job failed; giving up" if last else "job failed; will retry",
            extra={
                "key": message.body.get("key"),
                "attempt": attempts,
                "error": repr(exc),
                "imageId": image_id_for(str(message.body.get("key", ""))),
            },
        )
        if isinstance(exc, StoreUnavailableError):
            self.health.degraded(DATABASE, f"a job failed: {exc}")
            self._lost_track = True  # its record's lease may not have been given back
        if last and job is not None:
            try:
                self.handler.give_up(job, exc, attempts)
            except Exception:
                log.exception("could not mark the record FAILED")
        if last:
            delay = 0.0
        elif isinstance(exc, ImageBusyError):
            # Retry as the other worker's lease ends, or sooner: its job wakes this one.
            delay = exc.retry_after_s + 0.5
        else:
            delay = self.backoff(attempts)
        self._settle("releasing a job", lambda: self.queue.release(message, delay))
