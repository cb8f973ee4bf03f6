"""Bulkhead: a cap on concurrent calls to one upstream, with a bounded, prioritised wait queue.

A slot that is released goes straight to the longest-waiting caller of the highest priority (a
hand-off, so a newcomer cannot barge past the queue), which is what makes MIFOS's "priority-based
request queuing" (seed 000) hold: critical requests first, FIFO within a priority. A caller that
finds every slot taken and the queue full is refused at once; a queued caller is refused when its
wait (``max_wait``, cut down to the caller's own deadline) runs out.

One bulkhead serves threads and asyncio tasks alike: the bookkeeping is one lock-protected state,
and only the waiting differs (a :class:`threading.Event` or an :class:`asyncio.Event` woken from
whichever thread releases). Waits time out on the injected clock (see
:func:`~harness.resilience.wait_event`), so a queue timeout under a VirtualClock happens exactly
when a test moves time past it. Written here because neither asyncio nor threading has a
prioritised semaphore with a bounded queue and timeouts on an injected clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from harness.resilience._clock import Clock, wait_event, wait_event_async
from harness.resilience._errors import BulkheadFullError, ConfigError

__all__ = ["Bulkhead", "BulkheadConfig", "Slot"]


@dataclass(frozen=True, kw_only=True, slots=True)
class BulkheadConfig:
    """``max_concurrent`` calls at once; up to ``max_queue`` more wait, each at most ``max_wait`` s."""

    max_concurrent: int = 10
    max_queue: int = 0
    max_wait: float | None = None

    def __post_init__(self) -> None:
        if self.max_concurrent < 1:
            raise ConfigError(f"BulkheadConfig.max_concurrent must be >= 1, got {self.max_concurrent!r}")
        if self.max_queue < 0:
            raise ConfigError(
                f"BulkheadConfig.max_queue must be >= 0 (0: never wait), got {self.max_queue!r}"
            )
        if self.max_wait is not None:
            if not (math.isfinite(self.max_wait) and self.max_wait > 0):
                raise ConfigError(
                    f"BulkheadConfig.max_wait must be a finite number of seconds > 0 or None (wait as"
                    f" long as the caller's deadline allows), got {self.max_wait!r}"
                )
            if self.max_queue == 0:
                raise ConfigError(
                    "BulkheadConfig.max_wait only applies to queued callers, and max_queue=0 queues"
                    " nobody; set max_queue > 0 or drop max_wait"
                )

    def scaled(self, factor: float) -> BulkheadConfig:
        wait = None if self.max_wait is None else self.max_wait * factor
        return BulkheadConfig(max_concurrent=self.max_concurrent, max_queue=self.max_queue, max_wait=wait)


class Slot:
    """One of the bulkhead's places; release it exactly once (or use it as a context manager)."""

    __slots__ = ("_bulkhead", "_released")

    def __init__(self, bulkhead: Bulkhead) -> None:
        self._bulkhead = bulkhead
        self._released = False

    def release(self) -> None:
        if self._released:
            raise RuntimeError("a bulkhead slot was released twice; release each slot exactly once")
        self._released = True
        self._bulkhead._release()

    def __enter__(self) -> Slot:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class _Waiter:
    __slots__ = ("gone", "granted", "wake")

    def __init__(self, wake: Callable[[], object]) -> None:
        self.wake = wake
        self.granted = False
        self.gone = False


class Bulkhead:
    """Thread-safe and asyncio-safe; waits and time-outs go through the injected clock."""

    def __init__(self, name: str, config: BulkheadConfig | None = None, *, clock: Clock) -> None:
        self.name = name
        self.config = config or BulkheadConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._in_use = 0
        self._queued = 0
        self._waiters: list[tuple[int, int, _Waiter]] = []
        self._seq = itertools.count()

    @property
    def in_use(self) -> int:
        with self._lock:
            return self._in_use

    @property
    def queued(self) -> int:
        with self._lock:
            return self._queued

    def acquire(self, *, priority: int = 0, timeout: float | None = None) -> Slot:
        """Take a slot, waiting in the queue if allowed; raise :class:`BulkheadFullError` if refused.

        Higher ``priority`` is served first. ``timeout`` (e.g. the caller's remaining deadline) can
        only shorten ``max_wait``.
        """
        event = threading.Event()
        waiter = self._enter(priority, event.set)
        if waiter is None:
            return Slot(self)
        wait_event(self._clock, event, self._deadline(timeout))
        return self._after_wait(waiter)

    async def acquire_async(self, *, priority: int = 0, timeout: float | None = None) -> Slot:
        """:meth:`acquire` for asyncio; a cancelled waiter gives its place (or its slot) back."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        waiter = self._enter(priority, lambda: loop.call_soon_threadsafe(event.set))
        if waiter is None:
            return Slot(self)
        try:
            await wait_event_async(self._clock, event, self._deadline(timeout))
        except BaseException:
            with self._lock:
                granted = self._leave(waiter)
            if granted:
                self._release()
            raise
        return self._after_wait(waiter)

    def _deadline(self, timeout: float | None) -> float | None:
        limits = [t for t in (self.config.max_wait, timeout) if t is not None]
        return self._clock.now() + min(limits) if limits else None

    def _enter(self, priority: int, wake: Callable[[], object]) -> _Waiter | None:
        with self._lock:
            if self._in_use < self.config.max_concurrent:
                self._in_use += 1
                return None
            if self._queued >= self.config.max_queue:
                raise BulkheadFullError(
                    f"bulkhead {self.name!r} is full: {self._in_use} calls running and"
                    f" {self._queued} waiting (max_queue={self.config.max_queue})"
                )
            waiter = _Waiter(wake)
            heapq.heappush(self._waiters, (-priority, next(self._seq), waiter))
            self._queued += 1
            return waiter

    def _after_wait(self, waiter: _Waiter) -> Slot:
        with self._lock:
            granted = self._leave(waiter)
        if granted:
            return Slot(self)
        raise BulkheadFullError(f"bulkhead {self.name!r}: no slot came free before the wait ran out")

    def _leave(self, waiter: _Waiter) -> bool:
        """Called with the lock held: whether the waiter got a slot; if not, it leaves the queue."""
        if waiter.granted:
            return True
        if not waiter.gone:
            waiter.gone = True
            self._queued -= 1
        return False

    def _release(self) -> None:
        with self._lock:
            while self._waiters:
                waiter = heapq.heappop(self._waiters)[2]
                if waiter.gone:
                    continue
                waiter.granted = True  # the slot passes to it: _in_use stays the same
                self._queued -= 1
                break
            else:
                self._in_use -= 1
                return
        waiter.wake()

    def __repr__(self) -> str:
        return f"Bulkhead({self.name!r}, in_use={self._in_use}, queued={self._queued})"
