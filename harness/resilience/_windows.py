"""Sliding windows of call outcomes, with running totals so that reading a rate is O(1).

Written by hand because no library here keeps rolling counts over an injected clock: both windows
keep totals that are updated when a call is added and *subtracted* when a call (count window) or a
whole bucket (time window) falls out, instead of summing the window on every read (resilience4j's
fix for its issue #547). Both are plain data, so a breaker's state can be serialised as it is.

Not thread-safe by themselves: they live inside a breaker's state record, which is only touched
under its store's lock.
"""

from __future__ import annotations

import math
from typing import Any

from harness.resilience._breaker_config import CountWindow, TimeWindow

__all__ = ["CountRing", "TimeBuckets", "WindowTotals", "new_window", "window_from_dict"]

WindowTotals = tuple[int, int, int, int]
"""(calls, failures, slow calls, slow failures) currently in a window."""

_FAILED = 1
_SLOW = 2
_PRESENT = 4


class CountRing:
    """The outcomes of the last ``size`` calls, in a ring."""

    __slots__ = ("_next", "_outcomes", "calls", "failures", "size", "slow", "slow_failures")

    def __init__(self, size: int) -> None:
        self.size = size
        self._outcomes = [0] * size
        self._next = 0
        self.calls = 0
        self.failures = 0
        self.slow = 0
        self.slow_failures = 0

    def record(self, now: float, failed: bool, slow: bool) -> None:
        index = self._next
        self._next = index + 1 if index + 1 < self.size else 0
        code = _PRESENT | (_FAILED if failed else 0) | (_SLOW if slow else 0)
        outcomes = self._outcomes
        old = outcomes[index]
        if old == code:
            # The usual case once the ring is full of successes: the totals do not change.
            return
        outcomes[index] = code
        if old:
            self._count(old, -1)
        self._count(code, 1)

    def record_successes(self, count: int) -> None:
        """Record ``count`` successes at once (the breaker's lean path defers them and folds them in)."""
        if count >= self.size:
            self._outcomes = [_PRESENT] * self.size
            self.calls, self.failures, self.slow, self.slow_failures = self.size, 0, 0, 0
            self._next = (self._next + count) % self.size
            return
        for _ in range(count):
            self.record(0.0, False, False)

    def _count(self, code: int, step: int) -> None:
        self.calls += step
        if code & _FAILED:
            self.failures += step
        if code & _SLOW:
            self.slow += step
            if code & _FAILED:
                self.slow_failures += step

    def totals(self, now: float) -> WindowTotals:
        return self.calls, self.failures, self.slow, self.slow_failures

    def clear(self) -> None:
        self._outcomes = [0] * self.size
        self._next = 0
        self.calls = self.failures = self.slow = self.slow_failures = 0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "count", "size": self.size, "outcomes": list(self._outcomes), "next": self._next}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CountRing:
        ring = cls(int(data["size"]))
        ring._next = int(data["next"])
        for index, code in enumerate(data["outcomes"]):
            ring._outcomes[index] = int(code)
            if code:
                ring.calls += 1
                ring.failures += bool(code & _FAILED)
                ring.slow += bool(code & _SLOW)
                ring.slow_failures += (code & (_FAILED | _SLOW)) == (_FAILED | _SLOW)
        return ring


class TimeBuckets:
    """Call counts of the last ``buckets`` buckets of ``width`` seconds, by the breaker's clock.

    A call finished at time ``t`` lands in bucket ``floor(t / width)`` and leaves the window once the
    current bucket is ``buckets`` or more after it.
    """

    __slots__ = (
        "_calls",
        "_failures",
        "_slow",
        "_slow_failures",
        "buckets",
        "calls",
        "failures",
        "head",
        "slow",
        "slow_failures",
        "width",
    )

    def __init__(self, buckets: int, width: float) -> None:
        self.buckets = buckets
        self.width = width
        self.head: int | None = None
        self._calls = [0] * buckets
        self._failures = [0] * buckets
        self._slow = [0] * buckets
        self._slow_failures = [0] * buckets
        self.calls = self.failures = self.slow = self.slow_failures = 0

    def _advance(self, now: float) -> int:
        """Move the window to ``now``, subtracting every bucket that falls out; return now's slot."""
        current = math.floor(now / self.width)
        head = self.head
        if head is None or current - head >= self.buckets:
            if self.calls:
                self.clear()
            self.head = head = current
        elif current > head:
            for index in range(head + 1, current + 1):
                slot = index % self.buckets
                if self._calls[slot]:
                    self.calls -= self._calls[slot]
                    self.failures -= self._failures[slot]
                    self.slow -= self._slow[slot]
                    self.slow_failures -= self._slow_failures[slot]
                    self._calls[slot] = self._failures[slot] = 0
                    self._slow[slot] = self._slow_failures[slot] = 0
            self.head = head = current
        # A clock never goes back; if one did, the call joins the newest bucket rather than a stale one.
        return head % self.buckets

    def record(self, now: float, failed: bool, slow: bool) -> None:
        slot = self._advance(now)
        self._calls[slot] += 1
        self.calls += 1
        if failed:
            self._failures[slot] += 1
            self.failures += 1
        if slow:
            self._slow[slot] += 1
            self.slow += 1
            if failed:
                self._slow_failures[slot] += 1
                self.slow_failures += 1

    def totals(self, now: float) -> WindowTotals:
        self._advance(now)
        return self.calls, self.failures, self.slow, self.slow_failures

    def clear(self) -> None:
        n = self.buckets
        self._calls, self._failures, self._slow, self._slow_failures = [0] * n, [0] * n, [0] * n, [0] * n
        self.calls = self.failures = self.slow = self.slow_failures = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "time",
            "buckets": self.buckets,
            "width": self.width,
            "head": self.head,
            "calls": list(self._calls),
            "failures": list(self._failures),
            "slow": list(self._slow),
            "slow_failures": list(self._slow_failures),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TimeBuckets:
        window = cls(int(data["buckets"]), float(data["width"]))
        window.head = None if data["head"] is None else int(data["head"])
        window._calls = [int(v) for v in data["calls"]]
        window._failures = [int(v) for v in data["failures"]]
        window._slow = [int(v) for v in data["slow"]]
        window._slow_failures = [int(v) for v in data["slow_failures"]]
        window.calls = sum(window._calls)
        window.failures = sum(window._failures)
        window.slow = sum(window._slow)
        window.slow_failures = sum(window._slow_failures)
        return window


def new_window(spec: CountWindow | TimeWindow) -> CountRing | TimeBuckets:
    if isinstance(spec, CountWindow):
        return CountRing(spec.size)
    return TimeBuckets(spec.buckets, spec.bucket)


def window_from_dict(data: dict[str, Any]) -> CountRing | TimeBuckets:
    if data["kind"] == "count":
        return CountRing.from_dict(data)
    if data["kind"] == "time":
        return TimeBuckets.from_dict(data)
    raise ValueError(f"unknown window kind {data['kind']!r} in a stored breaker record")
