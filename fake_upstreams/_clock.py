"""Time as a fake upstream sees it.

Two faces on purpose. The ledger and the request log are stamped with the real ``CLOCK_MONOTONIC``
(shared by every process on the machine, so the harness can lay upstream rows on its own timeline)
and the real wall clock. The API's own rules (token lifetimes, 24-hour idempotency retention,
Daraja's two-minute duplicate rule, when a pending prompt resolves) read :meth:`api_time`, which an
admin call can move forward: a test can skip a day of key retention without waiting a day, and the
ledger's timestamps stay true.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["SystemUpstreamClock", "UpstreamClock"]


@runtime_checkable
class UpstreamClock(Protocol):
    def monotonic(self) -> float:
        """Real monotonic seconds (CLOCK_MONOTONIC) for the ledger and the request log."""
        ...

    def time(self) -> float:
        """Real wall-clock seconds for the ledger and the request log."""
        ...

    def api_time(self) -> float:
        """Wall-clock seconds as the API's rules see them (may run ahead of :meth:`time`)."""
        ...

    def advance(self, seconds: float) -> None:
        """Move :meth:`api_time` forward."""
        ...

    def reset(self) -> None:
        """Bring :meth:`api_time` back to the real wall clock."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemUpstreamClock:
    """The real clocks, plus an offset for :meth:`api_time` that only ever grows."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def api_time(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        if not seconds >= 0:
            raise ValueError(f"the clock only moves forward: advance({seconds!r}); pass seconds >= 0")
        self.offset += seconds

    def reset(self) -> None:
        self.offset = 0.0

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    def __repr__(self) -> str:
        return f"SystemUpstreamClock(offset={self.offset!r})"
