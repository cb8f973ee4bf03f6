"""The breaker's faces (call, call_async, decorator, permits), manual control, events, snapshots and store."""

from __future__ import annotations

import json
import logging
import math
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.resilience import (
    AUTOMATIC_TRANSITIONS,
    LEGAL_TRANSITIONS,
    MANUAL_TRANSITIONS,
    BreakerConfig,
    BreakerEvent,
    BreakerRecord,
    BreakerReset,
    BreakerState,
    BreakerStore,
    BreakerTransition,
    CallFailed,
    CallIgnored,
    CallRejected,
    CallSucceeded,
    CircuitBreaker,
    CircuitOpenError,
    CountWindow,
    ErrorClass,
    IllegalTransitionError,
    LocalBreakerStore,
    TimeWindow,
    VirtualClock,
)
from harness.resilience._errors import RejectedError
from tests.resilience.breakers import UpstreamError, assert_breakers_agree, failing

S = BreakerState
ADMINISTRATIVE = (S.DISABLED, S.FORCED_OPEN, S.METRICS_ONLY)


def breaker(config: BreakerConfig | None = None, clock: VirtualClock | None = None) -> CircuitBreaker:
    return CircuitBreaker(
        "upstream",
        config or BreakerConfig(failure_threshold=1, open_duration=2.0),
        clock=clock or VirtualClock(),
    )


def trip(subject: CircuitBreaker) -> None:
    while subject.state is not S.OPEN:
        with pytest.raises(UpstreamError):
            subject.call(failing)


# -- the legal moves --------------------------------------------------------------------------------


def test_exactly_five_moves_are_illegal() -> None:
    pairs = {(a, b) for a in S for b in S if a is not b}
    assert pairs - LEGAL_TRANSITIONS == {
        (S.CLOSED, S.HALF_OPEN),
        (S.DISABLED, S.OPEN),
        (S.DISABLED, S.HALF_OPEN),
        (S.METRICS_ONLY, S.OPEN),
        (S.METRICS_ONLY, S.HALF_OPEN),
    }
    assert {
        (S.CLOSED, S.OPEN),
        (S.OPEN, S.HALF_OPEN),
        (S.HALF_OPEN, S.OPEN),
        (S.HALF_OPEN, S.CLOSED),
    } == AUTOMATIC_TRANSITIONS
    assert LEGAL_TRANSITIONS == AUTOMATIC_TRANSITIONS | MANUAL_TRANSITIONS
    assert all(source is not target for source, target in LEGAL_TRANSITIONS)


def test_an_illegal_manual_move_is_refused_and_says_what_is_allowed() -> None:
    subject = breaker()
    subject.disable()
    with pytest.raises(
        IllegalTransitionError, match=r"cannot move from disabled to open by hand; from disabled"
    ):
        subject.transition_to_open()
    assert subject.state is S.DISABLED
    subject.transition_to_closed()
    with pytest.raises(IllegalTransitionError, match="closed to half_open"):
        subject.transition_to_half_open()


def test_manual_moves_are_marked_manual_and_a_move_to_the_current_state_is_a_no_op() -> None:
    clock = VirtualClock()
    subject = breaker(clock=clock)
    seen: list[BreakerTransition] = []
    subject.subscribe(seen.append)
    assert subject.transition_to_closed() is None
    moved = subject.force_open()
    assert moved is not None
    assert (moved.from_state, moved.to_state, moved.manual, moved.generation) == (
        S.CLOSED,
        S.FORCED_OPEN,
        True,
        1,
    )
    assert subject.force_open() is None
    assert seen == [moved]


def test_forced_open_refuses_every_call_with_an_infinite_retry_after() -> None:
    subject = breaker()
    subject.force_open()
    with pytest.raises(CircuitOpenError) as refusal:
        subject.call(lambda: None)
    assert (refusal.value.state, refusal.value.retry_after) == (S.FORCED_OPEN, math.inf)
    assert "forced open" in str(refusal.value)
    subject.transition_to_half_open()  # probe now
    assert subject.call(lambda: "probe") == "probe"
    assert subject.state is S.CLOSED


def test_disabled_admits_everything_and_records_nothing() -> None:
    subject = breaker()
    subject.disable()
    for _ in range(10):
        with pytest.raises(UpstreamError):
            subject.call(failing)
    snapshot = subject.snapshot()
    assert (snapshot.state, snapshot.calls, snapshot.consecutive_failures) == (S.DISABLED, 0, 0)


def test_metrics_only_records_everything_and_never_trips() -> None:
    subject = breaker(BreakerConfig(failure_threshold=2, failure_rate_threshold=50, minimum_calls=2))
    subject.metrics_only()
    for _ in range(10):
        with pytest.raises(UpstreamError):
            subject.call(failing)
    snapshot = subject.snapshot()
    assert (snapshot.state, snapshot.calls, snapshot.failures, snapshot.failure_rate) == (
        S.METRICS_ONLY,
        10,
        10,
        100.0,
    )
    assert snapshot.consecutive_failures == 10
    subject.transition_to_closed()
    assert subject.snapshot().calls == 0  # back to closed: counting starts afresh


@pytest.mark.parametrize("start", [S.OPEN, S.HALF_OPEN, *ADMINISTRATIVE])
def test_reset_closes_from_any_state(start: BreakerState) -> None:
    subject = breaker()
    if start is S.HALF_OPEN:
        subject.transition_to_open()
    subject.transition_to(start)
    subject.reset()
    assert subject.state is S.CLOSED


def test_reset_of_a_closed_breaker_forgets_its_counts_and_says_so() -> None:
    subject = breaker(BreakerConfig(failure_threshold=3))
    resets: list[BreakerReset] = []
    subject.on(BreakerReset, resets.append)
    for _ in range(2):
        with pytest.raises(UpstreamError):
            subject.call(failing)
    subject.reset()
    assert len(resets) == 1
    assert (subject.snapshot().consecutive_failures, subject.snapshot().calls) == (0, 0)
    for _ in range(2):
        with pytest.raises(UpstreamError):
            subject.call(failing)
    assert subject.state is S.CLOSED


# -- the refusal --------------------------------------------------------------------------------------


def test_the_refusal_says_which_state_and_how_long_until_the_next_probe() -> None:
    clock = VirtualClock()
    subject = breaker(clock=clock)
    trip(subject)
    clock.advance(0.5)
    with pytest.raises(CircuitOpenError) as refusal:
        subject.call(lambda: None)
    error = refusal.value
    assert (error.breaker, error.state, error.retry_after) == ("upstream", S.OPEN, 1.5)
    assert str(error) == "circuit 'upstream' is open; next probe in 1.500s"
    assert isinstance(error, RejectedError)
    assert error.error_class is ErrorClass.REJECTED


# -- the four faces -----------------------------------------------------------------------------------


def test_call_passes_arguments_and_returns_the_result() -> None:
    def upstream(a: int, b: int, *, c: int) -> tuple[int, int, int]:
        return a, b, c

    assert breaker().call(upstream, 1, 2, c=3) == (1, 2, 3)


def test_the_decorator_guards_every_call_and_keeps_the_name() -> None:
    subject = breaker()

    @subject
    def charge(amount: int) -> str:
        if amount < 0:
            raise UpstreamError
        return f"charged {amount}"

    assert charge.__name__ == "charge"
    assert charge(5) == "charged 5"
    with pytest.raises(UpstreamError):
        charge(-1)
    with pytest.raises(CircuitOpenError):
        charge(5)


@pytest.mark.anyio
async def test_call_async_and_the_async_decorator_guard_coroutines() -> None:
    subject = breaker(BreakerConfig(failure_threshold=2, open_duration=2.0))

    async def charge(amount: int) -> str:
        if amount < 0:
            raise UpstreamError
        return f"charged {amount}"

    guarded = subject.decorate(charge)
    assert await subject.call_async(charge, 5) == "charged 5"
    assert await guarded(6) == "charged 6"
    with pytest.raises(UpstreamError):
        await subject.call_async(charge, -1)
    with pytest.raises(UpstreamError):
        await guarded(-1)
    with pytest.raises(CircuitOpenError):
        await guarded(7)


def test_a_permit_used_as_a_context_manager_settles_itself() -> None:
    subject = breaker(BreakerConfig(failure_threshold=2))
    with subject.acquire():
        pass
    with pytest.raises(UpstreamError), subject.acquire():
        failing(ErrorClass.DECLINE)  # classified: ignored
    assert subject.snapshot().consecutive_failures == 0
    with pytest.raises(UpstreamError), subject.acquire():
        failing()
    assert subject.snapshot().consecutive_failures == 1
    with subject.acquire() as permit:
        permit.failure()  # settled inside the block: the exit leaves it alone
    assert subject.state is S.OPEN


def test_a_permit_settles_exactly_once() -> None:
    permit = breaker().acquire()
    permit.success()
    with pytest.raises(RuntimeError, match="settled twice"):
        permit.failure()


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, S.CLOSED),
        (ErrorClass.TIMEOUT, S.OPEN),
        (ErrorClass.DECLINE, S.CLOSED),
        (ErrorClass.THROTTLED, S.CLOSED),
    ],
)
def test_a_permit_settles_by_the_shared_taxonomy(error: ErrorClass | None, outcome: BreakerState) -> None:
    subject = breaker()
    subject.acquire().settle_for(error)
    assert subject.state is outcome


def test_the_lock_is_not_held_while_the_protected_call_runs() -> None:
    subject = breaker(BreakerConfig(failure_threshold=3))
    finished = threading.Event()

    def reader() -> None:
        subject.snapshot()
        subject.reset()
        finished.set()

    def upstream() -> bool:
        # Another thread uses the breaker while this call is in progress; with the lock held
        # across the call it would block until the deadline below.
        thread = threading.Thread(target=reader)
        thread.start()
        thread.join(timeout=30)
        return finished.is_set()

    assert subject.call(upstream)


# -- events ---------------------------------------------------------------------------------------------


def test_subscribe_receives_transitions_only_and_on_receives_the_chosen_kinds() -> None:
    clock = VirtualClock()
    subject = breaker(
        BreakerConfig(failure_threshold=2, open_duration=1.0, slow_call_duration=1.0), clock=clock
    )
    transitions: list[BreakerTransition] = []
    everything: list[BreakerEvent] = []
    failures: list[CallFailed] = []
    subject.subscribe(transitions.append)
    subject.on(BreakerEvent, everything.append)
    subject.on(CallFailed, failures.append)

    def slow_success() -> None:
        clock.advance(1.0)

    subject.call(slow_success)
    with pytest.raises(UpstreamError):
        subject.call(failing, ErrorClass.DECLINE)
    for _ in range(2):
        with pytest.raises(UpstreamError):
            subject.call(failing)
    with pytest.raises(CircuitOpenError):
        subject.call(lambda: None)
    kinds = [type(event).__name__ for event in everything]
    assert kinds == [
        "CallSucceeded",
        "SlowCall",
        "CallIgnored",
        "CallFailed",
        "CallFailed",
        "BreakerTransition",
        "CallRejected",
    ]
    assert [(t.from_state, t.to_state) for t in transitions] == [(S.CLOSED, S.OPEN)]
    assert len(failures) == 2
    succeeded = everything[0]
    assert isinstance(succeeded, CallSucceeded)
    assert (succeeded.duration, succeeded.slow, succeeded.state) == (1.0, True, S.CLOSED)
    rejected = everything[-1]
    assert isinstance(rejected, CallRejected)
    assert (rejected.state, rejected.retry_after) == (S.OPEN, 1.0)


def test_events_name_the_error_type_and_never_carry_its_message() -> None:
    subject = breaker(BreakerConfig(failure_threshold=5))
    seen: list[BreakerEvent] = []
    subject.on(BreakerEvent, seen.append)
    with pytest.raises(UpstreamError):
        subject.call(failing, ErrorClass.SERVER_ERROR, "card 4242424242424242 refused")
    with pytest.raises(UpstreamError):
        subject.call(failing, ErrorClass.DECLINE, "card 4242424242424242 declined")
    failed, ignored = seen
    assert isinstance(failed, CallFailed)
    assert isinstance(ignored, CallIgnored)
    assert failed.error == ignored.error == "UpstreamError"
    assert "4242" not in repr(seen)


def test_an_unsubscribed_listener_hears_nothing_more() -> None:
    subject = breaker(BreakerConfig(failure_threshold=1))
    heard: list[BreakerEvent] = []
    unsubscribe = subject.on(CallSucceeded, heard.append)
    subject.call(lambda: None)
    unsubscribe()
    subject.call(lambda: None)
    assert len(heard) == 1


def test_a_failing_listener_is_logged_and_disturbs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    subject = breaker(BreakerConfig(failure_threshold=1))
    heard: list[BreakerTransition] = []

    def broken(event: BreakerTransition) -> None:
        raise RuntimeError("listener bug")

    subject.subscribe(broken)
    subject.subscribe(heard.append)
    with caplog.at_level(logging.ERROR), pytest.raises(UpstreamError):
        subject.call(failing)
    assert subject.state is S.OPEN
    assert len(heard) == 1
    assert "listener" in caplog.text
    assert "listener bug" in caplog.text


def test_on_refuses_a_type_that_is_not_a_breaker_event() -> None:
    with pytest.raises(TypeError, match="not a breaker event type"):
        breaker().on(int, lambda event: None)  # type: ignore[type-var]


# -- snapshot -------------------------------------------------------------------------------------------


def test_the_snapshot_reports_counts_rates_and_time_in_state() -> None:
    clock = VirtualClock(start=100.0)
    config = BreakerConfig(
        failure_threshold=None, failure_rate_threshold=60, window=TimeWindow(duration=10.0), minimum_calls=4
    )
    subject = CircuitBreaker("upstream", config, clock=clock)
    for outcome in ("ok", "fail", "ok", "fail"):
        clock.advance(1.0)
        if outcome == "ok":
            subject.call(lambda: None)
        else:
            with pytest.raises(UpstreamError):
                subject.call(failing)
    snapshot = subject.snapshot()
    assert snapshot.state is S.CLOSED
    assert (snapshot.calls, snapshot.failures, snapshot.failure_rate, snapshot.slow_call_rate) == (
        4,
        2,
        50.0,
        0.0,
    )
    assert snapshot.time_in_state == 4.0
    assert (snapshot.retry_after, snapshot.trips, snapshot.not_permitted) == (0.0, 0, 0)


# -- backward compatibility -------------------------------------------------------------------------------


def test_the_reference_clients_usage_still_works() -> None:
    clock = VirtualClock()
    recorded: list[BreakerTransition] = []
    subject = CircuitBreaker(
        "stripe",
        BreakerConfig(failure_threshold=5, open_duration=1.0),
        clock=clock,
        listeners=(recorded.append,),
    )
    for _ in range(5):
        permit = subject.acquire()
        assert permit.state == "closed"
        permit.failure()
    with pytest.raises(CircuitOpenError) as refusal:
        subject.acquire()
    assert refusal.value.state is S.OPEN
    clock.advance(1.0)
    probe = subject.acquire()
    assert probe.state is S.HALF_OPEN
    probe.ignore()
    subject.acquire().success()
    assert subject.state is S.CLOSED
    assert [(t.from_state, t.to_state) for t in recorded] == [
        (S.CLOSED, S.OPEN),
        (S.OPEN, S.HALF_OPEN),
        (S.HALF_OPEN, S.CLOSED),
    ]
    assert {"at", "breaker", "from_state", "to_state", "reason"} <= set(
        BreakerTransition.__dataclass_fields__
    )


# -- the store seam ---------------------------------------------------------------------------------------


class JsonStore:
    """Keeps the record as JSON text and rebuilds it for every operation, as a shared store would.

    This stands in for Redis (not built yet): it proves the state machine works when its record
    goes through ``to_dict``/``from_dict`` between any two operations, and that the breaker only
    uses the two-method store interface.
    """

    def __init__(self, record: BreakerRecord) -> None:
        self.text = json.dumps(record.to_dict())

    def run(self, operation: Any, /, *args: Any) -> Any:
        record = BreakerRecord.from_dict(json.loads(self.text))
        result = operation(record, *args)
        self.text = json.dumps(record.to_dict())
        return result

    def peek(self) -> tuple[BreakerState, int]:
        data = json.loads(self.text)
        return BreakerState(data["state"]), int(data["generation"])


ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("call"), st.sampled_from([None, ErrorClass.SERVER_ERROR, ErrorClass.DECLINE])),
        st.tuples(st.just("advance"), st.sampled_from([0.25, 0.5, 1.0, 3.0])),
        st.tuples(st.just("move"), st.sampled_from(BreakerState)),
        st.tuples(st.just("reset"), st.none()),
    ),
    max_size=40,
)


@pytest.mark.parametrize("window", [CountWindow(size=4), TimeWindow(duration=2.0, bucket=0.5)])
@given(actions=ACTIONS)
def test_a_breaker_behaves_the_same_over_a_store_that_serialises_its_record(
    window: CountWindow | TimeWindow, actions: list[tuple[str, Any]]
) -> None:
    config = BreakerConfig(
        failure_threshold=3,
        failure_rate_threshold=50,
        window=window,
        minimum_calls=2,
        open_duration=1.0,
        open_duration_multiplier=2.0,
        max_open_duration=4.0,
        half_open_permits=2,
        success_threshold=2,
    )
    clock = VirtualClock()
    json_store = JsonStore(BreakerRecord.initial(config, clock.now()))
    assert isinstance(json_store, BreakerStore)
    local_store = LocalBreakerStore(BreakerRecord.initial(config, clock.now()))
    breakers = [
        CircuitBreaker("shared", config, clock=clock, store=local_store),
        CircuitBreaker("shared", config, clock=clock, store=json_store),
    ]
    assert_breakers_agree(breakers, clock, actions)


def test_the_breakers_repr_names_an_unreachable_store_instead_of_raising() -> None:
    """A repr runs in debuggers and logs; it must not raise while a shared store is down.

    The contract is the breaker's, for any store, so a stand-in that always fails stands for one
    (the Redis store's own outage behaviour is tested against a killed redis-server).
    """
    from harness.resilience import BreakerConfig, CircuitBreaker

    class _Down:
        def run(self, operation: object, /, *args: object) -> object:
            raise ConnectionError("redis is down")

        def peek(self) -> tuple[object, int]:
            raise ConnectionError("redis is down")

    breaker = CircuitBreaker("stripe", BreakerConfig(), store=_Down())  # type: ignore[arg-type]

    assert repr(breaker) == "CircuitBreaker('stripe', state=<unavailable: ConnectionError>)"
