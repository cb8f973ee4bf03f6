"""Fineract (core banking) repayments under lost answers, close-of-business locks and maker-checker.

A repayment is money the customer already paid: it must be booked exactly once, never twice after a
retry, never dropped because the loan was locked for a while, and never reported booked while it
waits for a checker. Each scenario has a control: a client with the one bug it exists to catch.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.drivers import gives_up_on_locked_loans, repays_without_external_id, trusts_pending_commands
from harness.scenario import (
    RunResult,
    close_of_business_lock,
    maker_checker_approval,
    repayment_commit_then_fail,
)
from scenarios.conftest import failures

pytestmark = pytest.mark.scenario


def _failed(result: RunResult) -> list[str]:
    return [c.name for c in result.checks if not c.passed]


def _bitten(result: RunResult, fault: str) -> int:
    """Requests the fault really answered (the scenario tested something)."""
    return int((result.history.requests["fault"] == fault).sum())


def test_repayments_booked_then_failed_are_booked_exactly_once(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(repayment_commit_then_fail())

    assert _bitten(result, "commit_then_fail") > 0, "the fault never fired, so nothing was tested"
    assert result.passed, failures(result)
    ops = result.history.operations
    assert (ops["initial_outcome"] == "parked").sum() > 0, (
        "nothing was parked: the settle phase went untested"
    )


def test_without_fineracts_key_store_the_external_id_alone_prevents_a_second_booking(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    """Fineract 1.8.x kept no Idempotency-Key store; the unique externalId still holds."""
    result = run_harness_scenario(repayment_commit_then_fail(key_cache=False, drop=True))

    assert _bitten(result, "commit_then_fail") > 0
    assert result.passed, failures(result)
    assert not result.history.requests["replayed"].any(), "nothing may come from a key store that is off"


@pytest.mark.control
def test_a_client_without_external_id_or_key_books_repayments_twice(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(repayment_commit_then_fail(), driver=repays_without_external_id)

    assert "effects_at_most_once" in _failed(result)
    booked = result.history.effects[result.history.effects["kind"] == "repayment"]
    assert len(booked) > len(result.history.operations), (
        "the control should have booked some repayments twice"
    )


def test_repayments_on_loans_locked_by_close_of_business_are_booked_once_the_lock_lifts(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(close_of_business_lock())

    assert result.passed, failures(result)
    locked = result.history.requests["status"] == 409
    assert locked.sum() > 0, "no repayment met the lock, so nothing was tested"
    ops = result.history.operations
    waited = ops[ops["initial_outcome"] == "parked"]
    assert len(waited) > 0
    assert set(waited["outcome"]) == {"succeeded"}


@pytest.mark.control
def test_a_client_that_drops_repayments_on_locked_loans_is_caught(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(close_of_business_lock(), driver=gives_up_on_locked_loans)

    assert _failed(result) == ["every_operation_succeeds"]


def test_repayments_waiting_for_a_checker_are_not_reported_done_before_they_are_booked(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(maker_checker_approval())

    assert result.passed, failures(result)
    ops = result.history.operations
    waited = ops[ops["initial_outcome"] == "parked"].set_index("operation_id")
    assert len(waited) > 0, "no repayment waited for a checker, so nothing was tested"
    booked_at = result.history.effects.groupby("operation_id")["t"].min()
    assert (booked_at[waited.index] > waited["ended"]).all(), "they were booked when the checker approved"
    assert set(waited["outcome"]) == {"succeeded"}


@pytest.mark.control
def test_a_client_that_trusts_pending_commands_is_caught(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(maker_checker_approval(), driver=trusts_pending_commands)

    assert _failed(result) == ["no_premature_success"]
