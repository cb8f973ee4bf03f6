"""Token-bucket rate limiter on the injected clock (MIFOS: 100 requests per minute, seed 000).

The bucket holds up to ``burst`` tokens and refills at ``limit`` per ``period``. A caller that finds
it empty *reserves* the next token (the level goes negative) and is told exactly how long to wait;
it then waits through the clock's ``sleep``, so under a VirtualClock the waits are recorded exactly
and cost no real time. Reserving makes the limiter fair (callers are served in arrival order) and
makes the sync and async faces identical: both ask :meth:`TokenBucket.reserve`, then sleep their own
way. A caller whose wait would exceed its bound (``max_wait`` or its deadline) is refused at once
with :class:`~harness.resilience.RateLimitedError` and reserves nothing.

Levels are kept in token-periods (tokens x ``period``) so that the common waits come out exact:
with 100 per 60 s, the 101st call at time 0 waits 60 / 100 = 0.6 s, not 1 / 1.6666666666666667 s.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from harness.resilience._clock import Clock
from harness.resilience._errors import ConfigError, RateLimitedError

__all__ = ["RateLimitConfig", "TokenBucket"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RateLimitConfig:
    """``limit`` calls per ``period`` seconds, bursts of up to ``burst`` (default ``limit``)."""

    limit: int = 100
    period: float = 60.0
    burst: int | None = None
    max_wait: float | None = None

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ConfigError(f"RateLimitConfig.limit must be >= 1 call per period, got {self.limit!r}")
        if not (math.isfinite(self.period) and self.period > 0):
            raise ConfigError(
                f"RateLimitConfig.period must be a finite number of seconds > 0, got {self.period!r}"
            )
        if self.burst is not None and self.burst < 1:
            raise ConfigError(
                f"RateLimitConfig.burst must be >= 1 or None (= limit), got {self.burst!r}; a bucket"
                " that holds no token admits nothing"
            )
        if self.max_wait is not None and not (math.isfinite(self.max_wait) and self.max_wait >= 0):
            raise ConfigError(
                "RateLimitConfig.max_wait must be >= 0 seconds (0: never wait) or None,"
                f" got {self.max_wait!r}"
            )

    @property
    def capacity(self) -> int:
        return self.limit if self.burst is None else self.burst

    def scaled(self, factor: float) -> RateLimitConfig:
        """The same number of calls in ``factor`` times the period (for loopback runs)."""
        wait = None if self.max_wait is None else self.max_wait * factor
        return RateLimitConfig(limit=self.limit, period=self.period * factor, burst=self.burst, max_wait=wait)


class TokenBucket:
    """Thread-safe; one per upstream (or per credential, if the upstream limits per key)."""

    def __init__(self, name: str, config: RateLimitConfig | None = None, *, clock: Clock) -> None:
        self.name = name
        self.config = config or RateLimitConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._cost = self.config.period
        self._cap = self.config.capacity * self.config.period
        self._level = self._cap
        self._updated = clock.now()

    @property
    def tokens(self) -> float:
        """Tokens available now (negative: that many are reserved by waiting callers)."""
        with self._lock:
            self._refill()
            return self._level / self._cost

    def reserve(self, *, timeout: float | None = None) -> float:
        """Take the next token; return how long to wait before using it.

        Raise :class:`RateLimitedError` instead if that wait exceeds ``max_wait`` or ``timeout``.
        """
        limits = [t for t in (self.config.max_wait, timeout) if t is not None]
        with self._lock:
            self._refill()
            if self._level >= self._cost:
                self._level -= self._cost
                return 0.0
            wait = (self._cost - self._level) / self.config.limit
            if limits and wait > min(limits):
                raise RateLimitedError(
                    f"rate limiter {self.name!r}: the next call may start in {wait:.3f} s, longer than"
                    f" this caller may wait ({min(limits):.3f} s)",
                    retry_after=wait,
                )
            self._level -= self._cost
            return wait

    def refund(self) -> None:
        """Give back a reserved token that will not be used (a waiter was cancelled)."""
        with self._lock:
            self._refill()
            self._level = min(self._cap, self._level + self._cost)

    def acquire(self, *, timeout: float | None = None) -> float:
        """Reserve a token and sleep until it may be used; return the time waited."""
        wait = self.reserve(timeout=timeout)
        if wait > 0:
            self._clock.sleep(wait)
        return wait

    async def acquire_async(self, *, timeout: float | None = None) -> float:
        wait = self.reserve(timeout=timeout)
        if wait > 0:
            try:
                await self._clock.sleep_async(wait)
            except BaseException:
                self.refund()
                raise
        return wait

    def _refill(self) -> None:
        now = self._clock.now()
        if now > self._updated:
            self._level = min(self._cap, self._level + (now - self._updated) * self.config.limit)
            self._updated = now

    def __repr__(self) -> str:
        return f"TokenBucket({self.name!r}, {self.config.limit}/{self.config.period:g}s)"
