"""Stripe scenarios: lost answers, outages, declines and rate limits against the fake Stripe."""

from __future__ import annotations

from collections.abc import Callable

from harness.chaos import FaultSchedule, Outage, ResponseLoss, ScheduledFault
from harness.scenario._checks import (
    EXACTLY_ONCE,
    breaker_stays_closed,
    breaker_transitions_legal,
    no_calls_while_open,
    no_retry_after_definite_answer,
    recovers_after_faults,
)
from harness.scenario._checks_retry import retries_honour_retry_after, retry_amplification_within
from harness.scenario._runner import Scenario
from harness.scenario._settings import UpstreamSettings
from harness.scenario._workload import Workload

__all__ = ["SCENARIOS", "card_declines", "rate_limited", "response_lost_after_commit", "upstream_outage"]


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
        checks=(*EXACTLY_ONCE, breaker_transitions_legal, no_calls_while_open),
        concurrency=concurrency,
    )


def upstream_outage(
    *,
    operations: int = 60,
    interval: float = 0.05,
    fault_start: float = 0.5,
    fault_duration: float = 1.0,
    recover_within: float = 1.0,
    concurrency: int = 4,
) -> Scenario:
    """Stripe becomes unreachable for a while: connections are refused, then it comes back.

    The client should fail fast while it is down, charge nothing twice, and serve again within
    ``recover_within`` seconds of its return.
    """
    return Scenario(
        name="upstream_outage",
        title="Upstream outage and recovery",
        description=(
            "Toxiproxy takes the Stripe proxy down (listener closed, connections refused) and brings"
            f" it back; every operation submitted {recover_within:g}s after its return must succeed."
        ),
        workload=Workload.steady(count=operations, interval=interval, upstream="stripe", action="charge"),
        schedule=FaultSchedule.of(
            [ScheduledFault(start=fault_start, duration=fault_duration, target="stripe", fault=Outage())]
        ),
        checks=(
            *EXACTLY_ONCE,
            breaker_transitions_legal,
            no_calls_while_open,
            recovers_after_faults(within=recover_within),
        ),
        concurrency=concurrency,
    )


def card_declines(
    *, operations: int = 40, interval: float = 0.03, every: int = 3, concurrency: int = 4
) -> Scenario:
    """Every ``every``-th charge is declined by the card issuer; the upstream is otherwise healthy.

    A decline is a final, definite answer: it must be reported as a failure, never retried, and must
    not count against the breaker (a run of declines is not an outage).
    """
    if every < 1:
        raise ValueError(f"card_declines(every=...) must be >= 1, got {every!r}")

    def params(i: int) -> dict[str, str]:
        declined = i % every == every - 1
        return {"payment_method": "pm_card_chargeDeclined" if declined else "pm_card_visa"}

    return Scenario(
        name="card_declines",
        title="Card declines are final",
        description=(
            f"One charge in {every} uses Stripe's declining test card (402 card_error). No fault is"
            " injected: declines must be reported as failures, never retried, and must not trip the"
            " breaker."
        ),
        workload=Workload.steady(
            count=operations, interval=interval, upstream="stripe", action="charge", params=params
        ),
        schedule=FaultSchedule.of([]),
        checks=(*EXACTLY_ONCE, no_retry_after_definite_answer, breaker_stays_closed),
        concurrency=concurrency,
    )


def rate_limited(
    *,
    operations: int = 60,
    interval: float = 0.01,
    concurrency: int = 8,
    amplification: float = 2.0,
) -> Scenario:
    """Stripe's rate limiter is on (25 requests a second, as in test mode) and the workload asks for
    more (one charge every ``interval`` seconds, 100 a second by default).

    Stripe answers the excess with 429 ``rate_limit`` and ``Retry-After``; a client must wait that
    long before it sends the same operation again, must not multiply its load by retrying (at most
    ``amplification`` requests per charge), and must charge nothing twice.
    """
    if not interval > 0:
        raise ValueError(f"rate_limited(interval=...) must be > 0 seconds, got {interval!r}")
    return Scenario(
        name="rate_limited",
        title="Rate limited by Stripe",
        description=(
            f"The fake Stripe's rate limiter is on (25 requests/s) while the workload sends"
            f" {1 / interval:g} charges/s; 429s carry Retry-After, which the upstream log shows the"
            " client honoured."
        ),
        workload=Workload.steady(count=operations, interval=interval, upstream="stripe", action="charge"),
        schedule=FaultSchedule.of([]),
        checks=(*EXACTLY_ONCE, retries_honour_retry_after, retry_amplification_within(amplification)),
        concurrency=concurrency,
        settings=(UpstreamSettings(upstream="stripe", values={"rate_limit_enabled": True}),),
    )


SCENARIOS: dict[str, Callable[..., Scenario]] = {
    "card_declines": card_declines,
    "rate_limited": rate_limited,
    "response_lost_after_commit": response_lost_after_commit,
    "upstream_outage": upstream_outage,
}
