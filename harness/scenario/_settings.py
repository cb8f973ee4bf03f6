"""Upstream settings a scenario runs under: the fakes' run-time switches, each for a window of time.

Some conditions a scenario is about are neither a fault of the wire nor a fault of one request:
Stripe's request-rate limiter switched on, loans locked by Fineract's close-of-business job,
maker-checker switched on. The fakes expose them as run-time settings (``POST /__admin/config``,
:meth:`~harness.stack.UpstreamAdmin.configure`); an :class:`UpstreamSettings` says which values hold
from when to when. The runner applies each window on the run's timeline, restores the values it
replaced when the window closes, and in any case before the settle phase, so that a driver settles
against the upstream as it normally is (as it does once every fault is cleared).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["UpstreamSettings", "check_no_overlap"]


@dataclass(frozen=True, kw_only=True)
class UpstreamSettings:
    """``values`` in force on ``upstream`` from ``start`` until ``end`` seconds into the run.

    ``end=None`` keeps them until the workload is over. ``values`` is a partial settings object as
    the fake's admin API takes it, e.g. ``{"rate_limit_enabled": True}``; the fake checks every value
    and refuses a bad one with a message naming it.
    """

    upstream: str
    values: Mapping[str, object]
    start: float = 0.0
    end: float | None = None

    def __post_init__(self) -> None:
        if not self.upstream:
            raise ValueError("UpstreamSettings.upstream must name a fake upstream, e.g. 'stripe'")
        if not self.values:
            raise ValueError(
                "UpstreamSettings.values must set at least one setting, e.g. {'rate_limit_enabled': True}"
            )
        if not (math.isfinite(self.start) and self.start >= 0):
            raise ValueError(
                f"UpstreamSettings.start must be a finite number >= 0 seconds, got {self.start!r}"
            )
        if self.end is not None and not (math.isfinite(self.end) and self.end > self.start):
            raise ValueError(
                f"UpstreamSettings.end must be None (until the workload is over) or a finite number of"
                f" seconds after start ({self.start!r}), got {self.end!r}"
            )
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    def overlaps(self, other: UpstreamSettings) -> bool:
        """Whether both windows set the same setting of the same upstream at some moment."""
        if self.upstream != other.upstream or not set(self.values) & set(other.values):
            return False
        self_end = math.inf if self.end is None else self.end
        other_end = math.inf if other.end is None else other.end
        return self.start < other_end and other.start < self_end

    def describe(self) -> str:
        values = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        until = "the end of the workload" if self.end is None else f"{self.end:g}s"
        return f"{self.upstream}: {values} from {self.start:g}s until {until}"

    def to_json(self) -> dict[str, Any]:
        return {"upstream": self.upstream, "values": dict(self.values), "start": self.start, "end": self.end}


def check_no_overlap(windows: Sequence[UpstreamSettings]) -> None:
    """Refuse two windows that set one setting at once: restoring either would undo the other."""
    for i, first in enumerate(windows):
        for second in windows[i + 1 :]:
            if first.overlaps(second):
                raise ValueError(
                    f"settings windows overlap on the same setting: [{first.describe()}] and"
                    f" [{second.describe()}]; split them so that each setting has one value at a time"
                )
