"""Where a breaker's mutable state lives: one small record behind a two-method interface.

Everything the state machine changes is in :class:`BreakerRecord`; the rules that change it
(:mod:`harness.resilience._breaker_machine`) are functions of the record, the config and a time
passed in, with no other side effects. A :class:`BreakerStore` only has to

* ``run(operation, *args)``: apply ``operation(record, *args)`` atomically and return its result, and
* ``peek()``: return the record's current ``(state, generation)`` pair without taking part in a
  transaction (the breaker's lock-free fast path for closed, disabled and metrics-only states).

:class:`LocalBreakerStore` does that with a lock around an in-process record. A store shared by many
processes (Redis) would load the record (``BreakerRecord.from_dict``), apply the operation, and write
it back (``to_dict``) under optimistic concurrency (WATCH/MULTI, retrying on conflict) or a server-side
script. Operations may be re-run on a conflict because they read time only from their arguments and
return their events instead of emitting them. ``peek`` must then read the shared value, not a cache,
or a closed reading could admit a call after another process opened the breaker.

One in-process extra: :class:`LocalBreakerStore` also hands the breaker the record's log of deferred
successes (:attr:`BreakerRecord.deferred`), which the breaker's lean path appends to without the lock.
Any other store gets the same effect through ``run(machine.record_plain_success, generation)``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, TypeVarTuple, runtime_checkable

from harness.resilience._breaker_config import BreakerConfig
from harness.resilience._breaker_states import BreakerState
from harness.resilience._windows import CountRing, TimeBuckets, new_window, window_from_dict

__all__ = ["BreakerRecord", "BreakerStore", "LocalBreakerStore"]

Ts = TypeVarTuple("Ts")
R = TypeVar("R")


@dataclass(slots=True, eq=False)
class BreakerRecord:
    """The whole mutable state of one breaker's state machine."""

    state: BreakerState
    generation: int
    gate: tuple[BreakerState, int]
    """``(state, generation)`` in one attribute, so that a lock-free read sees a matching pair."""
    entered_at: float
    open_until: float
    open_duration: float
    trips: int
    consecutive_failures: int
    half_open_taken: int
    half_open_successes: int
    not_permitted: int
    window: CountRing | TimeBuckets
    deferred: deque[int] = field(default_factory=deque)
    """Generations of successes taken on the lean path, not yet folded in (see :meth:`fold`)."""

    def fold(self) -> None:
        """Fold the deferred successes of the current generation into the counts; drop stale ones.

        The lean path of a closed breaker with a count window and no rate or slow-call rule
        appends a success's generation here without taking the store's lock (``deque.append`` is
        thread-safe). Every operation that reads or changes the counts folds first, under the lock,
        so a deferred success is ordered before every outcome recorded after the fold, which is
        when it completed; one from an older generation counts for nothing, like any stale permit.
        """
        deferred = self.deferred
        pending = len(deferred)
        if not pending:
            return
        generation = self.generation
        current = 0
        for _ in range(pending):
            if deferred.popleft() == generation:
                current += 1
        if current:
            self.consecutive_failures = 0
            if isinstance(self.window, CountRing):
                self.window.record_successes(current)

    @classmethod
    def initial(cls, config: BreakerConfig, now: float) -> BreakerRecord:
        return cls(
            state=BreakerState.CLOSED,
            generation=0,
            gate=(BreakerState.CLOSED, 0),
            entered_at=now,
            open_until=now,
            open_duration=0.0,
            trips=0,
            consecutive_failures=0,
            half_open_taken=0,
            half_open_successes=0,
            not_permitted=0,
            window=new_window(config.window),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for stores that keep the record outside the process."""
        self.fold()
        return {
            "state": str(self.state),
            "generation": self.generation,
            "entered_at": self.entered_at,
            "open_until": self.open_until,
            "open_duration": self.open_duration,
            "trips": self.trips,
            "consecutive_failures": self.consecutive_failures,
            "half_open_taken": self.half_open_taken,
            "half_open_successes": self.half_open_successes,
            "not_permitted": self.not_permitted,
            "window": self.window.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BreakerRecord:
        state = BreakerState(data["state"])
        generation = int(data["generation"])
        return cls(
            state=state,
            generation=generation,
            gate=(state, generation),
            entered_at=float(data["entered_at"]),
            open_until=float(data["open_until"]),
            open_duration=float(data["open_duration"]),
            trips=int(data["trips"]),
            consecutive_failures=int(data["consecutive_failures"]),
            half_open_taken=int(data["half_open_taken"]),
            half_open_successes=int(data["half_open_successes"]),
            not_permitted=int(data["not_permitted"]),
            window=window_from_dict(data["window"]),
        )


@runtime_checkable
class BreakerStore(Protocol):
    """Holds one breaker's :class:`BreakerRecord` and applies state-machine operations to it atomically."""

    def run(self, operation: Callable[[BreakerRecord, *Ts], R], /, *args: *Ts) -> R: ...

    def peek(self) -> tuple[BreakerState, int]: ...


class LocalBreakerStore:
    """The record in this process, guarded by a lock that is never held while a protected call runs."""

    __slots__ = ("_lock", "_record")

    def __init__(self, record: BreakerRecord) -> None:
        self._record = record
        self._lock = threading.Lock()

    def run(self, operation: Callable[[BreakerRecord, *Ts], R], /, *args: *Ts) -> R:
        # acquire/release rather than ``with``: this is on the path of every call that is not a lean
        # success, and the ``with`` protocol costs about twice as much on CPython 3.11.
        lock = self._lock
        lock.acquire()
        try:
            return operation(self._record, *args)
        finally:
            lock.release()

    def peek(self) -> tuple[BreakerState, int]:
        return self._record.gate

    @property
    def deferred(self) -> deque[int]:
        """The record's log of deferred successes, for the breaker's lean path (in-process only)."""
        return self._record.deferred

    def __repr__(self) -> str:
        return f"LocalBreakerStore(state={self._record.gate[0]}, generation={self._record.gate[1]})"
