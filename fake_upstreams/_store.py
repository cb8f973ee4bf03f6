"""Ground truth on disk: the effects a fake applied, every request it received, idempotency records,
the fake's own resources, scheduled work (prompts that resolve later, callbacks to deliver) and the
log of every callback delivery attempt.

SQLite in WAL mode with ``synchronous=NORMAL``: a committed transaction survives the fake being killed
with SIGKILL (the WAL is in the OS page cache; only a power cut could lose it), which is what lets a
scenario kill and restart an upstream and still count its charges. An effect and the idempotency
record that remembers it are written in one transaction, so a crash can never leave an effect
without its record or the reverse. A job (say, "resolve this STK prompt") is finished in the same
transaction as the effect it applies, so a restarted fake resolves each prompt exactly once.

The request log is the one thing not written synchronously: rows are buffered and written in batches
(by the app's background flusher, when the buffer fills, and before every read), because one SQLite
transaction per request would cost a fake a large share of its throughput. A SIGKILL can lose the last
fraction of a second of *log* rows, never an effect.

The stdlib ``sqlite3`` module is used directly: one file, no server, and nothing an ORM would add
for a handful of tables.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fake_upstreams._clock import SystemUpstreamClock, UpstreamClock

__all__ = ["IdempotencyRecord", "Job", "UpstreamStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    t_mono REAL NOT NULL,
    t_wall REAL NOT NULL,
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    operation_id TEXT,
    idempotency_key TEXT,
    amount INTEGER,
    currency TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS effects_operation ON effects(operation_id);
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    t_mono REAL NOT NULL,
    t_wall REAL NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    duration REAL NOT NULL,
    idempotency_key TEXT,
    correlation_id TEXT,
    replayed INTEGER NOT NULL DEFAULT 0,
    fault TEXT
);
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    status INTEGER,
    headers TEXT,
    body BLOB,
    created_wall REAL NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    due REAL NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs(state, due);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    t_mono REAL NOT NULL,
    t_wall REAL NOT NULL,
    job_id INTEGER,
    kind TEXT NOT NULL,
    ref TEXT,
    url TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status INTEGER,
    error TEXT,
    fault TEXT,
    body TEXT
);
"""

# Columns added after the first release; a state folder written by an older fake gets them on open.
_ADDED_COLUMNS = {
    "requests": {"query": "TEXT", "app_status": "INTEGER", "fault_rule": "INTEGER", "retry_after": "REAL"},
}

_REQUEST_COLUMNS = (
    "t_mono",
    "t_wall",
    "method",
    "path",
    "query",
    "status",
    "app_status",
    "duration",
    "idempotency_key",
    "correlation_id",
    "replayed",
    "fault",
    "fault_rule",
    "retry_after",
)
_REQUEST_INSERT = (
    f"INSERT INTO requests ({', '.join(_REQUEST_COLUMNS)}) VALUES ({', '.join('?' * len(_REQUEST_COLUMNS))})"
)
_LOG_BATCH = 512


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    scope: str
    key: str
    fingerprint: str
    state: str
    status: int | None
    headers: dict[str, str]
    body: bytes | None
    created_wall: float


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    due: float
    kind: str
    payload: dict[str, Any]


class UpstreamStore:
    """One SQLite file per fake. Use from one thread (the event loop) or serialise through the lock."""

    def __init__(self, path: Path | str, *, clock: UpstreamClock | None = None) -> None:
        self.path = Path(path)
        self.clock: UpstreamClock = clock or SystemUpstreamClock()
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._pending_log: list[tuple[Any, ...]] = []
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._migrate()
        # A record still "in progress" on start-up belongs to a request that died with the previous
        # process before its effect was committed (effect and completion share one transaction):
        # free the key, as Stripe does when a request never completes.
        self._db.execute("DELETE FROM idempotency WHERE state = 'in_progress'")

    def _migrate(self) -> None:
        for table, columns in _ADDED_COLUMNS.items():
            present = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, sql_type in columns.items():
                if name not in present:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}")

    def close(self) -> None:
        with self._lock:
            self.flush_requests()
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- effects --------------------------------------------------------------------------------

    def add_effect(
        self,
        db: sqlite3.Connection,
        *,
        kind: str,
        object_id: str,
        operation_id: str | None,
        idempotency_key: str | None,
        amount: int | None,
        currency: str | None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Record an applied effect inside the caller's transaction (``db`` from :meth:`transaction`)."""
        db.execute(
            "INSERT INTO effects (t_mono, t_wall, kind, object_id, operation_id, idempotency_key,"
            " amount, currency, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.clock.monotonic(),
                self.clock.time(),
                kind,
                object_id,
                operation_id,
                idempotency_key,
                amount,
                currency,
                json.dumps(dict(detail or {})),
            ),
        )

    def effects(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM effects WHERE seq > ? ORDER BY seq", (since,)).fetchall()
        return [{**dict(row), "detail": json.loads(row["detail"])} for row in rows]

    # -- request log ----------------------------------------------------------------------------

    def log_request(
        self,
        *,
        t_mono: float,
        t_wall: float,
        method: str,
        path: str,
        status: int,
        duration: float,
        idempotency_key: str | None,
        correlation_id: str | None,
        replayed: bool,
        fault: str | None,
        query: str | None = None,
        app_status: int | None = None,
        fault_rule: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Buffer one request row; written with the next batch (see the module docstring).

        ``retry_after`` is the ``Retry-After`` the answer carried, in seconds, so that a checker can
        tell whether the client waited as long as it was asked to.
        """
        row = (
            t_mono,
            t_wall,
            method,
            path,
            query,
            status,
            app_status,
            duration,
            idempotency_key,
            correlation_id,
            int(replayed),
            fault,
            fault_rule,
            retry_after,
        )
        with self._lock:
            self._pending_log.append(row)
            if len(self._pending_log) >= _LOG_BATCH:
                self.flush_requests()

    def flush_requests(self) -> None:
        with self._lock:
            if not self._pending_log:
                return
            rows, self._pending_log = self._pending_log, []
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(_REQUEST_INSERT, rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            self.flush_requests()
            rows = self._db.execute("SELECT * FROM requests WHERE seq > ? ORDER BY seq", (since,)).fetchall()
        return [{**dict(row), "replayed": bool(row["replayed"])} for row in rows]

    # -- idempotency ----------------------------------------------------------------------------

    def get_idempotency(self, scope: str, key: str) -> IdempotencyRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM idempotency WHERE scope = ? AND key = ?", (scope, key)
            ).fetchone()
        if row is None:
            return None
        return IdempotencyRecord(
            scope=row["scope"],
            key=row["key"],
            fingerprint=row["fingerprint"],
            state=row["state"],
            status=row["status"],
            headers=json.loads(row["headers"] or "{}"),
            body=row["body"],
            created_wall=row["created_wall"],
        )

    def begin_idempotent(self, scope: str, key: str, fingerprint: str) -> bool:
        """Claim a key for a first execution; False if someone already holds it."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO idempotency (scope, key, fingerprint, state, created_wall)"
                " VALUES (?, ?, ?, 'in_progress', ?)",
                (scope, key, fingerprint, self.clock.api_time()),
            )
            return cursor.rowcount == 1

    @staticmethod
    def complete_idempotent(
        db: sqlite3.Connection,
        *,
        scope: str,
        key: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
    ) -> None:
        db.execute(
            "UPDATE idempotency SET state = 'completed', status = ?, headers = ?, body = ?"
            " WHERE scope = ? AND key = ?",
            (status, json.dumps(dict(headers)), body, scope, key),
        )

    def release_idempotent(self, scope: str, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM idempotency WHERE scope = ? AND key = ?", (scope, key))

    def expire_idempotent(self, scope: str, key: str) -> None:
        self.release_idempotent(scope, key)

    # -- objects (the fake's own resources, e.g. PaymentIntents) ---------------------------------

    @staticmethod
    def put_object(db: sqlite3.Connection, kind: str, object_id: str, body: Mapping[str, Any]) -> None:
        db.execute(
            "INSERT OR REPLACE INTO objects (kind, id, body) VALUES (?, ?, ?)",
            (kind, object_id, json.dumps(dict(body))),
        )

    def get_object(self, kind: str, object_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM objects WHERE kind = ? AND id = ?", (kind, object_id)
            ).fetchone()
        return None if row is None else dict(json.loads(row["body"]))

    def objects(self, kind: str) -> list[dict[str, Any]]:
        """Every object of ``kind``, in insertion order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM objects WHERE kind = ? ORDER BY rowid", (kind,)
            ).fetchall()
        return [dict(json.loads(row["body"])) for row in rows]

    def delete_object(self, db: sqlite3.Connection, kind: str, object_id: str) -> None:
        db.execute("DELETE FROM objects WHERE kind = ? AND id = ?", (kind, object_id))

    # -- scheduled work -------------------------------------------------------------------------

    @staticmethod
    def add_job(db: sqlite3.Connection, *, due: float, kind: str, payload: Mapping[str, Any]) -> int:
        cursor = db.execute(
            "INSERT INTO jobs (due, kind, payload) VALUES (?, ?, ?)", (due, kind, json.dumps(dict(payload)))
        )
        return int(cursor.lastrowid or 0)

    @staticmethod
    def finish_job(db: sqlite3.Connection, job_id: int, state: str = "done") -> None:
        db.execute("UPDATE jobs SET state = ? WHERE id = ?", (state, job_id))

    def reschedule_job(self, job_id: int, due: float, payload: Mapping[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET due = ?, payload = ? WHERE id = ?", (due, json.dumps(dict(payload)), job_id)
            )

    def due_jobs(self, now: float, *, limit: int = 64) -> list[Job]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE state = 'pending' AND due <= ? ORDER BY due, id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [Job(row["id"], row["due"], row["kind"], json.loads(row["payload"])) for row in rows]

    def next_due(self, exclude: Collection[int] = ()) -> float | None:
        """The earliest due time of a pending job, leaving out ``exclude`` (jobs already running)."""
        marks = ", ".join("?" * len(exclude))
        with self._lock:
            row = self._db.execute(
                f"SELECT MIN(due) AS due FROM jobs WHERE state = 'pending' AND id NOT IN ({marks})",
                tuple(exclude),
            ).fetchone()
        return None if row is None or row["due"] is None else float(row["due"])

    def jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY id").fetchall()
        return [{**dict(row), "payload": json.loads(row["payload"])} for row in rows]

    # -- callback deliveries --------------------------------------------------------------------

    def log_delivery(
        self,
        *,
        job_id: int | None,
        kind: str,
        ref: str | None,
        url: str,
        attempt: int,
        status: int | None,
        error: str | None,
        fault: str | None,
        body: str | None,
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO deliveries (t_mono, t_wall, job_id, kind, ref, url, attempt, status, error,"
                " fault, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.clock.monotonic(),
                    self.clock.time(),
                    job_id,
                    kind,
                    ref,
                    url,
                    attempt,
                    status,
                    error,
                    fault,
                    body,
                ),
            )

    def deliveries(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM deliveries WHERE seq > ? ORDER BY seq", (since,)
            ).fetchall()
        return [dict(row) for row in rows]

    def reset(self) -> None:
        with self._lock:
            self._pending_log.clear()
            for table in ("effects", "requests", "idempotency", "objects", "jobs", "deliveries"):
                self._db.execute(f"DELETE FROM {table}")
