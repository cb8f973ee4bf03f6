"""Ground truth on disk: the effects a fake applied, every request it received, idempotency records.

SQLite in WAL mode with ``synchronous=NORMAL``: a committed transaction survives the fake being killed
with SIGKILL (the WAL is in the OS page cache; only a power cut could lose it), which is what lets a
scenario kill and restart an upstream and still count its charges. An effect and the idempotency
record that remembers it are written in one transaction, so a crash can never leave an effect
without its record or the reverse.

The stdlib ``sqlite3`` module is used directly: one file, no server, and nothing an ORM would add
for five tables.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["IdempotencyRecord", "UpstreamStore"]

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
"""


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


class UpstreamStore:
    """One SQLite file per fake. Use from one thread (the event loop) or serialise through the lock."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        # A record still "in progress" on start-up belongs to a request that died with the previous
        # process before its effect was committed (effect and completion share one transaction):
        # free the key, as Stripe does when a request never completes.
        self._db.execute("DELETE FROM idempotency WHERE state = 'in_progress'")

    def close(self) -> None:
        with self._lock:
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

    @staticmethod
    def add_effect(
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
        db.execute(
            "INSERT INTO effects (t_mono, t_wall, kind, object_id, operation_id, idempotency_key,"
            " amount, currency, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                time.monotonic(),
                time.time(),
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
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO requests (t_mono, t_wall, method, path, status, duration, idempotency_key,"
                " correlation_id, replayed, fault) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    t_mono,
                    t_wall,
                    method,
                    path,
                    status,
                    duration,
                    idempotency_key,
                    correlation_id,
                    int(replayed),
                    fault,
                ),
            )

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
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
                (scope, key, fingerprint, time.time()),
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

    def reset(self) -> None:
        with self._lock:
            for table in ("effects", "requests", "idempotency", "objects"):
                self._db.execute(f"DELETE FROM {table}")
