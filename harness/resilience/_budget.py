"""Retry budget: retries as a share of requests over a rolling window, against retry storms.

Per-call limits (``max_attempts``) do not stop a storm: when an upstream fails, every caller retries
its full quota at once and multiplies the load on the upstream that is already down. A budget caps
retries across *all* calls: each original request deposits ``retry_ratio`` of a retry, each retry
withdraws one, and a floor of ``min_retries_per_second`` keeps a quiet client able to retry at all.
Deposits and withdrawals expire after ``ttl`` seconds, so the budget recovers as the window rolls.

This is Finagle's design (20 % of requests plus 10 retries/s, deposits kept 10 s:
https://finagle.github.io/blog/2016/02/08/retry-budgets), also tower's ``TpsBudget``; the defaults
are Finagle's. Written here because none of the Python retry libraries has one (resilience.md §1b).
The window is ``buckets`` time buckets on the injected clock, so it is exact under a VirtualClock;
an entry expires between ``ttl - ttl/buckets`` and ``ttl`` after it was made.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from harness.resilience._clock import Clock
from harness.resilience._errors import ConfigError

__all__ = ["BudgetConfig", "RetryBudget"]

_EPSILON = 1e-9  # 0.2 * 3 is 0.6000000000000001 in floating point; budgets count whole retries


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetConfig:
    ttl: float = 10.0
    min_retries_per_second: float = 10.0
    retry_ratio: float = 0.2
    buckets: int = 10

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ttl) and self.ttl > 0):
            raise ConfigError(f"BudgetConfig.ttl must be a finite number of seconds > 0, got {self.ttl!r}")
        if not (math.isfinite(self.min_retries_per_second) and self.min_retries_per_second >= 0):
            raise ConfigError(
                f"BudgetConfig.min_retries_per_second must be >= 0, got {self.min_retries_per_second!r}"
            )
        if not (math.isfinite(self.retry_ratio) and self.retry_ratio >= 0):
            raise ConfigError(
                f"BudgetConfig.retry_ratio must be >= 0 (0.2 allows one retry per five requests),"
                f" got {self.retry_ratio!r}"
            )
        if self.min_retries_per_second == 0 and self.retry_ratio == 0:
            raise ConfigError(
                "BudgetConfig with retry_ratio=0 and min_retries_per_second=0 never allows a retry;"
                " set max_attempts=1 on the retry policy instead, or raise one of them"
            )
        if self.buckets < 1:
            raise ConfigError(f"BudgetConfig.buckets must be >= 1, got {self.buckets!r}")

    @property
    def reserve(self) -> float:
        """Retries allowed per window regardless of traffic."""
        return self.min_retries_per_second * self.ttl


class RetryBudget:
    """A thread-safe retry budget over an injected clock; share one per upstream."""

    def __init__(self, config: BudgetConfig | None = None, *, clock: Clock) -> None:
        self.config = config or BudgetConfig()
        self._clock = clock
        self._width = self.config.ttl / self.config.buckets
        self._lock = threading.Lock()
        # Per bucket: [epoch, deposits, withdrawals]; a bucket whose epoch is stale is empty.
        self._buckets = [[-1, 0, 0] for _ in range(self.config.buckets)]

    def deposit(self) -> None:
        """Record one original request (not a retry)."""
        with self._lock:
            self._bucket()[1] += 1

    def try_withdraw(self) -> bool:
        """Pay for one retry if the budget allows it."""
        with self._lock:
            current = self._bucket()
            if self._balance() < 1 - _EPSILON:
                return False
            current[2] += 1
            return True

    @property
    def balance(self) -> float:
        """How many retries the budget would allow right now."""
        with self._lock:
            self._bucket()
            return self._balance()

    def window(self) -> tuple[int, int]:
        """(requests, retries) counted in the current window."""
        with self._lock:
            epoch = self._epoch()
            live = [b for b in self._buckets if b[0] > epoch - self.config.buckets]
            return sum(b[1] for b in live), sum(b[2] for b in live)

    def _epoch(self) -> int:
        return math.floor(self._clock.now() / self._width)

    def _bucket(self) -> list[int]:
        epoch = self._epoch()
        bucket = self._buckets[epoch % self.config.buckets]
        if bucket[0] != epoch:
            bucket[0], bucket[1], bucket[2] = epoch, 0, 0
        return bucket

    def _balance(self) -> float:
        oldest = self._epoch() - self.config.buckets
        deposits = withdrawals = 0
        for epoch, deposited, withdrawn in self._buckets:
            if epoch > oldest:
                deposits += deposited
                withdrawals += withdrawn
        return self.config.reserve + self.config.retry_ratio * deposits - withdrawals

    def __repr__(self) -> str:
        return f"RetryBudget({self.config!r})"
