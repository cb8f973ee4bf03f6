"""Time as a dependency.

Every policy in :mod:`harness.resilience` reads time and sleeps through a :class:`Clock`, never through
the :mod:`time` module, so that tests run breakers and retries in virtual time and a seeded run is
exactly reproducible. :class:`SystemClock` is the one place that touches the real clock.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "VirtualClock"]


@runtime_checkable
class Clock(Protocol):
    """A monotonic time source that can also wait.

    ``now()`` is in seconds on an arbitrary origin; only differences are meaningful.
    """

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    async def sleep_async(self, seconds: float) -> None: ...


class SystemClock:
    """The real monotonic clock.

    ``time.monotonic`` is CLOCK_MONOTONIC on Linux, which is shared by every process on the machine,
    so times recorded by the fake upstreams and by the client can be compared directly.
    """

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def sleep_async(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    def __repr__(self) -> str:
        return "SystemClock()"


class VirtualClock:
    """A clock that only moves when told to.

    ``sleep`` advances the clock at once instead of waiting, and records the request, so a retry loop
    under test finishes in microseconds and its exact waits can be asserted. Thread-safe: concurrent
    sleepers each advance time by their own amount, which is what a test that hammers a breaker from
    many threads needs (time only ever moves forward).
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards: advance({seconds!r}); pass seconds >= 0")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds

    async def sleep_async(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.now()!r})"
