"""Graceful shutdown parks unfinished work, and a settle phase replays it: nothing is dropped.

The shutdown deadline runs on the injected clock: with a VirtualClock the grace period passes at
once, so "still running at the deadline" is decided without waiting. Work is held and released
with threading events, never with sleeps.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

import pytest

from harness.resilience import SystemClock, VirtualClock
from harness.stack._process import wait_until
from harness.stores import (
    DeadLetter,
    DeadLetterQueue,
    DeadLetterStatus,
    ExecutorClosedError,
    IdempotencyStore,
    ParkedError,
    ParkingExecutor,
    RequeueReport,
    SQLiteBackend,
    StoreBackend,
    StoreError,
    WorkItem,
)

S = DeadLetterStatus


def work(n: int) -> WorkItem:
    return WorkItem(operation_id=f"op-{n}", operation="charge", provider="stripe", payload={"n": n})


class Blocker:
    """Work that signals when it starts and runs until released."""

    def __init__(self, result: object = "done", error: BaseException | None = None) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.result = result
        self.error = error

    def __call__(self) -> object:
        self.started.set()
        if not self.release.wait(timeout=30):
            raise TimeoutError("the test never released this work")
        if self.error is not None:
            raise self.error
        return self.result


def parked_entry(future: Future[object]) -> DeadLetter:
    exc = future.exception(timeout=10)
    assert isinstance(exc, ParkedError), exc
    return exc.entry


def test_shutdown_parks_queued_work_and_work_still_running_at_the_deadline(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    dlq = DeadLetterQueue(backend, clock=clock)
    executor = ParkingExecutor(dlq, clock=clock, workers=1, poll_interval=0.5)
    done = executor.submit(work(0), lambda: "finished early")
    assert done.result(timeout=10) == "finished early"
    running = Blocker()
    running_future = executor.submit(work(1), running)
    queued = [executor.submit(work(n), lambda: "never run") for n in (2, 3)]
    assert running.started.wait(timeout=10)

    report = executor.shutdown(grace=5.0)

    assert (report.not_started, report.unfinished, report.park_failures) == (2, 1, ())
    assert sum(clock.sleeps) >= 5.0
    entries = {e.operation_id: e for e in dlq.entries()}
    assert sorted(entries) == ["op-1", "op-2", "op-3"]
    assert {e.error.error_class for e in entries.values()} == {"shutdown"}
    assert (entries["op-1"].attempts, entries["op-2"].attempts, entries["op-3"].attempts) == (1, 0, 0)
    assert "grace of 5s" in entries["op-1"].error.message
    assert entries["op-2"].payload == {"n": 2}
    assert parked_entry(running_future).id == entries["op-1"].id
    assert [parked_entry(f).operation_id for f in queued] == ["op-2", "op-3"]
    running.release.set()
    wait_until(lambda: executor.late_completions != [], timeout=10, what="the late completion")
    assert dlq.get(entries["op-1"].id).status is S.RESOLVED
    assert [dlq.get(entries[op].id).status for op in ("op-2", "op-3")] == [S.FAILED, S.FAILED]


def test_work_that_finishes_within_the_grace_is_not_parked(backend: StoreBackend) -> None:
    dlq = DeadLetterQueue(backend, clock=SystemClock())
    executor = ParkingExecutor(dlq, clock=SystemClock(), workers=2, poll_interval=0.005)
    started = threading.Event()

    def finishes_once_shutdown_begins() -> int:
        started.set()
        assert executor.closing.wait(timeout=30)
        return 7

    future = executor.submit(work(1), finishes_once_shutdown_begins)
    assert started.wait(timeout=10)

    report = executor.shutdown(grace=30.0)

    assert report.parked == ()
    assert future.result(timeout=10) == 7
    assert dlq.entries() == []


def test_work_that_fails_before_the_deadline_reports_its_own_error(backend: StoreBackend) -> None:
    dlq = DeadLetterQueue(backend, clock=SystemClock())
    executor = ParkingExecutor(dlq, clock=SystemClock(), workers=1, poll_interval=0.005)
    started = threading.Event()

    def fails_once_shutdown_begins() -> None:
        started.set()
        assert executor.closing.wait(timeout=30)
        raise ConnectionError("upstream down")

    future = executor.submit(work(1), fails_once_shutdown_begins)
    assert started.wait(timeout=10)

    report = executor.shutdown(grace=30.0)

    assert report.parked == ()
    assert isinstance(future.exception(timeout=10), ConnectionError)
    assert dlq.entries() == []


def test_a_late_failure_leaves_the_entry_parked(backend: StoreBackend, clock: VirtualClock) -> None:
    dlq = DeadLetterQueue(backend, clock=clock)
    executor = ParkingExecutor(dlq, clock=clock, workers=1)
    blocker = Blocker(error=ConnectionError("upstream down"))
    future = executor.submit(work(1), blocker)
    assert blocker.started.wait(timeout=10)
    entry = parked_entry_after_shutdown(executor, future)

    blocker.release.set()
    wait_until(lambda: executor.late_completions != [], timeout=10, what="the late failure")

    late = executor.late_completions[0]
    assert (late.entry_id, late.succeeded, late.resolved) == (entry.id, False, False)
    assert dlq.get(entry.id).status is S.FAILED


def parked_entry_after_shutdown(executor: ParkingExecutor, future: Future[object]) -> DeadLetter:
    report = executor.shutdown(grace=1.0)
    assert report.unfinished == 1
    return parked_entry(future)


def test_a_late_completion_does_not_resolve_an_entry_a_replay_holds(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    dlq = DeadLetterQueue(backend, clock=clock)
    executor = ParkingExecutor(dlq, clock=clock, workers=1)
    blocker = Blocker()
    future = executor.submit(work(1), blocker)
    assert blocker.started.wait(timeout=10)
    entry = parked_entry_after_shutdown(executor, future)

    def replay(claimed: DeadLetter) -> None:
        blocker.release.set()  # the original finishes while the settle phase replays it
        wait_until(lambda: executor.late_completions != [], timeout=10, what="the late completion")

    outcome = dlq.requeue(entry.id, replay)

    assert outcome.resolved
    assert executor.late_completions[0].resolved is False
    assert dlq.get(entry.id).status is S.RESOLVED


def test_submitting_after_shutdown_raises(backend: StoreBackend, clock: VirtualClock) -> None:
    executor = ParkingExecutor(DeadLetterQueue(backend, clock=clock), clock=clock)
    assert executor.shutdown(grace=0.0).parked == ()

    with pytest.raises(ExecutorClosedError, match="park 'op-1'"):
        executor.submit(work(1), lambda: None)


def test_work_that_cannot_be_parked_fails_its_future_and_is_reported(
    tmp_path: Path, clock: VirtualClock
) -> None:
    broken = SQLiteBackend.in_folder(tmp_path)
    dlq = DeadLetterQueue(broken, clock=clock)
    executor = ParkingExecutor(dlq, clock=clock, workers=1)
    blocker = Blocker()
    executor.submit(work(1), blocker)
    queued = executor.submit(work(2), lambda: None)
    assert blocker.started.wait(timeout=10)
    broken.close()  # the queue's database is gone when shutdown comes

    report = executor.shutdown(grace=0.0)

    assert [item.operation_id for item, _ in report.park_failures] == ["op-2", "op-1"]
    assert isinstance(queued.exception(timeout=10), StoreError)
    blocker.release.set()


# -- the settle phase a driver runs --------------------------------------------------------------


def test_settle_phase_replays_parked_work_through_its_idempotency_key(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    """The pattern a driver follows: park on failure, replay under the same key when settling."""
    store = IdempotencyStore(backend, clock=clock)
    dlq = DeadLetterQueue(backend, clock=clock)
    effects: list[str] = []
    upstream_up = False

    def charge(operation_id: str) -> dict[str, str]:
        if not upstream_up:
            raise ConnectionError("upstream down")
        effects.append(operation_id)
        return {"reference": f"pi_{operation_id}"}

    for n in range(3):
        key = f"idem-op-{n}"
        try:
            store.with_idempotency(key, lambda n=n: charge(f"op-{n}"), payload={"n": n})
        except ConnectionError as exc:
            item = WorkItem(
                operation_id=f"op-{n}", operation="charge", provider="stripe", payload={"key": key, "n": n}
            )
            dlq.park(item, error=exc, attempts=3)
    assert [e.operation_id for e in dlq.entries()] == ["op-0", "op-1", "op-2"]

    def replay(entry: DeadLetter) -> None:
        payload = entry.payload
        assert isinstance(payload, dict)
        store.with_idempotency(
            str(payload["key"]), lambda: charge(entry.operation_id), payload={"n": payload["n"]}
        )

    assert dlq.requeue_many(replay).failed == ("dlq-1", "dlq-2", "dlq-3")
    upstream_up = True
    report = dlq.requeue_many(replay)
    again = dlq.requeue_many(replay)

    assert report.resolved == ("dlq-1", "dlq-2", "dlq-3")
    assert again == RequeueReport()  # nothing left to replay
    assert effects == ["op-0", "op-1", "op-2"]
    assert [e.attempts for e in dlq.entries()] == [5, 5, 5]
