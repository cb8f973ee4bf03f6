"""What is specific to the SQLite backend: the file, its journal mode and its schema version."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from harness.resilience import VirtualClock
from harness.stores import (
    SCHEMA_VERSION,
    DeadLetterQueue,
    ErrorInfo,
    IdempotencyStore,
    SchemaVersionError,
    SQLiteBackend,
    StoreError,
    UnixClock,
    WorkItem,
)


def test_the_store_is_one_wal_file_under_the_run_folder(tmp_path: Path) -> None:
    backend = SQLiteBackend.in_folder(tmp_path / "run-1")
    try:
        assert backend.path == tmp_path / "run-1" / "stores.sqlite3"
        assert backend.schema_version() == SCHEMA_VERSION
        assert backend.integrity_check() == "ok"
    finally:
        backend.close()
    with sqlite3.connect(tmp_path / "run-1" / "stores.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_records_and_entries_survive_closing_and_reopening(tmp_path: Path) -> None:
    clock = VirtualClock(1000.0)
    first = SQLiteBackend.in_folder(tmp_path)
    IdempotencyStore(first, clock=clock).with_idempotency("key-1", lambda: {"ok": True})
    entry = DeadLetterQueue(first, clock=clock).park(
        WorkItem(operation_id="op-1", operation="charge", provider="stripe"),
        error=ErrorInfo(error_class="timeout", message="t"),
        attempts=2,
    )
    first.close()

    second = SQLiteBackend.in_folder(tmp_path)
    try:
        assert IdempotencyStore(second, clock=clock).with_idempotency("key-1", lambda: None).value == {
            "ok": True
        }
        assert DeadLetterQueue(second, clock=clock).get(entry.id) == entry
    finally:
        second.close()


def test_a_file_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "stores.sqlite3"
    SQLiteBackend(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    with pytest.raises(SchemaVersionError, match=f"schema version {SCHEMA_VERSION + 1}"):
        SQLiteBackend(path)


def test_a_closed_backend_refuses_work(tmp_path: Path) -> None:
    backend = SQLiteBackend.in_folder(tmp_path)
    backend.close()

    with pytest.raises(StoreError, match="closed"):
        backend.idem_get("key-1")


def test_unix_clock_reads_seconds_since_the_epoch() -> None:
    before = time.time()
    now = UnixClock().now()

    assert before <= now <= time.time()


def test_durability_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="synchronous must be 'NORMAL' or 'FULL'"):
        SQLiteBackend(":memory:", synchronous="OFF")  # type: ignore[arg-type]
