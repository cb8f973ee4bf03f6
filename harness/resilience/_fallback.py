"""Fallback chain: when the primary call fails, answer from the cache, the last known good value, or a
static default, and say so.

QuantForge's priority list (seed 003, "Fallback Strategies": cache-first, last known value, then
simulated/mock data) in the order that loses the least truth: a *cached* value is one younger than
``cache_ttl``; the *last known good* is the latest success of any age; the *default* is a fixed
value. Every answer is a :class:`FallbackResult` whose ``source`` and ``is_fallback`` tell the caller
(and the metrics) that the data did not come from the upstream just now, with the error that made
the primary fail and the age of the value served. Nothing here is silent.

Only reads belong behind a fallback: a charge that "falls back" to a stale answer would report a
payment that never happened, which is why the reference driver does not use one.
"""

from __future__ import annotations

import enum
import math
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from harness.resilience._clock import Clock
from harness.resilience._errors import ConfigError

__all__ = ["FallbackChain", "FallbackResult", "FallbackSource"]

T = TypeVar("T")


class FallbackSource(enum.StrEnum):
    PRIMARY = "primary"
    CACHE = "cache"
    LAST_KNOWN_GOOD = "last_known_good"
    DEFAULT = "default"


@dataclass(frozen=True, kw_only=True, slots=True)
class FallbackResult(Generic[T]):
    value: T
    source: FallbackSource
    error: BaseException | None = None
    """Why the primary failed (``None`` for a primary answer)."""
    age: float = 0.0
    """Seconds since the value was fetched from the primary (0 for primary and default answers)."""

    @property
    def is_fallback(self) -> bool:
        return self.source is not FallbackSource.PRIMARY


class _Missing(enum.Enum):
    MISSING = enum.auto()


MISSING = _Missing.MISSING


class FallbackChain(Generic[T]):
    """Per-key fallbacks over an injected clock; thread-safe.

    ``on`` lists the exceptions that trigger a fallback; anything else propagates. With
    ``cache_ttl=None`` there is no cache step, and without ``default`` there is no default step:
    when no step can answer, the primary's error propagates.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        cache_ttl: float | None = None,
        last_known_good: bool = True,
        default: T | _Missing = MISSING,
        on: tuple[type[BaseException], ...] = (Exception,),
    ) -> None:
        if cache_ttl is not None and not (math.isfinite(cache_ttl) and cache_ttl > 0):
            raise ConfigError(
                f"FallbackChain.cache_ttl must be a finite number of seconds > 0 or None, got {cache_ttl!r}"
            )
        if not on:
            raise ConfigError(
                "FallbackChain.on is empty, so no failure would ever fall back; list exceptions"
            )
        self._clock = clock
        self.cache_ttl = cache_ttl
        self.last_known_good = last_known_good
        self._default = default
        self._on = on
        self._lock = threading.Lock()
        self._values: dict[str, tuple[T, float]] = {}

    def call(self, key: str, fn: Callable[[], T]) -> FallbackResult[T]:
        try:
            value = fn()
        except self._on as exc:
            return self._fallback(key, exc)
        return self._remember(key, value)

    async def call_async(self, key: str, fn: Callable[[], Awaitable[T]]) -> FallbackResult[T]:
        try:
            value = await fn()
        except self._on as exc:
            return self._fallback(key, exc)
        return self._remember(key, value)

    def _remember(self, key: str, value: T) -> FallbackResult[T]:
        with self._lock:
            self._values[key] = (value, self._clock.now())
        return FallbackResult(value=value, source=FallbackSource.PRIMARY)

    def _fallback(self, key: str, error: BaseException) -> FallbackResult[T]:
        with self._lock:
            stored = self._values.get(key)
        if stored is not None:
            value, at = stored
            age = self._clock.now() - at
            if self.cache_ttl is not None and age < self.cache_ttl:
                return FallbackResult(value=value, source=FallbackSource.CACHE, error=error, age=age)
            if self.last_known_good:
                return FallbackResult(
                    value=value, source=FallbackSource.LAST_KNOWN_GOOD, error=error, age=age
                )
        if not isinstance(self._default, _Missing):
            return FallbackResult(value=self._default, source=FallbackSource.DEFAULT, error=error)
        raise error
