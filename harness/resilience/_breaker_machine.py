"""The breaker's rules, as operations on its :class:`BreakerRecord`.

Each public method takes the record first, so a :class:`BreakerStore` can apply it atomically
(``store.run(machine.settle, generation, outcome, slow, now)``). Operations read time only from their
``now`` argument and return the transitions they made instead of emitting them, so a store that
retries a transaction can simply run an operation again.

Generations: every transition (and a reset) starts a new generation. A permit remembers the generation
it was issued in, and a settlement from an older generation changes nothing: a slow call admitted
while closed that fails after the breaker re-opened and went half-open must not count as a failed probe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.resilience._breaker_classify import CallOutcome
from harness.resilience._breaker_config import BreakerConfig
from harness.resilience._breaker_events import BreakerReset, BreakerSnapshot, BreakerTransition
from harness.resilience._breaker_states import LEGAL_TRANSITIONS, BreakerState
from harness.resilience._breaker_store import BreakerRecord

__all__ = ["Admission", "BreakerMachine", "ManualMove"]

Transitions = Sequence[BreakerTransition]
Admission = tuple[int, BreakerState, float, Transitions]
"""(generation, or -1 if refused; state; seconds until a call may be admitted; transitions made)."""
ManualMove = tuple[Transitions, BreakerTransition | None, BreakerState]
"""(every transition made, the manual one if it happened, the state the breaker was in when asked)."""

_NONE: Transitions = ()
_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_FORCED_OPEN = BreakerState.FORCED_OPEN
_METRICS_ONLY = BreakerState.METRICS_ONLY
_DISABLED = BreakerState.DISABLED
_FAILURE = CallOutcome.FAILURE
_IGNORED = CallOutcome.IGNORED
_COUNTING = (_CLOSED, _DISABLED, _METRICS_ONLY)
"""States that admit every call; entering one starts counting afresh."""


class BreakerMachine:
    """The state machine of one breaker, bound to its name and config."""

    __slots__ = (
        "_after_half_open",
        "_consecutive",
        "_failure_rate",
        "_judges_rates",
        "_max_half_open",
        "_minimum_calls",
        "_permits",
        "_slow_rate",
        "_slow_rule",
        "_success_threshold",
        "config",
        "name",
    )

    def __init__(self, name: str, config: BreakerConfig) -> None:
        self.name = name
        self.config = config
        self._consecutive = config.failure_threshold
        self._failure_rate = config.failure_rate_threshold
        self._slow_rate = config.slow_call_rate_threshold
        self._slow_rule = config.slow_call_rate_threshold is not None
        self._judges_rates = config.judges_rates
        self._minimum_calls = config.minimum_calls
        self._permits = config.half_open_permits
        self._success_threshold = config.success_threshold
        self._max_half_open = config.max_half_open_duration
        self._after_half_open = config.after_half_open_timeout

    # -- calls ----------------------------------------------------------------------------------------

    def admit(self, rec: BreakerRecord, now: float) -> Admission:
        transitions = self._refresh(rec, now)
        state = rec.state
        if state is _HALF_OPEN:
            if rec.half_open_taken < self._permits:
                rec.half_open_taken += 1
                return rec.generation, state, 0.0, transitions
            rec.not_permitted += 1
            return -1, state, 0.0, transitions
        if state is _OPEN:
            rec.not_permitted += 1
            return -1, state, rec.open_until - now, transitions
        if state is _FORCED_OPEN:
            rec.not_permitted += 1
            return -1, state, math.inf, transitions
        return rec.generation, state, 0.0, transitions

    def settle(
        self, rec: BreakerRecord, generation: int, outcome: CallOutcome, slow: bool, now: float
    ) -> Transitions:
        """Record the end of a call admitted in ``generation``."""
        state = rec.state
        if state is _OPEN or state is _HALF_OPEN:
            transitions = self._refresh(rec, now)
            if transitions:
                # The refresh started a new generation, so this permit is stale.
                return transitions
        if generation != rec.generation:
            return _NONE
        rec.fold()
        if state is _CLOSED:
            return self._settle_closed(rec, outcome, slow, now)
        if state is _HALF_OPEN:
            return self._settle_probe(rec, outcome, slow, now)
        if state is _METRICS_ONLY and outcome is not _IGNORED:
            failed = outcome is _FAILURE
            rec.window.record(now, failed, slow)
            rec.consecutive_failures = rec.consecutive_failures + 1 if failed else 0
        return _NONE

    @staticmethod
    def record_plain_success(rec: BreakerRecord, generation: int) -> None:
        """A success that can cause no transition and needs no time (see :meth:`BreakerRecord.fold`).

        Stores other than the in-process one take the lean path through this operation.
        """
        rec.deferred.append(generation)

    @staticmethod
    def fold(rec: BreakerRecord) -> None:
        rec.fold()

    def _settle_closed(self, rec: BreakerRecord, outcome: CallOutcome, slow: bool, now: float) -> Transitions:
        if outcome is _IGNORED:
            return _NONE
        failed = outcome is _FAILURE
        rec.window.record(now, failed, slow)
        if failed:
            rec.consecutive_failures += 1
            threshold = self._consecutive
            if threshold is not None and rec.consecutive_failures >= threshold:
                return (self._move(rec, _OPEN, now, f"{rec.consecutive_failures} consecutive failures"),)
        else:
            rec.consecutive_failures = 0
        if self._judges_rates:
            reason = self._rate_exceeded(rec)
            if reason is not None:
                return (self._move(rec, _OPEN, now, reason),)
        return _NONE

    def _settle_probe(self, rec: BreakerRecord, outcome: CallOutcome, slow: bool, now: float) -> Transitions:
        if outcome is _IGNORED:
            rec.half_open_taken -= 1
            return _NONE
        if outcome is _FAILURE:
            return (self._move(rec, _OPEN, now, "probe failed"),)
        if slow and self._slow_rule:
            return (self._move(rec, _OPEN, now, "probe was slow"),)
        rec.half_open_successes += 1
        if rec.half_open_successes >= self._success_threshold:
            return (self._move(rec, _CLOSED, now, f"{rec.half_open_successes} probes succeeded"),)
        return _NONE

    def _rate_exceeded(self, rec: BreakerRecord) -> str | None:
        """Judge the rates; only called right after a call was recorded, which moved the window to now."""
        window = rec.window
        calls = window.calls
        if calls < self._minimum_calls:
            return None
        failures, slow = window.failures, window.slow
        limit = self._failure_rate
        if limit is not None and failures * 100 >= limit * calls:
            return f"failure rate {failures * 100 / calls:g}% >= {limit:g}% over {calls} calls"
        limit = self._slow_rate
        if limit is not None and slow * 100 >= limit * calls:
            return f"slow-call rate {slow * 100 / calls:g}% >= {limit:g}% over {calls} calls"
        return None

    # -- time -----------------------------------------------------------------------------------------

    def refresh(self, rec: BreakerRecord, now: float) -> tuple[BreakerState, Transitions]:
        """Make the transitions that time alone causes; return the state after them."""
        transitions = self._refresh(rec, now)
        return rec.state, transitions

    def _refresh(self, rec: BreakerRecord, now: float) -> Transitions:
        state = rec.state
        if state is _OPEN:
            if now >= rec.open_until:
                return (self._move(rec, _HALF_OPEN, now, f"open for {rec.open_duration:g}s"),)
        elif state is _HALF_OPEN:
            limit = self._max_half_open
            if limit is not None and now >= rec.entered_at + limit:
                reason = f"probes undecided after {limit:g}s in half-open"
                return (self._move(rec, self._after_half_open, now, reason),)
        return _NONE

    # -- by hand --------------------------------------------------------------------------------------

    def move_by_hand(self, rec: BreakerRecord, to: BreakerState, now: float, reason: str) -> ManualMove:
        """Move to ``to`` if that is legal from the (refreshed) current state; a no-op if already there."""
        transitions = self._refresh(rec, now)
        current = rec.state
        if current is to or (current, to) not in LEGAL_TRANSITIONS:
            return transitions, None, current
        manual = self._move(rec, to, now, reason, manual=True)
        return (*transitions, manual), manual, current

    def reset(self, rec: BreakerRecord, now: float) -> tuple[Transitions, BreakerReset | None]:
        """Close the breaker and forget its counts; calls admitted before the reset no longer count."""
        if rec.state is not _CLOSED:
            return (self._move(rec, _CLOSED, now, "manual reset", manual=True),), None
        rec.generation += 1
        rec.gate = (_CLOSED, rec.generation)
        rec.deferred.clear()
        rec.consecutive_failures = 0
        rec.window.clear()
        return _NONE, BreakerReset(at=now, breaker=self.name, state=_CLOSED)

    # -- reading --------------------------------------------------------------------------------------

    def snapshot(self, rec: BreakerRecord, now: float) -> tuple[BreakerSnapshot, Transitions]:
        transitions = self._refresh(rec, now)
        rec.fold()
        calls, failures, slow, slow_failures = rec.window.totals(now)
        judged = calls >= self._minimum_calls
        state = rec.state
        if state is _OPEN:
            retry_after = max(rec.open_until - now, 0.0)
        elif state is _FORCED_OPEN:
            retry_after = math.inf
        else:
            retry_after = 0.0
        snapshot = BreakerSnapshot(
            at=now,
            breaker=self.name,
            state=state,
            generation=rec.generation,
            time_in_state=now - rec.entered_at,
            calls=calls,
            failures=failures,
            slow_calls=slow,
            slow_failures=slow_failures,
            failure_rate=failures * 100 / calls if judged else None,
            slow_call_rate=slow * 100 / calls if judged else None,
            consecutive_failures=rec.consecutive_failures,
            half_open_permits_taken=rec.half_open_taken,
            half_open_successes=rec.half_open_successes,
            not_permitted=rec.not_permitted,
            trips=rec.trips,
            open_duration=rec.open_duration,
            retry_after=retry_after,
        )
        return snapshot, transitions

    # -- the one place that changes state -------------------------------------------------------------

    def _move(
        self, rec: BreakerRecord, to: BreakerState, now: float, reason: str, *, manual: bool = False
    ) -> BreakerTransition:
        rec.fold()
        source = rec.state
        generation = rec.generation + 1
        rec.state = to
        rec.generation = generation
        rec.gate = (to, generation)
        rec.entered_at = now
        rec.consecutive_failures = 0
        rec.half_open_taken = 0
        rec.half_open_successes = 0
        if to is _OPEN:
            config = self.config
            if rec.trips == 0:
                duration = config.open_duration
            else:
                duration = rec.open_duration * config.open_duration_multiplier
                cap = config.max_open_duration
                if cap is not None and duration > cap:
                    duration = cap
            rec.trips += 1
            rec.open_duration = duration
            rec.open_until = now + duration
        elif to in _COUNTING:
            rec.trips = 0
            rec.window.clear()
        return BreakerTransition(
            at=now,
            breaker=self.name,
            from_state=source,
            to_state=to,
            reason=reason,
            manual=manual,
            generation=generation,
        )
