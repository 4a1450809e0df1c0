"""The JobQueue contract: every implementation (fake, SQLite, SQS) passes it.

A test module provides a `job_queue` fixture: a fresh, empty queue per test that dead-letters
a message received `MAX_RECEIVES` times. It subclasses `JobQueueContract`, and may change
`visibility_s` (SQS counts whole seconds) or set `fifo = False` (SQS standard queues do not
keep order); see tests/integration/test_local_contracts.py.
"""

from __future__ import annotations

import time

import pytest

from contract.concurrency import race
from imgpipe.core.errors import InvalidRequestError
from imgpipe.core.ports import JobQueue, Message

MAX_RECEIVES = 3


def receive_one(queue: JobQueue, visibility_s: float, within_s: float = 5.0) -> Message:
    """Poll until a message is received (a lease expiring, a delay passing)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        messages = queue.receive(1, visibility_s)
        if messages:
            return messages[0]
        time.sleep(0.02)
    raise AssertionError(f"no message within {within_s} s")


def drain_concurrently(queue: JobQueue, receivers: int) -> list[int]:
    """Every message's "n" as `receivers` threads received it, each acking what it got and
    stopping at its first empty receive."""

    def drain(_: int) -> list[int]:
        got = []
        while messages := queue.receive(3, 30):
            for m in messages:
                got.append(m.body["n"])
                queue.ack(m)
        return got

    return [n for part in race(receivers, drain) for n in part]


class JobQueueContract:
    """send/receive/ack/release/stats/redrive, as the workers rely on them."""

    visibility_s = 0.2
    fifo = True

    def test_send_receive_ack(self, job_queue: JobQueue) -> None:
        job_queue.send({"key": "uploads/ü/a.jpg", "n": 1, "nested": {"ok": True}})

        [message] = job_queue.receive(10, 30)

        assert message.body == {"key": "uploads/ü/a.jpg", "n": 1, "nested": {"ok": True}}
        assert message.receive_count == 1
        assert message.receipt
        assert message.message_id
        job_queue.ack(message)
        assert job_queue.receive(10, 30) == []
        stats = job_queue.stats()
        assert (stats.visible, stats.in_flight, stats.dead) == (0, 0, 0)

    def test_a_message_with_a_cost_is_delivered_as_sent(self, job_queue: JobQueue) -> None:
        job_queue.send({"n": 1}, cost=3_000_000)
        job_queue.send({"n": 2}, dedup_id="d", cost=0)

        received = job_queue.receive(10, 30)

        assert sorted(m.body["n"] for m in received) == [1, 2]

    def test_an_empty_queue(self, job_queue: JobQueue) -> None:
        assert job_queue.receive(5, 30) == []
        stats = job_queue.stats()
        assert (stats.visible, stats.in_flight, stats.dead, stats.oldest_age_s) == (0, 0, 0, 0)

    def test_receive_takes_at_most_max_messages(self, job_queue: JobQueue) -> None:
        for n in range(5):
            job_queue.send({"n": n})

        first = job_queue.receive(3, 30)
        second = job_queue.receive(3, 30)

        assert (len(first), len(second)) == (3, 2)
        assert len({m.message_id for m in first + second}) == 5
        if self.fifo:
            assert [m.body["n"] for m in first + second] == [0, 1, 2, 3, 4]
        stats = job_queue.stats()
        assert (stats.visible, stats.in_flight) == (0, 5)

    def test_a_bad_max_messages(self, job_queue: JobQueue) -> None:
        with pytest.raises(InvalidRequestError):
            job_queue.receive(0, 30)

    def test_stats_count_waiting_messages_and_their_age(self, job_queue: JobQueue) -> None:
        job_queue.send({"n": 1})
        job_queue.send({"n": 2})
        time.sleep(0.05)

        stats = job_queue.stats()

        assert (stats.visible, stats.in_flight, stats.dead) == (2, 0, 0)
        assert 0.04 <= stats.oldest_age_s < 60

    def test_a_lease_hides_the_message_until_it_expires(self, job_queue: JobQueue) -> None:
        job_queue.send({"n": 1})

        # GIVEN a worker that received the message and then died without acking
        [first] = job_queue.receive(1, self.visibility_s)
        assert job_queue.receive(1, self.visibility_s) == []
        assert job_queue.stats().in_flight == 1

        # WHEN the lease expires, THEN the message is delivered again, counted twice
        again = receive_one(job_queue, self.visibility_s)
        assert again.message_id == first.message_id
        assert again.body == first.body
        assert again.receive_count == 2
        assert again.receipt != first.receipt

    def test_an_ack_with_a_stale_receipt_does_nothing(self, job_queue: JobQueue) -> None:
        job_queue.send({"n": 1})
        [slow] = job_queue.receive(1, self.visibility_s)
        fast = receive_one(job_queue, 30)  # the lease ran out; someone else holds it now

        job_queue.ack(slow)
        job_queue.release(slow, 0)

        stats = job_queue.stats()
        assert (stats.visible, stats.in_flight) == (0, 1)
        job_queue.ack(fast)
        stats = job_queue.stats()
        assert (stats.visible, stats.in_flight) == (0, 0)

    def test_an_ack_after_the_lease_expired_still_deletes(self, job_queue: JobQueue) -> None:
        job_queue.send({"n": 1})
        [message] = job_queue.receive(1, self.visibility_s)
        time.sleep(self.visibility_s + 0.05)

        job_queue.ack(message)  # nobody received it again: the receipt is still current

        assert job_queue.receive(1, 30) == []

    def test_release_with_a_delay(self, job_queue: JobQueue) -> None:
        job_queue.send({"n": 1})
        [message] = job_queue.receive(1, 30)

        job_queue.release(message, self.visibility_s)

        assert job_queue.receive(1, 30) == []
        again = receive_one(job_queue, 30)
        assert (again.message_id, again.receive_count) == (message.message_id, 2)

    def test_release_without_delay_is_visible_at_once(self, job_queue: JobQueue) -> None:
        job_queue.send({"n": 1})
        [message] = job_queue.receive(1, 30)

        job_queue.release(message, 0)

        [again] = job_queue.receive(1, 30)
        assert again.message_id == message.message_id

    def test_dead_letter_after_max_receives_then_redrive(self, job_queue: JobQueue) -> None:
        job_queue.send({"n": 1})
        job_queue.send({"n": 2})

        # GIVEN a message that fails every time it is received
        counts = []
        for _ in range(MAX_RECEIVES):
            message = next(m for m in job_queue.receive(2, 30) if m.body == {"n": 1})
            counts.append(message.receive_count)
            job_queue.release(message, 0)
        assert counts == list(range(1, MAX_RECEIVES + 1))

        # WHEN it would be received once more, THEN it is dead instead, and not returned
        assert all(m.body != {"n": 1} for m in job_queue.receive(2, 30))
        assert job_queue.stats().dead == 1

        # WHEN the dead letters are redriven, THEN it is back with a fresh count
        assert job_queue.redrive() == 1
        assert job_queue.stats().dead == 0
        [message] = job_queue.receive(1, 30)
        assert (message.body, message.receive_count) == ({"n": 1}, 1)
        assert job_queue.redrive() == 0

    def test_a_dead_letter_is_not_received(self, job_queue: JobQueue) -> None:
        job_queue.send({"n": 1})
        for _ in range(MAX_RECEIVES):
            [message] = job_queue.receive(1, 30)
            job_queue.release(message, 0)

        assert job_queue.receive(1, 30) == []
        assert job_queue.receive(1, 30) == []
        stats = job_queue.stats()
        assert (stats.visible, stats.in_flight, stats.dead) == (0, 0, 1)

    def test_dedup_while_waiting_or_in_flight(self, job_queue: JobQueue) -> None:
        job_queue.send({"n": 1}, dedup_id="uploads/a.jpg@0a")
        job_queue.send({"n": 1}, dedup_id="uploads/a.jpg@0a")
        assert job_queue.stats().visible == 1

        [message] = job_queue.receive(10, 30)
        job_queue.send({"n": 1}, dedup_id="uploads/a.jpg@0a")
        stats = job_queue.stats()
        assert (stats.visible, stats.in_flight) == (0, 1)

        # after the ack, the same dedup_id is new work again
        job_queue.ack(message)
        job_queue.send({"n": 2}, dedup_id="uploads/a.jpg@0a")
        [again] = job_queue.receive(10, 30)
        assert again.body == {"n": 2}

    def test_different_or_no_dedup_ids_are_all_sent(self, job_queue: JobQueue) -> None:
        job_queue.send({"n": 1})
        job_queue.send({"n": 1})
        job_queue.send({"n": 1}, dedup_id="a")
        job_queue.send({"n": 1}, dedup_id="b")

        assert job_queue.stats().visible == 4

    def test_concurrent_receivers_never_share_a_lease(self, job_queue: JobQueue) -> None:
        for n in range(40):
            job_queue.send({"n": n})

        assert sorted(drain_concurrently(job_queue, receivers=4)) == list(range(40))
