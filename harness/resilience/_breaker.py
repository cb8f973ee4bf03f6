"""Circuit breaker: stop calling an upstream that is failing, and probe it carefully when it may be back.

Four faces over one core: ``call(fn, ...)``, ``await call_async(fn, ...)``, the decorator
(``@breaker``), and permits (``permit = breaker.acquire()`` ... ``permit.success()``) for code that
classifies outcomes itself, like the reference client. The rules live in
:mod:`~harness.resilience._breaker_machine`, the state in a :class:`BreakerStore`.

Calls never run under the breaker's lock (pybreaker's one lock serialises every call); the lock only
guards the bookkeeping before and after a call. A permit is counted when it is taken, not when the
call ends, which is what keeps half-open admission exact under any concurrency: when an open breaker
goes half-open, only its permitted probes pass and the rest of the herd is refused. Each permit
remembers the breaker *generation* it was issued in, so a slow call that finishes after the breaker
changed state cannot corrupt the new state's counts.

Closed, disabled and metrics-only breakers admit without taking the lock: they read the store's
``(state, generation)`` pair in one step and a call admitted just before a trip is simply stale.
The commonest ending, a success in a closed breaker that has a count window, no rate or slow-call
rule and nobody listening for call events, does not take the lock either: with the in-process store
its generation goes onto the record's deferred log (a thread-safe deque) and the next operation that
needs the counts folds it in, in order (:meth:`BreakerRecord.fold`). Clock readings and event
objects are only made when something needs them. That keeps the healthy path cheaper than every
peer's (``bench/bench_breakers.py``) while staying exact under threads.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

import httpx

from harness.resilience._breaker_classify import (
    CallOutcome,
    ExceptionClassifier,
    ResultClassifier,
    default_exception_outcome,
    default_result_outcome,
    outcome_for,
)
from harness.resilience._breaker_config import BreakerConfig, CountWindow
from harness.resilience._breaker_events import (
    BreakerEvent,
    BreakerReset,
    BreakerSnapshot,
    BreakerTransition,
    CallFailed,
    CallIgnored,
    CallRejected,
    CallSucceeded,
    SlowCall,
)
from harness.resilience._breaker_machine import BreakerMachine
from harness.resilience._breaker_states import (
    AUTOMATIC_TRANSITIONS,
    LEGAL_TRANSITIONS,
    MANUAL_TRANSITIONS,
    BreakerState,
)
from harness.resilience._breaker_store import BreakerRecord, BreakerStore, LocalBreakerStore
from harness.resilience._clock import Clock, SystemClock
from harness.resilience._errors import ErrorClass, RejectedError

__all__ = [
    "AUTOMATIC_TRANSITIONS",
    "LEGAL_TRANSITIONS",
    "MANUAL_TRANSITIONS",
    "BreakerState",
    "BreakerTransition",
    "CircuitBreaker",
    "CircuitOpenError",
    "IllegalTransitionError",
    "Permit",
]

P = ParamSpec("P")
R = TypeVar("R")
E = TypeVar("E", bound=BreakerEvent)
Listener = Callable[[BreakerTransition], None]

_log = logging.getLogger(__name__)

_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_DISABLED = BreakerState.DISABLED
_METRICS_ONLY = BreakerState.METRICS_ONLY
_SUCCESS = CallOutcome.SUCCESS
_FAILURE = CallOutcome.FAILURE
_IGNORED = CallOutcome.IGNORED

_EVENT_TYPES: tuple[type[BreakerEvent], ...] = (
    BreakerTransition,
    BreakerReset,
    CallSucceeded,
    CallFailed,
    CallIgnored,
    SlowCall,
    CallRejected,
)
_CALL_EVENT_TYPES = (CallSucceeded, CallFailed, CallIgnored, SlowCall)
_UNTIMED = math.nan
"""Start time of a call nobody needs the duration of (no slow-call rule, no call listener)."""
_Response = httpx.Response
_FOLD_AFTER = 1024
"""Deferred successes kept before the lean path folds them in itself (bounds the log's memory)."""


class CircuitOpenError(RejectedError):
    """Raised instead of calling the upstream while the breaker refuses calls.

    ``retry_after`` is a lower bound on the seconds until a call may be admitted: the rest of the
    open duration when OPEN, 0 when HALF_OPEN (a probe permit comes back whenever a probe ends
    without a verdict or the breaker closes), ``inf`` when FORCED_OPEN (until someone moves it on).
    Its ``error_class`` is REJECTED, so an outer breaker ignores it instead of counting a failure.
    """

    retry_after: float

    def __init__(self, breaker: str, state: BreakerState, retry_after: float) -> None:
        if state is BreakerState.FORCED_OPEN:
            message = f"circuit {breaker!r} is forced open; no call passes until it is moved on by hand"
        elif state is BreakerState.HALF_OPEN:
            message = f"circuit {breaker!r} is half-open and every probe permit is taken"
        else:
            message = f"circuit {breaker!r} is {state}; next probe in {retry_after:.3f}s"
        super().__init__(message, retry_after=retry_after)
        self.breaker = breaker
        self.state = state


class IllegalTransitionError(RuntimeError):
    """A manual move that :data:`LEGAL_TRANSITIONS` does not allow."""

    def __init__(self, breaker: str, from_state: BreakerState, to_state: BreakerState) -> None:
        self.breaker = breaker
        self.from_state = from_state
        self.to_state = to_state
        allowed = sorted(str(target) for source, target in LEGAL_TRANSITIONS if source is from_state)
        super().__init__(
            f"circuit {breaker!r} cannot move from {from_state} to {to_state} by hand;"
            f" from {from_state} it may move to {', '.join(allowed)}"
        )


class Permit:
    """Leave to make one call; settle it exactly once.

    Also a context manager: leaving the block normally settles an unsettled permit as a success, an
    exception settles it as the breaker classifies that exception.
    """

    __slots__ = ("_breaker", "_settled", "generation", "started_at", "state")

    def __init__(
        self, breaker: CircuitBreaker, generation: int, state: BreakerState, started_at: float
    ) -> None:
        self._breaker = breaker
        self.generation = generation
        self.state = state
        """The state the call was admitted in."""
        self.started_at = started_at
        self._settled = False

    @property
    def settled(self) -> bool:
        return self._settled

    def success(self) -> None:
        self.settle(_SUCCESS)

    def failure(self) -> None:
        self.settle(_FAILURE)

    def ignore(self) -> None:
        """The call ended in a way that says nothing about the upstream (e.g. a card decline)."""
        self.settle(_IGNORED)

    def settle_for(self, error: ErrorClass | None) -> None:
        """Settle by the shared taxonomy: success for ``None``, failure only for upstream failures."""
        self.settle(outcome_for(error))

    def settle(self, outcome: CallOutcome, error: BaseException | None = None) -> None:
        if self._settled:
            raise RuntimeError("a breaker permit was settled twice; settle each permit exactly once")
        self._settled = True
        breaker = self._breaker
        if outcome is _SUCCESS and breaker._quick and (self.state is _CLOSED or self.state is _METRICS_ONLY):
            breaker._succeed_quickly(self.generation)
        else:
            breaker._finish(self.generation, self.state, outcome, self.started_at, error)

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._settled:
            return
        if exc is None:
            self.settle(_SUCCESS)
        else:
            self.settle(self._breaker._classify_failure(exc), exc)

    def __repr__(self) -> str:
        return f"Permit({self._breaker.name!r}, state={self.state}, generation={self.generation})"


class CircuitBreaker:
    """A thread-safe and asyncio-safe circuit breaker over an injected clock.

    ``classify_exception`` and ``classify_result`` decide whether a call that raised or returned
    counts as a success, a failure or neither (see :func:`default_exception_outcome` and
    :func:`default_result_outcome`); ``store`` holds the mutable state (in this process by default).
    ``listeners`` receive :class:`BreakerTransition` events; :meth:`on` subscribes to any event type.
    """

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Clock | None = None,
        listeners: Sequence[Listener] = (),
        classify_exception: ExceptionClassifier | None = None,
        classify_result: ResultClassifier | None = None,
        store: BreakerStore | None = None,
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self._clock = clock or SystemClock()
        self._now = self._clock.now
        self._store: BreakerStore = store or LocalBreakerStore(
            BreakerRecord.initial(self.config, self._now())
        )
        self._machine = BreakerMachine(name, self.config)
        self._admit_op = self._machine.admit
        self._settle_op = self._machine.settle
        self._record_success_op = self._machine.record_plain_success
        self._fold_op = self._machine.fold
        # In process, a lean success is appended to the record's deferred log without the lock.
        self._lean = self._store.deferred if isinstance(self._store, LocalBreakerStore) else None
        self._classify_exception = classify_exception or default_exception_outcome
        self._classify_result = classify_result or default_result_outcome
        self._slow_after = self.config.slow_call_duration
        self._subscription_lock = threading.Lock()
        self._listeners: dict[type[BreakerEvent], tuple[Callable[[Any], None], ...]] = {}
        self._call_listeners = False
        self._rejection_listeners = False
        self._timed = self._quick = False
        self._install({})
        for listener in listeners:
            self.subscribe(listener)

    # -- the protected call, four ways ----------------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn`` if the breaker admits it, else raise :class:`CircuitOpenError`."""
        state, generation = self._store.peek()
        if state is not _CLOSED and state is not _DISABLED and state is not _METRICS_ONLY:
            generation, state = self._admit_slowly()
        started = self._now() if self._timed else _UNTIMED
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._finish(generation, state, self._classify_failure(exc), started, exc)
            raise
        if self._quick and (state is _CLOSED or state is _METRICS_ONLY) and not isinstance(result, _Response):
            lean = self._lean
            if lean is not None and len(lean) < _FOLD_AFTER:
                lean.append(generation)
            else:
                self._succeed_quickly(generation)
        else:
            self._finish(generation, state, self._classify_success(result), started, None)
        return result

    async def call_async(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(...)`` if the breaker admits it; never awaits while holding the breaker's lock."""
        state, generation = self._store.peek()
        if state is not _CLOSED and state is not _DISABLED and state is not _METRICS_ONLY:
            generation, state = self._admit_slowly()
        started = self._now() if self._timed else _UNTIMED
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._finish(generation, state, self._classify_failure(exc), started, exc)
            raise
        if self._quick and (state is _CLOSED or state is _METRICS_ONLY) and not isinstance(result, _Response):
            lean = self._lean
            if lean is not None and len(lean) < _FOLD_AFTER:
                lean.append(generation)
            else:
                self._succeed_quickly(generation)
        else:
            self._finish(generation, state, self._classify_success(result), started, None)
        return result

    @overload
    def decorate(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def decorate(self, fn: Callable[P, R]) -> Callable[P, R]: ...

    def decorate(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Wrap a function (or a coroutine function) so that every call goes through the breaker."""
        if inspect.iscoroutinefunction(fn):
            call_async = self.call_async

            @functools.wraps(fn)
            async def guarded_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await call_async(fn, *args, **kwargs)

            return guarded_async

        call = self.call

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> Any:
            return call(fn, *args, **kwargs)

        return guarded

    __call__ = decorate

    def acquire(self) -> Permit:
        """Take leave to call the upstream, or raise :class:`CircuitOpenError`."""
        state, generation = self._store.peek()
        if state is not _CLOSED and state is not _DISABLED and state is not _METRICS_ONLY:
            generation, state = self._admit_slowly()
        return Permit(self, generation, state, self._now() if self._timed else _UNTIMED)

    # -- reading --------------------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        state = self._store.peek()[0]
        if state is _OPEN or state is _HALF_OPEN:
            state, transitions = self._store.run(self._machine.refresh, self._now())
            self._emit_all(transitions)
        return state

    def snapshot(self) -> BreakerSnapshot:
        """Counts, rates, state and time in state, read atomically."""
        snapshot, transitions = self._store.run(self._machine.snapshot, self._now())
        self._emit_all(transitions)
        return snapshot

    # -- by hand --------------------------------------------------------------------------------------

    def transition_to(self, state: BreakerState, *, reason: str | None = None) -> BreakerTransition | None:
        """Move the breaker by hand; ``None`` if it already was in ``state``.

        Raises :class:`IllegalTransitionError` for a move outside :data:`LEGAL_TRANSITIONS`.
        """
        target = BreakerState(state)
        why = reason or f"moved to {target} by hand"
        transitions, manual, current = self._store.run(self._machine.move_by_hand, target, self._now(), why)
        self._emit_all(transitions)
        if manual is None and current is not target:
            raise IllegalTransitionError(self.name, current, target)
        return manual

    def transition_to_closed(self) -> BreakerTransition | None:
        return self.transition_to(BreakerState.CLOSED)

    def transition_to_open(self) -> BreakerTransition | None:
        """Trip by hand: a timed open state, with the usual growth and probes after it."""
        return self.transition_to(BreakerState.OPEN)

    def transition_to_half_open(self) -> BreakerTransition | None:
        """Let the probes through now instead of waiting out the open duration."""
        return self.transition_to(BreakerState.HALF_OPEN)

    def force_open(self) -> BreakerTransition | None:
        """Refuse every call until moved on by hand."""
        return self.transition_to(BreakerState.FORCED_OPEN)

    def disable(self) -> BreakerTransition | None:
        """Admit every call and record nothing."""
        return self.transition_to(BreakerState.DISABLED)

    def metrics_only(self) -> BreakerTransition | None:
        """Admit every call and record it, without ever tripping."""
        return self.transition_to(BreakerState.METRICS_ONLY)

    def reset(self) -> None:
        """Close the breaker by hand and forget its counts (from any state)."""
        transitions, reset = self._store.run(self._machine.reset, self._now())
        self._emit_all(transitions)
        if reset is not None:
            self._emit(reset)

    # -- listeners ------------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Receive every :class:`BreakerTransition`; returns a function that unsubscribes."""
        return self.on(BreakerTransition, listener)

    def on(self, kind: type[E], listener: Callable[[E], None]) -> Callable[[], None]:
        """Receive every event of type ``kind`` (``BreakerEvent`` for all); returns an unsubscriber.

        Listeners run on the thread that caused the event, after the breaker's lock is released; one
        that raises is logged and does not disturb the call or the other listeners. A call already in
        flight when the first call listener subscribes reports a NaN duration (it was not timed).
        """
        targets = [event_type for event_type in _EVENT_TYPES if issubclass(event_type, kind)]
        if not targets:
            raise TypeError(
                f"{kind!r} is not a breaker event type; use one of {[t.__name__ for t in _EVENT_TYPES]}"
            )
        with self._subscription_lock:
            listeners = dict(self._listeners)
            for event_type in targets:
                listeners[event_type] = (*listeners.get(event_type, ()), listener)
            self._install(listeners)

        def unsubscribe() -> None:
            with self._subscription_lock:
                remaining = dict(self._listeners)
                for event_type in targets:
                    current = list(remaining.get(event_type, ()))
                    if listener in current:
                        current.remove(listener)
                    remaining[event_type] = tuple(current)
                self._install(remaining)

        return unsubscribe

    def _install(self, listeners: dict[type[BreakerEvent], tuple[Callable[[Any], None], ...]]) -> None:
        self._listeners = listeners
        self._call_listeners = any(listeners.get(event_type) for event_type in _CALL_EVENT_TYPES)
        self._rejection_listeners = bool(listeners.get(CallRejected))
        config = self.config
        # Clock readings around a call are only needed for slow-call detection and call events.
        self._timed = config.slow_call_duration is not None or self._call_listeners
        # A success that can cause no transition and needs no time goes through the lean path.
        self._quick = (
            not self._timed
            and not config.judges_rates
            and isinstance(config.window, CountWindow)
            and self._classify_result is default_result_outcome
        )

    # -- internals ------------------------------------------------------------------------------------

    def _succeed_quickly(self, generation: int) -> None:
        """The lean path of a success (see :attr:`_quick`): no clock, no event, no lock in-process."""
        lean = self._lean
        if lean is None:
            self._store.run(self._record_success_op, generation)
            return
        if len(lean) >= _FOLD_AFTER:
            self._store.run(self._fold_op)
        lean.append(generation)

    def _admit_slowly(self) -> tuple[int, BreakerState]:
        now = self._now()
        generation, state, retry_after, transitions = self._store.run(self._admit_op, now)
        if transitions:
            self._emit_all(transitions)
        if generation < 0:
            if self._rejection_listeners:
                self._emit(CallRejected(at=now, breaker=self.name, state=state, retry_after=retry_after))
            raise CircuitOpenError(self.name, state, retry_after)
        return generation, state

    def _classify_failure(self, exc: BaseException) -> CallOutcome:
        try:
            return self._classify_exception(exc)
        except Exception:
            _log.exception(
                "exception classifier of breaker %r failed; counting the call as a failure", self.name
            )
            return _FAILURE

    def _classify_success(self, result: object) -> CallOutcome:
        try:
            return self._classify_result(result)
        except Exception:
            _log.exception("result classifier of breaker %r failed; ignoring the call", self.name)
            return _IGNORED

    def _finish(
        self,
        generation: int,
        state: BreakerState,
        outcome: CallOutcome,
        started: float,
        error: BaseException | None,
    ) -> None:
        now = self._now()
        duration = now - started
        slow_after = self._slow_after
        slow = slow_after is not None and duration >= slow_after
        if state is not _DISABLED:
            transitions = self._store.run(self._settle_op, generation, outcome, slow, now)
        else:
            transitions = ()
        if self._call_listeners:
            self._emit_call(state, outcome, duration=duration, slow=slow, now=now, error=error)
        if transitions:
            self._emit_all(transitions)

    def _emit_call(
        self,
        state: BreakerState,
        outcome: CallOutcome,
        *,
        duration: float,
        slow: bool,
        now: float,
        error: BaseException | None,
    ) -> None:
        name = self.name
        error_type = None if error is None else type(error).__qualname__
        event: BreakerEvent
        if outcome is _SUCCESS:
            event = CallSucceeded(at=now, breaker=name, state=state, duration=duration, slow=slow)
        elif outcome is _FAILURE:
            event = CallFailed(
                at=now, breaker=name, state=state, duration=duration, slow=slow, error=error_type
            )
        else:
            event = CallIgnored(at=now, breaker=name, state=state, duration=duration, error=error_type)
        self._emit(event)
        if slow:
            assert self._slow_after is not None
            self._emit(
                SlowCall(at=now, breaker=name, state=state, duration=duration, threshold=self._slow_after)
            )

    def _emit_all(self, events: Sequence[BreakerEvent]) -> None:
        for event in events:
            self._emit(event)

    def _emit(self, event: BreakerEvent) -> None:
        for listener in self._listeners.get(type(event), ()):
            try:
                listener(event)
            except Exception:
                _log.exception("listener %r of breaker %r failed on %r", listener, self.name, event)

    def __repr__(self) -> str:
        # A repr must never raise: a shared store may be unreachable while someone debugs it.
        try:
            state, generation = self._store.peek()
        except Exception as exc:  # any store failure, reported in the repr itself
            return f"CircuitBreaker({self.name!r}, state=<unavailable: {type(exc).__name__}>)"
        return f"CircuitBreaker({self.name!r}, state={state}, generation={generation})"
