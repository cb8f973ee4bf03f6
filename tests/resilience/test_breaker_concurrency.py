"""The breaker under many threads and many asyncio tasks at once.

Callers are lined up on a barrier and released together; admitted probes hold their permit until
every caller has tried (an event, never a sleep), so the count of admitted calls is exact. The GIL's
switch interval is made tiny so that threads interleave inside the breaker's bookkeeping as often
as possible.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from harness.resilience import (
    BreakerConfig,
    BreakerEvent,
    BreakerState,
    BreakerTransition,
    CircuitBreaker,
    CircuitOpenError,
    CountWindow,
    VirtualClock,
)

S = BreakerState
CALLERS = 32
ROUNDS = 10
DEADLINE = 30.0  # seconds a caller waits for the others before the test fails


class UpstreamDown(Exception):
    pass


@pytest.fixture(autouse=True)
def frequent_thread_switches() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def half_open_rig(permits: int) -> tuple[CircuitBreaker, VirtualClock, list[BreakerTransition]]:
    clock = VirtualClock()
    transitions: list[BreakerTransition] = []
    config = BreakerConfig(
        failure_threshold=1, open_duration=1.0, half_open_permits=permits, success_threshold=permits
    )
    breaker = CircuitBreaker("herd", config, clock=clock, listeners=(transitions.append,))
    return breaker, clock, transitions


def trip_and_wait(breaker: CircuitBreaker, clock: VirtualClock) -> None:
    """Open the breaker and move time past the open duration, without looking at the state.

    Nobody has observed the breaker since, so the OPEN → HALF_OPEN move itself is raced by the herd.
    """
    permit = breaker.acquire()
    permit.failure()
    clock.advance(1.0)


class Round:
    """Counts of one herd of callers; admitted ones wait until every caller has tried."""

    def __init__(self, callers: int) -> None:
        self.callers = callers
        self.lock = threading.Lock()
        self.tried = 0
        self.admitted = 0
        self.refused = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.everyone_tried = threading.Event()
        self.errors: list[BaseException] = []

    def tried_once(self) -> None:
        with self.lock:
            self.tried += 1
            if self.tried == self.callers:
                self.everyone_tried.set()

    def caller(self, breaker: CircuitBreaker, barrier: threading.Barrier) -> Callable[[], None]:
        def call() -> None:
            barrier.wait(timeout=DEADLINE)
            try:
                breaker.call(self.probe)
            except CircuitOpenError:
                with self.lock:
                    self.refused += 1
                self.tried_once()
            except BaseException as error:  # surfaced by the test, with the thread's traceback
                self.errors.append(error)
                self.tried_once()

        return call

    def probe(self) -> None:
        with self.lock:
            self.admitted += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.tried_once()
        if not self.everyone_tried.wait(timeout=DEADLINE):
            raise AssertionError("not every caller tried before the deadline")
        with self.lock:
            self.in_flight -= 1


@pytest.mark.parametrize("permits", [1, 3])
def test_half_open_admits_no_more_than_its_permits_under_threads(permits: int) -> None:
    breaker, clock, transitions = half_open_rig(permits)
    for _ in range(ROUNDS):
        trip_and_wait(breaker, clock)
        herd = Round(CALLERS)
        caller = herd.caller(breaker, threading.Barrier(CALLERS))
        threads = [threading.Thread(target=caller) for _ in range(CALLERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=DEADLINE)
        assert not any(thread.is_alive() for thread in threads)
        assert herd.errors == []
        assert (herd.admitted, herd.refused) == (permits, CALLERS - permits)
        assert herd.most_in_flight == permits
        assert breaker.state is S.CLOSED
    moves = [(t.from_state, t.to_state) for t in transitions]
    # Per round: one trip, one move to half-open (no matter how many callers saw it due), one close.
    assert moves == [(S.CLOSED, S.OPEN), (S.OPEN, S.HALF_OPEN), (S.HALF_OPEN, S.CLOSED)] * ROUNDS


class AsyncRound:
    """The same herd as :class:`Round`, as asyncio tasks on one event loop."""

    def __init__(self, callers: int, breaker: CircuitBreaker) -> None:
        self.callers = callers
        self.breaker = breaker
        self.barrier = asyncio.Barrier(callers)
        self.everyone_tried = asyncio.Event()
        self.tried = self.admitted = self.refused = self.in_flight = self.most_in_flight = 0

    def tried_once(self) -> None:
        self.tried += 1
        if self.tried == self.callers:
            self.everyone_tried.set()

    async def probe(self) -> None:
        self.admitted += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.tried_once()
        await self.everyone_tried.wait()
        self.in_flight -= 1

    async def caller(self) -> None:
        await self.barrier.wait()
        try:
            await self.breaker.call_async(self.probe)
        except CircuitOpenError:
            self.refused += 1
            self.tried_once()


@pytest.mark.parametrize("permits", [1, 3])
@pytest.mark.anyio
async def test_half_open_admits_no_more_than_its_permits_under_asyncio_tasks(permits: int) -> None:
    breaker, clock, transitions = half_open_rig(permits)
    for _ in range(ROUNDS):
        trip_and_wait(breaker, clock)
        herd = AsyncRound(CALLERS, breaker)
        async with asyncio.timeout(DEADLINE):
            await asyncio.gather(*(herd.caller() for _ in range(CALLERS)))
        assert (herd.admitted, herd.refused) == (permits, CALLERS - permits)
        assert herd.most_in_flight == permits
        assert breaker.state is S.CLOSED
    moves = [(t.from_state, t.to_state) for t in transitions]
    assert moves == [(S.CLOSED, S.OPEN), (S.OPEN, S.HALF_OPEN), (S.HALF_OPEN, S.CLOSED)] * ROUNDS


@pytest.mark.parametrize("listening", [False, True], ids=["lean path", "locked path"])
def test_concurrent_calls_in_a_closed_breaker_lose_no_counts(listening: bool) -> None:
    calls_each, threads_count = 3000, 8
    config = BreakerConfig(failure_threshold=10**9, window=CountWindow(size=100_000), minimum_calls=1)
    breaker = CircuitBreaker("busy", config, clock=VirtualClock())
    if listening:
        # A call listener needs call events, which takes successes off the lock-free lean path.
        breaker.on(BreakerEvent, lambda event: None)
    barrier = threading.Barrier(threads_count)

    def down() -> None:
        raise UpstreamDown

    def caller() -> None:
        barrier.wait(timeout=DEADLINE)
        for index in range(calls_each):
            if index % 5 == 0:
                with contextlib.suppress(UpstreamDown):
                    breaker.call(down)
            else:
                breaker.call(lambda: None)

    threads = [threading.Thread(target=caller) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE)
    assert not any(thread.is_alive() for thread in threads)
    snapshot = breaker.snapshot()
    assert (snapshot.calls, snapshot.failures) == (
        calls_each * threads_count,
        calls_each * threads_count // 5,
    )
    assert snapshot.state is S.CLOSED


def test_a_herd_of_concurrent_failures_trips_the_breaker_exactly_once() -> None:
    transitions: list[BreakerTransition] = []
    breaker = CircuitBreaker(
        "stampede",
        BreakerConfig(failure_threshold=5, open_duration=60.0),
        clock=VirtualClock(),
        listeners=(transitions.append,),
    )
    barrier = threading.Barrier(CALLERS)

    def down() -> None:
        raise UpstreamDown

    def caller() -> None:
        barrier.wait(timeout=DEADLINE)
        with contextlib.suppress(UpstreamDown, CircuitOpenError):
            breaker.call(down)

    threads = [threading.Thread(target=caller) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE)
    assert not any(thread.is_alive() for thread in threads)
    # Calls admitted before the trip finish as stale failures; they must not move the breaker again.
    assert [(t.from_state, t.to_state) for t in transitions] == [(S.CLOSED, S.OPEN)]
    assert breaker.state is S.OPEN
