"""Stripe's two kinds of 429: the request-rate limiter and ``lock_timeout`` on a busy object.

The rate limiter sits in front of everything else (so a 429'd idempotency key is never stored and may
later succeed, as Stripe documents). It is a token bucket per API key: ``rate`` tokens a second, at
most ``rate`` in the bucket, so a burst of 25 passes in test mode and the 26th in the same instant
does not. Object locks model Stripe's per-object lock: a second request that wants the same
PaymentIntent while one holds it waits up to the lock timeout, then gets ``lock_timeout``, which the
SDKs retry (``Stripe-Should-Retry: true``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

__all__ = ["LockTimeout", "ObjectLocks", "TokenBuckets"]


class LockTimeout(Exception):
    pass


class TokenBuckets:
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str, rate: float) -> bool:
        now = self._now()
        tokens, last = self._buckets.get(key, (rate, now))
        tokens = min(rate, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True

    def clear(self) -> None:
        self._buckets.clear()


class ObjectLocks:
    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, object_id: str, timeout: float) -> AsyncIterator[None]:
        lock, users = self._locks.get(object_id, (asyncio.Lock(), 0))
        self._locks[object_id] = (lock, users + 1)
        try:
            try:
                await asyncio.wait_for(lock.acquire(), timeout=timeout)
            except TimeoutError:
                raise LockTimeout(object_id) from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[object_id]
            if users == 1:
                del self._locks[object_id]
            else:
                self._locks[object_id] = (lock, users - 1)
