"""Time as a dependency.

Every policy in :mod:`harness.resilience` reads time and sleeps through a :class:`Clock`, never through
the :mod:`time` module, so that tests run breakers and retries in virtual time and a seeded run is
exactly reproducible. :class:`SystemClock` is the one place that touches the real clock.

Two extras beyond ``now``/``sleep``:

* ``wall()`` (both clocks have it, :class:`WallClock` names the protocol): the calendar time a
  ``Retry-After: <HTTP date>`` is measured against when the response carries no ``Date`` header.
* *alarms* (:meth:`VirtualClock.call_at`): a waiter with a timeout that is not a sleep, e.g. a caller
  queued in a bulkhead, must time out in virtual time too. :func:`wait_event` and
  :func:`wait_event_async` wait for a wake-up *or* a deadline on any clock: a clock that runs at real speed
  uses the ordinary timed waits, a :class:`VirtualClock` rings an alarm when someone moves time past
  the deadline.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = [
    "Alarm",
    "Clock",
    "SystemClock",
    "VirtualClock",
    "WallClock",
    "wait_event",
    "wait_event_async",
    "wall_time",
]


@runtime_checkable
class Clock(Protocol):
    """A monotonic time source that can also wait.

    ``now()`` is in seconds on an arbitrary origin; only differences are meaningful.
    """

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    async def sleep_async(self, seconds: float) -> None: ...


@runtime_checkable
class WallClock(Clock, Protocol):
    """A clock that also knows the calendar time (seconds since the Unix epoch)."""

    def wall(self) -> float: ...


class SystemClock:
    """The real monotonic clock.

    ``time.monotonic`` is CLOCK_MONOTONIC on Linux, which is shared by every process on the machine,
    so times recorded by the fake upstreams and by the client can be compared directly.
    """

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def sleep_async(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    def __repr__(self) -> str:
        return "SystemClock()"


class Alarm:
    """A pending :meth:`VirtualClock.call_at`; ``cancel()`` is idempotent."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """A clock that only moves when told to.

    ``sleep`` advances the clock at once instead of waiting, and records the request, so a retry loop
    under test finishes in microseconds and its exact waits can be asserted. Thread-safe: concurrent
    sleepers each advance time by their own amount, which is what a test that hammers a breaker from
    many threads needs (time only ever moves forward).

    Alarms set with :meth:`call_at` ring, in time order, on whichever thread moves time past them,
    after the clock's lock is released (a callback may read the clock or set another alarm).
    """

    def __init__(self, start: float = 0.0, *, wall_start: float = 1_700_000_000.0) -> None:
        self._start = float(start)
        self._now = float(start)
        self._wall_start = float(wall_start)
        self._lock = threading.Lock()
        self._alarms: list[tuple[float, int, Alarm]] = []
        self._seq = itertools.count()
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def wall(self) -> float:
        with self._lock:
            return self._wall_start + (self._now - self._start)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards: advance({seconds!r}); pass seconds >= 0")
        with self._lock:
            self._now += seconds
            due = self._due()
        _ring(due)

    def sleep(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds
            due = self._due()
        _ring(due)

    async def sleep_async(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)

    def call_at(self, when: float, callback: Callable[[], object]) -> Alarm:
        """Run ``callback`` once the clock reaches ``when`` (at once if it already has)."""
        alarm = Alarm(when, callback)
        with self._lock:
            heapq.heappush(self._alarms, (when, next(self._seq), alarm))
            due = self._due()
        _ring(due)
        return alarm

    def _due(self) -> list[Alarm]:
        due = []
        while self._alarms and self._alarms[0][0] <= self._now:
            due.append(heapq.heappop(self._alarms)[2])
        return due

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.now()!r})"


def _ring(alarms: list[Alarm]) -> None:
    for alarm in alarms:
        if not alarm.cancelled:
            alarm.cancelled = True
            alarm.callback()


def wall_time(clock: Clock) -> float | None:
    """The calendar time by ``clock``, or ``None`` for a clock that does not know it."""
    return clock.wall() if isinstance(clock, WallClock) else None


def wait_event(clock: Clock, event: threading.Event, deadline: float | None) -> None:
    """Block until ``event`` is set or ``clock`` reaches ``deadline`` (``None``: no deadline).

    Returns without saying which: the caller decides from its own state, under its own lock, because
    a wake-up and a deadline can race.
    """
    if deadline is None:
        event.wait()
    elif isinstance(clock, VirtualClock):
        alarm = clock.call_at(deadline, event.set)
        try:
            event.wait()
        finally:
            alarm.cancel()
    else:
        event.wait(max(deadline - clock.now(), 0.0))


async def wait_event_async(clock: Clock, event: asyncio.Event, deadline: float | None) -> None:
    """:func:`wait_event` for asyncio: await ``event`` or until ``clock`` reaches ``deadline``.

    ``event`` belongs to the running loop; another thread wakes it with
    ``loop.call_soon_threadsafe(event.set)``.
    """
    if deadline is None:
        await event.wait()
        return
    loop = asyncio.get_running_loop()
    handle: Alarm | asyncio.TimerHandle
    if isinstance(clock, VirtualClock):
        handle = clock.call_at(deadline, lambda: loop.call_soon_threadsafe(event.set))
    else:
        handle = loop.call_later(max(deadline - clock.now(), 0.0), event.set)
    try:
        await event.wait()
    finally:
        handle.cancel()
