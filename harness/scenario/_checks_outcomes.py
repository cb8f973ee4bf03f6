"""Outcome checks beyond the money properties: when a success may be reported, and whether every
operation got through once the upstream's refusals were over.

* :data:`no_premature_success`: :data:`~harness.scenario.truthful_outcomes` compares the driver's
  *final* word with the ledger at the end of the run; it cannot see a success reported before the
  effect existed, if the effect appeared later (a Fineract command waiting for a checker and then
  approved, an M-Pesa prompt reported as a payment before the customer paid). Here the driver's
  *first* word is compared with the time of the effect: a success must be reported after it.
* :data:`every_operation_succeeds`: for scenarios whose refusals are all temporary (a loan locked by
  close of business, a rate limit), an operation that ends failed or parked was dropped: a repayment
  the customer made and the bank never booked.
"""

from __future__ import annotations

import pandas as pd

from harness._driver import OutcomeKind
from harness.scenario._checks import NON_COMMITTING_KINDS, Check, CheckResult
from harness.scenario._history import History

__all__ = ["CLOCK_TOLERANCE", "every_operation_succeeds", "no_premature_success"]

CLOCK_TOLERANCE = 0.001
"""Seconds of slack between the fakes' and the runner's readings of the one monotonic clock."""


def _no_premature_success(history: History) -> CheckResult:
    name = "no_premature_success"
    ops = history.operations
    first_word = ops[ops["initial_outcome"] == OutcomeKind.SUCCEEDED]
    if first_word.empty:
        return CheckResult.not_applicable(name, "the driver reported no success when it answered")
    effects = history.effects[~history.effects["kind"].isin(NON_COMMITTING_KINDS)]
    applied_at = effects.groupby("operation_id")["t"].min()
    judged = first_word.assign(effect_at=first_word["operation_id"].map(applied_at))
    early = judged[judged["effect_at"].isna() | (judged["effect_at"] > judged["ended"] + CLOCK_TOLERANCE)]
    passed = early.empty
    if passed:
        summary = f"all {len(judged)} successes were reported after their effect was applied upstream"
    else:
        never = int(early["effect_at"].isna().sum())
        summary = (
            f"{len(early)} of {len(judged)} successes were reported before their effect existed upstream"
            f" ({len(early) - never} applied only later, {never} never)"
        )
    evidence = early[
        ["operation_id", "upstream", "action", "ended", "effect_at", "initial_outcome", "outcome"]
    ]
    return CheckResult(name=name, passed=passed, summary=summary, evidence=pd.DataFrame(evidence))


no_premature_success = Check(
    name="no_premature_success",
    description=(
        "A success is reported only once its effect exists upstream: never for a command still waiting"
        " for approval, even if it is approved later."
    ),
    evaluate=_no_premature_success,
)


def _every_operation_succeeds(history: History) -> CheckResult:
    ops = history.operations
    dropped = ops[ops["outcome"] != OutcomeKind.SUCCEEDED]
    passed = dropped.empty
    summary = (
        f"all {len(ops)} operations succeeded ({int(ops['settled_at'].notna().sum())} in the settle phase)"
        if passed
        else f"{len(dropped)} of {len(ops)} operations did not get through although every refusal was"
        f" temporary: {dropped['outcome'].value_counts().to_dict()}"
    )
    return CheckResult(name="every_operation_succeeds", passed=passed, summary=summary, evidence=dropped)


every_operation_succeeds = Check(
    name="every_operation_succeeds",
    description=(
        "Every operation ends succeeded: where the upstream's refusals are temporary (a close-of-business"
        " lock), nothing is dropped as failed or left parked."
    ),
    evaluate=_every_operation_succeeds,
)
