"""Retry maths: backoff kinds, jitter bounds, no overflow, deadlines, upstream signals, presets."""

from __future__ import annotations

import email.utils
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.resilience import (
    Backoff,
    BackoffKind,
    ConfigError,
    ErrorClass,
    Jitter,
    RetryPolicy,
    RetryPresets,
    RetryRun,
    RetrySignals,
    StopReason,
    VirtualClock,
    retry_after_seconds,
    should_retry_header,
)

# -- backoff ---------------------------------------------------------------------------------------


def test_exponential_backoff_without_jitter_doubles_up_to_the_cap() -> None:
    backoff = Backoff(initial=0.5, multiplier=2.0, max_delay=5.0, jitter=Jitter.NONE)

    delays = [backoff.delay(n, random.Random(0)) for n in range(6)]

    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_linear_backoff_grows_by_the_initial_delay_and_constant_stays() -> None:
    linear = Backoff(initial=1.0, max_delay=3.0, kind=BackoffKind.LINEAR, jitter=Jitter.NONE)
    constant = Backoff(initial=1.5, max_delay=3.0, kind=BackoffKind.CONSTANT, jitter=Jitter.NONE)

    assert [linear.ceiling(n) for n in range(5)] == [1.0, 2.0, 3.0, 3.0, 3.0]
    assert [constant.ceiling(n) for n in range(5)] == [1.5] * 5


def test_full_jitter_draws_uniformly_below_each_ceiling_from_the_injected_random() -> None:
    backoff = Backoff(initial=1.0, multiplier=2.0, max_delay=10.0, jitter=Jitter.FULL)
    reference = random.Random(42)

    rng = random.Random(42)

    delays = [backoff.delay(n, rng) for n in range(5)]

    assert delays == [reference.uniform(0, c) for c in (1.0, 2.0, 4.0, 8.0, 10.0)]


@pytest.mark.parametrize("retry", [1023, 1024, 1025, 10_000, 10**9])
@pytest.mark.parametrize("kind", list(BackoffKind))
@pytest.mark.parametrize("jitter", list(Jitter))
def test_delays_stay_finite_and_capped_far_past_attempt_1024(
    retry: int, kind: BackoffKind, jitter: Jitter
) -> None:
    """Polly #2163 and stamina 26.1.0 overflowed after 1024 attempts; the cap must hold instead."""
    backoff = Backoff(initial=0.1, multiplier=2.0, max_delay=30.0, kind=kind, jitter=jitter)

    delay = backoff.delay(retry, random.Random(retry), previous=30.0)

    assert math.isfinite(delay)
    assert 0.0 <= delay <= 30.0
    assert backoff.ceiling(retry) == (0.1 if kind is BackoffKind.CONSTANT else 30.0)


def test_a_policy_retrying_five_thousand_times_never_overflows() -> None:
    clock = VirtualClock()
    policy = RetryPolicy(
        max_attempts=5000, backoff=Backoff(initial=0.001, multiplier=2.0, max_delay=0.01, jitter=Jitter.EQUAL)
    )
    run = RetryRun(policy, clock=clock, rng=random.Random(1), started=clock.now())

    while (decision := run.after_failure(retryable=True)).retry:
        assert decision.delay is not None
        clock.sleep(decision.delay)

    assert decision.reason is StopReason.MAX_ATTEMPTS
    assert len(clock.sleeps) == 4999
    assert max(clock.sleeps) <= 0.01


backoffs = st.builds(
    Backoff,
    initial=st.floats(min_value=0.001, max_value=10.0),
    multiplier=st.floats(min_value=1.0, max_value=4.0),
    max_delay=st.floats(min_value=10.0, max_value=120.0),
    jitter=st.sampled_from(list(Jitter)),
    kind=st.sampled_from(list(BackoffKind)),
)


@given(backoff=backoffs, retry=st.integers(min_value=0, max_value=5000), seed=st.integers(0, 2**32))
def test_jitter_stays_within_its_documented_bounds(backoff: Backoff, retry: int, seed: int) -> None:
    rng = random.Random(seed)
    ceiling = backoff.ceiling(retry)
    previous = backoff.delay(max(retry - 1, 0), random.Random(seed + 1))

    delay = backoff.delay(retry, rng, previous)

    assert ceiling <= backoff.max_delay
    match backoff.jitter:
        case Jitter.NONE:
            assert delay == ceiling
        case Jitter.FULL:
            assert 0.0 <= delay <= ceiling
        case Jitter.EQUAL:
            assert ceiling / 2 <= delay <= ceiling
        case Jitter.DECORRELATED:
            assert backoff.initial <= delay <= min(backoff.max_delay, max(backoff.initial, 3 * previous))


@given(backoff=backoffs, retries=st.integers(min_value=0, max_value=300))
def test_total_ceiling_closed_form_equals_the_sum_of_the_ceilings(backoff: Backoff, retries: int) -> None:
    assert backoff.total_ceiling(retries) == pytest.approx(sum(backoff.ceiling(n) for n in range(retries)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": -1.0}, "initial must be a finite number >= 0"),
        ({"multiplier": 0.5}, "multiplier must be >= 1"),
        ({"initial": 10.0, "max_delay": 5.0}, "raise max_delay or lower initial"),
        ({"initial": 0.0, "jitter": Jitter.DECORRELATED}, "set initial > 0"),
        ({"max_delay": math.inf}, "max_delay"),
    ],
)
def test_backoff_refuses_bad_values_and_says_what_to_do(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Backoff(**kwargs)  # type: ignore[arg-type]


# -- the policy's decisions ------------------------------------------------------------------------


def test_policy_refuses_retries_whose_delays_cannot_fit_its_deadline_and_says_how_many_fit() -> None:
    # Ceilings 1, 2, 4, 8: after three retries 7 s have passed, a fourth would need 15 s of a 10 s budget.
    with pytest.raises(ConfigError, match=r"lower max_attempts to 4") as caught:
        RetryPolicy(
            max_attempts=10,
            backoff=Backoff(initial=1.0, multiplier=2.0, max_delay=100.0, jitter=Jitter.FULL),
            max_elapsed=10.0,
        )
    assert "max_elapsed" in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "counts the first call and must be >= 1"),
        ({"max_elapsed": 0.0}, "max_elapsed must be a finite number > 0"),
        ({"max_retry_after": -1.0}, "max_retry_after must be >= 0"),
    ],
)
def test_policy_refuses_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def _policy(**kwargs: object) -> RetryPolicy:
    defaults: dict[str, object] = {
        "max_attempts": 5,
        "backoff": Backoff(initial=1.0, multiplier=2.0, max_delay=8.0, jitter=Jitter.NONE),
    }
    return RetryPolicy(**(defaults | kwargs))  # type: ignore[arg-type]


def test_retry_after_raises_the_delay_but_never_lowers_it() -> None:
    policy = _policy()
    rng = random.Random(0)

    raised = policy.decide(
        attempt=1, retryable=True, elapsed=0, rng=rng, signals=RetrySignals(retry_after=3.0)
    )
    kept = policy.decide(attempt=3, retryable=True, elapsed=0, rng=rng, signals=RetrySignals(retry_after=0.5))

    assert raised.delay == 3.0
    assert kept.delay == 4.0


def test_retry_after_beyond_the_policy_limit_stops_instead_of_hammering_early() -> None:
    decision = _policy(max_retry_after=60.0).decide(
        attempt=1, retryable=True, elapsed=0, rng=random.Random(0), signals=RetrySignals(retry_after=61.0)
    )

    assert decision.delay is None
    assert decision.reason is StopReason.RETRY_AFTER_TOO_LONG


def test_stripe_should_retry_false_stops_a_retryable_error_and_true_retries_a_final_one() -> None:
    policy = _policy()
    rng = random.Random(0)

    refused = policy.decide(
        attempt=1, retryable=True, elapsed=0, rng=rng, signals=RetrySignals(should_retry=False)
    )
    forced = policy.decide(
        attempt=1, retryable=False, elapsed=0, rng=rng, signals=RetrySignals(should_retry=True)
    )
    ignored = _policy(honour_should_retry=False).decide(
        attempt=1, retryable=True, elapsed=0, rng=rng, signals=RetrySignals(should_retry=False)
    )

    assert refused.reason is StopReason.SERVER_SAID_NO
    assert forced.delay == 1.0
    assert ignored.delay == 1.0


def test_a_sleep_that_would_end_at_the_deadline_is_not_begun() -> None:
    policy = _policy(max_attempts=3, max_elapsed=10.0)
    rng = random.Random(0)

    assert policy.decide(attempt=2, retryable=True, elapsed=7.9, rng=rng).delay == 2.0
    assert policy.decide(attempt=2, retryable=True, elapsed=8.0, rng=rng).reason is StopReason.DEADLINE
    assert (
        policy.decide(attempt=1, retryable=True, elapsed=0, rng=rng, remaining=1.0).reason
        is StopReason.DEADLINE
    )


def test_next_delay_keeps_its_old_signature_and_meaning() -> None:
    policy = _policy(max_attempts=3)

    assert policy.next_delay(attempt=1, error=ErrorClass.RESET, elapsed=0, rng=random.Random(0)) == 1.0
    assert policy.next_delay(attempt=1, error=ErrorClass.DECLINE, elapsed=0, rng=random.Random(0)) is None
    assert policy.next_delay(attempt=3, error=ErrorClass.RESET, elapsed=0, rng=random.Random(0)) is None
    assert (
        policy.next_delay(attempt=1, error=ErrorClass.RESET, elapsed=0, rng=random.Random(0), retry_after=5)
        == 5
    )


@given(
    backoff=backoffs,
    max_attempts=st.integers(min_value=1, max_value=40),
    deadline=st.floats(min_value=0.01, max_value=100.0),
    durations=st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=40, max_size=40),
    retry_afters=st.lists(st.none() | st.floats(min_value=0.0, max_value=30.0), min_size=40, max_size=40),
    seed=st.integers(0, 2**32),
)
def test_no_sleep_ever_ends_at_or_past_the_deadline(
    *,
    backoff: Backoff,
    max_attempts: int,
    deadline: float,
    durations: list[float],
    retry_afters: list[float | None],
    seed: int,
) -> None:
    clock = VirtualClock()
    policy = RetryPolicy(max_attempts=max_attempts, backoff=backoff)
    run = RetryRun(policy, clock=clock, rng=random.Random(seed), started=0.0, deadline=deadline)

    for duration, retry_after in zip(durations, retry_afters, strict=True):
        clock.advance(duration)  # the attempt itself
        decision = run.after_failure(retryable=True, signals=RetrySignals(retry_after=retry_after))
        if decision.delay is None:
            break
        assert clock.now() + decision.delay < deadline
        clock.sleep(decision.delay)

    assert len(clock.sleeps) <= max_attempts - 1


# -- upstream signals ------------------------------------------------------------------------------


def test_retry_after_in_seconds() -> None:
    assert retry_after_seconds({"retry-after": "120"}) == 120.0
    assert retry_after_seconds({"retry-after": " 1.5 "}) == 1.5
    assert retry_after_seconds({"retry-after": "-3"}) is None
    assert retry_after_seconds({"retry-after": "nan"}) is None
    assert retry_after_seconds({}) is None


def test_retry_after_as_an_http_date_is_measured_against_the_response_date() -> None:
    headers = {"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT", "date": "Wed, 21 Oct 2015 07:28:00 GMT"}

    # The response's Date wins over a client clock that is an hour off.
    assert retry_after_seconds(headers, now_wall=0.0) == 10.0


def test_retry_after_as_an_http_date_falls_back_to_the_client_wall_clock() -> None:
    now = 1_700_000_000.0
    headers = {"retry-after": email.utils.formatdate(now + 7, usegmt=True)}

    assert retry_after_seconds(headers, now_wall=now) == 7.0
    assert retry_after_seconds(headers) is None  # no reference time at all: the date cannot be used
    assert (
        retry_after_seconds({"retry-after": email.utils.formatdate(now - 5, usegmt=True)}, now_wall=now)
        == 0.0
    )
    assert retry_after_seconds({"retry-after": "next tuesday"}, now_wall=now) is None


def test_stripe_should_retry_header_is_read_strictly() -> None:
    assert should_retry_header({"stripe-should-retry": "true"}) is True
    assert should_retry_header({"stripe-should-retry": "False"}) is False
    assert should_retry_header({"stripe-should-retry": "maybe"}) is None
    assert should_retry_header({}) is None


# -- presets -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "attempts", "initial", "cap"),
    [
        ("QUICK", 3, 0.5, 5.0),
        ("STANDARD", 5, 1.0, 30.0),
        ("AGGRESSIVE", 10, 2.0, 60.0),
        ("RATE_LIMITED", 5, 5.0, 120.0),
    ],
)
def test_presets_carry_seed_002_numbers(name: str, attempts: int, initial: float, cap: float) -> None:
    preset = RetryPresets.all()[name]

    assert preset.max_attempts == attempts
    assert (preset.backoff.initial, preset.backoff.max_delay, preset.backoff.multiplier) == (
        initial,
        cap,
        2.0,
    )
    retryable = {e for e in ErrorClass if preset.should_retry(e)}
    # Seed 002: network errors, 408 (TIMEOUT), 429 (THROTTLED), 5xx; not 409 or 4xx business errors.
    assert retryable == {
        ErrorClass.TIMEOUT,
        ErrorClass.CONNECT,
        ErrorClass.RESET,
        ErrorClass.SERVER_ERROR,
        ErrorClass.THROTTLED,
    }
