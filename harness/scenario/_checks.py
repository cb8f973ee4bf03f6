"""Invariant checkers: each reads a :class:`History` and returns a verdict with the rows that prove it.

Checkers trust the upstreams' ledgers, never the driver's word: a driver that says "succeeded" is
checked against the effects the fake really applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness._driver import OutcomeKind
from harness.scenario._history import History

__all__ = [
    "DEFINITE_STATUSES",
    "EXACTLY_ONCE",
    "NON_COMMITTING_KINDS",
    "Check",
    "CheckResult",
    "breaker_stays_closed",
    "breaker_transitions_legal",
    "dead_letters_converge",
    "driver_honours_protocol",
    "effects_at_most_once",
    "no_calls_while_open",
    "no_retry_after_definite_answer",
    "nothing_lost",
    "recovers_after_faults",
    "truthful_outcomes",
]

EVIDENCE_ROWS_IN_JSON = 50


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """A verdict with its proof. ``applicable=False`` means the run could not judge the property
    (e.g. the driver publishes no breaker events); such a result passes and says why."""

    name: str
    passed: bool
    summary: str
    evidence: pd.DataFrame
    applicable: bool = True

    @classmethod
    def not_applicable(cls, name: str, why: str) -> CheckResult:
        return cls(
            name=name,
            passed=True,
            summary=f"not applicable: {why}",
            evidence=pd.DataFrame(),
            applicable=False,
        )

    def to_json(self) -> dict[str, Any]:
        rows = self.evidence.head(EVIDENCE_ROWS_IN_JSON)
        return {
            "name": self.name,
            "passed": self.passed,
            "applicable": self.applicable,
            "summary": self.summary,
            "evidence_rows": len(self.evidence),
            "evidence": rows.astype(object).where(rows.notna(), None).to_dict(orient="records"),
        }


@dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    description: str
    evaluate: Callable[[History], CheckResult]

    def __call__(self, history: History) -> CheckResult:
        return self.evaluate(history)


NON_COMMITTING_KINDS = frozenset({"stk_prompt", "release"})
"""Effects that move no money and bind no one: an M-Pesa prompt shown, an authorization released.
A definite failure may leave these behind; any other effect contradicts it."""


def _effect_counts(history: History, *, committing_only: bool = False) -> pd.Series:
    effects = history.effects
    if committing_only:
        effects = effects[~effects["kind"].isin(NON_COMMITTING_KINDS)]
    return effects.groupby("operation_id").size() if len(effects) else pd.Series(dtype="int64")


def _effects_at_most_once(history: History) -> CheckResult:
    effects = history.effects
    known = set(history.operations["operation_id"])
    stray = effects[effects["operation_id"].isna() | ~effects["operation_id"].isin(known)]
    counts = _effect_counts(history)
    per_kind = effects.groupby(["operation_id", "kind"]).size()
    doubled = per_kind[per_kind > 1].reset_index(name="count")
    duplicated = effects.merge(doubled[["operation_id", "kind"]], on=["operation_id", "kind"])
    evidence = (
        pd.concat([duplicated, stray]).sort_values("t") if len(duplicated) or len(stray) else effects.head(0)
    )
    problems = []
    if len(doubled):
        extra = int(doubled["count"].sum() - len(doubled))
        kinds = "/".join(sorted(set(doubled["kind"])))
        operations = doubled["operation_id"].nunique()
        problems.append(f"{operations} operations applied more than once ({extra} extra {kinds} effects)")
    if len(stray):
        problems.append(
            f"{len(stray)} effects carry no operation id of this run, so they cannot be attributed"
            " (does the driver send the operation id, e.g. Stripe metadata[operation_id]?)"
        )
    passed = not problems
    summary = (
        f"{len(effects)} effects for {len(counts)} operations, none applied twice"
        if passed
        else "; ".join(problems)
    )
    return CheckResult(name="effects_at_most_once", passed=passed, summary=summary, evidence=evidence)


def _truthful_outcomes(history: History) -> CheckResult:
    operations = history.operations.copy()
    operations["effects"] = operations["operation_id"].map(_effect_counts(history)).fillna(0).astype(int)
    committing = operations["operation_id"].map(_effect_counts(history, committing_only=True))
    operations["committing_effects"] = committing.fillna(0).astype(int)
    lying_success = (operations["outcome"] == OutcomeKind.SUCCEEDED) & (operations["effects"] == 0)
    lying_failure = (operations["outcome"] == OutcomeKind.FAILED) & (operations["committing_effects"] > 0)
    evidence = operations[lying_success | lying_failure]
    passed = evidence.empty
    if passed:
        by_kind = operations["outcome"].value_counts().to_dict()
        summary = "every reported success has its effect and every reported failure has none " + str(
            {str(k): int(v) for k, v in by_kind.items()}
        )
    else:
        summary = (
            f"{int(lying_success.sum())} successes without an effect upstream,"
            f" {int(lying_failure.sum())} failures whose effect was applied anyway"
        )
    return CheckResult(name="truthful_outcomes", passed=passed, summary=summary, evidence=evidence)


effects_at_most_once = Check(
    name="effects_at_most_once",
    description=(
        "No operation has the same effect twice upstream: no double charge, no double repayment, no"
        " second STK prompt."
    ),
    evaluate=_effects_at_most_once,
)
truthful_outcomes = Check(
    name="truthful_outcomes",
    description="A reported success has its effect upstream; a reported definite failure has none.",
    evaluate=_truthful_outcomes,
)


# -- breaker and retry properties --------------------------------------------------------------

OPEN_STATES = frozenset({"open", "forced_open"})
DEFINITE_STATUSES = frozenset({400, 402, 404, 422})
"""Answers that settle a request: repeating it cannot succeed (a decline, a validation error)."""


def _open_intervals(history: History) -> pd.DataFrame:
    """One row per stretch of time a breaker spent open: breaker, start, end."""
    rows = []
    end_of_run = float(history.meta.get("duration") or 0.0)
    for breaker, events in history.breaker_events.sort_values("t").groupby("breaker"):
        opened_at: float | None = None
        for t, to_state in zip(events["t"], events["to_state"], strict=True):
            if to_state in OPEN_STATES and opened_at is None:
                opened_at = float(t)
            elif to_state not in OPEN_STATES and opened_at is not None:
                rows.append({"breaker": breaker, "start": opened_at, "end": float(t)})
                opened_at = None
        if opened_at is not None:
            rows.append({"breaker": breaker, "start": opened_at, "end": max(end_of_run, opened_at)})
    return pd.DataFrame(rows, columns=["breaker", "start", "end"])


def _breaker_transitions_legal(history: History) -> CheckResult:
    from harness.resilience import AUTOMATIC_TRANSITIONS, LEGAL_TRANSITIONS

    name = "breaker_transitions_legal"
    events = history.breaker_events
    if events.empty:
        return CheckResult.not_applicable(name, "the driver published no breaker transitions")
    automatic = {(str(a), str(b)) for a, b in AUTOMATIC_TRANSITIONS}
    legal = {(str(a), str(b)) for a, b in LEGAL_TRANSITIONS}
    order = ["generation", "t"] if events["generation"].notna().all() else ["t"]
    bad = []
    for _, mine in events.sort_values(order).groupby("breaker"):
        state = "closed"
        for row in mine.to_dict(orient="records"):
            step = (str(row["from_state"]), str(row["to_state"]))
            allowed = legal if bool(row["manual"]) else automatic
            if step[0] != state or step not in allowed:
                bad.append({**row, "expected_from": state})
            state = step[1]
    evidence = pd.DataFrame(bad, columns=[*events.columns, "expected_from"])
    passed = evidence.empty
    manual = int(events["manual"].astype(bool).sum())
    summary = (
        f"{len(events)} transitions ({manual} made by hand), all legal and consistent"
        if passed
        else f"{len(evidence)} illegal or inconsistent transitions"
    )
    return CheckResult(name=name, passed=passed, summary=summary, evidence=evidence)


def _no_calls_while_open(history: History) -> CheckResult:
    """Judged on the upstream's request log. A request the upstream receives while the breaker is
    open is excused only if it belongs to an attempt that was already in flight when it opened
    (same correlation id, started before the opening, not finished before the request arrived)."""
    name = "no_calls_while_open"
    intervals = _open_intervals(history)
    if history.breaker_events.empty:
        return CheckResult.not_applicable(name, "the driver published no breaker transitions")
    requests, attempts = history.requests, history.attempts
    bad = []
    for interval in intervals.to_dict(orient="records"):
        start, end = float(interval["start"]), float(interval["end"])
        received = requests[
            (requests["upstream"] == interval["breaker"]) & (requests["t"] > start) & (requests["t"] < end)
        ]
        for row in received.to_dict(orient="records"):
            in_flight = attempts[
                (attempts["correlation_id"] == row["correlation_id"])
                & (attempts["t"] <= start)
                & (attempts["t"] + attempts["latency"] >= float(row["t"]) - 1e-3)
            ]
            if row["correlation_id"] is None or in_flight.empty:
                bad.append({**row, "open_since": start, "open_until": end})
    evidence = pd.DataFrame(bad, columns=[*requests.columns, "open_since", "open_until"])
    passed = evidence.empty
    total_open = float((intervals["end"] - intervals["start"]).sum()) if len(intervals) else 0.0
    summary = (
        f"breakers open {len(intervals)} times ({total_open:.2f}s in all); the upstream received no"
        " new request meanwhile"
        if passed
        else f"the upstream received {len(evidence)} requests while the breaker was open"
    )
    return CheckResult(name=name, passed=passed, summary=summary, evidence=evidence)


def _no_retry_after_definite_answer(history: History) -> CheckResult:
    """A decline or a validation error is final: the upstream must not see that operation again.
    Judged on the upstream's log, grouping requests by correlation id."""
    name = "no_retry_after_definite_answer"
    requests = history.requests[history.requests["correlation_id"].notna()].sort_values("t")
    if requests.empty:
        return CheckResult.not_applicable(name, "the upstream saw no correlation ids to group requests by")
    bad = []
    for _, same in requests.groupby("correlation_id"):
        settled_at = same[same["status"].isin(DEFINITE_STATUSES)]["t"]
        if len(settled_at):
            bad.append(same[same["t"] > settled_at.min()])
    evidence = pd.concat(bad) if bad else requests.head(0)
    passed = evidence.empty
    summary = (
        "no request repeated after a definite answer"
        if passed
        else f"{len(evidence)} requests repeated an operation the upstream had already settled"
    )
    return CheckResult(name=name, passed=passed, summary=summary, evidence=evidence)


def recovers_after_faults(within: float) -> Check:
    """Every operation submitted ``within`` seconds or more after the last fault ended succeeds."""
    if not within >= 0:
        raise ValueError(f"recovers_after_faults(within=...) must be >= 0 seconds, got {within!r}")
    name = "recovers_after_faults"

    def evaluate(history: History) -> CheckResult:
        if history.faults.empty:
            return CheckResult.not_applicable(name, "no fault was applied")
        healed_by = float(history.faults["end"].max()) + within
        later = history.operations[history.operations["planned_at"] >= healed_by]
        if later.empty:
            return CheckResult.not_applicable(
                name, f"no operation was submitted after t={healed_by:.2f}s; lengthen the workload"
            )
        evidence = later[later["outcome"] != OutcomeKind.SUCCEEDED]
        passed = evidence.empty
        summary = (
            f"all {len(later)} operations submitted {within:g}s after the last fault succeeded"
            if passed
            else f"{len(evidence)} of {len(later)} operations submitted {within:g}s after the last fault"
            " did not succeed"
        )
        return CheckResult(name=name, passed=passed, summary=summary, evidence=evidence)

    return Check(
        name=name,
        description=f"Breaker liveness: the client serves again within {within:g}s of the last fault ending.",
        evaluate=evaluate,
    )


def _breaker_stays_closed(history: History) -> CheckResult:
    name = "breaker_stays_closed"
    if history.attempts.empty:
        return CheckResult.not_applicable(name, "the driver published no attempts, so its breaker is unseen")
    opened = history.breaker_events[history.breaker_events["to_state"].isin(OPEN_STATES)]
    rejected = history.attempts[history.attempts["outcome"] == "rejected"]
    evidence = pd.concat([opened, rejected]) if len(opened) or len(rejected) else opened
    passed = evidence.empty
    summary = (
        "the breaker stayed closed and refused nothing"
        if passed
        else f"the breaker opened {len(opened)} times and refused {len(rejected)} attempts"
        " on a healthy upstream"
    )
    return CheckResult(name=name, passed=passed, summary=summary, evidence=evidence)


breaker_stays_closed = Check(
    name="breaker_stays_closed",
    description="With no fault injected, definite answers (declines) never open the breaker.",
    evaluate=_breaker_stays_closed,
)
breaker_transitions_legal = Check(
    name="breaker_transitions_legal",
    description="Breakers make only legal transitions, each from the state the previous one left.",
    evaluate=_breaker_transitions_legal,
)
no_calls_while_open = Check(
    name="no_calls_while_open",
    description="No new request reaches the upstream while its breaker is open (upstream log).",
    evaluate=_no_calls_while_open,
)
no_retry_after_definite_answer = Check(
    name="no_retry_after_definite_answer",
    description="A declined or invalid request is never sent again (upstream log).",
    evaluate=_no_retry_after_definite_answer,
)


DRIVER_RAISED = "driver raised "


def _driver_honours_protocol(history: History) -> CheckResult:
    ops = history.operations
    raised = ops[ops["detail"].astype(str).str.startswith(DRIVER_RAISED)]
    violations = list(history.meta.get("protocol_violations") or [])
    passed = raised.empty and not violations
    problems = []
    if len(raised):
        first = str(raised["detail"].iloc[0]).removeprefix(DRIVER_RAISED)
        problems.append(
            f"the driver raised instead of returning an outcome for {len(raised)} of {len(ops)}"
            f" operations (first: {first})"
        )
    problems += violations
    summary = (
        f"the driver returned an outcome for all {len(ops)} operations" if passed else "; ".join(problems)
    )
    return CheckResult(name="driver_honours_protocol", passed=passed, summary=summary, evidence=raised)


driver_honours_protocol = Check(
    name="driver_honours_protocol",
    description=(
        "The driver returns an outcome for every operation instead of raising, and settles only"
        " operations it was given."
    ),
    evaluate=_driver_honours_protocol,
)


def _nothing_lost(history: History) -> CheckResult:
    ops = history.operations
    lost = ops[ops["outcome"] == OutcomeKind.UNKNOWN]
    passed = lost.empty
    settled = int(ops["settled_at"].notna().sum())
    summary = (
        f"every operation ended succeeded, failed or parked ({settled} settled after the faults)"
        if passed
        else f"{len(lost)} of {len(ops)} operations ended with an unknown outcome after the settle phase:"
        " the client cannot say whether the customer was charged"
    )
    return CheckResult(name="nothing_lost", passed=passed, summary=summary, evidence=lost)


def _dead_letters_converge(history: History) -> CheckResult:
    name = "dead_letters_converge"
    ops = history.operations
    ever_parked = ops[(ops["initial_outcome"] == OutcomeKind.PARKED) | (ops["outcome"] == OutcomeKind.PARKED)]
    if ever_parked.empty:
        return CheckResult.not_applicable(name, "nothing was dead-lettered")
    still = ever_parked[ever_parked["outcome"] == OutcomeKind.PARKED]
    passed = still.empty
    summary = (
        f"all {len(ever_parked)} dead-lettered operations were replayed to a final outcome once the"
        " upstream recovered"
        if passed
        else f"{len(still)} of {len(ever_parked)} dead-lettered operations were still parked after the"
        " replay on a recovered upstream"
    )
    return CheckResult(name=name, passed=passed, summary=summary, evidence=still)


nothing_lost = Check(
    name="nothing_lost",
    description="After the settle phase every operation is terminal: succeeded, failed or parked.",
    evaluate=_nothing_lost,
)
dead_letters_converge = Check(
    name="dead_letters_converge",
    description="Replaying the dead-letter queue after recovery settles every parked operation.",
    evaluate=_dead_letters_converge,
)


EXACTLY_ONCE = (effects_at_most_once, truthful_outcomes, nothing_lost, dead_letters_converge)
"""The money properties, judged in every scenario."""
