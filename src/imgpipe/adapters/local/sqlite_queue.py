"""The local job queue: SQS-like leases, receive counts and dead letters, durable in SQLite.

A message is *visible* when it is live and its `visible_at` has passed; `receive` leases it
(it becomes *in flight* until `visible_at = now + visibility_s`) with a fresh receipt, so an
`ack` or `release` holding a stale receipt does nothing. A message already received
`max_receives` times is moved to the dead letters instead of being received again; `redrive`
moves them back. Several queues (by `name`) may share one database file with the metadata store.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
import uuid
from collections.abc import Mapping
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
    dead_at       REAL
);
CREATE INDEX IF NOT EXISTS queue_messages_visible
    ON queue_messages (queue, dead, visible_at, seq);
CREATE UNIQUE INDEX IF NOT EXISTS queue_messages_dedup
    ON queue_messages (queue, dedup_id) WHERE dedup_id IS NOT NULL AND dead = 0;
"""


def _message(row: sqlite3.Row | tuple[Any, ...]) -> Message:
    message_id, body, receive_count, receipt = row
    return Message(
        body=json.loads(body),
        receipt=receipt or "",
        receive_count=receive_count,
        message_id=message_id,
    )


class SqliteJobQueue(SqliteTables):
    """JobQueue over SQLite: at-least-once, leases, dead letters after `max_receives`."""

    def __init__(
        self,
        db_path: Path,
        max_receives: int = 5,
        name: str = "jobs",
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        if max_receives < 1:
            raise ValueError("max_receives must be at least 1")
        self.name = name
        self.max_receives = max_receives
        super().__init__(db_path, _SCHEMA, busy_timeout_s)

    def send(self, body: Mapping[str, Any], dedup_id: str | None = None) -> None:
        """Enqueue; skipped while a message with the same `dedup_id` is waiting or in flight."""
        now = time.time()
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO queue_messages"
                " (queue, message_id, body, dedup_id, sent_at, visible_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (self.name, uuid.uuid4().hex, json.dumps(dict(body)), dedup_id, now, now),
            )

    def recover_in_flight(self) -> int:
        """Make every leased message visible now: for a sole consumer restarting after a crash,
        whose leases can only belong to its dead predecessor. Receive counts are kept."""
        with self._db.write() as conn:
            cursor = conn.execute(
                "UPDATE queue_messages SET visible_at = ?, receipt = NULL, leased = 0"
                " WHERE queue = ? AND dead = 0 AND leased = 1 AND visible_at > ?",
                (time.time(), self.name, time.time()),
            )
            return cursor.rowcount

    def receive(self, max_messages: int, visibility_s: float) -> list[Message]:
        """Lease up to `max_messages` visible messages, oldest first."""
        if max_messages < 1:
            raise InvalidRequestError("max_messages must be at least 1")
        received: list[Message] = []
        with self._db.write() as conn:
            now = time.time()
            while len(received) < max_messages:
                rows = conn.execute(
                    "SELECT seq, message_id, body, receive_count FROM queue_messages"
                    " WHERE queue = ? AND dead = 0 AND visible_at <= ? ORDER BY seq LIMIT ?",
                    (self.name, now, max_messages - len(received)),
                ).fetchall()
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
