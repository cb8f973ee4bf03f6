"""Retry policy as a pure decision: given what happened, how long to wait before the next attempt.

The policy never sleeps and never reads a clock; the caller passes the elapsed time and a seeded
``random.Random`` and does the sleeping itself. That keeps delays exactly reproducible and lets the
policy refuse a sleep that would end past the deadline (the overshoot tenacity needed
``stop_before_delay`` for).
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass, field

from harness.resilience._errors import ErrorClass

__all__ = ["Backoff", "Jitter", "RetryPolicy"]


class Jitter(enum.StrEnum):
    """How randomness spreads the delays of many clients retrying at once."""

    NONE = "none"
    FULL = "full"
    """uniform(0, d): the AWS "full jitter"; best at breaking up herds."""
    EQUAL = "equal"
    """d/2 + uniform(0, d/2): never shorter than half the computed delay."""
    DECORRELATED = "decorrelated"
    """min(cap, uniform(initial, 3 * previous)): grows from the previous delay, not the attempt."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Backoff:
    """Exponential backoff with a cap: ``min(max_delay, initial * multiplier ** retry)``.

    ``multiplier=1`` gives a constant delay. ``retry`` counts from 0 for the first retry.
    """

    initial: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 5.0
    jitter: Jitter = Jitter.FULL

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial) and self.initial >= 0):
            raise ValueError(f"Backoff.initial must be a finite number >= 0 seconds, got {self.initial!r}")
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1):
            raise ValueError(
                f"Backoff.multiplier must be >= 1 (1 means constant delays), got {self.multiplier!r}"
            )
        if not (math.isfinite(self.max_delay) and self.max_delay >= self.initial):
            raise ValueError(
                f"Backoff.max_delay ({self.max_delay!r}) must be finite and >= initial ({self.initial!r});"
                " raise max_delay or lower initial"
            )

    def ceiling(self, retry: int) -> float:
        """The un-jittered delay before retry number ``retry`` (0-based), capped."""
        if retry < 0:
            raise ValueError(f"retry numbers start at 0, got {retry!r}")
        # Compare in log space so that retry 10_000 neither overflows nor loses the cap.
        if self.initial == 0:
            return 0.0
        if self.multiplier > 1 and retry * math.log(self.multiplier) > math.log(
            self.max_delay / self.initial
        ):
            return self.max_delay
        return min(self.max_delay, self.initial * self.multiplier**retry)

    def delay(self, retry: int, rng: random.Random, previous: float | None = None) -> float:
        """The jittered delay before retry number ``retry``; ``previous`` feeds decorrelated jitter."""
        ceiling = self.ceiling(retry)
        match self.jitter:
            case Jitter.NONE:
                return ceiling
            case Jitter.FULL:
                return rng.uniform(0.0, ceiling)
            case Jitter.EQUAL:
                return ceiling / 2 + rng.uniform(0.0, ceiling / 2)
            case Jitter.DECORRELATED:
                base = self.initial if previous is None else previous
                return min(self.max_delay, rng.uniform(self.initial, max(self.initial, 3 * base)))


def _default_retry_on(error: ErrorClass) -> bool:
    return error.retryable


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """When to try again, and after how long.

    ``max_attempts`` counts the first call (3 means one call and two retries). ``max_elapsed`` bounds
    the whole operation: no sleep is begun that would end past it. ``Retry-After`` from the upstream
    raises the delay, never lowers it, and a ``Retry-After`` beyond the deadline ends the retries.
    """

    max_attempts: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    max_elapsed: float | None = None
    retry_on: frozenset[ErrorClass] | None = None
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(
                f"RetryPolicy.max_attempts counts the first call and must be >= 1, got {self.max_attempts!r}"
            )
        if self.max_elapsed is not None and not self.max_elapsed > 0:
            raise ValueError(f"RetryPolicy.max_elapsed must be > 0 seconds or None, got {self.max_elapsed!r}")
        if self.max_retry_after < 0:
            raise ValueError(f"RetryPolicy.max_retry_after must be >= 0, got {self.max_retry_after!r}")

    def should_retry(self, error: ErrorClass) -> bool:
        if self.retry_on is None:
            return _default_retry_on(error)
        return error in self.retry_on

    def next_delay(
        self,
        *,
        attempt: int,
        error: ErrorClass,
        elapsed: float,
        rng: random.Random,
        retry_after: float | None = None,
        previous_delay: float | None = None,
    ) -> float | None:
        """The wait before attempt ``attempt + 1``, or ``None`` to stop retrying.

        ``attempt`` is the number of the attempt that just failed (1 for the first call).
        """
        if attempt >= self.max_attempts or not self.should_retry(error):
            return None
        delay = self.backoff.delay(attempt - 1, rng, previous_delay)
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            delay = max(delay, retry_after)
        if self.max_elapsed is not None and elapsed + delay > self.max_elapsed:
            return None
        return delay
