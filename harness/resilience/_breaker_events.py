"""What a breaker tells its listeners, and what it reports when asked.

Events are frozen dataclasses so that a listener can keep them (the history recorder turns
:class:`BreakerTransition` into rows) and a test can compare them. They carry type names, never
exception objects or messages, so that nothing secret from a failed call reaches a log through them.

Listeners run on the caller's thread after the breaker's lock is released, so two threads may deliver
their transitions in the opposite order to the one in which they happened; ``generation`` orders a
breaker's transitions exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.resilience._breaker_states import BreakerState

__all__ = [
    "BreakerEvent",
    "BreakerReset",
    "BreakerSnapshot",
    "BreakerTransition",
    "CallFailed",
    "CallIgnored",
    "CallRejected",
    "CallSucceeded",
    "SlowCall",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class BreakerEvent:
    """Something that happened to one breaker at one time (by the breaker's clock)."""

    at: float
    breaker: str


@dataclass(frozen=True, kw_only=True, slots=True)
class BreakerTransition(BreakerEvent):
    """A state change, as recorded in a run's history.

    ``manual`` tells a move made by hand (``transition_to``, ``reset``...) from one the breaker made by
    itself; ``generation`` is the breaker generation the move started.
    """

    from_state: BreakerState
    to_state: BreakerState
    reason: str
    manual: bool = False
    generation: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class BreakerReset(BreakerEvent):
    """A closed breaker's counts were cleared by hand (a reset of an open breaker is a transition)."""

    state: BreakerState


@dataclass(frozen=True, kw_only=True, slots=True)
class CallSucceeded(BreakerEvent):
    """A call admitted in ``state`` succeeded after ``duration`` seconds."""

    state: BreakerState
    duration: float
    slow: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class CallFailed(BreakerEvent):
    """A call failed in a way that counts against the upstream."""

    state: BreakerState
    duration: float
    slow: bool
    error: str | None = None
    """The exception's type name, if an exception ended the call."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CallIgnored(BreakerEvent):
    """A call ended in a way that says nothing about the upstream's health (a decline, a bad request)."""

    state: BreakerState
    duration: float
    error: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SlowCall(BreakerEvent):
    """A call took ``threshold`` seconds or more (sent besides its success or failure event)."""

    state: BreakerState
    duration: float
    threshold: float


@dataclass(frozen=True, kw_only=True, slots=True)
class CallRejected(BreakerEvent):
    """A call was refused without reaching the upstream."""

    state: BreakerState
    retry_after: float


@dataclass(frozen=True, kw_only=True, slots=True)
class BreakerSnapshot:
    """A consistent reading of one breaker, for metrics exporters, dashboards and tests.

    Counts and rates are over the sliding window of the current closed (or metrics-only) period; a
    rate is ``None`` while the window holds fewer than ``minimum_calls`` calls, because it is not
    judged then. Rates are percentages.
    """

    at: float
    breaker: str
    state: BreakerState
    generation: int
    time_in_state: float
    calls: int
    failures: int
    slow_calls: int
    slow_failures: int
    failure_rate: float | None
    slow_call_rate: float | None
    consecutive_failures: int
    half_open_permits_taken: int
    half_open_successes: int
    not_permitted: int
    """Calls refused since the breaker was created."""
    trips: int
    """Trips since the breaker last closed; drives the growth of the open duration."""
    open_duration: float
    """How long the current (or last) open state lasts; 0 before the first trip."""
    retry_after: float
    """Seconds until a call may be admitted: 0 when one is, ``inf`` while forced open."""
