"""Circuit breaker: stop calling an upstream that is failing, and probe it carefully when it may be back.

Calls do not run under the breaker's lock (pybreaker's one lock serialises every call); the lock only
guards the bookkeeping around a call. A call takes a :class:`Permit` before it starts and settles it
once with ``success()``, ``failure()`` or ``ignore()``, which is what makes half-open admission exact
under concurrency: a permit is counted when taken, not when the call ends. Each permit remembers the
breaker *generation* it was issued in, so a slow call that finishes after the breaker changed state
cannot corrupt the new state's counts.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from harness.resilience._clock import Clock, SystemClock

__all__ = [
    "BreakerConfig",
    "BreakerState",
    "BreakerTransition",
    "CircuitBreaker",
    "CircuitOpenError",
    "Permit",
]


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


LEGAL_TRANSITIONS: frozenset[tuple[BreakerState, BreakerState]] = frozenset(
    {
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    }
)


@dataclass(frozen=True, kw_only=True, slots=True)
class BreakerTransition:
    """A state change, as recorded in a run's history."""

    at: float
    breaker: str
    from_state: BreakerState
    to_state: BreakerState
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class BreakerConfig:
    """Consecutive-failure trip rule with a timed open state and a bounded half-open probe.

    The breaker opens when ``failure_threshold`` upstream failures arrive in a row ("at or above":
    the 5th consecutive failure of a threshold of 5 trips it). After ``open_duration`` seconds it
    admits up to ``half_open_permits`` probe calls; ``success_threshold`` successful probes close it
    and any failed probe re-opens it.
    """

    failure_threshold: int = 5
    open_duration: float = 30.0
    half_open_permits: int = 1
    success_threshold: int = 1

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError(f"BreakerConfig.failure_threshold must be >= 1, got {self.failure_threshold!r}")
        if not self.open_duration > 0:
            raise ValueError(f"BreakerConfig.open_duration must be > 0 seconds, got {self.open_duration!r}")
        if self.half_open_permits < 1:
            raise ValueError(f"BreakerConfig.half_open_permits must be >= 1, got {self.half_open_permits!r}")
        if not 1 <= self.success_threshold <= self.half_open_permits:
            raise ValueError(
                f"BreakerConfig.success_threshold ({self.success_threshold!r}) must be between 1 and"
                f" half_open_permits ({self.half_open_permits!r}), or the breaker could never close;"
                " raise half_open_permits or lower success_threshold"
            )


class CircuitOpenError(Exception):
    """Raised instead of calling the upstream while the breaker is open.

    ``retry_after`` is how many seconds remain until the next probe may be admitted.
    """

    def __init__(self, breaker: str, state: BreakerState, retry_after: float) -> None:
        self.breaker = breaker
        self.state = state
        self.retry_after = retry_after
        super().__init__(f"circuit {breaker!r} is {state}; next probe in {retry_after:.3f}s")


@dataclass(eq=False, slots=True)
class Permit:
    """Leave to make one call; settle it exactly once."""

    _breaker: CircuitBreaker
    generation: int
    state: BreakerState
    _settled: bool = field(default=False)

    def success(self) -> None:
        self._settle("success")

    def failure(self) -> None:
        self._settle("failure")

    def ignore(self) -> None:
        """The call ended in a way that says nothing about the upstream (e.g. a card decline)."""
        self._settle("ignore")

    def _settle(self, result: str) -> None:
        if self._settled:
            raise RuntimeError("a breaker permit was settled twice; settle each permit exactly once")
        self._settled = True
        self._breaker._settle(self, result)


Listener = Callable[[BreakerTransition], None]


class CircuitBreaker:
    """A thread-safe circuit breaker over an injected clock."""

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Clock | None = None,
        listeners: tuple[Listener, ...] = (),
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self._clock = clock or SystemClock()
        self._listeners = list(listeners)
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._generation = 0
        self._consecutive_failures = 0
        self._opened_at = 0.0
        self._half_open_taken = 0
        self._half_open_successes = 0

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    @property
    def state(self) -> BreakerState:
        with self._lock:
            events = self._refresh()
            state = self._state
        self._emit(events)
        return state

    def acquire(self) -> Permit:
        """Take leave to call the upstream, or raise :class:`CircuitOpenError`."""
        with self._lock:
            events = self._refresh()
            state = self._state
            if state is BreakerState.OPEN:
                remaining = self._opened_at + self.config.open_duration - self._clock.now()
                error: CircuitOpenError | None = CircuitOpenError(self.name, state, max(remaining, 0.0))
            elif state is BreakerState.HALF_OPEN and self._half_open_taken >= self.config.half_open_permits:
                error = CircuitOpenError(self.name, state, 0.0)
            else:
                error = None
                if state is BreakerState.HALF_OPEN:
                    self._half_open_taken += 1
                permit = Permit(self, self._generation, state)
        self._emit(events)
        if error is not None:
            raise error
        return permit

    @contextmanager
    def call(self) -> Iterator[Permit]:
        """Take a permit; an exception escaping the block settles it as a failure."""
        permit = self.acquire()
        try:
            yield permit
        except BaseException:
            if not permit._settled:
                permit.failure()
            raise
        if not permit._settled:
            permit.success()

    def reset(self) -> None:
        """Close the breaker by hand and forget its counts."""
        with self._lock:
            events = []
            if self._state is not BreakerState.CLOSED:
                events.append(self._transition(BreakerState.CLOSED, "manual reset"))
            self._consecutive_failures = 0
        self._emit(events)

    # -- internals; all called with the lock held except _emit ------------------------------------

    def _settle(self, permit: Permit, result: str) -> None:
        with self._lock:
            events = self._refresh()
            if permit.generation == self._generation:
                events += self._record(permit, result)
        self._emit(events)

    def _record(self, permit: Permit, result: str) -> list[BreakerTransition]:
        if self._state is BreakerState.CLOSED:
            if result == "success":
                self._consecutive_failures = 0
            elif result == "failure":
                self._consecutive_failures += 1
                if self._consecutive_failures >= self.config.failure_threshold:
                    return [
                        self._transition(
                            BreakerState.OPEN,
                            f"{self._consecutive_failures} consecutive failures",
                        )
                    ]
        elif self._state is BreakerState.HALF_OPEN:
            if result == "failure":
                return [self._transition(BreakerState.OPEN, "probe failed")]
            if result == "success":
                self._half_open_successes += 1
                if self._half_open_successes >= self.config.success_threshold:
                    return [self._transition(BreakerState.CLOSED, "probes succeeded")]
            else:
                # An ignored probe gives its permit back: it proved nothing either way.
                self._half_open_taken -= 1
        return []

    def _refresh(self) -> list[BreakerTransition]:
        if (
            self._state is BreakerState.OPEN
            and self._clock.now() >= self._opened_at + self.config.open_duration
        ):
            return [self._transition(BreakerState.HALF_OPEN, "open duration elapsed")]
        return []

    def _transition(self, to: BreakerState, reason: str) -> BreakerTransition:
        event = BreakerTransition(
            at=self._clock.now(),
            breaker=self.name,
            from_state=self._state,
            to_state=to,
            reason=reason,
        )
        self._state = to
        self._generation += 1
        self._consecutive_failures = 0
        self._half_open_taken = 0
        self._half_open_successes = 0
        if to is BreakerState.OPEN:
            self._opened_at = event.at
        return event

    def _emit(self, events: list[BreakerTransition]) -> None:
        for event in events:
            for listener in self._listeners:
                listener(event)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state})"
