"""The local metadata store: image records in SQLite (WAL), written with compare-and-set.

Safe for many threads (one connection per thread) and several processes (WAL, busy timeout,
`BEGIN IMMEDIATE` for writes). `SqliteConnections` is shared with the SQLite job queue, which
may keep its tables in the same database file.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from imgpipe.core import similarity
from imgpipe.core.errors import InvalidRequestError, StoreUnavailableError
from imgpipe.core.model import ImageRecord, RecordPage, Status
from imgpipe.core.similarity import PhashHit

T = TypeVar("T")

BUSY_TIMEOUT_S = 10.0
# SQLite's primary result codes after which a connection is opened anew: SQLITE_READONLY and
# SQLITE_CANTOPEN (the extended codes carry them in their low byte).
_REOPEN_AFTER = frozenset({8, 14})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS image_records (
    image_id    TEXT PRIMARY KEY,
    key         TEXT NOT NULL,
    status      TEXT NOT NULL,
    uploaded_at TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    item        TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS image_records_by_status
    ON image_records (status, uploaded_at DESC, image_id DESC);
CREATE INDEX IF NOT EXISTS image_records_by_time
    ON image_records (uploaded_at DESC, image_id DESC);
"""

# Near-duplicates (core.similarity): expression indexes over the record's JSON, so SQLite
# keeps them in step with every put and delete (in the same transaction, like a GSI), and a
# database made before them is indexed when it is opened. Queries must spell the expressions
# exactly so for the planner to use the indexes (a test checks the query plan).
SHA256_EXPR = "json_extract(item, '$.sha256')"


def band_expr(band: int) -> str:
    start = band * similarity.BAND_HEX + 1
    return f"lower(substr(json_extract(item, '$.phash'), {start}, {similarity.BAND_HEX}))"


# Only constants go into these statements (ruff's S608 cannot tell); values are parameters.
_BY_SHA256_SQL = (
    f"SELECT image_id FROM image_records WHERE {SHA256_EXPR} = ?"  # noqa: S608
    " ORDER BY uploaded_at, image_id LIMIT ?"
)


def _by_band_sql(band: int, values: int) -> str:
    marks = ", ".join("?" * values)
    return (
        "SELECT image_id, json_extract(item, '$.phash') FROM image_records"  # noqa: S608
        f" WHERE {band_expr(band)} IN ({marks}) LIMIT ?"
    )


_SIMILARITY_SCHEMA = "".join(
    [
        "CREATE INDEX IF NOT EXISTS image_records_by_sha256"
        f" ON image_records ({SHA256_EXPR}, uploaded_at, image_id);\n",
        *(
            f"CREATE INDEX IF NOT EXISTS image_records_by_phash_band{band}"
            f" ON image_records ({band_expr(band)});\n"
            for band in range(similarity.BANDS)
        ),
    ]
)


class SqliteConnections:
    """One SQLite connection per thread to one database file, all closed by `close()`."""

    def __init__(self, db_path: Path, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._closed = False

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and not self._closed:
            return conn
        with self._lock:
            if self._closed:
                raise StoreUnavailableError(f"{self.db_path} is closed")
            conn = sqlite3.connect(
                self.db_path,
                timeout=self._busy_timeout_s,
                isolation_level=None,  # autocommit; transactions are explicit
                check_same_thread=False,  # only its own thread uses it; close() may be elsewhere
            )
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable across kill -9
            except sqlite3.Error as exc:
                conn.close()
                raise StoreUnavailableError(f"cannot open {self.db_path}: {exc}") from exc
            # Connections of threads that have ended are closed here, so pools that churn
            # threads do not pile up open files.
            alive = []
            for thread, other in self._all:
                if thread.is_alive():
                    alive.append((thread, other))
                else:
                    other.close()
            alive.append((threading.current_thread(), conn))
            self._all = alive
        self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, taken at once (`BEGIN IMMEDIATE`), so it never has to upgrade."""
        conn = self.connection()
        with self._translated():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._translated():
            return fn(self.connection())

    def executescript(self, script: str) -> None:
        with self._translated():
            self.connection().executescript(script)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """SQLite's busy and I/O errors become StoreUnavailableError (transient: retry later).
        After a read-only or cannot-open error the thread's connection is dropped: a connection
        opened while the files were read-only (made immutable, say) keeps failing "attempt to
        write a readonly database" after they are writable again; a new one does not. (One
        opened before only sees I/O errors meanwhile, and recovers by itself.)"""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _REOPEN_AFTER:
                self._drop_connection()
            raise StoreUnavailableError(f"{self.db_path}: {exc}") from exc

    def _drop_connection(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._lock:
            self._all = [(t, c) for t, c in self._all if c is not conn]
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for _, conn in self._all:
                conn.close()
            self._all = []


def encode_cursor(uploaded_at: str, image_id: str) -> str:
    raw = json.dumps([uploaded_at, image_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (uploadedAt, imageId) of a cursor; InvalidRequestError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequestError("invalid cursor") from exc
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(part, str) for part in value)
    ):
        raise InvalidRequestError("invalid cursor")
    return value[0], value[1]


def _record(item: str) -> ImageRecord:
    return ImageRecord.model_validate(json.loads(item))


class SqliteTables:
    """Tables of one database file, created on open; closes its connections on close()."""

    def __init__(self, db_path: Path, schema: str, busy_timeout_s: float) -> None:
        self._db = SqliteConnections(db_path, busy_timeout_s)
        try:
            self._db.executescript(schema)
        except BaseException:
            self._db.close()
            raise

    @property
    def db_path(self) -> Path:
        return self._db.db_path

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SqliteMetadataStore(SqliteTables):
    """MetadataStore over SQLite; `put` is a compare-and-set on `revision`."""

    def __init__(self, db_path: Path, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        super().__init__(db_path, _SCHEMA + _SIMILARITY_SCHEMA, busy_timeout_s)

    def get(self, image_id: str) -> ImageRecord | None:
        row = self._db.read(
            lambda c: c.execute(
                "SELECT item FROM image_records WHERE image_id = ?", (image_id,)
            ).fetchone()
        )
        return None if row is None else _record(row[0])

    def stamp(self, image_id: str) -> tuple[int, str] | None:
        row = self._db.read(
            lambda c: c.execute(
                "SELECT revision, uploaded_at FROM image_records WHERE image_id = ?", (image_id,)
            ).fetchone()
        )
        return None if row is None else (int(row[0]), str(row[1]))

    def put(self, record: ImageRecord, expected_revision: int | None) -> ImageRecord | None:
        written = record.model_copy(update={"revision": (expected_revision or 0) + 1})
        values: dict[str, Any] = {
            "image_id": written.image_id,
            "key": written.key,
            "status": str(written.status),
            "uploaded_at": written.uploaded_at,
            "revision": written.revision,
            "item": json.dumps(written.to_item(), separators=(",", ":")),
            "expected": expected_revision,
        }
        with self._db.write() as conn:
            if expected_revision is None:
                cur = conn.execute(
                    "INSERT INTO image_records (image_id, key, status, uploaded_at, revision, item)"
                    " VALUES (:image_id, :key, :status, :uploaded_at, :revision, :item)"
                    " ON CONFLICT (image_id) DO NOTHING",
                    values,
                )
            else:
                cur = conn.execute(
                    "UPDATE image_records SET key = :key, status = :status,"
                    " uploaded_at = :uploaded_at, revision = :revision, item = :item"
                    " WHERE image_id = :image_id AND revision = :expected",
                    values,
                )
            return written if cur.rowcount == 1 else None

    def delete(self, image_id: str) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM image_records WHERE image_id = ?", (image_id,))

    def list(self, status: Status | None, limit: int, cursor: str | None) -> RecordPage:
        """Newest `uploadedAt` first, ties by `imageId` (descending); keyset pagination."""
        if limit < 1:
            raise InvalidRequestError("limit must be at least 1")
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(str(status))
        if cursor is not None:
            uploaded_at, image_id = decode_cursor(cursor)
            where.append("(uploaded_at, image_id) < (?, ?)")
            params.extend((uploaded_at, image_id))
        sql = "SELECT item FROM image_records"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY uploaded_at DESC, image_id DESC LIMIT ?"
        params.append(limit + 1)
        rows = self._db.read(lambda c: c.execute(sql, params).fetchall())
        items = [_record(row[0]) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = encode_cursor(last.uploaded_at, last.image_id)
        return RecordPage(items=items, next_cursor=next_cursor)

    def with_sha256(self, sha256: str, limit: int) -> builtins.list[str]:
        rows = self._db.read(lambda c: c.execute(_BY_SHA256_SQL, (sha256, limit)).fetchall())
        return [row[0] for row in rows]

    def near_phash(self, phash: str, max_distance: int, limit: int) -> builtins.list[PhashHit]:
        by_band: dict[int, list[str]] = {}
        for band, value in similarity.probes(phash, max_distance):
            by_band.setdefault(band, []).append(value)

        def lookup(conn: sqlite3.Connection) -> dict[str, str]:
            found: dict[str, str] = {}
            for band, values in by_band.items():
                sql = _by_band_sql(band, len(values))
                cap = similarity.CANDIDATES_PER_LOOKUP * len(values)
                found.update(conn.execute(sql, (*values, cap)).fetchall())
            return found

        return similarity.nearest(self._db.read(lookup), phash, max_distance, limit)

    def count_by_status(self) -> dict[Status, int]:
        rows = self._db.read(
            lambda c: c.execute(
                "SELECT status, COUNT(*) FROM image_records GROUP BY status"
            ).fetchall()
        )
        counts = dict.fromkeys(Status, 0)
        for status, count in rows:
            counts[Status(status)] = count
        return counts
