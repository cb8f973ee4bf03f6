"""The generic retrier: exact waits under a seed, both faces alike, what it retries and what it raises."""

from __future__ import annotations

import random
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.resilience import (
    Backoff,
    BudgetConfig,
    Jitter,
    Retrier,
    RetryBudget,
    RetryPolicy,
    VirtualClock,
)


class Flaky:
    """Fails ``failures`` times with ``error()``, then returns ``value``; counts its calls."""

    def __init__(self, failures: int, error: Callable[[], Exception], value: object = "done") -> None:
        self.failures = failures
        self.error = error
        self.value = value
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error()
        return self.value

    async def async_call(self) -> object:
        return self()


POLICY = RetryPolicy(
    max_attempts=5, backoff=Backoff(initial=1.0, multiplier=2.0, max_delay=30.0, jitter=Jitter.FULL)
)


def test_waits_are_exactly_the_seeded_full_jitter_sequence() -> None:
    clock = VirtualClock()
    retrier = Retrier(POLICY, on=ConnectionError, clock=clock, rng=random.Random(2024))
    flaky = Flaky(3, ConnectionError)

    assert retrier.call(flaky) == "done"

    reference = random.Random(2024)
    assert clock.sleeps == [reference.uniform(0, ceiling) for ceiling in (1.0, 2.0, 4.0)]
    assert flaky.calls == 4


@pytest.mark.anyio
async def test_the_async_face_waits_exactly_as_the_sync_face() -> None:
    sync_clock, async_clock = VirtualClock(), VirtualClock()
    sync_flaky, async_flaky = Flaky(4, ConnectionError), Flaky(4, ConnectionError)

    sync_result = Retrier(POLICY, on=ConnectionError, clock=sync_clock, rng=random.Random(9)).call(sync_flaky)
    async_result = await Retrier(POLICY, on=ConnectionError, clock=async_clock, rng=random.Random(9)).acall(
        async_flaky.async_call
    )

    assert async_result == sync_result == "done"
    assert async_clock.sleeps == sync_clock.sleeps
    assert len(sync_clock.sleeps) == 4


def test_the_last_exception_is_raised_unchanged_when_attempts_run_out() -> None:
    errors: list[Exception] = []

    def fail() -> None:
        errors.append(ConnectionError(f"attempt {len(errors) + 1}"))
        raise errors[-1]

    with pytest.raises(ConnectionError) as caught:
        Retrier(POLICY, on=ConnectionError, clock=VirtualClock(), rng=random.Random(0)).call(fail)

    assert len(errors) == 5
    assert caught.value is errors[-1]


def test_an_exception_outside_on_is_raised_at_once() -> None:
    clock = VirtualClock()
    flaky = Flaky(1, lambda: KeyError("not transient"))

    with pytest.raises(KeyError):
        Retrier(POLICY, on=(ConnectionError, TimeoutError), clock=clock).call(flaky)

    assert flaky.calls == 1
    assert clock.sleeps == []


def test_a_predicate_decides_per_exception() -> None:
    flaky = Flaky(2, lambda: ValueError("transient"))

    result = Retrier(POLICY, on=lambda exc: "transient" in str(exc), clock=VirtualClock()).call(flaky)

    assert result == "done"
    assert flaky.calls == 3


def test_results_can_be_retried_and_the_last_one_is_returned_when_attempts_run_out() -> None:
    answers = iter([None, None, "late", "never"])
    retrier = Retrier(POLICY, retry_on_result=lambda r: r is None, clock=VirtualClock())

    assert retrier.call(lambda: next(answers)) == "late"

    always_none = Retrier(POLICY, retry_on_result=lambda r: r is None, clock=(clock := VirtualClock()))
    assert always_none.call(lambda: None) is None
    assert len(clock.sleeps) == 4


def _status_error(status: int, headers: dict[str, str]) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "https://api.example/v1/charges")
    response = httpx.Response(status, headers=headers, request=request)
    return httpx.HTTPStatusError(f"{status}", request=request, response=response)


def test_by_default_http_errors_are_judged_by_the_taxonomy_and_retry_after_is_honoured() -> None:
    clock = VirtualClock()
    flaky = Flaky(1, lambda: _status_error(429, {"Retry-After": "7"}))

    assert Retrier(POLICY, clock=clock, rng=random.Random(0)).call(flaky) == "done"

    assert clock.sleeps == [7.0]  # the full-jitter delay is below 1 s, Retry-After raises it to 7


def test_by_default_a_decline_or_a_plain_bug_is_not_retried() -> None:
    decline = Flaky(1, lambda: _status_error(402, {}))
    bug = Flaky(1, lambda: RuntimeError("bug"))

    with pytest.raises(httpx.HTTPStatusError):
        Retrier(POLICY, clock=VirtualClock()).call(decline)
    with pytest.raises(RuntimeError):
        Retrier(POLICY, clock=VirtualClock()).call(bug)

    assert (decline.calls, bug.calls) == (1, 1)


def test_stripe_should_retry_false_stops_even_a_server_error() -> None:
    flaky = Flaky(1, lambda: _status_error(500, {"Stripe-Should-Retry": "false"}))

    with pytest.raises(httpx.HTTPStatusError):
        Retrier(POLICY, clock=VirtualClock()).call(flaky)

    assert flaky.calls == 1


def test_an_error_carrying_retry_after_waits_at_least_that_long() -> None:
    class Busy(Exception):
        retry_after = 12.5

    clock = VirtualClock()
    assert Retrier(POLICY, on=Busy, clock=clock, rng=random.Random(0)).call(Flaky(1, Busy)) == "done"

    assert clock.sleeps == [12.5]


def test_a_spent_budget_stops_retries_across_calls() -> None:
    clock = VirtualClock()
    # No floor and 50 %: every two calls pay for one retry.
    budget = RetryBudget(BudgetConfig(ttl=10.0, min_retries_per_second=0.0, retry_ratio=0.5), clock=clock)
    retrier = Retrier(POLICY, on=ConnectionError, clock=clock, rng=random.Random(0), budget=budget)

    outcomes = []
    for _ in range(4):
        try:
            outcomes.append(retrier.call(Flaky(10, ConnectionError)))
        except ConnectionError:
            outcomes.append("gave up")

    # Deposits 1, 2, 3, 4 allow 0.5, 1, 1.5, 2 retries in total: the 2nd and 4th calls get one each.
    assert outcomes == ["gave up"] * 4
    assert len(clock.sleeps) == 2


@given(
    deadline=st.floats(min_value=1.0, max_value=60.0),
    durations=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=30),
    seed=st.integers(0, 2**32),
)
def test_the_retrier_never_sleeps_past_its_deadline(
    deadline: float, durations: list[float], seed: int
) -> None:
    clock = VirtualClock()
    policy = RetryPolicy(
        max_attempts=30,
        backoff=Backoff(initial=0.01, max_delay=0.02, jitter=Jitter.FULL),
        max_elapsed=deadline,
    )
    ends: list[float] = []
    calls = iter(durations)

    def slow_failure() -> None:
        clock.advance(next(calls, 0.0))
        ends.append(clock.now())
        raise ConnectionError

    with pytest.raises(ConnectionError):
        Retrier(policy, on=ConnectionError, clock=clock, rng=random.Random(seed)).call(slow_failure)

    # Each sleep began after an attempt ended and finished before the deadline.
    for end, sleep in zip(ends, clock.sleeps, strict=False):
        assert end + sleep < deadline
