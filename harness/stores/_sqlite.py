"""The SQLite backend, the default: one file under the run's folder, stdlib ``sqlite3``, no server.

Durability. The database runs in WAL mode with ``synchronous=NORMAL``. A commit appends the
transaction's pages to the ``-wal`` file with ``write()`` before ``COMMIT`` returns; the kernel owns
those bytes from then on, so a process killed with SIGKILL one instruction later loses nothing, and
the next opener replays the WAL. What NORMAL gives up is an ``fsync`` per commit, i.e. the last
transactions before a power cut or kernel crash (never the database's integrity). Pass
``synchronous="FULL"`` where that matters too; the crash test kills processes, not machines.

Concurrency. Each thread gets its own connection (WAL lets readers run alongside the one writer).
Every write runs in ``BEGIN IMMEDIATE``, which takes the write lock up front and waits for it through
the busy timeout, so a write never fails half-way with a stale snapshot. A claim is one conditional
upsert (``INSERT ... ON CONFLICT DO UPDATE ... WHERE``) and every later step an ``UPDATE ... WHERE
fence = ?``: the database decides who owns a key, never a read in Python followed by a write.

Schema. ``PRAGMA user_version`` holds the schema version; :data:`_MIGRATIONS` maps each version to
the statements that reach it from the one before, applied in one transaction when a file is opened,
so a future change is a new entry there. A file from a newer version is refused, not guessed at.

Why not an ORM: three tables and a dozen statements, each of which has to be exactly this SQL for
its atomicity; a mapping layer would hide the very conditions the store's correctness rests on.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from harness.stores._backend import NewDeadLetter, dead_letter_id, take
from harness.stores._errors import SchemaVersionError, StoreError
from harness.stores._model import (
    DeadLetter,
    DeadLetterFilter,
    DeadLetterStatus,
    DeadLetterUpdate,
    ErrorInfo,
    IdempotencyRecord,
    IdempotencyStats,
    RecordState,
)

__all__ = ["SCHEMA_VERSION", "SQLiteBackend"]

SCHEMA_VERSION = 1
STORE_FILE_NAME = "stores.sqlite3"

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE idempotency (
            key TEXT PRIMARY KEY NOT NULL,
            fingerprint TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('in_progress', 'completed', 'failed')),
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            fence INTEGER NOT NULL,
            lease_until REAL,
            response TEXT,
            error TEXT
        )""",
        "CREATE INDEX idempotency_expires_at ON idempotency (expires_at)",
        "CREATE TABLE counters (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL)",
        "INSERT INTO counters (name, value) VALUES ('fence', 0)",
        """CREATE TABLE dead_letters (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            operation_id TEXT NOT NULL,
            operation TEXT NOT NULL,
            provider TEXT NOT NULL,
            payload TEXT NOT NULL,
            error_class TEXT NOT NULL,
            error_message TEXT NOT NULL,
            error_status INTEGER,
            attempts INTEGER NOT NULL,
            first_attempt_at REAL NOT NULL,
            last_attempt_at REAL NOT NULL,
            tags TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('failed', 'reviewing', 'requeued', 'discarded', 'resolved')),
            parked_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            resolved_at REAL,
            lease_until REAL,
            fence INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX dead_letters_status ON dead_letters (status, provider, operation)",
        "CREATE INDEX dead_letters_last_attempt ON dead_letters (last_attempt_at)",
    ),
}

# A record counts as absent once expired, unless an owner still holds a live lease on it.
_EXPIRED = (
    "(idempotency.expires_at <= :now"
    " AND (idempotency.state != 'in_progress' OR idempotency.lease_until <= :now))"
)

_CLAIM = f"""
INSERT INTO idempotency (key, fingerprint, state, created_at, expires_at, fence, lease_until, response, error)
VALUES (:key, :fingerprint, 'in_progress', :now, :expires_at, :fence, :lease_until, NULL, NULL)
ON CONFLICT (key) DO UPDATE SET
    fingerprint = CASE WHEN {_EXPIRED} THEN excluded.fingerprint ELSE idempotency.fingerprint END,
    created_at = CASE WHEN {_EXPIRED} THEN excluded.created_at ELSE idempotency.created_at END,
    expires_at = CASE WHEN {_EXPIRED} THEN excluded.expires_at ELSE idempotency.expires_at END,
    state = 'in_progress',
    response = NULL,
    error = NULL,
    fence = excluded.fence,
    lease_until = excluded.lease_until
WHERE {_EXPIRED}
    OR (idempotency.state = 'in_progress' AND idempotency.lease_until <= :now
        AND idempotency.fingerprint = excluded.fingerprint)
"""

_STATS = f"""
WITH r AS (SELECT idempotency.*, {_EXPIRED} AS expired FROM idempotency)
SELECT
    COALESCE(SUM(NOT expired), 0) AS total,
    COALESCE(SUM(NOT expired AND state = 'in_progress'), 0) AS in_progress,
    COALESCE(SUM(NOT expired AND state = 'completed'), 0) AS completed,
    COALESCE(SUM(NOT expired AND state = 'failed'), 0) AS failed,
    COALESCE(SUM(NOT expired AND expires_at > :now AND expires_at <= :soon_until), 0) AS expiring_soon,
    COALESCE(SUM(expired), 0) AS expired,
    COALESCE(SUM(NOT expired AND state = 'in_progress' AND lease_until <= :now), 0) AS abandoned
FROM r
"""


def _float(value: Any) -> float | None:
    # SQLite may hand an integral REAL back as an int (notably from RETURNING); times are floats.
    return None if value is None else float(value)


def _record(row: sqlite3.Row) -> IdempotencyRecord:
    return IdempotencyRecord(
        key=row["key"],
        fingerprint=row["fingerprint"],
        state=RecordState(row["state"]),
        created_at=float(row["created_at"]),
        expires_at=float(row["expires_at"]),
        fence=row["fence"],
        lease_until=_float(row["lease_until"]),
        response_json=row["response"],
        error=None if row["error"] is None else ErrorInfo.from_json(json.loads(row["error"])),
    )


def _entry(row: sqlite3.Row) -> DeadLetter:
    return DeadLetter(
        id=dead_letter_id(row["seq"]),
        seq=row["seq"],
        operation_id=row["operation_id"],
        operation=row["operation"],
        provider=row["provider"],
        payload_json=row["payload"],
        error=ErrorInfo(
            error_class=row["error_class"], message=row["error_message"], status=row["error_status"]
        ),
        attempts=row["attempts"],
        first_attempt_at=float(row["first_attempt_at"]),
        last_attempt_at=float(row["last_attempt_at"]),
        tags=MappingProxyType(json.loads(row["tags"])),
        status=DeadLetterStatus(row["status"]),
        parked_at=float(row["parked_at"]),
        updated_at=float(row["updated_at"]),
        resolved_at=_float(row["resolved_at"]),
        lease_until=_float(row["lease_until"]),
        fence=row["fence"],
    )


def _seq_of(entry_id: str) -> int | None:
    prefix, _, number = entry_id.partition("-")
    if prefix != "dlq" or not number.isdigit():
        return None
    return int(number)


def _placeholders(values: frozenset[DeadLetterStatus], prefix: str, params: dict[str, Any]) -> str:
    names = []
    for i, status in enumerate(sorted(values)):
        params[f"{prefix}{i}"] = str(status)
        names.append(f":{prefix}{i}")
    return ", ".join(names) or "NULL"


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the base class cannot)."""


class SQLiteBackend:
    """Both stores in one SQLite file. Safe to share between threads and between processes."""

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout: float = 30.0,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
        if busy_timeout <= 0:
            raise ValueError(f"busy_timeout must be > 0 seconds, got {busy_timeout!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self._pid = os.getpid()
        self._local = threading.local()
        # Weak: a thread's connection closes when the thread ends (its thread-local goes away).
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._connections_lock = threading.Lock()
        self._closed = False
        self._migrate()

    @classmethod
    def in_folder(cls, folder: Path | str, **options: Any) -> SQLiteBackend:
        """The run's store: ``<folder>/stores.sqlite3``."""
        return cls(Path(folder) / STORE_FILE_NAME, **options)

    def __repr__(self) -> str:
        return f"SQLiteBackend({str(self.path)!r}, synchronous={self.synchronous!r})"

    # -- connections ----------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"{self!r} is closed")
        if os.getpid() != self._pid:
            # SQLite forbids carrying a connection across fork(); a child must open its own backend.
            raise StoreError(f"{self!r} was opened in process {self._pid}; open a new one in this process")
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                str(self.path),
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                factory=_Connection,
            )
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            self._local.db = db
            with self._connections_lock:
                self._connections.add(db)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
            self._closed = True
        if os.getpid() != self._pid:
            return
        for db in connections:
            db.close()

    def _migrate(self) -> None:
        with self._write() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{self.path} has schema version {version}; this code knows up to {SCHEMA_VERSION}."
                    " Upgrade the harness, or point it at a new file"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {target}")

    def schema_version(self) -> int:
        return int(self._db().execute("PRAGMA user_version").fetchone()[0])

    def integrity_check(self) -> str:
        """SQLite's own full check; ``"ok"`` when the file is sound."""
        return "\n".join(str(row[0]) for row in self._db().execute("PRAGMA integrity_check").fetchall())

    # -- idempotency ----------------------------------------------------------------------------

    def idem_get(self, key: str) -> IdempotencyRecord | None:
        row = self._db().execute("SELECT * FROM idempotency WHERE key = ?", (key,)).fetchone()
        return None if row is None else _record(row)

    def idem_claim(
        self, *, key: str, fingerprint: str, now: float, lease_until: float, expires_at: float
    ) -> tuple[IdempotencyRecord, bool]:
        # Replays and conflicts are decided by a plain read, without taking the write lock: a record
        # that is live and whose lease (if any) is live cannot be taken by anyone in this call. Every
        # other case, including a fingerprint check on takeover, is decided by the upsert below.
        current = self.idem_get(key)
        if current is not None and not current.expired(now) and not current.lease_expired(now):
            return current, False
        with self._write() as db:
            # fetchall, not fetchone: a RETURNING statement must run to its end before COMMIT.
            (fence_row,) = db.execute(
                "UPDATE counters SET value = value + 1 WHERE name = 'fence' RETURNING value"
            ).fetchall()
            fence = int(fence_row[0])
            db.execute(
                _CLAIM,
                {
                    "key": key,
                    "fingerprint": fingerprint,
                    "now": now,
                    "expires_at": expires_at,
                    "lease_until": lease_until,
                    "fence": fence,
                },
            )
            (row,) = db.execute("SELECT * FROM idempotency WHERE key = ?", (key,)).fetchall()
        record = _record(row)
        return record, record.fence == fence

    def _owned_update(self, sql: str, params: tuple[Any, ...]) -> bool:
        with self._write() as db:
            return db.execute(sql, params).rowcount == 1

    def idem_complete(self, *, key: str, fence: int, response_json: str) -> bool:
        return self._owned_update(
            "UPDATE idempotency SET state = 'completed', response = ?, lease_until = NULL"
            " WHERE key = ? AND state = 'in_progress' AND fence = ?",
            (response_json, key, fence),
        )

    def idem_fail(self, *, key: str, fence: int, error: ErrorInfo) -> bool:
        return self._owned_update(
            "UPDATE idempotency SET state = 'failed', error = ?, lease_until = NULL"
            " WHERE key = ? AND state = 'in_progress' AND fence = ?",
            (json.dumps(error.to_json()), key, fence),
        )

    def idem_release(self, *, key: str, fence: int) -> bool:
        return self._owned_update(
            "DELETE FROM idempotency WHERE key = ? AND state = 'in_progress' AND fence = ?", (key, fence)
        )

    def idem_renew(self, *, key: str, fence: int, lease_until: float) -> bool:
        return self._owned_update(
            "UPDATE idempotency SET lease_until = ? WHERE key = ? AND state = 'in_progress' AND fence = ?",
            (lease_until, key, fence),
        )

    def idem_stats(self, *, now: float, soon_until: float) -> IdempotencyStats:
        row = self._db().execute(_STATS, {"now": now, "soon_until": soon_until}).fetchone()
        return IdempotencyStats(**{name: int(row[name]) for name in row.keys()})  # noqa: SIM118

    def idem_purge(self, *, now: float) -> int:
        with self._write() as db:
            return db.execute(f"DELETE FROM idempotency WHERE {_EXPIRED}", {"now": now}).rowcount

    # -- dead letters ---------------------------------------------------------------------------

    def dlq_add(self, entry: NewDeadLetter) -> DeadLetter:
        with self._write() as db:
            rows = db.execute(
                "INSERT INTO dead_letters (operation_id, operation, provider, payload, error_class,"
                " error_message, error_status, attempts, first_attempt_at, last_attempt_at, tags, status,"
                " parked_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'failed', ?, ?) RETURNING *",
                (
                    entry.operation_id,
                    entry.operation,
                    entry.provider,
                    entry.payload_json,
                    entry.error.error_class,
                    entry.error.message,
                    entry.error.status,
                    entry.attempts,
                    entry.first_attempt_at,
                    entry.last_attempt_at,
                    json.dumps(dict(entry.tags), sort_keys=True),
                    entry.parked_at,
                    entry.parked_at,
                ),
            ).fetchall()
        return _entry(rows[0])

    def dlq_get(self, entry_id: str) -> DeadLetter | None:
        seq = _seq_of(entry_id)
        if seq is None:
            return None
        row = self._db().execute("SELECT * FROM dead_letters WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else _entry(row)

    def dlq_list(self, flt: DeadLetterFilter) -> list[DeadLetter]:
        where: list[str] = []
        params: dict[str, Any] = {}
        if flt.statuses is not None:
            where.append(f"status IN ({_placeholders(flt.statuses, 's', params)})")
        for name in ("provider", "operation"):
            value = getattr(flt, name)
            if value is not None:
                where.append(f"{name} = :{name}")
                params[name] = value
        if flt.since is not None:
            where.append("last_attempt_at >= :since")
            params["since"] = flt.since
        if flt.until is not None:
            where.append("last_attempt_at < :until")
            params["until"] = flt.until
        if flt.min_attempts is not None:
            where.append("attempts >= :min_attempts")
            params["min_attempts"] = flt.min_attempts
        sql = "SELECT * FROM dead_letters"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        if flt.limit is not None and not flt.tags:
            sql += f" LIMIT {int(flt.limit)}"
        rows = self._db().execute(sql, params).fetchall()
        # Tags are a JSON column: the one condition checked in Python, by the shared predicate.
        return take(filter(flt.matches, map(_entry, rows)), flt.limit)

    def dlq_update(self, entry_id: str, update: DeadLetterUpdate) -> DeadLetter | None:
        seq = _seq_of(entry_id)
        if seq is None:
            return None
        params: dict[str, Any] = {
            "seq": seq,
            "status": str(update.status),
            "updated_at": update.updated_at,
            "lease_until": update.lease_until,
            "bump": 1 if update.bump_fence else 0,
            "delta": update.attempts_delta,
            "last_attempt_at": update.last_attempt_at,
            "has_error": update.error is not None,
            "error_class": None if update.error is None else update.error.error_class,
            "error_message": None if update.error is None else update.error.message,
            "error_status": None if update.error is None else update.error.status,
            "resolved_at": update.resolved_at,
            "stale_before": update.stale_before,
            "expect_fence": update.expect_fence,
        }
        expected = _placeholders(update.expect, "e", params)
        sql = f"""
            UPDATE dead_letters SET
                status = :status,
                updated_at = :updated_at,
                lease_until = :lease_until,
                fence = fence + :bump,
                attempts = attempts + :delta,
                last_attempt_at = COALESCE(:last_attempt_at, last_attempt_at),
                error_class = CASE WHEN :has_error THEN :error_class ELSE error_class END,
                error_message = CASE WHEN :has_error THEN :error_message ELSE error_message END,
                error_status = CASE WHEN :has_error THEN :error_status ELSE error_status END,
                resolved_at = COALESCE(:resolved_at, resolved_at)
            WHERE seq = :seq
                AND (status IN ({expected})
                     OR (:stale_before IS NOT NULL AND status = 'requeued' AND lease_until <= :stale_before))
                AND (:expect_fence IS NULL OR fence = :expect_fence)
            RETURNING *
        """
        with self._write() as db:
            rows = db.execute(sql, params).fetchall()
        return _entry(rows[0]) if rows else None

    def dlq_purge(self, *, statuses: frozenset[DeadLetterStatus], updated_before: float) -> int:
        params: dict[str, Any] = {"before": updated_before}
        sql = f"DELETE FROM dead_letters WHERE status IN ({_placeholders(statuses, 's', params)})"
        with self._write() as db:
            return db.execute(sql + " AND updated_at < :before", params).rowcount
