"""The webhook outbox: the deliveries still to make, and the dead letters, durable in SQLite.

One row per (event, webhook), in the database file the records and jobs live in, so a row
survives a restart. A sender claims a due row with a lease (one request in flight per
webhook); a lease held by a crashed server lapses, or is given back at once by
`recover_leases` when this server is the data folder's only one. After the last attempt a row
stays as a dead letter (status `dead`, its attempts and last error) until `redrive`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from imgpipe.adapters.local.sqlite_store import BUSY_TIMEOUT_S, SqliteTables

PENDING: Final = "pending"
DEAD: Final = "dead"
MAX_ERROR_CHARS: Final = 500

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
