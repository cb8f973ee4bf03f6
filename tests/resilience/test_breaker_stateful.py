"""The circuit breaker run step by step beside a naive reference model, in virtual time.

The model keeps every outcome of the current counting period in a plain list and recomputes the
window, the rates and the open durations from scratch, with exact fractions for the trip decisions;
the breaker keeps running totals in a ring or in time buckets, defers lean successes, admits
lock-free and gates stale permits by generation. Hypothesis drives both with the same calls
(successes, upstream failures, ignored errors, slow calls, held permits settled late), clock moves
(including to the exact deadlines) and manual moves, and checks after every step that they agree
and that the safety properties hold on the transitions the breaker emitted.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from harness.resilience import (
    AUTOMATIC_TRANSITIONS,
    LEGAL_TRANSITIONS,
    BreakerConfig,
    BreakerEvent,
    BreakerState,
    BreakerTransition,
    CallOutcome,
    CircuitBreaker,
    CircuitOpenError,
    CountWindow,
    ErrorClass,
    IllegalTransitionError,
    Permit,
    TimeWindow,
    VirtualClock,
)
from tests.resilience.breakers import UpstreamError

S = BreakerState
ADMINISTRATIVE = (S.DISABLED, S.FORCED_OPEN, S.METRICS_ONLY)
COUNTING = (S.CLOSED, S.DISABLED, S.METRICS_ONLY)
# Upstream failures count against the breaker; the others must never trip it.
ERROR_CLASSES = (
    ErrorClass.SERVER_ERROR,
    ErrorClass.TIMEOUT,
    ErrorClass.RESET,
    ErrorClass.DECLINE,
    ErrorClass.VALIDATION,
    ErrorClass.THROTTLED,
)
TRIP_RULE_MIXES = (
    ("consecutive",),
    ("failure rate",),
    ("slow rate",),
    ("failure rate", "slow rate"),
    ("consecutive", "failure rate", "slow rate"),
)
# Durations and clock steps are multiples of 1/4 s, so every time sum is exact in binary floats.
QUARTERS = st.integers(min_value=0, max_value=24).map(lambda q: q / 4)
# Call durations on both sides of every slow-call threshold drawn below (0.5, 1.0 and 2.0 s).
DURATIONS = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 1.75, 2.0, 3.0])


@dataclass
class ModelTransition:
    at: float
    from_state: BreakerState
    to_state: BreakerState
    manual: bool
    generation: int


class Model:
    """What the breaker should do, written the obvious way."""

    def __init__(self, config: BreakerConfig, now: float) -> None:
        self.config = config
        self.state = S.CLOSED
        self.generation = 0
        self.entered_at = now
        self.open_until = now
        self.open_duration = 0.0
        self.trips = 0
        self.consecutive = 0
        self.probes_taken = 0
        self.probe_successes = 0
        self.rejected = 0
        self.outcomes: list[tuple[float, bool, bool]] = []  # (finished at, failed, slow)
        self.transitions: list[ModelTransition] = []

    # -- window ---------------------------------------------------------------------------------------

    def window(self, now: float) -> list[tuple[float, bool, bool]]:
        spec = self.config.window
        if isinstance(spec, CountWindow):
            return self.outcomes[-spec.size :]
        current = math.floor(now / spec.bucket)
        return [o for o in self.outcomes if current - math.floor(o[0] / spec.bucket) < spec.buckets]

    def totals(self, now: float) -> tuple[int, int, int, int]:
        window = self.window(now)
        return (
            len(window),
            sum(failed for _, failed, _ in window),
            sum(slow for _, _, slow in window),
            sum(failed and slow for _, failed, slow in window),
        )

    def rate_trips(self, now: float) -> bool:
        calls, failures, slow, _ = self.totals(now)
        if calls < self.config.minimum_calls:
            return False
        failure_limit = self.config.failure_rate_threshold
        slow_limit = self.config.slow_call_rate_threshold
        if failure_limit is not None and Fraction(failures * 100, calls) >= Fraction(failure_limit):
            return True
        return slow_limit is not None and Fraction(slow * 100, calls) >= Fraction(slow_limit)

    # -- transitions ----------------------------------------------------------------------------------

    def move(self, to: BreakerState, now: float, *, manual: bool = False) -> None:
        self.generation += 1
        self.transitions.append(ModelTransition(now, self.state, to, manual, self.generation))
        self.state = to
        self.entered_at = now
        self.consecutive = 0
        self.probes_taken = 0
        self.probe_successes = 0
        if to is S.OPEN:
            self.trips += 1
            self.open_duration = expected_open_duration(self.config, self.trips)
            self.open_until = now + self.open_duration
        elif to in COUNTING:
            self.trips = 0
            self.outcomes = []

    def refresh(self, now: float) -> None:
        limit = self.config.max_half_open_duration
        if self.state is S.OPEN and now >= self.open_until:
            self.move(S.HALF_OPEN, now)
        elif self.state is S.HALF_OPEN and limit is not None and now >= self.entered_at + limit:
            self.move(self.config.after_half_open_timeout, now)

    # -- calls ----------------------------------------------------------------------------------------

    def acquire(self, now: float) -> tuple[int | None, BreakerState, float]:
        """(generation admitted in, or None if refused; state; retry_after)."""
        self.refresh(now)
        if self.state is S.OPEN:
            self.rejected += 1
            return None, self.state, self.open_until - now
        if self.state is S.FORCED_OPEN:
            self.rejected += 1
            return None, self.state, math.inf
        if self.state is S.HALF_OPEN:
            if self.probes_taken >= self.config.half_open_permits:
                self.rejected += 1
                return None, self.state, 0.0
            self.probes_taken += 1
        return self.generation, self.state, 0.0

    def settle(self, generation: int, outcome: CallOutcome, slow: bool, now: float) -> bool:
        """Apply a settlement; return whether it counted (its generation was still current)."""
        self.refresh(now)
        if generation != self.generation:
            return False
        failed = outcome is CallOutcome.FAILURE
        if self.state in (S.CLOSED, S.METRICS_ONLY) and outcome is not CallOutcome.IGNORED:
            self.outcomes.append((now, failed, slow))
            self.consecutive = self.consecutive + 1 if failed else 0
            if self.state is S.CLOSED:
                threshold = self.config.failure_threshold
                if (threshold is not None and self.consecutive >= threshold) or self.rate_trips(now):
                    self.move(S.OPEN, now)
        elif self.state is S.HALF_OPEN:
            if outcome is CallOutcome.IGNORED:
                self.probes_taken -= 1
            elif failed or (slow and self.config.slow_call_rate_threshold is not None):
                self.move(S.OPEN, now)
            else:
                self.probe_successes += 1
                if self.probe_successes >= self.config.success_threshold:
                    self.move(S.CLOSED, now)
        return True

    # -- by hand --------------------------------------------------------------------------------------

    def legal_by_hand(self, target: BreakerState) -> bool:
        """The documented rules, restated independently of LEGAL_TRANSITIONS."""
        if target in ADMINISTRATIVE or target is S.CLOSED:
            return True
        if target is S.OPEN:
            return self.state in (S.CLOSED, S.HALF_OPEN, S.FORCED_OPEN)
        return self.state in (S.OPEN, S.FORCED_OPEN)

    def move_by_hand(self, target: BreakerState, now: float) -> bool:
        """Return False if the move is illegal (the breaker must refuse it)."""
        self.refresh(now)
        if self.state is target:
            return True
        if not self.legal_by_hand(target):
            return False
        self.move(target, now, manual=True)
        return True

    def reset(self, now: float) -> None:
        if self.state is S.CLOSED:
            self.generation += 1
            self.consecutive = 0
            self.outcomes = []
        else:
            self.move(S.CLOSED, now, manual=True)


def expected_open_duration(config: BreakerConfig, trip: int) -> float:
    """The ``trip``-th open duration since the breaker last closed (closed formula)."""
    duration = config.open_duration * config.open_duration_multiplier ** (trip - 1)
    if config.max_open_duration is not None:
        duration = min(duration, config.max_open_duration)
    return duration


def draw_config(data: st.DataObject, *, lean: bool) -> BreakerConfig:
    """A config of any shape, or (``lean``) one whose successes take the breaker's lock-free path."""
    window: CountWindow | TimeWindow
    if not lean and data.draw(st.booleans(), label="time window"):
        bucket = data.draw(st.sampled_from([0.5, 1.0]), label="bucket")
        window = TimeWindow(duration=bucket * data.draw(st.integers(1, 6), label="buckets"), bucket=bucket)
        minimum_calls = data.draw(st.integers(1, 6), label="minimum_calls")
    else:
        size = data.draw(st.integers(1, 8), label="window size")
        window = CountWindow(size=size)
        minimum_calls = data.draw(st.integers(1, size), label="minimum_calls")
    # Which trip rules are on is drawn first, so that every combination gets its share of examples.
    rules = ("consecutive",) if lean else data.draw(st.sampled_from(TRIP_RULE_MIXES), label="trip rules")
    # Rates that small windows hit exactly, so that "at or above" is exercised at its boundary.
    rates = st.sampled_from([20, 25, 50, 75, 100])
    failure_threshold = (
        data.draw(st.integers(1, 5), label="failure_threshold") if "consecutive" in rules else None
    )
    failure_rate = data.draw(rates, label="failure_rate_threshold") if "failure rate" in rules else None
    slow_rate = data.draw(rates, label="slow_call_rate_threshold") if "slow rate" in rules else None
    slow_call_duration = None if lean else data.draw(st.sampled_from([None, 0.5, 1.0, 2.0]), label="slow")
    if slow_rate is not None and slow_call_duration is None:
        slow_call_duration = 1.0
    open_duration = data.draw(st.sampled_from([1.0, 2.5, 5.0]), label="open_duration")
    multiplier = data.draw(st.sampled_from([1.0, 1.5, 2.0]), label="open_duration_multiplier")
    cap = (
        None
        if multiplier == 1.0
        else open_duration * data.draw(st.sampled_from([1, 2, 4]), label="cap factor")
    )
    permits = data.draw(st.integers(1, 4), label="half_open_permits")
    return BreakerConfig(
        failure_threshold=failure_threshold,
        failure_rate_threshold=failure_rate,
        slow_call_rate_threshold=slow_rate,
        slow_call_duration=slow_call_duration,
        window=window,
        minimum_calls=minimum_calls,
        open_duration=open_duration,
        open_duration_multiplier=multiplier,
        max_open_duration=cap,
        half_open_permits=permits,
        success_threshold=data.draw(st.integers(1, permits), label="success_threshold"),
        max_half_open_duration=data.draw(st.sampled_from([None, 1.0, 3.0]), label="max_half_open_duration"),
        after_half_open_timeout=data.draw(
            st.sampled_from([S.OPEN, S.CLOSED]), label="after_half_open_timeout"
        ),
    )


@dataclass
class Held:
    permit: Permit
    generation: int | None  # the model's generation; the breaker's must match it
    state: BreakerState
    started: float


class BreakerVersusModel(RuleBasedStateMachine):
    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        # A third of the runs use a config whose successes skip the lock (see BreakerRecord.fold).
        lean = data.draw(st.sampled_from(["lean", "general", "general"]), label="path") == "lean"
        self.config = draw_config(data, lean=lean)
        self.clock = VirtualClock(start=data.draw(st.sampled_from([0.0, 0.25, 1234.5]), label="clock start"))
        self.transitions: list[BreakerTransition] = []
        self.events: list[BreakerEvent] = []
        self.breaker = CircuitBreaker(
            "model", self.config, clock=self.clock, listeners=(self.transitions.append,)
        )
        self.listening = not lean and data.draw(st.booleans(), label="listen to call events")
        if self.listening:
            # Listening switches the breaker off its lean success path, so both paths get exercised.
            self.breaker.on(BreakerEvent, self.events.append)
        self.expected_events: Counter[str] = Counter()
        self.model = Model(self.config, self.clock.now())
        self.held: list[Held] = []
        self.admitted_in: list[BreakerState] = []  # the breaker's state as each admitted call ran
        # Per half-open generation: probes admitted, and probes that gave their permit back.
        self.probes_admitted: dict[int, int] = {}
        self.probes_returned: dict[int, int] = {}

    # -- helpers --------------------------------------------------------------------------------------

    def admit(self) -> tuple[Permit | None, int | None, BreakerState]:
        """Acquire from both; they must agree on admission, state and retry_after."""
        expected_generation, expected_state, expected_retry = self.model.acquire(self.clock.now())
        try:
            permit = self.breaker.acquire()
        except CircuitOpenError as refused:
            self.check_refusal(refused, expected_generation, expected_state, expected_retry)
            return None, None, expected_state
        assert expected_generation is not None, f"breaker admitted a call while {expected_state}"
        assert permit.state is expected_state
        self.admitted_in.append(permit.state)
        assert permit.generation == expected_generation
        if permit.state is S.HALF_OPEN:
            self.probes_admitted[permit.generation] = self.probes_admitted.get(permit.generation, 0) + 1
        return permit, expected_generation, expected_state

    def check_refusal(
        self,
        refused: CircuitOpenError,
        expected_generation: int | None,
        expected_state: BreakerState,
        expected_retry: float,
    ) -> None:
        assert expected_generation is None, f"breaker refused a call the model admits in {expected_state}"
        assert refused.state is expected_state
        assert refused.retry_after == expected_retry
        self.expected_events["CallRejected"] += 1

    def model_settle(
        self, generation: int, state: BreakerState, outcome: CallOutcome, started: float
    ) -> None:
        now = self.clock.now()
        threshold = self.config.slow_call_duration
        slow = threshold is not None and now - started >= threshold
        counted = self.model.settle(generation, outcome, slow, now)
        self.expected_events[_EVENT_NAMES[outcome]] += 1
        if slow:
            self.expected_events["SlowCall"] += 1
        if counted and state is S.HALF_OPEN and outcome is CallOutcome.IGNORED:
            self.probes_returned[generation] = self.probes_returned.get(generation, 0) + 1

    # -- rules ----------------------------------------------------------------------------------------

    @rule(duration=DURATIONS, error=st.none() | st.sampled_from(ERROR_CLASSES))
    def call(self, duration: float, error: ErrorClass | None) -> None:
        """A call through ``call(fn)`` that takes ``duration`` and succeeds or raises ``error``."""
        expected_generation, expected_state, expected_retry = self.model.acquire(self.clock.now())
        started = self.clock.now()

        def upstream() -> str:
            # The state while the call is in flight, before time moves: the state it was admitted in.
            self.admitted_in.append(self.breaker.state)
            self.clock.advance(duration)
            if error is not None:
                raise UpstreamError(error)
            return "ok"

        try:
            result = self.breaker.call(upstream)
        except CircuitOpenError as refused:
            self.check_refusal(refused, expected_generation, expected_state, expected_retry)
            return
        except UpstreamError:
            assert error is not None
        else:
            assert result == "ok"
        assert expected_generation is not None, f"breaker admitted a call while {expected_state}"
        if expected_state is S.HALF_OPEN:
            self.probes_admitted[expected_generation] = self.probes_admitted.get(expected_generation, 0) + 1
        outcome = CallOutcome.SUCCESS if error is None else _outcome(error)
        self.model_settle(expected_generation, expected_state, outcome, started)

    @rule(duration=DURATIONS)
    def call_succeeds(self, duration: float) -> None:
        self.call(duration, None)

    @rule(duration=DURATIONS)
    def call_fails_upstream(self, duration: float) -> None:
        self.call(duration, ErrorClass.SERVER_ERROR)

    @rule()
    def cancelled_call(self) -> None:
        """A call cancelled mid-way gives its permit back and counts for nothing."""
        expected_generation, expected_state, _ = self.model.acquire(self.clock.now())

        def cancelled() -> None:
            raise asyncio.CancelledError

        try:
            self.breaker.call(cancelled)
        except CircuitOpenError:
            assert expected_generation is None
            self.expected_events["CallRejected"] += 1
            return
        except asyncio.CancelledError:
            pass
        assert expected_generation is not None
        if expected_state is S.HALF_OPEN:
            self.probes_admitted[expected_generation] = self.probes_admitted.get(expected_generation, 0) + 1
        self.model_settle(expected_generation, expected_state, CallOutcome.IGNORED, self.clock.now())

    @rule(count=st.integers(1, 5))
    def hold_permits(self, count: int) -> None:
        """Take up to ``count`` permits and keep their calls in flight (a herd of slow probes)."""
        for _ in range(count):
            started = self.clock.now()
            permit, generation, state = self.admit()
            if permit is not None:
                self.held.append(Held(permit, generation, state, started))

    @precondition(lambda self: self.held)
    @rule(data=st.data(), outcome=st.sampled_from(CallOutcome))
    def settle_held(self, data: st.DataObject, outcome: CallOutcome) -> None:
        """Finish a call in flight, possibly long after the breaker moved on (a stale permit)."""
        held = self.held.pop(data.draw(st.integers(0, len(self.held) - 1), label="which permit"))
        assert held.generation is not None
        held.permit.settle(outcome)
        self.model_settle(held.generation, held.state, outcome, held.started)

    @rule(seconds=QUARTERS)
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.model.state is S.OPEN)
    @rule(early=st.sampled_from([0.0, 0.25]))
    def advance_to_open_deadline(self, early: float) -> None:
        """Move time to the exact end of the open state, or a quarter second before it."""
        self.clock.advance(max(self.model.open_until - early - self.clock.now(), 0.0))

    @precondition(
        lambda self: self.model.state is S.HALF_OPEN and self.config.max_half_open_duration is not None
    )
    @rule()
    def advance_to_half_open_deadline(self) -> None:
        limit = self.config.max_half_open_duration
        assert limit is not None
        self.clock.advance(max(self.model.entered_at + limit - self.clock.now(), 0.0))

    @rule(to=st.sampled_from(BreakerState))
    def move_by_hand(self, to: BreakerState) -> None:
        legal = self.model.move_by_hand(to, self.clock.now())
        refused: IllegalTransitionError | None = None
        try:
            self.breaker.transition_to(to)
        except IllegalTransitionError as error:
            refused = error
        if refused is None:
            assert legal, f"breaker moved to {to} by hand, which the documented rules forbid"
        else:
            assert not legal, f"breaker refused a legal move {refused.from_state} -> {to}"
            assert refused.to_state is to

    @rule()
    def reset(self) -> None:
        self.model.refresh(self.clock.now())
        if self.model.state is S.CLOSED:
            self.expected_events["BreakerReset"] += 1
        self.model.reset(self.clock.now())
        self.breaker.reset()

    # -- invariants -----------------------------------------------------------------------------------

    @invariant()
    def agrees_with_the_model(self) -> None:
        now = self.clock.now()
        self.model.refresh(now)
        snapshot = self.breaker.snapshot()
        model = self.model
        calls, failures, slow, slow_failures = model.totals(now)
        judged = calls >= self.config.minimum_calls
        assert (snapshot.state, snapshot.generation) == (model.state, model.generation)
        assert (snapshot.calls, snapshot.failures, snapshot.slow_calls, snapshot.slow_failures) == (
            calls,
            failures,
            slow,
            slow_failures,
        )
        assert snapshot.failure_rate == (failures * 100 / calls if judged else None)
        assert snapshot.slow_call_rate == (slow * 100 / calls if judged else None)
        assert snapshot.consecutive_failures == model.consecutive
        assert snapshot.half_open_permits_taken == model.probes_taken
        assert snapshot.half_open_successes == model.probe_successes
        assert snapshot.not_permitted == model.rejected
        assert (snapshot.trips, snapshot.open_duration) == (model.trips, model.open_duration)
        assert snapshot.time_in_state == now - model.entered_at
        if model.state is S.OPEN:
            assert snapshot.retry_after == max(model.open_until - now, 0.0)

    @invariant()
    def admits_no_call_while_open(self) -> None:
        assert S.OPEN not in self.admitted_in
        assert S.FORCED_OPEN not in self.admitted_in

    @invariant()
    def emits_exactly_the_model_transitions(self) -> None:
        emitted = [(t.at, t.from_state, t.to_state, t.manual, t.generation) for t in self.transitions]
        expected = [(t.at, t.from_state, t.to_state, t.manual, t.generation) for t in self.model.transitions]
        assert emitted == expected

    @invariant()
    def makes_only_legal_transitions(self) -> None:
        previous = S.CLOSED
        generation = 0
        for transition in self.transitions:
            pair = (transition.from_state, transition.to_state)
            assert pair in LEGAL_TRANSITIONS
            assert transition.manual or pair in AUTOMATIC_TRANSITIONS
            assert transition.from_state is previous
            assert transition.generation > generation
            previous, generation = transition.to_state, transition.generation

    @invariant()
    def stays_open_at_least_the_grown_wait(self) -> None:
        opened_at: float | None = None
        trips = 0
        for transition in self.transitions:
            if transition.to_state is S.OPEN:
                opened_at, trips = transition.at, trips + 1
            elif transition.to_state in COUNTING:
                trips = 0
            if (transition.from_state, transition.to_state) == (
                S.OPEN,
                S.HALF_OPEN,
            ) and not transition.manual:
                assert opened_at is not None
                assert transition.at - opened_at >= expected_open_duration(self.config, trips)

    @invariant()
    def half_open_admits_at_most_its_permits(self) -> None:
        for generation, admitted in self.probes_admitted.items():
            in_use = admitted - self.probes_returned.get(generation, 0)
            assert in_use <= self.config.half_open_permits

    @invariant()
    def tells_listeners_every_call_once(self) -> None:
        if not self.listening:
            return
        seen = Counter(type(event).__name__ for event in self.events)
        expected = self.expected_events + Counter({"BreakerTransition": len(self.model.transitions)})
        assert seen == expected


_EVENT_NAMES = {
    CallOutcome.SUCCESS: "CallSucceeded",
    CallOutcome.FAILURE: "CallFailed",
    CallOutcome.IGNORED: "CallIgnored",
}


def _outcome(error: ErrorClass) -> CallOutcome:
    return CallOutcome.FAILURE if error.is_upstream_failure else CallOutcome.IGNORED


TestBreakerAgreesWithModel = BreakerVersusModel.TestCase
