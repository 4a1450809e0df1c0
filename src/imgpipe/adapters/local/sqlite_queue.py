"""The local job queue: SQS-like leases, receive counts and dead letters, durable in SQLite.

A message is *visible* when it is live and its `visible_at` has passed; `receive` leases it
(it becomes *in flight* until `visible_at = now + visibility_s`) with a fresh receipt, so an
`ack` or `release` holding a stale receipt does nothing. A message already received
`max_receives` times is moved to the dead letters instead of being received again; `redrive`
moves them back. Several queues (by `name`) may share one database file with the metadata store.

The order of work: oldest first, except that a batch does not end with its costliest job
running alone (`_next`). SQS keeps no order at all.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
import uuid
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from imgpipe.adapters.local.sqlite_store import BUSY_TIMEOUT_S, SqliteTables
from imgpipe.core.errors import InvalidRequestError
from imgpipe.core.ports import Message, QueueStats

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_messages (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT NOT NULL,
    message_id    TEXT NOT NULL UNIQUE,
    body          TEXT NOT NULL,
    dedup_id      TEXT,
    sent_at       REAL NOT NULL,
    visible_at    REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT,
    leased        INTEGER NOT NULL DEFAULT 0,
    dead          INTEGER NOT NULL DEFAULT 0,
    dead_at       REAL,
    cost          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS queue_messages_visible
    ON queue_messages (queue, dead, visible_at, seq);
CREATE UNIQUE INDEX IF NOT EXISTS queue_messages_dedup
    ON queue_messages (queue, dedup_id) WHERE dedup_id IS NOT NULL AND dead = 0;
"""


# Messages sent within this many seconds of the oldest waiting one are a batch, whose costliest
# job may be handed out before older ones (`_next`); and at most this many are weighed, so a
# receive stays a fraction of a millisecond however long the backlog (commit 65e438d
# gives the figures; SQLite sorts the visible rows either way).
BATCH_WINDOW_S = 1.0
BATCH_MAX = 256


def _message(row: sqlite3.Row | tuple[Any, ...]) -> Message:
    message_id, body, receive_count, receipt = row
    return Message(
        body=json.loads(body),
        receipt=receipt or "",
        receive_count=receive_count,
        message_id=message_id,
    )


class SqliteJobQueue(SqliteTables):
    """JobQueue over SQLite: at-least-once, leases, dead letters after `max_receives`.

    `runs_at_once` is how many received jobs run at the same time (serve's rendering
    processes); it decides when a batch's costliest job must start (`_next`)."""

    def __init__(
        self,
        db_path: Path,
        max_receives: int = 5,
        name: str = "jobs",
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        runs_at_once: int = 1,
    ) -> None:
        if max_receives < 1:
            raise ValueError("max_receives must be at least 1")
        self.name = name
        self.max_receives = max_receives
        self.runs_at_once = runs_at_once
        super().__init__(db_path, _SCHEMA, busy_timeout_s)
        self._add_cost_column()

    def _add_cost_column(self) -> None:
        """A data folder made before `cost` existed gets the column (0 for what is queued)."""
        with self._db.write() as conn:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(queue_messages)")}
            if "cost" not in columns:
                conn.execute(
                    "ALTER TABLE queue_messages ADD COLUMN cost INTEGER NOT NULL DEFAULT 0"
                )

    def send(self, body: Mapping[str, Any], dedup_id: str | None = None, cost: int = 0) -> None:
        """Enqueue; skipped while a message with the same `dedup_id` is waiting or in flight."""
        now = time.time()
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO queue_messages"
                " (queue, message_id, body, dedup_id, sent_at, visible_at, cost)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    self.name,
                    uuid.uuid4().hex,
                    json.dumps(dict(body)),
                    dedup_id,
                    now,
                    now,
                    max(0, int(cost)),
                ),
            )

    def recover_in_flight(self, keep: Collection[str] = ()) -> int:
        """Make every leased message visible now, but those whose ids are in `keep`: for a
        sole consumer restarting after a crash (whose leases can only belong to its dead
        predecessor), or whose threads lost track of their jobs while the database did not
        answer (`keep`: the jobs its threads still run). Receive counts are kept."""
        with self._db.write() as conn:
            cursor = conn.execute(
                "UPDATE queue_messages SET visible_at = ?, receipt = NULL, leased = 0"
                " WHERE queue = ? AND dead = 0 AND leased = 1 AND visible_at > ?"
                " AND message_id NOT IN (SELECT value FROM json_each(?))",
                (time.time(), self.name, time.time(), json.dumps(list(keep))),
            )
            return cursor.rowcount

    def receive(self, max_messages: int, visibility_s: float) -> list[Message]:
        """Lease up to `max_messages` visible messages, in `_next`'s order."""
        if max_messages < 1:
            raise InvalidRequestError("max_messages must be at least 1")
        received: list[Message] = []
        with self._db.write() as conn:
            now = time.time()
            while len(received) < max_messages:
                rows = self._next(conn, now, max_messages - len(received))
                if not rows:
                    break
                for seq, message_id, body, receive_count in rows:
                    if receive_count >= self.max_receives:
                        conn.execute(
                            "UPDATE queue_messages SET dead = 1, dead_at = ?, leased = 0,"
                            " receipt = NULL WHERE seq = ?",
                            (now, seq),
                        )
                        continue
                    receipt = f"{message_id}.{secrets.token_urlsafe(12)}"
                    conn.execute(
                        "UPDATE queue_messages SET receive_count = receive_count + 1,"
                        " visible_at = ?, receipt = ?, leased = 1 WHERE seq = ?",
                        (now + visibility_s, receipt, seq),
                    )
                    received.append(_message((message_id, body, receive_count + 1, receipt)))
        return received

    def _next(
        self, conn: sqlite3.Connection, now: float, limit: int
    ) -> list[tuple[int, str, str, int]]:
        """The next visible messages: oldest first, except a batch's costliest job.

        A batch is what was sent within BATCH_WINDOW_S of the oldest visible message. Its
        costliest job (by `cost`, the original's bytes: a proxy for its time) goes first once
        the rest of the batch, shared among the other `runs_at_once - 1` runners, is no more
        than it. Started later, it would end the batch running alone while the other runners
        have nothing left to do; started then, they have the rest to do meanwhile. Until then
        the order is oldest first, so most of a batch waits no longer for it. No job is passed
        over by one sent more than BATCH_WINDOW_S after it, and with one runner the order is
        plain oldest first.
        """
        if self.runs_at_once > 1:
            batch = conn.execute(
                "SELECT seq, sent_at, cost FROM queue_messages"
                " WHERE queue = ? AND dead = 0 AND visible_at <= ? ORDER BY seq LIMIT ?",
                (self.name, now, BATCH_MAX),
            ).fetchall()
            if batch:
                window = min(sent_at for _, sent_at, _ in batch) + BATCH_WINDOW_S
                costs = [(cost, seq) for seq, sent_at, cost in batch if sent_at <= window]
                cost, seq = max(costs, key=lambda row: row[0])  # the oldest of equals
                rest = sum(other for other, _ in costs) - cost
                if cost > 0 and cost * (self.runs_at_once - 1) >= rest:
                    return conn.execute(
                        "SELECT seq, message_id, body, receive_count FROM queue_messages"
                        " WHERE seq = ?",
                        (seq,),
                    ).fetchall()
        return conn.execute(
            "SELECT seq, message_id, body, receive_count FROM queue_messages"
            " WHERE queue = ? AND dead = 0 AND visible_at <= ? ORDER BY seq LIMIT ?",
            (self.name, now, limit),
        ).fetchall()

    def ack(self, message: Message) -> None:
        """Delete the message, if `message.receipt` is still its current receipt."""
        with self._db.write() as conn:
            conn.execute(
                "DELETE FROM queue_messages WHERE queue = ? AND message_id = ? AND receipt = ?",
                (self.name, message.message_id, message.receipt),
            )

    def release(self, message: Message, delay_s: float) -> None:
        """Make the message visible again after `delay_s`, if the receipt is still current."""
        with self._db.write() as conn:
            conn.execute(
                "UPDATE queue_messages SET visible_at = ?, leased = 0"
                " WHERE queue = ? AND message_id = ? AND receipt = ? AND dead = 0",
                (time.time() + max(delay_s, 0.0), self.name, message.message_id, message.receipt),
            )

    def wake_waiting(self, key: str, except_id: str = "") -> int:
        """Make the delayed jobs of `key` (but `except_id`) visible now: a job that found the
        image busy was put off until the holder's lease would lapse, and the holder has just
        finished. Returns how many were woken."""
        now = time.time()
        with self._db.write() as conn:
            return conn.execute(
                "UPDATE queue_messages SET visible_at = ? WHERE queue = ? AND dead = 0"
                " AND leased = 0 AND visible_at > ? AND message_id != ?"
                " AND json_extract(body, '$.key') = ?",
                (now, self.name, now, except_id, key),
            ).rowcount

    def stats(self) -> QueueStats:
        now = time.time()
        visible, in_flight, delayed, dead, oldest = self._db.read(
            lambda c: c.execute(
                "SELECT"
                " COALESCE(SUM(dead = 0 AND visible_at <= :now), 0),"
                " COALESCE(SUM(dead = 0 AND visible_at > :now AND leased = 1), 0),"
                " COALESCE(SUM(dead = 0 AND visible_at > :now AND leased = 0), 0),"
                " COALESCE(SUM(dead = 1), 0),"
                " MIN(CASE WHEN dead = 0 THEN sent_at END)"
                " FROM queue_messages WHERE queue = :queue",
                {"now": now, "queue": self.name},
            ).fetchone()
        )
        return QueueStats(
            visible=visible,
            in_flight=in_flight,
            dead=dead,
            oldest_age_s=max(0.0, now - oldest) if oldest is not None else 0.0,
            extra={"delayed": delayed},
        )

    def redrive(self) -> int:
        """Move every dead letter back, receive count reset. A dead letter whose `dedup_id` is
        live again (or dead more than once) is merged into that one; it counts as moved."""
        now = time.time()
        with self._db.write() as conn:
            merged = conn.execute(
                "DELETE FROM queue_messages AS m WHERE queue = :queue AND dead = 1"
                " AND dedup_id IS NOT NULL AND EXISTS (SELECT 1 FROM queue_messages AS o"
                "  WHERE o.queue = m.queue AND o.dedup_id = m.dedup_id"
                "  AND (o.dead = 0 OR o.seq > m.seq))",
                {"queue": self.name},
            ).rowcount
            moved = conn.execute(
                "UPDATE queue_messages SET dead = 0, dead_at = NULL, receive_count = 0,"
                " visible_at = :now, receipt = NULL, leased = 0"
                " WHERE queue = :queue AND dead = 1",
                {"queue": self.name, "now": now},
            ).rowcount
        return merged + moved

    def dead_letters(self, limit: int = 100) -> list[Message]:
        """The dead letters, oldest death first, for inspection (their receipt is empty)."""
        rows = self._db.read(
            lambda c: c.execute(
                "SELECT message_id, body, receive_count, receipt FROM queue_messages"
                " WHERE queue = ? AND dead = 1 ORDER BY dead_at, seq LIMIT ?",
                (self.name, limit),
            ).fetchall()
        )
        return [_message(row) for row in rows]
