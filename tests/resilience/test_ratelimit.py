"""Token-bucket rate limiter: MIFOS's 100 per minute, exact waits under a VirtualClock, both faces."""

from __future__ import annotations

import threading

import pytest

from harness.resilience import ConfigError, RateLimitConfig, RateLimitedError, TokenBucket, VirtualClock

MIFOS = RateLimitConfig(limit=100, period=60.0)


def test_a_full_bucket_admits_a_burst_of_100_then_one_call_every_600_ms() -> None:
    clock = VirtualClock()
    bucket = TokenBucket("cbs", MIFOS, clock=clock)

    waits = [bucket.acquire() for _ in range(105)]

    assert waits[:100] == [0.0] * 100
    assert waits[100] == 0.6  # exact: 60 s / 100, not 1 / (100 / 60)
    # Later waits are measured from a clock that has summed 0.6 s steps, hence approx (1e-12).
    assert waits[100:] == pytest.approx([0.6] * 5, abs=1e-12)
    assert clock.sleeps == waits[100:]
    assert clock.now() == pytest.approx(3.0)


def test_the_bucket_refills_with_time_up_to_its_capacity() -> None:
    clock = VirtualClock()
    bucket = TokenBucket("cbs", RateLimitConfig(limit=10, period=1.0, burst=5), clock=clock)
    for _ in range(5):
        bucket.acquire()

    clock.advance(0.3)
    assert bucket.tokens == pytest.approx(3.0)
    clock.advance(100.0)
    assert bucket.tokens == 5.0  # never more than the burst


def test_concurrent_reservations_queue_up_in_whole_token_periods() -> None:
    clock = VirtualClock()
    bucket = TokenBucket("cbs", RateLimitConfig(limit=10, period=1.0), clock=clock)
    waits: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def reserve() -> None:
        start.wait()
        wait = bucket.reserve()
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=reserve) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(waits) == pytest.approx([0.0] * 10 + [n / 10 for n in range(1, 11)])


def test_a_caller_that_may_not_wait_that_long_is_refused_with_the_time_to_come_back() -> None:
    clock = VirtualClock()
    bucket = TokenBucket("cbs", RateLimitConfig(limit=100, period=60.0, max_wait=1.0), clock=clock)
    for _ in range(101):
        bucket.acquire()  # the 101st waits 0.6 s, within max_wait

    with pytest.raises(RateLimitedError) as caught:
        bucket.acquire(timeout=0.5)  # the next call would start 0.6 s from now

    assert caught.value.retry_after == pytest.approx(0.6)
    assert bucket.acquire() == pytest.approx(0.6)  # the refusal reserved nothing


@pytest.mark.anyio
async def test_the_async_face_waits_exactly_like_the_sync_face() -> None:
    sync_clock, async_clock = VirtualClock(), VirtualClock()
    sync_bucket = TokenBucket("cbs", MIFOS, clock=sync_clock)
    async_bucket = TokenBucket("cbs", MIFOS, clock=async_clock)

    sync_waits = [sync_bucket.acquire() for _ in range(110)]
    async_waits = [await async_bucket.acquire_async() for _ in range(110)]

    assert async_waits == sync_waits
    assert async_clock.sleeps == sync_clock.sleeps


def test_a_refunded_reservation_is_available_again() -> None:
    bucket = TokenBucket("cbs", RateLimitConfig(limit=1, period=10.0), clock=VirtualClock())
    bucket.reserve()
    assert bucket.reserve() == 10.0

    bucket.refund()

    assert bucket.reserve() == 10.0


def test_scaling_keeps_the_count_and_shrinks_the_period() -> None:
    scaled = MIFOS.scaled(0.01)

    assert scaled.limit == 100
    assert scaled.period == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "limit must be >= 1"),
        ({"period": 0.0}, "period must be"),
        ({"burst": 0}, "a bucket that holds no token admits nothing"),
        ({"max_wait": -1.0}, "max_wait must be >= 0"),
    ],
)
def test_rate_limit_config_refuses_bad_values(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RateLimitConfig(**kwargs)  # type: ignore[arg-type]
