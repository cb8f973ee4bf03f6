"""Operations per second of the idempotency store and the dead-letter queue, per backend.

Backends, all in this one process and against one real ``redis-server`` per Redis variant (started
on a free loopback port and stopped at the end):

* ``memory``: the unit-test backend, a ceiling for the Python overhead of the services;
* ``sqlite``: the default, WAL with ``synchronous=NORMAL`` (survives a process kill);
* ``sqlite-full``: ``synchronous=FULL``, an fsync per commit (survives a power cut);
* ``redis``: no persistence; ``redis-aof``: ``appendonly yes`` + ``appendfsync always``.

Operations, each timed over N distinct keys or entries through the public API with a ~200-byte
payload: ``put`` claims a new key (``begin``), ``get`` reads a record, ``complete`` stores a result
under the lease, ``replay`` is ``with_idempotency`` on a completed key, ``enqueue`` parks a dead
letter, ``requeue`` replays one through a no-op handler (claim and resolve: two writes). Figures
are ops/s of one thread, the median over five slices of the N; the ratio rows compare each
backend to the default.

Run: ``python bench/bench_stores.py`` (about 40 s on a busy two-core machine).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from harness.resilience import SystemClock
from harness.stores import (
    DeadLetterQueue,
    ErrorInfo,
    IdempotencyStore,
    Lease,
    MemoryBackend,
    RedisBackend,
    RedisServer,
    SQLiteBackend,
    StoreBackend,
    WorkItem,
)

CHUNKS = 5
OPERATIONS = ("put", "get", "complete", "replay", "enqueue", "requeue")
SIZES = {"memory": 20_000, "sqlite": 3_000, "sqlite-full": 300, "redis": 2_000, "redis-aof": 500}
PAYLOAD = {
    "amount": 1500,
    "currency": "usd",
    "customer": "cus_Nffrfeufeuf",
    "description": "order 8812 for tenant t-17, venue v-3",
    "metadata": {"operation_id": "op-000000", "tenant": "t-17", "venue": "v-3"},
}
RESULT = {"id": "pi_3Mtw1bLkdIwHu7ix28a3tqPa", "status": "succeeded", "amount_received": 1500}
ERROR = ErrorInfo(error_class="timeout", message="read timed out after 10s", status=None)


def timed(n: int, step: Callable[[int], object]) -> float:
    """ops/s as the median over five consecutive slices of the N operations (the machine is shared)."""
    rates = []
    for chunk in range(CHUNKS):
        indices = range(chunk * n // CHUNKS, (chunk + 1) * n // CHUNKS)
        start = time.perf_counter()
        for i in indices:
            step(i)
        rates.append(len(indices) / (time.perf_counter() - start))
    return statistics.median(rates)


def measure(backend: StoreBackend, n: int) -> dict[str, float]:
    clock = SystemClock()
    store = IdempotencyStore(backend, clock=clock)
    dlq = DeadLetterQueue(backend, clock=clock)
    leases: list[Lease] = []
    entry_ids: list[str] = []

    def put(i: int) -> None:
        lease = store.begin(f"key-{i}", payload=PAYLOAD)
        assert isinstance(lease, Lease)
        leases.append(lease)

    def enqueue(i: int) -> None:
        item = WorkItem(operation_id=f"op-{i}", operation="charge", provider="stripe", payload=PAYLOAD)
        entry_ids.append(dlq.park(item, error=ERROR, attempts=3).id)

    figures = {
        "put": timed(n, put),
        "get": timed(n, lambda i: store.get(f"key-{i}")),
        "complete": timed(n, lambda i: store.complete(leases[i], RESULT)),
        "replay": timed(n, lambda i: store.with_idempotency(f"key-{i}", lambda: None, payload=PAYLOAD)),
        "enqueue": timed(n, enqueue),
        "requeue": timed(n, lambda i: dlq.requeue(entry_ids[i], lambda entry: None)),
    }
    assert store.stats().completed == n
    assert dlq.stats().by_status["resolved"] == n
    return figures


@contextmanager
def backends(folder: Path) -> Iterator[dict[str, StoreBackend]]:
    with ExitStack() as stack:
        redis_plain = stack.enter_context(RedisServer(folder / "redis"))
        redis_aof = stack.enter_context(RedisServer(folder / "redis-aof", durable=True))
        opened: dict[str, StoreBackend] = {
            "memory": MemoryBackend(),
            "sqlite": SQLiteBackend(folder / "normal.sqlite3"),
            "sqlite-full": SQLiteBackend(folder / "full.sqlite3", synchronous="FULL"),
            "redis": RedisBackend.from_url(redis_plain.url, namespace="bench"),
            "redis-aof": RedisBackend.from_url(redis_aof.url, namespace="bench"),
        }
        for backend in opened.values():
            stack.callback(backend.close)
        yield opened


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-stores-") as tmp, backends(Path(tmp)) as opened:
        results = {}
        for name, backend in opened.items():
            started = time.perf_counter()
            results[name] = measure(backend, SIZES[name])
            print(f"  {name:<12} n={SIZES[name]:>6}  {time.perf_counter() - started:5.1f}s", flush=True)
    names = list(results)
    print()
    print(f"{'ops/s':<10}" + "".join(f"{n:>13}" for n in names))
    for op in OPERATIONS:
        print(f"{op:<10}" + "".join(f"{results[n][op]:>13,.0f}" for n in names))
    print()
    print(f"{'vs sqlite':<10}" + "".join(f"{n:>13}" for n in names))
    for op in OPERATIONS:
        print(f"{op:<10}" + "".join(f"{results[n][op] / results['sqlite'][op]:>12.2f}x" for n in names))


if __name__ == "__main__":
    main()
