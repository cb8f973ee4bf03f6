"""Response lost after the upstream committed: the classic double-charge trigger.

The fake Stripe applies each charge; Toxiproxy's ``limit_data`` toxic then drops the answer. A client
that retries must reuse its idempotency key, or every retry is a new charge.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.drivers import reference_without_idempotency
from harness.scenario import RunResult, response_lost_after_commit

pytestmark = pytest.mark.scenario


def _lost_answers(result: RunResult) -> int:
    """Charges the fake applied whose answer the client never read (the fault really bit)."""
    attempts = result.history.attempts
    return int((attempts["error"] == "reset").sum())


def test_retries_with_idempotency_keys_charge_each_operation_at_most_once(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(response_lost_after_commit())

    assert _lost_answers(result) > 0, "the fault never cut an answer off, so nothing was tested"
    effects = result.check("effects_at_most_once")
    assert effects.passed, f"{effects.summary}\n{effects.evidence}"
    truthful = result.check("truthful_outcomes")
    assert truthful.passed, f"{truthful.summary}\n{truthful.evidence}"


@pytest.mark.control
def test_the_same_faults_double_charge_a_client_without_idempotency_keys(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    """The control: proof that the scenario above can fail."""
    result = run_harness_scenario(response_lost_after_commit(), driver=reference_without_idempotency)

    effects = result.check("effects_at_most_once")
    assert not effects.passed
    per_operation = effects.evidence.groupby("operation_id").size()
    assert (per_operation > 1).all()
    assert len(per_operation) > 0
