"""The local queue's order of work (SqliteJobQueue._next): oldest first, except that a batch's
costliest job starts once the rest of the batch, shared among the other runners, is no more
than it, so that a batch does not end with that job running alone. SQS keeps no order, and the
in-memory fake keeps plain oldest first, so only the SQLite queue is here.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import local_app_with
from imgpipe.adapters.local import sqlite_queue
from imgpipe.adapters.local.sqlite_queue import BATCH_MAX, BATCH_WINDOW_S, SqliteJobQueue
from imgpipe.config import Settings
from imgpipe.core.keys import image_id_for


def _send(queue: SqliteJobQueue, *jobs: tuple[str, int]) -> None:
    for name, cost in jobs:
        queue.send({"n": name}, cost=cost)


def _order(queue: SqliteJobQueue) -> list[str]:
    """Every message's name, in the order one receiver at a time gets them."""
    names = []
    while messages := queue.receive(1, 30):
        [message] = messages
        names.append(message.body["n"])
        queue.ack(message)
    return names


BATCH = (("a", 2), ("b", 2), ("c", 2), ("big", 5))


def test_one_runner_takes_the_oldest_first(tmp_path: Path) -> None:
    with SqliteJobQueue(tmp_path / "q.db", runs_at_once=1) as queue:
        _send(queue, *BATCH)
        assert _order(queue) == ["a", "b", "c", "big"]


def test_two_runners_start_the_costliest_once_the_rest_is_no_more_than_it(tmp_path: Path) -> None:
    with SqliteJobQueue(tmp_path / "q.db", runs_at_once=2) as queue:
        _send(queue, *BATCH)
        # The rest (a, b, c: 6) outweighs big (5), so a goes first; then the rest is b and c
        # (4), which the other runner works through while big runs.
        assert _order(queue) == ["a", "big", "b", "c"]


def test_more_runners_start_it_sooner(tmp_path: Path) -> None:
    jobs = (("a", 2), ("b", 2), ("c", 2), ("d", 2), ("big", 5))
    with SqliteJobQueue(tmp_path / "two.db", runs_at_once=2) as queue:
        _send(queue, *jobs)
        assert _order(queue) == ["a", "b", "big", "c", "d"]  # once the rest is 4
    with SqliteJobQueue(tmp_path / "three.db", runs_at_once=3) as queue:
        _send(queue, *jobs)
        assert _order(queue) == ["big", "a", "b", "c", "d"]  # 8 shared by two: 4 each


def test_without_costs_or_with_equal_ones_the_oldest_goes_first(tmp_path: Path) -> None:
    with SqliteJobQueue(tmp_path / "q.db", runs_at_once=2) as queue:
        _send(queue, ("a", 0), ("b", 0), ("c", 0))
        assert _order(queue) == ["a", "b", "c"]
        _send(queue, ("d", 3), ("e", 3), ("f", 3))
        assert _order(queue) == ["d", "e", "f"]


def test_a_batch_of_many_goes_oldest_first_until_its_costliest_is_due(tmp_path: Path) -> None:
    with SqliteJobQueue(tmp_path / "q.db", runs_at_once=2) as queue:
        _send(queue, *((f"s{n}", 1) for n in range(10)), ("big", 4))
        order = _order(queue)
        # started when 4 of cost 1 are left: the other runner has those while big runs
        assert order == [*(f"s{n}" for n in range(6)), "big", *(f"s{n}" for n in range(6, 10))]


def _backdate(db: Path, name: str, seconds: float) -> None:
    with sqlite3.connect(db) as conn:
        changed = conn.execute(
            "UPDATE queue_messages SET sent_at = sent_at - ? WHERE json_extract(body, '$.n') = ?",
            (seconds, name),
        ).rowcount
    assert changed == 1


def test_no_job_is_passed_over_by_one_sent_more_than_the_window_after_it(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    with SqliteJobQueue(db, runs_at_once=2) as queue:
        # sent together, the costly one goes first
        _send(queue, ("small", 1), ("costly", 100))
        assert _order(queue) == ["costly", "small"]

        # the small one has waited longer than the window: it is not passed over
        _send(queue, ("small", 1), ("costly", 100))
        _backdate(db, "small", BATCH_WINDOW_S + 0.5)
        assert _order(queue) == ["small", "costly"]


def test_a_retried_job_keeps_its_place_as_the_oldest(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    with SqliteJobQueue(db, runs_at_once=2) as queue:
        _send(queue, ("retried", 1))
        [first] = queue.receive(1, 30)
        queue.release(first, 0)  # failed: visible again at once
        _backdate(db, "retried", BATCH_WINDOW_S + 0.5)  # it was sent a while ago
        _send(queue, ("new", 100))
        assert _order(queue) == ["retried", "new"]


def test_only_the_first_batch_max_messages_are_weighed(tmp_path: Path) -> None:
    # So that a receive stays cheap under a backlog of thousands: a costly job past the first
    # BATCH_MAX waits its turn until it is among them.
    with SqliteJobQueue(tmp_path / "q.db", runs_at_once=2) as queue:
        _send(queue, *((f"s{n}", 1) for n in range(BATCH_MAX)), ("big", 10**9))
        [first] = queue.receive(1, 30)
        assert first.body["n"] == "s0"
        queue.ack(first)
        [second] = queue.receive(1, 30)  # now within the first BATCH_MAX, and due at once
        assert second.body["n"] == "big"


# The table as it was before `cost`: today's schema without that column, and a message in it.
COST_COLUMN = ",\n    cost          INTEGER NOT NULL DEFAULT 0\n"
OLD_SCHEMA = sqlite_queue._SCHEMA.replace(COST_COLUMN, "\n") + (
    "INSERT INTO queue_messages (queue, message_id, body, sent_at, visible_at)"
    " VALUES ('jobs', 'm1', '{\"n\": \"queued before\"}', 0, 0);"
)


def test_a_data_folder_from_before_costs_gets_the_column(tmp_path: Path) -> None:
    assert COST_COLUMN in sqlite_queue._SCHEMA
    db = tmp_path / "q.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(OLD_SCHEMA)
        assert "cost" not in [row[1] for row in conn.execute("PRAGMA table_info(queue_messages)")]
    with SqliteJobQueue(db, runs_at_once=2) as queue:
        _send(queue, ("new", 10))
        assert _order(queue) == ["queued before", "new"]  # sent long before: no batch
    with sqlite3.connect(db) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(queue_messages)")]
    assert columns[-1] == "cost"
    with SqliteJobQueue(db, runs_at_once=2):  # opened again: added once only
        pass


def test_uploads_and_rerenders_are_queued_with_the_original_s_size(settings: Settings) -> None:
    with local_app_with(settings, server={"workers": 2}) as app:
        assert app.queue.runs_at_once == 2
        sizes = {"a.jpg": 2000, "b.jpg": 2000, "c.jpg": 2000, "big.jpg": 5000}
        keys = {
            app.service.ingest.upload(name, b"\xff\xd8" + bytes(size - 2), "image/jpeg").key: name
            for name, size in sizes.items()
        }
        order = []
        while messages := app.queue.receive(1, 30):
            order.append(keys[messages[0].body["key"]])
            app.queue.ack(messages[0])
        assert order == ["a.jpg", "big.jpg", "b.jpg", "c.jpg"]

        with sqlite3.connect(app.queue.db_path) as conn:
            big = next(key for key, name in keys.items() if name == "big.jpg")
            record = app.records.get(image_id_for(big))
            assert record is not None
            app.service.rerendering.queue(record)
            [[cost]] = conn.execute("SELECT cost FROM queue_messages").fetchall()
        assert cost == 5000 == record.file_size
