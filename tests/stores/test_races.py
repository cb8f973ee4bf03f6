"""Races: 32 threads, and 4 processes of 8 threads, execute the same key at the same instant.

The operation runs exactly once; every other caller replays or gets a conflict, as the policy says.
The winner holds the key until the others have had their answer (or at least have set off), so the
contention is real rather than a matter of luck; all of it is coordinated with barriers, conditions
and pipes, with deadlines, never with sleeps. Time is the real clock here: a virtual clock advanced
by 31 waiting threads would expire the winner's lease under it.
"""

from __future__ import annotations

import json
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from harness.resilience import SystemClock
from harness.stores import (
    DeadLetter,
    DeadLetterQueue,
    DeadLetterStatus,
    DeadLetterTransitionError,
    ErrorInfo,
    IdempotencyConfig,
    IdempotencyStore,
    IdempotentResult,
    InProgressPolicy,
    KeyInProgressError,
    Lease,
    LeaseLostError,
    StoreBackend,
    WorkItem,
)

CALLERS = 32
PROCESSES = 4
PAYLOAD = {"amount": 1500, "currency": "usd"}


def race_store(backend: StoreBackend, policy: InProgressPolicy) -> IdempotencyStore:
    config = IdempotencyConfig(in_progress=policy, poll_interval=0.002, wait_timeout=60.0, lease=60.0)
    return IdempotencyStore(backend, clock=SystemClock(), config=config)


def run_together(count: int, caller: Callable[[], None]) -> list[BaseException]:
    """Start ``count`` threads that pass one barrier together; return what they raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body() -> None:
        try:
            barrier.wait(timeout=30)
            caller()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a racing thread is stuck"
    return errors


def test_32_threads_execute_once_and_every_other_caller_conflicts(backend: StoreBackend) -> None:
    store = race_store(backend, InProgressPolicy.CONFLICT)
    cond = threading.Condition()
    counts = {"executions": 0, "conflicts": 0}
    results: list[IdempotentResult] = []

    def operation() -> object:
        with cond:
            counts["executions"] += 1
            # Hold the key until every other caller has been turned away.
            turned_away = cond.wait_for(lambda: counts["conflicts"] == CALLERS - 1, timeout=30)
        return {"winner": threading.get_ident(), "saw_all_conflicts": turned_away}

    def caller() -> None:
        try:
            results.append(store.with_idempotency("race", operation, payload=PAYLOAD))
        except KeyInProgressError:
            with cond:
                counts["conflicts"] += 1
                cond.notify_all()

    errors = run_together(CALLERS, caller)

    assert errors == []
    assert counts == {"executions": 1, "conflicts": CALLERS - 1}
    assert len(results) == 1
    assert not results[0].replayed
    assert isinstance(results[0].value, dict)
    assert results[0].value["saw_all_conflicts"] is True
    replay = store.with_idempotency("race", operation, payload=PAYLOAD)
    assert (replay.value, replay.replayed) == (results[0].value, True)


def test_32_threads_execute_once_and_every_other_caller_replays_under_the_wait_policy(
    backend: StoreBackend,
) -> None:
    store = race_store(backend, InProgressPolicy.WAIT)
    cond = threading.Condition()
    counts = {"executions": 0, "entered": 0}
    results: list[IdempotentResult] = []
    lock = threading.Lock()

    def operation() -> object:
        with cond:
            counts["executions"] += 1
            # Hold the key until every caller is on its way in: most of them will find it in progress.
            assert cond.wait_for(lambda: counts["entered"] == CALLERS, timeout=30)
        return {"winner": threading.get_ident()}

    def caller() -> None:
        with cond:
            counts["entered"] += 1
            cond.notify_all()
        result = store.with_idempotency("race", operation, payload=PAYLOAD)
        with lock:
            results.append(result)

    errors = run_together(CALLERS, caller)

    assert errors == []
    assert counts["executions"] == 1
    assert len(results) == CALLERS
    assert sorted(r.replayed for r in results) == [False] + [True] * (CALLERS - 1)
    assert len({json.dumps(r.value) for r in results}) == 1


def test_32_threads_taking_over_an_abandoned_key_leave_exactly_one_new_owner(backend: StoreBackend) -> None:
    clock = SystemClock()
    crashed = IdempotencyStore(backend, clock=clock, config=IdempotencyConfig(lease=0.001))
    old = crashed.begin("race", payload=PAYLOAD)
    assert isinstance(old, Lease)
    deadline = time.monotonic() + 10
    while clock.now() <= old.lease_until:  # until the crashed owner's lease has run out
        assert time.monotonic() < deadline
    store = race_store(backend, InProgressPolicy.CONFLICT)
    owners: list[Lease] = []
    conflicts: list[KeyInProgressError] = []

    def caller() -> None:
        try:
            step = store.begin("race", payload=PAYLOAD)
        except KeyInProgressError as exc:
            conflicts.append(exc)
            return
        assert isinstance(step, Lease)
        owners.append(step)

    errors = run_together(CALLERS, caller)

    assert errors == []
    assert (len(owners), len(conflicts)) == (1, CALLERS - 1)
    assert owners[0].took_over
    assert owners[0].fence > old.fence
    with pytest.raises(LeaseLostError):
        crashed.complete(old, "too late")
    assert store.complete(owners[0], "done").value == "done"


def test_16_threads_replaying_one_dead_letter_run_its_handler_once(backend: StoreBackend) -> None:
    dlq = DeadLetterQueue(backend, clock=SystemClock())
    entry = dlq.park(
        WorkItem(operation_id="op-1", operation="charge", provider="stripe"),
        error=ErrorInfo(error_class="timeout", message="read timed out"),
        attempts=1,
    )
    cond = threading.Condition()
    counts = {"replays": 0, "refused": 0}
    callers = 16

    def handler(claimed: DeadLetter) -> None:
        with cond:
            counts["replays"] += 1
            assert cond.wait_for(lambda: counts["refused"] == callers - 1, timeout=30)

    def caller() -> None:
        try:
            dlq.requeue(entry.id, handler)
        except DeadLetterTransitionError:
            with cond:
                counts["refused"] += 1
                cond.notify_all()

    errors = run_together(callers, caller)

    assert errors == []
    assert counts == {"replays": 1, "refused": callers - 1}
    assert dlq.get(entry.id).status is DeadLetterStatus.RESOLVED


# -- across processes ----------------------------------------------------------------------------


def _read_byte(fd: int, what: str) -> None:
    ready, _, _ = select.select([fd], [], [], 30)
    if not ready or os.read(fd, 1) != b"!":
        raise TimeoutError(f"no {what} signal from the parent within 30s")


def race_child(
    report: Callable[[str], None],
    open_backend: Callable[[], StoreBackend],
    policy: InProgressPolicy,
    threads: int,
    pipes: tuple[int, int],
) -> None:
    """One of the racing processes: ``threads`` callers on the shared key, one line per outcome.

    ``pipes`` are the read ends of the parent's "go" and "release" pipes.
    """
    go_fd, release_fd = pipes
    store = race_store(open_backend(), policy)

    def operation() -> object:
        report("X")
        _read_byte(release_fd, "release")
        return {"winner_pid": os.getpid()}

    def caller() -> None:
        report("S")
        try:
            result = store.with_idempotency("race", operation, payload=PAYLOAD)
        except KeyInProgressError:
            report("CONFLICT")
            return
        report(("REPLAY " if result.replayed else "EXEC ") + json.dumps(result.value))

    _read_byte(go_fd, "go")
    errors = run_together(threads, caller)
    if errors:
        raise errors[0]


@pytest.mark.parametrize("policy", [InProgressPolicy.CONFLICT, InProgressPolicy.WAIT])
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_4_processes_of_8_threads_execute_once(
    kind: str, policy: InProgressPolicy, open_backend: Any, fork: Any
) -> None:
    open_backend(kind)  # creates the store (schema, namespace) before the children race to it
    opener = open_backend.child_opener(kind)
    go_read, go_write = os.pipe()
    release_read, release_write = os.pipe()
    try:
        children = [
            fork(race_child, opener, policy, CALLERS // PROCESSES, (go_read, release_read))
            for _ in range(PROCESSES)
        ]
        os.write(go_write, b"!" * PROCESSES)
        deadline = time.monotonic() + 30
        while sum(c.lines.count("S") for c in children) < CALLERS:
            assert time.monotonic() < deadline, "the racing processes did not all set off"
            for child in children:
                child.poll(0.01)
        os.write(release_write, b"!" * CALLERS)  # more than enough for every execution there may be
        for child in children:
            assert child.join() == 0
    finally:
        for fd in (go_read, go_write, release_read, release_write):
            os.close(fd)

    lines = [line for child in children for line in child.lines]
    outcomes = [line for line in lines if line not in ("S", "X")]
    executed = [line.removeprefix("EXEC ") for line in outcomes if line.startswith("EXEC ")]
    replayed = [line.removeprefix("REPLAY ") for line in outcomes if line.startswith("REPLAY ")]
    conflicts = outcomes.count("CONFLICT")
    assert lines.count("X") == 1, "the operation ran more than once"
    assert len(executed) == 1
    assert len(outcomes) == CALLERS
    assert set(replayed) <= set(executed)
    if policy is InProgressPolicy.WAIT:
        assert (len(replayed), conflicts) == (CALLERS - 1, 0)
    else:
        assert len(replayed) + conflicts == CALLERS - 1
