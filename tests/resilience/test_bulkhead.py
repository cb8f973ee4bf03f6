"""Bulkhead: concurrency cap, bounded queue, priorities, and queue time-outs in virtual time.

Each behaviour is checked on threads and on asyncio tasks; queued callers are real blocked threads or
suspended tasks, and the tests wait for them to be queued by polling the bulkhead (never by sleeping).
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from harness.resilience import Bulkhead, BulkheadConfig, BulkheadFullError, ConfigError, Slot, VirtualClock
from tests.resilience.support import wait_for, wait_for_async


def _queue_thread(bulkhead: Bulkhead, name: str, order: list[str], **kwargs: float) -> threading.Thread:
    """A thread that waits for a slot, records its name when served (or refused), then releases."""

    def run() -> None:
        try:
            slot = bulkhead.acquire(**kwargs)  # type: ignore[arg-type]
        except BulkheadFullError:
            order.append(f"{name}: refused")
            return
        order.append(name)
        slot.release()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def test_admits_up_to_the_limit_queues_up_to_the_bound_and_refuses_the_rest() -> None:
    bulkhead = Bulkhead("cbs", BulkheadConfig(max_concurrent=2, max_queue=1), clock=VirtualClock())
    first, second = bulkhead.acquire(), bulkhead.acquire()
    order: list[str] = []
    waiter = _queue_thread(bulkhead, "third", order)
    wait_for(lambda: bulkhead.queued == 1, "the third caller to queue")

    with pytest.raises(BulkheadFullError, match="2 calls running and 1 waiting"):
        bulkhead.acquire()

    first.release()
    waiter.join(10)
    assert order == ["third"]
    second.release()
    assert (bulkhead.in_use, bulkhead.queued) == (0, 0)


def test_a_released_slot_goes_to_the_highest_priority_then_first_come() -> None:
    bulkhead = Bulkhead("cbs", BulkheadConfig(max_concurrent=1, max_queue=10), clock=VirtualClock())
    held = bulkhead.acquire()
    order: list[str] = []
    threads = []
    for name, priority in [("low-1", 0), ("high-1", 5), ("low-2", 0), ("high-2", 5), ("mid", 3)]:
        threads.append(_queue_thread(bulkhead, name, order, priority=priority))
        queued = len(threads)
        wait_for(lambda n=queued: bulkhead.queued == n, f"{name} to queue")

    held.release()
    for thread in threads:
        thread.join(10)

    assert order == ["high-1", "high-2", "mid", "low-1", "low-2"]


def test_a_queued_caller_is_refused_exactly_when_virtual_time_passes_its_wait() -> None:
    clock = VirtualClock()
    bulkhead = Bulkhead("cbs", BulkheadConfig(max_concurrent=1, max_queue=1, max_wait=5.0), clock=clock)
    held = bulkhead.acquire()
    order: list[str] = []
    waiter = _queue_thread(bulkhead, "waiter", order)
    wait_for(lambda: bulkhead.queued == 1, "the waiter to queue")

    clock.advance(4.999)
    assert bulkhead.queued == 1
    assert order == []

    clock.advance(0.001)
    waiter.join(10)
    assert order == ["waiter: refused"]
    assert bulkhead.queued == 0
    held.release()
    assert bulkhead.in_use == 0


def test_the_callers_own_timeout_shortens_the_wait() -> None:
    clock = VirtualClock()
    bulkhead = Bulkhead("cbs", BulkheadConfig(max_concurrent=1, max_queue=1, max_wait=30.0), clock=clock)
    held = bulkhead.acquire()
    order: list[str] = []
    waiter = _queue_thread(bulkhead, "waiter", order, timeout=2.0)
    wait_for(lambda: bulkhead.queued == 1, "the waiter to queue")

    clock.advance(2.0)
    waiter.join(10)

    assert order == ["waiter: refused"]
    held.release()


def test_a_slot_is_a_context_manager_and_cannot_be_released_twice() -> None:
    bulkhead = Bulkhead("cbs", BulkheadConfig(max_concurrent=1), clock=VirtualClock())

    with bulkhead.acquire() as slot:
        assert isinstance(slot, Slot)
        assert bulkhead.in_use == 1
    assert bulkhead.in_use == 0
    with pytest.raises(RuntimeError, match="released twice"):
        slot.release()


@pytest.mark.anyio
async def test_async_callers_queue_by_priority_and_time_out_in_virtual_time() -> None:
    clock = VirtualClock()
    bulkhead = Bulkhead("cbs", BulkheadConfig(max_concurrent=1, max_queue=3, max_wait=5.0), clock=clock)
    held = await bulkhead.acquire_async()
    order: list[str] = []

    async def caller(name: str, priority: int) -> None:
        try:
            slot = await bulkhead.acquire_async(priority=priority)
        except BulkheadFullError:
            order.append(f"{name}: refused")
            return
        order.append(name)
        await clock.sleep_async(1.0)  # holds the slot for a second of virtual time
        slot.release()

    tasks = []
    for name, priority in [("low", 0), ("high", 9), ("late", 0)]:
        tasks.append(asyncio.create_task(caller(name, priority)))
        queued = len(tasks)
        await wait_for_async(lambda n=queued: bulkhead.queued == n, f"{name} to queue")
    with pytest.raises(BulkheadFullError):
        await bulkhead.acquire_async()

    held.release()
    await asyncio.gather(*tasks)

    # "high" holds the slot 1 s, then "low" 1 s; "late" has waited 2 s of its 5 and is served too.
    assert order == ["high", "low", "late"]

    blocker = await bulkhead.acquire_async()
    loner = asyncio.create_task(caller("loner", 0))
    await wait_for_async(lambda: bulkhead.queued == 1, "the loner to queue")
    clock.advance(5.0)
    await loner
    assert order[-1] == "loner: refused"
    blocker.release()
    assert (bulkhead.in_use, bulkhead.queued) == (0, 0)


@pytest.mark.anyio
async def test_a_cancelled_async_waiter_gives_its_place_back() -> None:
    bulkhead = Bulkhead("cbs", BulkheadConfig(max_concurrent=1, max_queue=1), clock=VirtualClock())
    held = await bulkhead.acquire_async()
    waiter = asyncio.create_task(bulkhead.acquire_async())
    await wait_for_async(lambda: bulkhead.queued == 1, "the waiter to queue")

    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter

    assert bulkhead.queued == 0
    held.release()
    assert bulkhead.in_use == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_concurrent": 0}, "max_concurrent must be >= 1"),
        ({"max_queue": -1}, "max_queue must be >= 0"),
        ({"max_queue": 1, "max_wait": -1.0}, "max_wait must be a finite number"),
        ({"max_queue": 0, "max_wait": 5.0}, "set max_queue > 0 or drop max_wait"),
    ],
)
def test_bulkhead_config_refuses_bad_values(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BulkheadConfig(**kwargs)  # type: ignore[arg-type]
