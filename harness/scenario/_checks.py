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

__all__ = ["Check", "CheckResult", "effects_at_most_once", "truthful_outcomes"]

EVIDENCE_ROWS_IN_JSON = 50


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    name: str
    passed: bool
    summary: str
    evidence: pd.DataFrame

    def to_json(self) -> dict[str, Any]:
        rows = self.evidence.head(EVIDENCE_ROWS_IN_JSON)
        return {
            "name": self.name,
            "passed": self.passed,
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


def _effect_counts(history: History) -> pd.Series:
    effects = history.effects
    return effects.groupby("operation_id").size() if len(effects) else pd.Series(dtype="int64")


def _effects_at_most_once(history: History) -> CheckResult:
    effects = history.effects
    known = set(history.operations["operation_id"])
    stray = effects[effects["operation_id"].isna() | ~effects["operation_id"].isin(known)]
    counts = _effect_counts(history)
    doubled = counts[counts > 1]
    duplicated = effects[effects["operation_id"].isin(doubled.index)]
    evidence = (
        pd.concat([duplicated, stray]).sort_values("t") if len(duplicated) or len(stray) else effects.head(0)
    )
    problems = []
    if len(doubled):
        extra = int(doubled.sum() - len(doubled))
        problems.append(f"{len(doubled)} operations applied more than once ({extra} extra effects)")
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
    counts = _effect_counts(history)
    operations["effects"] = operations["operation_id"].map(counts).fillna(0).astype(int)
    lying_success = (operations["outcome"] == OutcomeKind.SUCCEEDED) & (operations["effects"] == 0)
    lying_failure = (operations["outcome"] == OutcomeKind.FAILED) & (operations["effects"] > 0)
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
    description="No operation has more than one effect upstream (no double charge).",
    evaluate=_effects_at_most_once,
)
truthful_outcomes = Check(
    name="truthful_outcomes",
    description="A reported success has its effect upstream; a reported definite failure has none.",
    evaluate=_truthful_outcomes,
)
