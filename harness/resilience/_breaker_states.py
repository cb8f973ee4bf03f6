"""The breaker's states and which moves between them are legal.

Three states run the breaker's own cycle (CLOSED → OPEN → HALF_OPEN → CLOSED or back to OPEN); three
more are administrative and only ever entered by hand, as in resilience4j:

* DISABLED admits every call and records nothing (switch the breaker off, e.g. in a test run);
* METRICS_ONLY admits every call and records it, but never trips (watch what it *would* do);
* FORCED_OPEN rejects every call until someone moves it on (maintenance, a known outage).

The legal moves are the breaker's automatic ones plus these manual ones:

* any state may be sent to an administrative state or back to CLOSED (``reset``);
* OPEN may be entered by hand from CLOSED, HALF_OPEN and FORCED_OPEN, HALF_OPEN from OPEN and
  FORCED_OPEN (probe now).

So five moves are illegal, and a checker that finds one in a history has found a bug: CLOSED →
HALF_OPEN (probes only make sense after the upstream was cut off), and DISABLED or METRICS_ONLY →
OPEN or HALF_OPEN (those states never judged the upstream; go through CLOSED). resilience4j forbids
the same moves except that it lets DISABLED jump to OPEN or HALF_OPEN.
"""

from __future__ import annotations

import enum

__all__ = ["AUTOMATIC_TRANSITIONS", "LEGAL_TRANSITIONS", "MANUAL_TRANSITIONS", "BreakerState"]


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    DISABLED = "disabled"
    FORCED_OPEN = "forced_open"
    METRICS_ONLY = "metrics_only"


_S = BreakerState

AUTOMATIC_TRANSITIONS: frozenset[tuple[BreakerState, BreakerState]] = frozenset(
    {
        (_S.CLOSED, _S.OPEN),
        (_S.OPEN, _S.HALF_OPEN),
        (_S.HALF_OPEN, _S.OPEN),
        (_S.HALF_OPEN, _S.CLOSED),
    }
)
"""The moves the breaker makes by itself (a transition event with ``manual=False`` is one of these)."""

_ADMINISTRATIVE = (_S.DISABLED, _S.FORCED_OPEN, _S.METRICS_ONLY)

MANUAL_TRANSITIONS: frozenset[tuple[BreakerState, BreakerState]] = frozenset(
    {(source, target) for source in _S for target in (*_ADMINISTRATIVE, _S.CLOSED) if source is not target}
    | {
        (_S.CLOSED, _S.OPEN),
        (_S.HALF_OPEN, _S.OPEN),
        (_S.FORCED_OPEN, _S.OPEN),
        (_S.OPEN, _S.HALF_OPEN),
        (_S.FORCED_OPEN, _S.HALF_OPEN),
    }
)
"""The moves a person (or a control plane) may make with ``transition_to`` and friends."""

LEGAL_TRANSITIONS: frozenset[tuple[BreakerState, BreakerState]] = AUTOMATIC_TRANSITIONS | MANUAL_TRANSITIONS
"""Every move a correct breaker can make; anything else in a history is a bug."""

del _S
