"""The smaller parts: timeouts and deadlines, fallbacks, metrics, correlation ids, error bodies, alarms."""

from __future__ import annotations

import asyncio
import random
import threading

import httpx
import pytest
from prometheus_client import CollectorRegistry

from harness.resilience import (
    ClientMetrics,
    ConfigError,
    Deadline,
    ErrorClass,
    FallbackChain,
    FallbackSource,
    TimeoutConfig,
    VirtualClock,
    classify_response,
    classify_status,
    new_correlation_id,
    percentile,
    wait_event,
    wait_event_async,
    wall_time,
)

# -- timeouts ---------------------------------------------------------------------------------------


def test_an_attempt_timeout_is_the_smaller_of_its_own_and_the_time_left() -> None:
    config = TimeoutConfig(attempt=5.0, total=30.0, connect=2.0)

    assert config.for_attempt(None) == httpx.Timeout(connect=2.0, read=5.0, write=5.0, pool=5.0)
    assert config.for_attempt(3.0) == httpx.Timeout(connect=2.0, read=3.0, write=3.0, pool=3.0)
    assert config.for_attempt(1.0) == httpx.Timeout(1.0)


def test_a_deadline_counts_down_on_the_injected_clock() -> None:
    clock = VirtualClock()
    deadline = Deadline.after(clock, 10.0)

    clock.advance(4.0)
    assert (deadline.remaining(), deadline.bound(8.0), deadline.expired()) == (6.0, 6.0, False)
    clock.advance(6.0)
    assert (deadline.remaining(), deadline.expired()) == (0.0, True)
    assert Deadline.after(clock, None).bound(None) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempt": 40.0, "total": 30.0}, "lower attempt or raise total"),
        ({"attempt": 0.0}, "attempt must be a finite number"),
        ({"attempt": 5.0, "read": 10.0}, "lower read or raise attempt"),
        ({"total": -1.0}, "total must be a finite number"),
    ],
)
def test_timeout_config_refuses_impossible_combinations(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TimeoutConfig(**kwargs)


# -- fallback --------------------------------------------------------------------------------------


def _down() -> list[str]:
    raise ConnectionError("down")


def _missing() -> int:
    raise KeyError("missing")


def test_fallback_chain_prefers_a_fresh_cache_then_the_last_good_value_then_the_default() -> None:
    clock = VirtualClock()
    chain: FallbackChain[list[str]] = FallbackChain(clock=clock, cache_ttl=60.0, default=[])
    answers: list[object] = [["robot-1"], ConnectionError("db down"), ConnectionError("db down")]

    def primary() -> list[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    fresh = chain.call("robots", primary)
    clock.advance(30.0)
    cached = chain.call("robots", primary)
    clock.advance(60.0)
    stale = chain.call("robots", primary)
    unknown = chain.call("other", _down)

    assert (fresh.value, fresh.source, fresh.is_fallback) == (["robot-1"], FallbackSource.PRIMARY, False)
    assert (cached.value, cached.source, cached.age) == (["robot-1"], FallbackSource.CACHE, 30.0)
    assert isinstance(cached.error, ConnectionError)
    assert (stale.source, stale.age) == (FallbackSource.LAST_KNOWN_GOOD, 90.0)
    assert (unknown.value, unknown.source, unknown.is_fallback) == ([], FallbackSource.DEFAULT, True)


def test_without_a_usable_fallback_the_primary_error_propagates() -> None:
    chain: FallbackChain[object] = FallbackChain(clock=VirtualClock(), on=(ConnectionError,))

    with pytest.raises(ConnectionError):
        chain.call("k", _down)
    with pytest.raises(KeyError):  # not listed in ``on``: never falls back
        chain.call("k", _missing)


@pytest.mark.anyio
async def test_the_async_fallback_marks_its_answers_the_same_way() -> None:
    chain: FallbackChain[str] = FallbackChain(clock=VirtualClock(), default="static")

    async def down() -> str:
        raise ConnectionError

    result = await chain.call_async("k", down)

    assert (result.value, result.source) == ("static", FallbackSource.DEFAULT)


# -- metrics ----------------------------------------------------------------------------------------


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]

    assert [percentile(values, q) for q in (0.5, 0.95, 0.99, 1.0)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([7.0], 0.99) == 7.0


def test_rolling_window_keeps_the_last_samples_and_exports_them() -> None:
    clock = VirtualClock()
    registry = CollectorRegistry()
    metrics = ClientMetrics(clock=clock, window=100, registry=registry)
    for n in range(150):  # only the last 100 (latencies 0.050 .. 0.149) stay in the window
        metrics.record("cbs", "repay", (n % 150) / 1000, None if n % 10 else ErrorClass.SERVER_ERROR)

    stats = metrics.stats("cbs", "repay")

    assert stats.count == 100
    assert (stats.p50, stats.p95, stats.p99) == (0.099, 0.144, 0.148)
    assert stats.error_rate == 0.1
    labels = {"upstream": "cbs", "operation": "repay"}
    assert (
        registry.get_sample_value("resilience_client_latency_seconds", labels | {"quantile": "0.95"}) == 0.144
    )
    assert registry.get_sample_value("resilience_client_error_ratio", labels) == 0.1
    assert registry.get_sample_value("resilience_client_attempts_total", labels | {"outcome": "ok"}) == 135.0


def test_samples_older_than_max_age_leave_the_window() -> None:
    clock = VirtualClock()
    metrics = ClientMetrics(clock=clock, max_age=60.0)
    metrics.record("cbs", "repay", 5.0, ErrorClass.TIMEOUT)
    clock.advance(61.0)
    metrics.record("cbs", "repay", 0.1, None)

    stats = metrics.stats("cbs", "repay")

    assert (stats.count, stats.error_rate, stats.p99) == (1, 0.0, 0.1)


def test_two_registries_do_not_share_series() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    ClientMetrics(clock=VirtualClock(), registry=first).record("a", "op", 0.1, None)
    ClientMetrics(clock=VirtualClock(), registry=second)

    assert (
        second.get_sample_value(
            "resilience_client_attempts_total", {"upstream": "a", "operation": "op", "outcome": "ok"}
        )
        is None
    )


# -- correlation ids, error bodies ------------------------------------------------------------------


def test_correlation_ids_are_uuid4_from_the_seeded_random() -> None:
    first = new_correlation_id(random.Random(3))

    assert first == new_correlation_id(random.Random(3))
    assert first != new_correlation_id(random.Random(4))
    assert first[14] == "4"


def _response(status: int, body: dict[str, object]) -> httpx.Response:
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            404,
            {"requestId": "1", "errorCode": "404.001.03", "errorMessage": "Invalid Access Token"},
            ErrorClass.AUTH,
        ),
        (
            500,
            {"requestId": "1", "errorCode": "500.003.02", "errorMessage": "Spike Arrest Violation"},
            ErrorClass.THROTTLED,
        ),
        (
            500,
            {
                "requestId": "ws_CO_1",
                "errorCode": "500.001.1001",
                "errorMessage": "The transaction is being processed",
            },
            ErrorClass.CONFLICT,
        ),
        (
            500,
            {"requestId": "1", "errorCode": "500.001.1001", "errorMessage": "Merchant does not exist"},
            ErrorClass.VALIDATION,
        ),
        (
            500,
            {"requestId": "1", "errorCode": "500.003.1001", "errorMessage": "Internal Server Error"},
            ErrorClass.SERVER_ERROR,
        ),
        (403, {"userMessageGlobalisationCode": "validation.msg.domain.rule.violation"}, ErrorClass.DECLINE),
        (403, {"userMessageGlobalisationCode": "error.msg.not.authorized"}, ErrorClass.AUTH),
        (402, {"error": {"type": "card_error"}}, ErrorClass.DECLINE),
        (200, {"ok": True}, None),
    ],
)
def test_upstream_error_bodies_override_misleading_statuses(
    status: int, body: dict[str, object], expected: ErrorClass | None
) -> None:
    assert classify_response(_response(status, body)) is expected


def test_408_is_a_retryable_timeout() -> None:
    assert classify_status(408) is ErrorClass.TIMEOUT
    assert ErrorClass.TIMEOUT.retryable


# -- virtual-time alarms and waits --------------------------------------------------------------------


def test_alarms_ring_in_time_order_when_the_clock_passes_them() -> None:
    clock = VirtualClock()
    rung: list[str] = []
    clock.call_at(5.0, lambda: rung.append("five"))
    clock.call_at(2.0, lambda: rung.append("two"))
    cancelled = clock.call_at(3.0, lambda: rung.append("three"))
    cancelled.cancel()

    clock.advance(4.0)
    assert rung == ["two"]
    clock.sleep(1.0)
    assert rung == ["two", "five"]
    clock.call_at(1.0, lambda: rung.append("past"))  # already due: rings at once
    assert rung[-1] == "past"


def test_a_timed_wait_ends_when_virtual_time_reaches_the_deadline() -> None:
    clock = VirtualClock()
    event = threading.Event()
    done = threading.Event()

    def wait() -> None:
        wait_event(clock, event, 10.0)
        done.set()

    waiter = threading.Thread(target=wait)
    waiter.start()

    clock.advance(9.0)
    assert not event.is_set()  # the alarm at 10 has not rung, so the waiter is still blocked
    clock.advance(1.0)
    waiter.join(10)
    assert done.is_set()
    assert event.is_set()  # woken by the alarm


@pytest.mark.anyio
async def test_an_async_timed_wait_ends_when_virtual_time_reaches_the_deadline() -> None:
    clock = VirtualClock()
    event = asyncio.Event()
    waiter = asyncio.create_task(wait_event_async(clock, event, 10.0))
    for _ in range(3):
        await asyncio.sleep(0)
    clock.advance(9.999)
    await asyncio.sleep(0)
    assert not waiter.done()

    clock.advance(0.001)
    await asyncio.wait_for(waiter, 10)

    assert event.is_set()  # woken by the alarm


def test_the_wall_clock_of_a_virtual_clock_moves_with_it() -> None:
    clock = VirtualClock(start=5.0, wall_start=1_700_000_000.0)
    clock.sleep(7.0)

    assert wall_time(clock) == 1_700_000_007.0
