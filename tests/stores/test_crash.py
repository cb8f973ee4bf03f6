"""Crash: a child writing acknowledged completions and dead letters is SIGKILLed 50 times per backend.

The child works through numbered units: complete ``unit-N`` under its idempotency key, park a dead
letter for it, and replay every third one. After each store call *returns* it reports the write on
a pipe: that line is the acknowledgement. The parent waits for a random (seeded) number of
acknowledgements, lets the child run on for a random sliver of time, so that the kill lands anywhere
(inside a transaction, between a write and its report), and kills it with SIGKILL. Then it opens the
store afresh, as a restarted process would, checks it opens cleanly, and checks that every write
acknowledged so far is there. The next child resumes at the first unit whose dead letter was not
acknowledged, so a key the killed child held in progress is met again and must be taken over once
its lease runs out.

What is killed is the *client* process. For SQLite that is the whole story (the database lives in
the client). For Redis the server keeps every acknowledged write in memory regardless; so the
server here runs with ``appendonly yes`` and ``appendfsync always``, and at the end it is itself
SIGKILLed once and restarted from its append-only file, and every acknowledgement is checked again.
(A server kill alone would not tell ``always`` from ``everysec``: both leave the data in the page
cache. ``always`` matters for a machine crash, which no test here simulates.)
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.resilience import SystemClock
from harness.stores import (
    DeadLetterConfig,
    DeadLetterQueue,
    DeadLetterStatus,
    ErrorInfo,
    IdempotencyConfig,
    IdempotencyStore,
    InProgressPolicy,
    RecordState,
    RedisBackend,
    RedisServer,
    SQLiteBackend,
    StoreBackend,
    WorkItem,
)

KILLS = 50
SEED = 5_150


def unit_result(unit: int) -> dict[str, object]:
    return {"unit": unit, "pad": "x" * (unit % 97)}


def crash_child(report: Callable[[str], None], open_backend: Callable[[], StoreBackend], start: int) -> None:
    backend = open_backend()
    clock = SystemClock()
    store = IdempotencyStore(
        backend,
        clock=clock,
        config=IdempotencyConfig(
            lease=0.05, in_progress=InProgressPolicy.WAIT, poll_interval=0.005, wait_timeout=30
        ),
    )
    dlq = DeadLetterQueue(backend, clock=clock, config=DeadLetterConfig(replay_lease=0.05))
    held = backend.idem_get(f"unit-{start}")
    if held is not None and held.state is RecordState.IN_PROGRESS:
        report(f"ABANDONED {start}")  # the previous child died holding this key
    for unit in itertools.count(start):
        store.with_idempotency(f"unit-{unit}", lambda unit=unit: unit_result(unit), payload={"unit": unit})
        report(f"C {unit}")
        item = WorkItem(
            operation_id=f"op-{unit}", operation="charge", provider="stripe", payload={"unit": unit}
        )
        entry = dlq.park(item, error=ErrorInfo(error_class="timeout", message=f"unit {unit}"), attempts=1)
        report(f"D {unit} {entry.id}")
        if unit % 3 == 0:
            assert dlq.requeue(entry.id, lambda e: None).resolved
            report(f"R {unit} {entry.id}")


@dataclass
class Acks:
    completed: set[int] = field(default_factory=set)
    parked: dict[str, int] = field(default_factory=dict)
    resolved: set[str] = field(default_factory=set)
    abandoned: int = 0

    def take(self, lines: list[str]) -> Acks:
        """Record the acknowledgements in ``lines``; return just the new ones."""
        new = Acks()
        for line in lines:
            kind, *rest = line.split()
            if kind == "C":
                new.completed.add(int(rest[0]))
            elif kind == "D":
                new.parked[rest[1]] = int(rest[0])
            elif kind == "R":
                new.resolved.add(rest[1])
            elif kind == "ABANDONED":
                new.abandoned += 1
        self.completed |= new.completed
        self.parked |= new.parked
        self.resolved |= new.resolved
        self.abandoned += new.abandoned
        return new

    def next_unit(self) -> int:
        return max(self.parked.values(), default=-1) + 1


def check_acknowledged(backend: StoreBackend, acks: Acks) -> None:
    for unit in sorted(acks.completed):
        record = backend.idem_get(f"unit-{unit}")
        assert record is not None, f"acknowledged completion of unit {unit} is missing"
        assert record.state is RecordState.COMPLETED, f"unit {unit} is {record.state}"
        assert record.response == unit_result(unit)
    for entry_id, unit in sorted(acks.parked.items()):
        entry = backend.dlq_get(entry_id)
        assert entry is not None, f"acknowledged dead letter {entry_id} (unit {unit}) is missing"
        assert (entry.operation_id, entry.payload) == (f"op-{unit}", {"unit": unit})
        expected = {DeadLetterStatus.RESOLVED} if entry_id in acks.resolved else set(DeadLetterStatus)
        assert entry.status in expected, f"{entry_id} is {entry.status}"


def run_campaign(
    fork: Any, open_child_backend: Callable[[], StoreBackend], reopen: Callable[[], StoreBackend]
) -> Acks:
    rng = random.Random(SEED)
    acks = Acks()
    for kill in range(KILLS):
        child = fork(crash_child, open_child_backend, acks.next_unit())
        child.wait_for_lines(rng.randint(1, 10))
        time.sleep(rng.uniform(0, 0.003))  # the random point of the kill, not a wait for anything
        child.kill()
        new = acks.take(child.lines)
        assert new.completed or new.abandoned, f"kill {kill}: the child acknowledged nothing"
        backend = reopen()
        try:
            check_acknowledged(backend, new)
        finally:
            backend.close()
    return acks


@pytest.fixture(scope="module")
def durable_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("durable-redis"), durable=True)
    try:
        server.start()
    except Exception as exc:
        pytest.fail(f"the crash test needs a real Redis: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


def test_sqlite_keeps_every_acknowledged_write_through_50_kills(tmp_path: Path, fork: Any) -> None:
    path = tmp_path / "stores.sqlite3"
    SQLiteBackend(path).close()

    def reopen() -> StoreBackend:
        backend = SQLiteBackend(path)  # refuses a file with a schema it does not know
        assert backend.integrity_check() == "ok"
        return backend

    acks = run_campaign(fork, lambda: SQLiteBackend(path), reopen)

    backend = reopen()
    try:
        check_acknowledged(backend, acks)
    finally:
        backend.close()
    assert len(acks.completed) > KILLS
    # Some kill landed while a key was held: the next child took it over once the lease ran out.
    # (Each kill has a fair chance to land there; missing all fifty would take a rare coincidence.)
    assert acks.abandoned >= 1


def test_redis_keeps_every_acknowledged_write_through_50_client_kills_and_a_server_kill(
    durable_redis: RedisServer, fork: Any
) -> None:
    namespace = "crash"
    url = durable_redis.url

    def reopen() -> StoreBackend:
        backend = RedisBackend.from_url(url, namespace=namespace)
        assert backend.client.ping()
        return backend

    acks = run_campaign(fork, lambda: RedisBackend.from_url(url, namespace=namespace), reopen)
    durable_redis.kill()
    durable_redis.start()  # a new port, the same append-only file
    backend = RedisBackend.from_url(durable_redis.url, namespace=namespace)
    try:
        check_acknowledged(backend, acks)
    finally:
        backend.close()
    assert len(acks.completed) > KILLS
    assert acks.abandoned >= 1
