"""Card declines: definite answers that must be reported, never retried, and never trip a breaker."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.drivers import retries_declines
from harness.scenario import RunResult, card_declines
from scenarios.conftest import failures

pytestmark = pytest.mark.scenario


def test_declines_are_reported_as_failures_and_never_retried(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(card_declines())

    assert result.passed, failures(result)
    declined = result.history.requests["status"] == 402
    assert declined.sum() > 0, "no charge was declined, so nothing was tested"
    failed = result.history.operations["outcome"] == "failed"
    assert failed.sum() == declined.sum()


@pytest.mark.control
def test_a_client_that_retries_declines_is_caught(run_harness_scenario: Callable[..., RunResult]) -> None:
    result = run_harness_scenario(card_declines(), driver=retries_declines)

    assert [c.name for c in result.checks if not c.passed] == ["no_retry_after_definite_answer"]
