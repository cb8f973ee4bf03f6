"""Hypothesis strategies for fault schedules.

Schedules shrink towards fewer, shorter, earlier faults of the simplest kinds, so a failing
certification reports the smallest schedule that still breaks the client.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from harness.chaos._faults import Blackhole, ConnectionReset, Fault, Latency, Outage, ResponseLoss
from harness.chaos._http_faults import (
    CallbackDelay,
    CallbackDrop,
    CallbackDuplicate,
    CommitThenFail,
    HttpError,
    MalformedBody,
    ServerDelay,
    Throttle,
    WrongContentType,
)
from harness.chaos._schedule import FaultSchedule, ScheduledFault

__all__ = ["callback_faults", "fault_schedules", "faults", "http_faults"]


def faults(*, http: bool = False) -> st.SearchStrategy[Fault]:
    """Network faults (what Toxiproxy realises); with ``http``, the fakes' request faults as well.

    HTTP faults are opt-in so that a backend without fakes (Toxiproxy alone) can take every draw.
    """
    network: st.SearchStrategy[Fault] = st.one_of(
        st.just(ResponseLoss()),
        st.just(Outage()),
        st.builds(ConnectionReset, after_ms=st.integers(0, 200)),
        st.builds(Latency, ms=st.integers(1, 500), jitter_ms=st.integers(0, 100)),
        st.just(Blackhole()),
    )
    return st.one_of(network, http_faults()) if http else network


def http_faults() -> st.SearchStrategy[Fault]:
    """Request faults every fake realises, on every route; shrinking prefers plain error statuses.

    Token revocation is left out: what it does differs too much between upstreams to be drawn blind.
    """
    probability = st.sampled_from([1.0, 0.5, 0.25])
    return st.one_of(
        st.builds(HttpError, status=st.sampled_from([503, 500, 502, 504]), probability=probability),
        st.builds(Throttle, retry_after=st.sampled_from([0.0, 0.1, 1.0]), probability=probability),
        st.builds(ServerDelay, ms=st.integers(1, 500), after_commit=st.booleans(), probability=probability),
        st.builds(CommitThenFail, drop=st.booleans(), probability=probability),
        st.builds(MalformedBody, truncated=st.booleans(), probability=probability),
        st.builds(WrongContentType, probability=probability),
    )


def callback_faults() -> st.SearchStrategy[Fault]:
    """Faults of callback and webhook delivery (M-Pesa and Stripe; no-ops on Fineract)."""
    return st.one_of(
        st.builds(CallbackDrop),
        st.builds(CallbackDuplicate, copies=st.integers(2, 3)),
        st.builds(CallbackDelay, ms=st.integers(1, 2000)),
    )


def fault_schedules(
    *,
    targets: Sequence[str] = ("stripe",),
    horizon: float = 3.0,
    max_faults: int = 3,
    kinds: st.SearchStrategy[Fault] | None = None,
    resolution: float = 0.01,
    min_duration: float | None = None,
) -> st.SearchStrategy[FaultSchedule]:
    """Schedules of up to ``max_faults`` faults, all starting and ending within ``horizon`` seconds.

    Starts and durations are multiples of ``resolution`` seconds, and no fault is shorter than
    ``min_duration`` (default one step). Shrinking drives a failing schedule to the shortest fault
    that still fails; against real time a fault far shorter than the gap between two operations
    fails only by chance, so explorations on real runs use a coarse resolution and minimum.
    """
    if not targets:
        raise ValueError("fault_schedules needs at least one target upstream")
    if not (resolution > 0 and horizon >= 2 * resolution):
        raise ValueError(
            f"fault_schedules needs resolution > 0 and a horizon of at least two steps, got"
            f" horizon={horizon!r}, resolution={resolution!r}"
        )
    steps = int(round(horizon / resolution, 6))
    shortest = max(1, int(round((min_duration or resolution) / resolution, 6)))
    if shortest >= steps:
        raise ValueError(
            f"fault_schedules: min_duration ({min_duration!r}) must be shorter than the horizon ({horizon!r})"
        )

    @st.composite
    def one(draw: st.DrawFn) -> ScheduledFault:
        start = draw(st.integers(0, steps - shortest))
        duration = draw(st.integers(shortest, steps - start))
        return ScheduledFault(
            start=round(start * resolution, 6),
            duration=round(duration * resolution, 6),
            target=draw(st.sampled_from(list(targets))),
            fault=draw(kinds if kinds is not None else faults()),
        )

    return st.lists(one(), max_size=max_faults).map(FaultSchedule.of)
