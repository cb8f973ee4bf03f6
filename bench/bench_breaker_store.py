"""Per-call overhead of the circuit breaker over the in-process store and over the shared Redis store.

The same breaker and config, once with its default :class:`~harness.resilience.LocalBreakerStore` and
once with a :class:`~harness.stores.RedisBreakerStore` on a real ``redis-server`` (no persistence,
loopback, started on a free port and stopped at the end). Three paths:

* ``closed, success``: the healthy path (a peek and a confirmation in Redis);
* ``closed, failure``: a failure recorded without tripping (a peek and a compare-and-set write);
* ``open, refused``: a call refused by an open breaker (a peek and a confirmed refusal).

Each figure is the median over several runs of (time of N guarded calls - time of N bare calls) / N,
in one thread of this process. The Redis column is also given in round trips: the overhead divided
by the median time of one ``PING`` on the same connection pool.

Run: ``python bench/bench_breaker_store.py`` (about 15 s on a busy two-core machine).
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.resilience import BreakerConfig, CircuitBreaker, CircuitOpenError, SystemClock
from harness.stores import RedisBreakerStore, RedisServer

REPEATS = 5
CALLS = {"local": 20_000, "redis": 1_000}
CONFIG = BreakerConfig(failure_threshold=5, open_duration=3600.0, max_half_open_duration=60.0)
NEVER_TRIPS = BreakerConfig(failure_threshold=10**9, open_duration=3600.0, max_half_open_duration=60.0)


class Boom(Exception):
    pass


def succeed() -> None:
    return None


def fail() -> None:
    raise Boom


def bare_failure() -> None:
    with contextlib.suppress(Boom):
        fail()


def timed(calls: int, fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return time.perf_counter() - start


def overhead(calls: int, guarded: Callable[[], object], bare: Callable[[], object]) -> float:
    """Median ns per call above the bare call, measured alternately with the bare loop."""
    samples = []
    for _ in range(REPEATS):
        plain = timed(calls, bare)
        samples.append((timed(calls, guarded) - plain) / calls * 1e9)
    return statistics.median(samples)


def paths(
    breakers: dict[str, CircuitBreaker],
) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    healthy, failing, tripped = breakers["healthy"], breakers["failing"], breakers["tripped"]

    def failure() -> None:
        with contextlib.suppress(Boom):
            failing.call(fail)

    def refused() -> None:
        with contextlib.suppress(CircuitOpenError):
            tripped.call(succeed)

    return {
        "closed, success": (lambda: healthy.call(succeed), succeed),
        "closed, failure": (failure, bare_failure),
        "open, refused": (refused, succeed),
    }


def main() -> None:
    clock = SystemClock()
    with tempfile.TemporaryDirectory(prefix="bench-breaker-store-") as tmp, RedisServer(Path(tmp)) as server:
        stores = {
            role: RedisBreakerStore.from_url(
                server.url, f"bench-{role}", NEVER_TRIPS if role == "failing" else CONFIG, clock=clock
            )
            for role in ("healthy", "failing", "tripped")
        }
        subjects = {
            "local": {
                role: CircuitBreaker(f"bench-{role}", store.config, clock=clock)
                for role, store in stores.items()
            },
            "redis": {role: store.breaker() for role, store in stores.items()},
        }
        for kind in subjects.values():
            kind["tripped"].transition_to_open()
        results: dict[str, dict[str, float]] = {}
        for kind, breakers in subjects.items():
            started = time.perf_counter()
            results[kind] = {
                path: overhead(CALLS[kind], guarded, bare)
                for path, (guarded, bare) in paths(breakers).items()
            }
            print(f"  {kind:<6} n={CALLS[kind]:>6}  {time.perf_counter() - started:5.1f}s", flush=True)
        client = stores["healthy"].client
        ping = statistics.median(
            timed(CALLS["redis"], client.ping) / CALLS["redis"] * 1e9 for _ in range(REPEATS)
        )
        for store in stores.values():
            store.close()

    print()
    print(f"{'per call':<18}{'local':>12}{'redis':>12}{'redis/local':>13}{'in PINGs':>10}")
    for path, local in results["local"].items():
        shared = results["redis"][path]
        figures = f"{local / 1e3:>10.2f}us{shared / 1e3:>10.1f}us{shared / local:>12.0f}x"
        print(f"{path:<18}{figures}{shared / ping:>10.1f}")
    print(f"{'(one PING)':<18}{'':>12}{ping / 1e3:>10.1f}us")


if __name__ == "__main__":
    main()
