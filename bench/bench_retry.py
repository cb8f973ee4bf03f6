"""Per-call overhead of our retry (``Retrier``) against tenacity and stamina.

Two cases, each timed on a no-op function so that what is measured is the retry machinery itself:

* ``success``: the call succeeds the first time (the path every healthy call takes);
* ``one retry``: the call fails once with ``ConnectionError`` and succeeds on the retry, with a zero
  delay (no sleeping; our SystemClock skips ``sleep(0)``, tenacity gets ``wait_none()``, stamina
  ``wait_initial=0, wait_max=0, wait_jitter=0``).

Each figure is the median over several runs of (time of N calls through the library - time of N
calls through the smallest hand-written equivalent) / N, alternating the two loops, all in this one
process: a bare call for ``success``, ``try: f() except ConnectionError: f()`` for ``one retry``.
Async figures are taken the same way inside one asyncio loop. Each peer is used through its usual
per-call API (tenacity's decorator, which copies its ``Retrying`` on every call, and a reused
``Retrying`` object; stamina's decorator and ``RetryingCaller``). stamina's on-retry instrumentation
(logging and, with prometheus-client installed, a Prometheus counter) is switched off so that it is
timed as a retry library, not as a logger.

Run: ``python bench/bench_retry.py`` (about 20 s).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable

import stamina
import stamina.instrumentation
import tenacity

from harness.resilience import Backoff, Jitter, Retrier, RetryPolicy, SystemClock

REPEATS = 5
RUN_SECONDS = 0.04
"""Each timed run makes as many calls as fit in about this long (at least 200)."""


class Flaky:
    """Fails every other call: each guarded call is one failure and one success."""

    def __init__(self) -> None:
        self.fail = False

    def __call__(self) -> None:
        self.fail = not self.fail
        if self.fail:
            raise ConnectionError

    async def async_call(self) -> None:
        self()


def noop() -> None:
    return None


async def noop_async() -> None:
    return None


def time_loop(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return time.perf_counter() - start


async def time_loop_async(fn: Callable[[], Awaitable[object]], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return time.perf_counter() - start


def _calls(probe: float, probe_calls: int) -> int:
    return max(200, int(RUN_SECONDS / max(probe / probe_calls, 1e-9)))


def overhead(baseline: Callable[[], object], guarded: Callable[[], object]) -> float:
    """Median ns per call above the baseline, the two loops alternating."""
    calls = _calls(time_loop(guarded, 50), 50)
    samples = []
    for _ in range(REPEATS):
        bare = time_loop(baseline, calls)
        timed = time_loop(guarded, calls)
        samples.append((timed - bare) / calls * 1e9)
    return statistics.median(samples)


def overhead_async(
    loop: asyncio.AbstractEventLoop,
    baseline: Callable[[], Awaitable[object]],
    guarded: Callable[[], Awaitable[object]],
) -> float:
    calls = _calls(loop.run_until_complete(time_loop_async(guarded, 50)), 50)
    samples = []
    for _ in range(REPEATS):
        bare = loop.run_until_complete(time_loop_async(baseline, calls))
        timed = loop.run_until_complete(time_loop_async(guarded, calls))
        samples.append((timed - bare) / calls * 1e9)
    return statistics.median(samples)


def ours() -> Retrier:
    policy = RetryPolicy(max_attempts=3, backoff=Backoff(initial=0.0, max_delay=0.0, jitter=Jitter.NONE))
    return Retrier(policy, on=ConnectionError, clock=SystemClock(), rng=random.Random(0))


TENACITY = {
    "stop": tenacity.stop_after_attempt(3),
    "wait": tenacity.wait_none(),
    "retry": tenacity.retry_if_exception_type(ConnectionError),
    "reraise": True,
}
STAMINA = {"attempts": 3, "timeout": None, "wait_initial": 0.0, "wait_max": 0.0, "wait_jitter": 0.0}


def sync_subjects(fn: Callable[[], None]) -> dict[str, Callable[[], object]]:
    retrier = ours()
    retrying = tenacity.Retrying(**TENACITY)  # type: ignore[arg-type]
    caller = stamina.RetryingCaller(**STAMINA).on(ConnectionError)  # type: ignore[arg-type]
    return {
        "ours: Retrier.call": lambda: retrier.call(fn),
        "tenacity: @retry": tenacity.retry(**TENACITY)(fn),  # type: ignore[call-overload]
        "tenacity: Retrying()": lambda: retrying(fn),
        "stamina: @retry": stamina.retry(on=ConnectionError, **STAMINA)(fn),  # type: ignore[arg-type]
        "stamina: RetryingCaller": lambda: caller(fn),
    }


def async_subjects(fn: Callable[[], Awaitable[None]]) -> dict[str, Callable[[], Awaitable[object]]]:
    retrier = ours()
    retrying = tenacity.AsyncRetrying(**TENACITY)  # type: ignore[arg-type]
    caller = stamina.AsyncRetryingCaller(**STAMINA).on(ConnectionError)  # type: ignore[arg-type]
    return {
        "ours: Retrier.acall": lambda: retrier.acall(fn),
        "tenacity: @retry": tenacity.retry(**TENACITY)(fn),  # type: ignore[call-overload]
        "tenacity: AsyncRetrying()": lambda: retrying(fn),
        "stamina: @retry": stamina.retry(on=ConnectionError, **STAMINA)(fn),  # type: ignore[arg-type]
        "stamina: AsyncRetryingCaller": lambda: caller(fn),
    }


def report(title: str, results: dict[str, float]) -> None:
    ours_ns = next(v for k, v in results.items() if k.startswith("ours"))
    print(f"\n{title}")
    print(f"  {'subject':<30} {'ns/call':>10} {'peer/ours':>10}")
    for name, ns in results.items():
        ratio = "" if name.startswith("ours") else f"{ns / ours_ns:>9.1f}x"
        print(f"  {name:<30} {ns:>10.0f} {ratio:>10}")


def main() -> None:
    stamina.instrumentation.set_on_retry_hooks([])
    started = time.perf_counter()

    report("sync, success first time", {name: overhead(noop, fn) for name, fn in sync_subjects(noop).items()})

    flaky = Flaky()

    def by_hand() -> None:
        try:
            flaky()
        except ConnectionError:
            flaky()

    report(
        "sync, one retry with zero delay",
        {name: overhead(by_hand, fn) for name, fn in sync_subjects(flaky).items()},
    )

    loop = asyncio.new_event_loop()
    try:
        report(
            "async, success first time",
            {name: overhead_async(loop, noop_async, fn) for name, fn in async_subjects(noop_async).items()},
        )
        flaky_async = Flaky()

        async def by_hand_async() -> None:
            try:
                await flaky_async.async_call()
            except ConnectionError:
                await flaky_async.async_call()

        report(
            "async, one retry with zero delay",
            {
                name: overhead_async(loop, by_hand_async, fn)
                for name, fn in async_subjects(flaky_async.async_call).items()
            },
        )
    finally:
        loop.close()
    elapsed = time.perf_counter() - started
    print(
        f"\n(median of {REPEATS} runs of about {RUN_SECONDS * 1000:.0f} ms per figure;"
        f" {elapsed:.0f} s in all)"
    )


if __name__ == "__main__":
    main()
