"""The scenario catalogue: named failure scenarios with sensible default sizes."""

from __future__ import annotations

from collections.abc import Callable

from harness.chaos import FaultSchedule, ResponseLoss, ScheduledFault
from harness.scenario._checks import effects_at_most_once, truthful_outcomes
from harness.scenario._runner import Scenario
from harness.scenario._workload import Workload

__all__ = ["CATALOGUE", "response_lost_after_commit"]


def response_lost_after_commit(
    *,
    operations: int = 40,
    interval: float = 0.05,
    fault_start: float = 0.5,
    fault_duration: float = 1.0,
    concurrency: int = 4,
) -> Scenario:
    """Stripe applies every charge, but the answers are lost on the way back for a while.

    A client that retries without an idempotency key charges the customer again on every retry;
    one with a key gets the first charge replayed.
    """
    return Scenario(
        name="response_lost_after_commit",
        title="Response lost after the upstream committed",
        description=(
            "Toxiproxy's limit_data toxic (bytes=0) on the downstream stream drops every answer the"
            " fake Stripe sends while the charge has already been applied; retries must not charge"
            " twice."
        ),
        workload=Workload.steady(count=operations, interval=interval, upstream="stripe", action="charge"),
        schedule=FaultSchedule.of(
            [
                ScheduledFault(
                    start=fault_start,
                    duration=fault_duration,
                    target="stripe",
                    fault=ResponseLoss(),
                )
            ]
        ),
        checks=(effects_at_most_once, truthful_outcomes),
        concurrency=concurrency,
    )


CATALOGUE: dict[str, Callable[[], Scenario]] = {
    "response_lost_after_commit": response_lost_after_commit,
}
