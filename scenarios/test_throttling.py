"""Stripe's rate limiter: a client told ``Retry-After: N`` must wait N seconds before it asks again.

Judged on the fake Stripe's own request log (when it answered, what ``Retry-After`` it sent, when
the same operation came back), so a client cannot pass by logging a sleep it never took.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.drivers import ignores_retry_after
from harness.scenario import RunResult, rate_limited
from scenarios.conftest import failures

pytestmark = pytest.mark.scenario


def test_throttled_charges_wait_as_long_as_retry_after_asks(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(rate_limited())

    requests = result.history.requests
    throttled = requests[requests["status"] == 429]
    assert len(throttled) > 0, "the rate limiter never answered 429, so nothing was tested"
    assert throttled["retry_after"].notna().all()
    assert result.passed, failures(result)
    assert result.check("retries_honour_retry_after").applicable


@pytest.mark.control
def test_a_client_that_ignores_retry_after_is_caught_by_the_upstream_log(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(rate_limited(), driver=ignores_retry_after)

    check = result.check("retries_honour_retry_after")
    assert not check.passed
    assert (check.evidence["waited"] < check.evidence["retry_after"]).all()
    # It charges nothing twice (it keeps its idempotency key); it may also amplify the load.
    failed = {c.name for c in result.checks if not c.passed}
    assert failed <= {"retries_honour_retry_after", "retry_amplification_within"}
