"""Upstream outage: connections refused for a while, then the upstream returns."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.drivers import sticky_breaker
from harness.scenario import RunResult, upstream_outage
from scenarios.conftest import failures

pytestmark = pytest.mark.scenario


def test_client_fails_fast_during_an_outage_and_serves_again_after_it(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(upstream_outage())

    assert result.passed, failures(result)
    opened = result.history.breaker_events["to_state"] == "open"
    assert opened.any(), "the outage never opened the breaker, so fail-fast was not exercised"


@pytest.mark.control
def test_a_breaker_that_stays_open_too_long_fails_recovery(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(upstream_outage(), driver=sticky_breaker)

    # Its still-open breaker also refuses the settle phase's replays, so what it could not finish
    # stays unknown: losing track of operations is the cost of a breaker that never recovers.
    assert {c.name for c in result.checks if not c.passed} == {"recovers_after_faults", "nothing_lost"}
    assert (result.check("recovers_after_faults").evidence["outcome"] != "succeeded").all()
