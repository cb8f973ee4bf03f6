"""Response lost after the upstream committed: the classic double-charge trigger.

The fake Stripe applies each charge; Toxiproxy's ``limit_data`` toxic then drops the answer. A client
that retries must reuse its idempotency key, or every retry is a new charge; and its breaker, once
open, must keep calls away from the upstream.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.drivers import leaky_breaker, parks_and_forgets, reference_without_idempotency
from harness.scenario import RunResult, response_lost_after_commit
from scenarios.conftest import failures

pytestmark = pytest.mark.scenario


def _lost_answers(result: RunResult) -> int:
    """Attempts whose answer was cut off (the fault really bit)."""
    attempts = result.history.attempts
    return int((attempts["error"] == "reset").sum())


def test_retries_with_idempotency_keys_charge_each_operation_at_most_once(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(response_lost_after_commit())

    assert _lost_answers(result) > 0, "the fault never cut an answer off, so nothing was tested"
    assert result.passed, failures(result)


@pytest.mark.control
def test_the_same_faults_double_charge_a_client_without_idempotency_keys(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(response_lost_after_commit(), driver=reference_without_idempotency)

    effects = result.check("effects_at_most_once")
    assert not effects.passed
    per_operation = effects.evidence.groupby("operation_id").size()
    assert len(per_operation) > 0
    assert (per_operation > 1).all()


@pytest.mark.control
def test_a_breaker_that_opens_but_lets_calls_through_is_caught_by_the_upstream_log(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(response_lost_after_commit(), driver=leaky_breaker)

    check = result.check("no_calls_while_open")
    assert not check.passed
    assert (check.evidence["t"] > check.evidence["open_since"]).all()
    assert [c.name for c in result.checks if not c.passed] == ["no_calls_while_open"]


@pytest.mark.control
def test_a_client_that_dead_letters_and_never_replays_does_not_converge(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(response_lost_after_commit(), driver=parks_and_forgets)

    assert [c.name for c in result.checks if not c.passed] == ["dead_letters_converge"]


def test_the_reference_client_replays_what_it_parked_to_a_final_outcome(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(response_lost_after_commit())

    ops = result.history.operations
    parked = ops[ops["initial_outcome"] == "parked"]
    assert len(parked) > 0, "nothing was parked, so the settle phase was not exercised"
    assert set(parked["outcome"]) <= {"succeeded", "failed"}
    assert result.check("dead_letters_converge").passed
