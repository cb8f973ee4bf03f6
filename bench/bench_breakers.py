"""Per-call overhead of our circuit breaker against pybreaker, circuitbreaker, purgatory and aiobreaker.

Every breaker is closed and wraps a no-op that succeeds, so what is timed is the breaker's own
bookkeeping on the path every healthy call takes. Each figure is the median over several runs of
(time of N guarded calls - time of N bare calls) / N, all in this one process; async breakers are
timed inside one asyncio event loop against a bare ``await``. Each peer is used through its
documented per-call API (purgatory's decorator looks its breaker up on every call: that is its API).

Run: ``python bench/bench_breakers.py`` (a few seconds). The "time window + rate + slow rules" line is
ours with every per-call feature on (two clock readings, a locked update, rate judgement): for
information, not a like-for-like figure, since no peer has those features.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aiobreaker
import circuitbreaker
import purgatory
import pybreaker

from harness.resilience import BreakerConfig, CircuitBreaker, TimeWindow

CALLS = 20_000
REPEATS = 9


def noop() -> None:
    return None


async def noop_async() -> None:
    return None


def time_sync(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(CALLS):
        fn()
    return time.perf_counter() - start


async def time_async(fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    for _ in range(CALLS):
        await fn()
    return time.perf_counter() - start


def overhead_sync(fn: Callable[[], object]) -> float:
    """Median ns per call above a bare call, measured alternately with the bare loop."""
    samples = []
    for _ in range(REPEATS):
        bare = time_sync(noop)
        guarded = time_sync(fn)
        samples.append((guarded - bare) / CALLS * 1e9)
    return statistics.median(samples)


def overhead_async(loop: asyncio.AbstractEventLoop, fn: Callable[[], Awaitable[object]]) -> float:
    samples = []
    for _ in range(REPEATS):
        bare = loop.run_until_complete(time_async(noop_async))
        guarded = loop.run_until_complete(time_async(fn))
        samples.append((guarded - bare) / CALLS * 1e9)
    return statistics.median(samples)


def sync_subjects() -> dict[str, Callable[[], object]]:
    ours = CircuitBreaker("bench", BreakerConfig(failure_threshold=5, open_duration=60.0))
    ours_decorated = ours.decorate(noop)
    rich = CircuitBreaker(
        "bench-rich",
        BreakerConfig(
            failure_threshold=5,
            failure_rate_threshold=50,
            slow_call_rate_threshold=80,
            slow_call_duration=1.0,
            window=TimeWindow(duration=10.0, bucket=1.0),
            open_duration=60.0,
        ),
    )

    def ours_permit() -> None:
        permit = ours.acquire()
        noop()
        permit.success()

    peer_pybreaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    peer_fabfuel = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=60, name="bench")(noop)
    purgatory_factory = purgatory.SyncCircuitBreakerFactory(default_threshold=5, default_ttl=60)
    purgatory_factory.initialize()
    peer_purgatory = purgatory_factory("bench")(noop)
    return {
        "ours: call(fn)": lambda: ours.call(noop),
        "ours: @decorated": ours_decorated,
        "ours: acquire()/success()": ours_permit,
        "ours: call(fn), time window + rate + slow rules": lambda: rich.call(noop),
        "pybreaker 1.4: call(fn)": lambda: peer_pybreaker.call(noop),
        "circuitbreaker 2.1 (fabfuel): @circuit": peer_fabfuel,
        "purgatory 3.0: @factory(name)": peer_purgatory,
    }


def async_subjects(loop: asyncio.AbstractEventLoop) -> dict[str, Callable[[], Awaitable[object]]]:
    ours = CircuitBreaker("bench-async", BreakerConfig(failure_threshold=5, open_duration=60.0))
    ours_decorated = ours.decorate(noop_async)
    peer_aiobreaker = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=60))
    peer_fabfuel = circuitbreaker.CircuitBreaker(
        failure_threshold=5, recovery_timeout=60, name="bench-async"
    )(noop_async)
    purgatory_factory = purgatory.AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=60)
    loop.run_until_complete(purgatory_factory.initialize())
    peer_purgatory = purgatory_factory("bench-async")(noop_async)
    return {
        "ours: await call_async(fn)": lambda: ours.call_async(noop_async),
        "ours: await @decorated": ours_decorated,
        "aiobreaker 1.2: await call_async(fn)": lambda: peer_aiobreaker.call_async(noop_async),
        "circuitbreaker 2.1 (fabfuel): await @circuit": peer_fabfuel,
        "purgatory 3.0: await @factory(name)": peer_purgatory,
    }


def report(title: str, figures: dict[str, float], ours_key: str) -> bool:
    ours = figures[ours_key]
    print(f"\n{title} (ns per call above a bare call; ratio = peer / {ours_key!r})")
    width = max(len(name) for name in figures)
    faster_than_all = True
    for name, ns in figures.items():
        if name.startswith("ours"):
            print(f"  {name:<{width}}  {ns:9.0f} ns")
        else:
            ratio = ns / ours if ours > 0 else float("inf")
            faster_than_all &= ratio > 1
            print(f"  {name:<{width}}  {ns:9.0f} ns   x{ratio:5.1f}")
    return faster_than_all


def main() -> int:
    started = time.perf_counter()
    sync_figures = {name: overhead_sync(fn) for name, fn in sync_subjects().items()}
    loop = asyncio.new_event_loop()
    try:
        async_figures = {name: overhead_async(loop, fn) for name, fn in async_subjects(loop).items()}
    finally:
        loop.close()
    sync_ok = report("sync, closed breaker, successful no-op call", sync_figures, "ours: call(fn)")
    async_ok = report(
        "asyncio, closed breaker, successful no-op call", async_figures, "ours: await call_async(fn)"
    )
    print(
        f"\n{CALLS} calls x {REPEATS} runs per figure, median; {time.perf_counter() - started:.1f} s in all"
    )
    print("ours has less overhead than every peer:", "yes" if sync_ok and async_ok else "NO")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
