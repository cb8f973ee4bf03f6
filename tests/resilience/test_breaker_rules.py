"""The breaker's trip rules, windows, half-open rules and classification, each at its exact boundary.

Every threshold trips at or above its value; each test shows the call just below the boundary
keeping the breaker closed and the call at the boundary changing it. Time is a VirtualClock, moved
in quarter seconds so that every deadline is hit exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from harness.resilience import (
    BreakerConfig,
    BreakerEvent,
    BreakerState,
    BreakerTransition,
    CallOutcome,
    CircuitBreaker,
    CircuitOpenError,
    CountWindow,
    ErrorClass,
    SlowCall,
    TimeWindow,
    VirtualClock,
)
from tests.resilience.breakers import UpstreamError

S = BreakerState


class Rig:
    """A breaker on a virtual clock, with helpers to make calls of a given outcome and length."""

    def __init__(self, config: BreakerConfig, *, start: float = 0.0) -> None:
        self.clock = VirtualClock(start=start)
        self.transitions: list[BreakerTransition] = []
        self.events: list[BreakerEvent] = []
        self.breaker = CircuitBreaker(
            "upstream", config, clock=self.clock, listeners=(self.transitions.append,)
        )

    def succeed(self, taking: float = 0.0) -> None:
        self.breaker.call(self._upstream(taking, None))

    def fail(self, error: ErrorClass = ErrorClass.SERVER_ERROR, taking: float = 0.0) -> None:
        with pytest.raises(UpstreamError):
            self.breaker.call(self._upstream(taking, error))

    def refused(self) -> CircuitOpenError:
        with pytest.raises(CircuitOpenError) as refusal:
            self.breaker.call(lambda: None)
        return refusal.value

    def _upstream(self, taking: float, error: ErrorClass | None) -> Callable[[], None]:
        def upstream() -> None:
            self.clock.advance(taking)
            if error is not None:
                raise UpstreamError(error)

        return upstream

    @property
    def state(self) -> BreakerState:
        return self.breaker.state


def rate_config(**overrides: object) -> BreakerConfig:
    settings: dict[str, object] = {
        "failure_threshold": None,
        "failure_rate_threshold": 50,
        "window": CountWindow(size=10),
        "minimum_calls": 10,
        "open_duration": 5.0,
    }
    settings.update(overrides)
    return BreakerConfig(**settings)  # type: ignore[arg-type]


# -- consecutive failures ---------------------------------------------------------------------------


def test_consecutive_failures_trip_at_the_threshold_and_not_one_before() -> None:
    rig = Rig(BreakerConfig(failure_threshold=3))
    rig.fail()
    rig.fail()
    assert rig.state is S.CLOSED
    rig.fail()
    assert rig.state is S.OPEN
    assert rig.transitions[-1].reason == "3 consecutive failures"


def test_a_success_restarts_the_consecutive_count() -> None:
    rig = Rig(BreakerConfig(failure_threshold=3))
    rig.fail()
    rig.fail()
    rig.succeed()
    rig.fail()
    rig.fail()
    assert rig.state is S.CLOSED
    rig.fail()
    assert rig.state is S.OPEN


# -- failure rate -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("failures", "expected"), [(4, S.CLOSED), (5, S.OPEN)])
def test_failure_rate_trips_at_exactly_the_threshold(failures: int, expected: BreakerState) -> None:
    rig = Rig(rate_config())
    for _ in range(10 - failures):
        rig.succeed()
    for _ in range(failures):
        rig.fail()
    assert rig.state is expected
    if expected is S.OPEN:
        assert rig.transitions[-1].reason == "failure rate 50% >= 50% over 10 calls"


def test_failure_rate_is_not_judged_below_the_minimum_number_of_calls() -> None:
    rig = Rig(rate_config())
    for _ in range(9):
        rig.fail()
    assert rig.state is S.CLOSED
    assert rig.breaker.snapshot().failure_rate is None
    rig.fail()
    assert rig.state is S.OPEN


def test_count_window_forgets_its_oldest_calls() -> None:
    rig = Rig(rate_config(window=CountWindow(size=4), minimum_calls=4))
    for _ in range(4):
        rig.succeed()
    rig.fail()
    assert rig.state is S.CLOSED  # S S S F: 25 %
    rig.fail()
    assert rig.state is S.OPEN  # S S F F: 50 %, where 2 failures in all 6 calls would be 33 %


def test_count_window_totals_cover_the_last_calls_only() -> None:
    rig = Rig(rate_config(window=CountWindow(size=4), minimum_calls=4))
    rig.breaker.metrics_only()
    rig.fail()
    rig.fail()
    for _ in range(3):
        rig.succeed()
    rig.fail()
    snapshot = rig.breaker.snapshot()
    assert (snapshot.calls, snapshot.failures, snapshot.failure_rate) == (4, 1, 25.0)


def test_time_window_drops_a_bucket_once_it_is_a_full_window_old() -> None:
    # Buckets of 1 s, window of 3 s: a failure at 0.5 s (bucket 0) counts until bucket 3 begins.
    rig = Rig(
        rate_config(window=TimeWindow(duration=3.0, bucket=1.0), minimum_calls=1, failure_rate_threshold=100)
    )
    rig.breaker.metrics_only()  # record without tripping, to watch the window alone
    rig.clock.advance(0.5)
    rig.fail()
    rig.clock.advance(2.25)  # 2.75 s: bucket 2
    assert rig.breaker.snapshot().failures == 1
    rig.clock.advance(0.25)  # 3.0 s: bucket 3, bucket 0 has fallen out
    snapshot = rig.breaker.snapshot()
    assert (snapshot.calls, snapshot.failures, snapshot.failure_rate) == (0, 0, None)


def test_time_window_subtracts_only_the_buckets_that_fall_out() -> None:
    rig = Rig(
        rate_config(window=TimeWindow(duration=2.0, bucket=0.5), minimum_calls=1, failure_rate_threshold=100)
    )
    rig.breaker.metrics_only()
    rig.fail()  # t=0.0, bucket 0
    rig.clock.advance(0.75)
    rig.succeed()  # t=0.75, bucket 1
    rig.clock.advance(1.0)
    rig.fail(taking=0.0)  # t=1.75, bucket 3
    assert (rig.breaker.snapshot().calls, rig.breaker.snapshot().failures) == (3, 2)
    rig.clock.advance(0.25)  # t=2.0, bucket 4: bucket 0 (one failure) falls out
    assert (rig.breaker.snapshot().calls, rig.breaker.snapshot().failures) == (2, 1)
    rig.clock.advance(0.5)  # t=2.5, bucket 5: bucket 1 (one success) falls out
    assert (rig.breaker.snapshot().calls, rig.breaker.snapshot().failures) == (1, 1)
    rig.clock.advance(100.0)  # a long silence empties the window
    assert rig.breaker.snapshot().calls == 0


def test_time_window_trips_on_the_rate_of_recent_calls_only() -> None:
    config = rate_config(
        window=TimeWindow(duration=2.0, bucket=1.0), minimum_calls=2, failure_rate_threshold=50
    )
    rig = Rig(config)
    rig.fail()
    rig.succeed()  # 1 of 2 at t=0: 50 % trips
    assert rig.state is S.OPEN
    rig = Rig(config)
    rig.succeed()
    rig.clock.advance(2.0)  # the success falls out
    rig.succeed()
    rig.fail()  # 1 of 2 within the window: trips
    assert rig.state is S.OPEN


# -- slow calls -------------------------------------------------------------------------------------


def test_a_call_lasting_exactly_the_slow_call_duration_is_slow_and_a_shorter_one_is_not() -> None:
    rig = Rig(BreakerConfig(failure_threshold=3, slow_call_duration=1.0))
    slow: list[SlowCall] = []
    rig.breaker.on(SlowCall, slow.append)
    rig.succeed(taking=0.75)
    assert rig.breaker.snapshot().slow_calls == 0
    rig.succeed(taking=1.0)
    assert rig.breaker.snapshot().slow_calls == 1
    assert [(event.duration, event.threshold) for event in slow] == [(1.0, 1.0)]


@pytest.mark.parametrize(("slow_calls", "expected"), [(7, S.CLOSED), (8, S.OPEN)])
def test_slow_call_rate_trips_at_exactly_the_threshold(slow_calls: int, expected: BreakerState) -> None:
    config = rate_config(failure_rate_threshold=None, slow_call_rate_threshold=80, slow_call_duration=2.0)
    rig = Rig(config)
    for _ in range(10 - slow_calls):
        rig.succeed(taking=1.75)
    for _ in range(slow_calls):
        rig.succeed(taking=2.0)  # slow successes count towards the slow rate, not the failure rate
    assert rig.state is expected


def test_slow_failures_count_in_both_rates() -> None:
    config = rate_config(failure_rate_threshold=100, slow_call_rate_threshold=100, slow_call_duration=1.0)
    rig = Rig(config)
    rig.breaker.metrics_only()
    rig.fail(taking=1.0)
    rig.succeed(taking=1.0)
    rig.fail()
    snapshot = rig.breaker.snapshot()
    assert (snapshot.calls, snapshot.failures, snapshot.slow_calls, snapshot.slow_failures) == (3, 2, 2, 1)


# -- open and half-open -----------------------------------------------------------------------------


def trip(rig: Rig) -> None:
    while rig.state is not S.OPEN:
        rig.fail()


def test_open_refuses_until_exactly_the_open_duration_has_passed() -> None:
    rig = Rig(BreakerConfig(failure_threshold=1, open_duration=2.0))
    trip(rig)
    rig.clock.advance(1.75)
    refusal = rig.refused()
    assert (refusal.state, refusal.retry_after) == (S.OPEN, 0.25)
    rig.clock.advance(0.25)
    assert rig.state is S.HALF_OPEN


def test_half_open_admits_its_permits_and_refuses_the_rest() -> None:
    rig = Rig(BreakerConfig(failure_threshold=1, open_duration=1.0, half_open_permits=3, success_threshold=3))
    trip(rig)
    rig.clock.advance(1.0)
    permits = [rig.breaker.acquire() for _ in range(3)]
    refusal = rig.refused()
    assert (refusal.state, refusal.retry_after) == (S.HALF_OPEN, 0.0)
    assert rig.breaker.snapshot().half_open_permits_taken == 3
    for permit in permits[:2]:
        permit.success()
    assert rig.state is S.HALF_OPEN
    permits[2].success()
    assert rig.state is S.CLOSED
    assert rig.transitions[-1].reason == "3 probes succeeded"


def test_any_failed_probe_reopens() -> None:
    rig = Rig(BreakerConfig(failure_threshold=1, open_duration=1.0, half_open_permits=3, success_threshold=2))
    trip(rig)
    rig.clock.advance(1.0)
    first, second = rig.breaker.acquire(), rig.breaker.acquire()
    first.success()
    second.failure()
    assert rig.state is S.OPEN
    assert rig.transitions[-1].reason == "probe failed"


def test_a_slow_probe_reopens_when_a_slow_call_rule_is_set() -> None:
    config = BreakerConfig(
        failure_threshold=1, open_duration=1.0, slow_call_rate_threshold=50, slow_call_duration=0.5
    )
    rig = Rig(config)
    trip(rig)
    rig.clock.advance(1.0)
    rig.succeed(taking=0.5)
    assert rig.state is S.OPEN
    assert rig.transitions[-1].reason == "probe was slow"


def test_an_ignored_probe_gives_its_permit_back() -> None:
    rig = Rig(BreakerConfig(failure_threshold=1, open_duration=1.0, half_open_permits=1))
    trip(rig)
    rig.clock.advance(1.0)
    rig.fail(ErrorClass.DECLINE)  # a decline says nothing about the upstream
    assert rig.state is S.HALF_OPEN
    rig.succeed()  # the permit came back, so this probe is admitted
    assert rig.state is S.CLOSED


@pytest.mark.parametrize("after", [S.OPEN, S.CLOSED])
def test_half_open_gives_up_at_exactly_its_maximum_duration(after: BreakerState) -> None:
    config = BreakerConfig(
        failure_threshold=1, open_duration=1.0, max_half_open_duration=3.0, after_half_open_timeout=after
    )
    rig = Rig(config)
    trip(rig)
    rig.clock.advance(1.0)
    stuck = rig.breaker.acquire()  # a probe that never finishes
    rig.clock.advance(2.75)
    assert rig.state is S.HALF_OPEN
    rig.clock.advance(0.25)
    assert rig.state is after
    assert rig.transitions[-1].reason == "probes undecided after 3s in half-open"
    stuck.success()  # too late: it belongs to the half-open state that gave up
    assert rig.state is after
    assert rig.breaker.snapshot().half_open_successes == 0


def test_open_duration_grows_by_the_multiplier_up_to_its_cap_and_restarts_after_closing() -> None:
    config = BreakerConfig(
        failure_threshold=1, open_duration=1.0, open_duration_multiplier=2.0, max_open_duration=5.0
    )
    rig = Rig(config)
    trip(rig)
    observed = []
    for _ in range(5):
        opened_at = rig.clock.now()
        rig.clock.advance(rig.breaker.snapshot().retry_after - 0.25)
        assert rig.state is S.OPEN
        rig.clock.advance(0.25)
        assert rig.state is S.HALF_OPEN
        observed.append(rig.clock.now() - opened_at)
        rig.fail()  # the probe fails: open again, for longer
    assert observed == [1.0, 2.0, 4.0, 5.0, 5.0]
    rig.clock.advance(5.0)
    rig.succeed()
    assert rig.state is S.CLOSED
    trip(rig)
    assert rig.breaker.snapshot().open_duration == 1.0


# -- classification ---------------------------------------------------------------------------------


def test_declines_and_validation_errors_never_trip_the_breaker() -> None:
    rig = Rig(BreakerConfig(failure_threshold=3))
    for _ in range(50):
        rig.fail(ErrorClass.DECLINE)
        rig.fail(ErrorClass.VALIDATION)
    assert rig.state is S.CLOSED
    assert rig.breaker.snapshot().calls == 0
    rig.fail()
    rig.fail()
    rig.fail(ErrorClass.DECLINE)  # ignored: neither a failure nor a success for the streak
    rig.fail()
    assert rig.state is S.OPEN


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (503, CallOutcome.FAILURE),
        (500, CallOutcome.FAILURE),
        (402, CallOutcome.IGNORED),
        (422, CallOutcome.IGNORED),
    ],
)
def test_http_status_errors_and_responses_count_by_their_status(status: int, outcome: CallOutcome) -> None:
    request = httpx.Request("POST", "https://upstream.test/v1/payment_intents")
    response = httpx.Response(status, request=request)
    rig = Rig(BreakerConfig(failure_threshold=1))

    def raising() -> None:
        response.raise_for_status()

    with pytest.raises(httpx.HTTPStatusError):
        rig.breaker.call(raising)
    assert rig.state is (S.OPEN if outcome is CallOutcome.FAILURE else S.CLOSED)

    rig = Rig(BreakerConfig(failure_threshold=1))
    assert rig.breaker.call(lambda: response) is response
    assert rig.state is (S.OPEN if outcome is CallOutcome.FAILURE else S.CLOSED)


def test_custom_classifiers_decide_what_counts() -> None:
    breaker = CircuitBreaker(
        "custom",
        BreakerConfig(failure_threshold=2),
        clock=VirtualClock(),
        classify_exception=lambda exc: (
            CallOutcome.IGNORED if isinstance(exc, KeyError) else CallOutcome.FAILURE
        ),
        classify_result=lambda result: CallOutcome.FAILURE if result == "busy" else CallOutcome.SUCCESS,
    )
    for _ in range(5):
        with pytest.raises(KeyError):
            breaker.call(_raise(KeyError("no such card")))
    assert breaker.state is S.CLOSED
    breaker.call(lambda: "busy")
    breaker.call(lambda: "busy")
    assert breaker.state is S.OPEN


def test_a_cancelled_call_is_neither_a_success_nor_a_failure() -> None:
    rig = Rig(BreakerConfig(failure_threshold=1, open_duration=1.0))
    trip(rig)
    rig.clock.advance(1.0)

    def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        rig.breaker.call(cancelled)
    assert rig.state is S.HALF_OPEN
    assert rig.breaker.snapshot().half_open_permits_taken == 0


def test_an_inner_breakers_refusal_does_not_trip_an_outer_breaker() -> None:
    clock = VirtualClock()
    inner = CircuitBreaker("inner", BreakerConfig(failure_threshold=1), clock=clock)
    outer = CircuitBreaker("outer", BreakerConfig(failure_threshold=2), clock=clock)
    inner.force_open()
    for _ in range(5):
        with pytest.raises(CircuitOpenError):
            outer.call(inner.call, lambda: None)
    assert outer.state is S.CLOSED


def test_an_unclassified_exception_counts_as_a_failure() -> None:
    rig = Rig(BreakerConfig(failure_threshold=1))
    with pytest.raises(ConnectionError):
        rig.breaker.call(_raise(ConnectionError("refused")))
    assert rig.state is S.OPEN


def _raise(exc: BaseException) -> Callable[[], None]:
    def raising() -> None:
        raise exc

    return raising


# -- stale permits ----------------------------------------------------------------------------------


def test_a_call_admitted_before_a_trip_does_not_count_as_a_probe() -> None:
    rig = Rig(BreakerConfig(failure_threshold=1, open_duration=1.0, half_open_permits=1))
    slow = rig.breaker.acquire()  # admitted while closed
    trip(rig)
    rig.clock.advance(1.0)
    probe = rig.breaker.acquire()
    slow.failure()  # finishes late: must not re-open the half-open breaker
    assert rig.state is S.HALF_OPEN
    probe.success()
    assert rig.state is S.CLOSED


def test_a_success_admitted_before_a_reset_does_not_count_after_it() -> None:
    rig = Rig(BreakerConfig(failure_threshold=2))
    early = rig.breaker.acquire()
    rig.fail()
    rig.breaker.reset()
    rig.fail()
    early.success()  # admitted before the reset: must not clear the new streak
    rig.fail()
    assert rig.state is S.OPEN
