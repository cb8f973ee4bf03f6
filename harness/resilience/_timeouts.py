"""Per-attempt and overall timeouts, and the deadline that ties them together.

An operation gets one :class:`Deadline` (``total`` seconds from its start). Every attempt's timeout is
``min(attempt timeout, time left on the deadline)``, and every wait (a retry's sleep, a queue in the
bulkhead or the rate limiter) is bounded by the same deadline, so nothing inside an operation can run
past it: the deadline flows down the whole pipeline instead of each layer keeping its own clock.

The attempt timeout becomes an :class:`httpx.Timeout`, which httpx applies to each phase (pool,
connect, write, read) separately: a response that keeps trickling bytes can take longer than the
bound in total. The sync and async faces behave the same way on purpose, so that a scenario run
through either gives the same result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx

from harness.resilience._clock import Clock
from harness.resilience._errors import ConfigError

__all__ = ["Deadline", "TimeoutConfig"]


def _positive(name: str, value: float | None, *, optional: bool) -> None:
    if value is None and optional:
        return
    if value is None or not (math.isfinite(value) and value > 0):
        allowed = " or None" if optional else ""
        raise ConfigError(
            f"TimeoutConfig.{name} must be a finite number of seconds > 0{allowed}, got {value!r}"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class TimeoutConfig:
    """``attempt`` bounds one attempt, ``total`` the whole operation (retries and waits included).

    ``connect``/``read``/``write`` optionally give a phase a shorter limit than ``attempt`` (e.g.
    QuantForge's 5 s connect, 10 s read, 15 s write, 30 s overall, seed 003).
    """

    attempt: float = 10.0
    total: float | None = 30.0
    connect: float | None = None
    read: float | None = None
    write: float | None = None

    def __post_init__(self) -> None:
        _positive("attempt", self.attempt, optional=False)
        _positive("total", self.total, optional=True)
        for phase in ("connect", "read", "write"):
            value = getattr(self, phase)
            _positive(phase, value, optional=True)
            if value is not None and value > self.attempt:
                raise ConfigError(
                    f"TimeoutConfig.{phase} ({value:g} s) is above attempt ({self.attempt:g} s), which"
                    f" bounds every phase anyway; lower {phase} or raise attempt"
                )
        if self.total is not None and self.attempt > self.total:
            raise ConfigError(
                f"TimeoutConfig.attempt ({self.attempt:g} s) is above total ({self.total:g} s): no attempt"
                " can use more than the whole operation has; lower attempt or raise total"
            )

    def for_attempt(self, remaining: float | None) -> httpx.Timeout:
        """The httpx timeout for an attempt that starts with ``remaining`` seconds left."""
        bound = self.attempt if remaining is None else max(min(self.attempt, remaining), 0.0)

        def phase(limit: float | None) -> float:
            return bound if limit is None else min(limit, bound)

        return httpx.Timeout(
            connect=phase(self.connect), read=phase(self.read), write=phase(self.write), pool=bound
        )

    def scaled(self, factor: float) -> TimeoutConfig:
        """Every duration multiplied by ``factor`` (for loopback runs of a real system's settings)."""

        def s(value: float | None) -> float | None:
            return None if value is None else value * factor

        return TimeoutConfig(
            attempt=self.attempt * factor,
            total=s(self.total),
            connect=s(self.connect),
            read=s(self.read),
            write=s(self.write),
        )


class Deadline:
    """An absolute time on a clock by which an operation must be over; ``at=None`` never expires."""

    __slots__ = ("at", "clock")

    def __init__(self, clock: Clock, at: float | None) -> None:
        self.clock = clock
        self.at = at

    @classmethod
    def after(cls, clock: Clock, seconds: float | None) -> Deadline:
        return cls(clock, None if seconds is None else clock.now() + seconds)

    def remaining(self) -> float | None:
        """Seconds left (never negative), or ``None`` without a deadline."""
        if self.at is None:
            return None
        return max(self.at - self.clock.now(), 0.0)

    def expired(self) -> bool:
        return self.at is not None and self.clock.now() >= self.at

    def bound(self, seconds: float | None) -> float | None:
        """``seconds`` cut down to the time left; ``None`` only if both are unbounded."""
        left = self.remaining()
        if seconds is None:
            return left
        return seconds if left is None else min(seconds, left)

    def __repr__(self) -> str:
        return f"Deadline(at={self.at!r})"
