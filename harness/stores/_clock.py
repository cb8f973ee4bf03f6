"""Unix time as a :class:`~harness.resilience.Clock`, for stores that outlive a boot or span hosts.

:class:`~harness.resilience.SystemClock` reads ``CLOCK_MONOTONIC``: right for leases and expiry among
processes on one machine during one boot (it is machine-wide), which is what a harness run is. But
its origin is the boot, and every host has its own, so a record written before a reboot, or by
another host, would carry times that mean nothing there (a lease could look valid for days). A store
that lives longer than that, or a Redis shared by several hosts, needs Unix time in ``now()``; this
is the one place in :mod:`harness.stores` that reads it. (Not ``WallClock``: that name is the
resilience library's protocol for clocks that *also* know the calendar time through ``wall()``.)
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["UnixClock"]


class UnixClock:
    """``now()`` is seconds since the Unix epoch; sleeps are real. Satisfies ``Clock``."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def sleep_async(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    def __repr__(self) -> str:
        return "UnixClock()"
