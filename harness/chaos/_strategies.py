"""Hypothesis strategies for fault schedules.

Schedules shrink towards fewer, shorter, earlier faults of the simplest kinds, so a failing
certification reports the smallest schedule that still breaks the client.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from harness.chaos._faults import Blackhole, ConnectionReset, Fault, Latency, Outage, ResponseLoss
from harness.chaos._schedule import FaultSchedule, ScheduledFault

__all__ = ["fault_schedules", "faults"]


def faults() -> st.SearchStrategy[Fault]:
    return st.one_of(
        st.just(ResponseLoss()),
        st.just(Outage()),
        st.builds(ConnectionReset, after_ms=st.integers(0, 200)),
        st.builds(Latency, ms=st.integers(1, 500), jitter_ms=st.integers(0, 100)),
        st.just(Blackhole()),
    )


def fault_schedules(
    *,
    targets: Sequence[str] = ("stripe",),
    horizon: float = 3.0,
    max_faults: int = 3,
    kinds: st.SearchStrategy[Fault] | None = None,
) -> st.SearchStrategy[FaultSchedule]:
    """Schedules of up to ``max_faults`` faults, all starting and ending within ``horizon`` seconds."""
    if not targets:
        raise ValueError("fault_schedules needs at least one target upstream")
    if not horizon > 0.02:
        raise ValueError(f"fault_schedules needs a horizon above 0.02 seconds, got {horizon!r}")
    step = 0.01

    @st.composite
    def one(draw: st.DrawFn) -> ScheduledFault:
        start = draw(st.integers(0, int(horizon / step) - 2)) * step
        duration = draw(st.integers(1, int((horizon - start) / step) - 1 or 1)) * step
        return ScheduledFault(
            start=round(start, 6),
            duration=round(duration, 6),
            target=draw(st.sampled_from(list(targets))),
            fault=draw(kinds if kinds is not None else faults()),
        )

    return st.lists(one(), max_size=max_faults).map(FaultSchedule.of)
