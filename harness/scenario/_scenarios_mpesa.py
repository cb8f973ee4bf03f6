"""M-Pesa (Daraja) scenarios: lost callbacks, lost push answers and revoked tokens, on the fake Daraja.

Every scenario pushes STK prompts to distinct phones (the fake, like Daraja, refuses a second push
to a phone while a prompt is live on it, and answers 17 for the same amount to the same phone within
2 minutes), and runs the fake with a short prompt delay so that each operation takes a fraction of a
second. Operation ids (``stk-00000``) fit Daraja's 12-character ``AccountReference``, so every ledger
effect can be attributed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from harness._driver import Operation
from harness.chaos import (
    CallbackDelay,
    CallbackDrop,
    FaultSchedule,
    ResponseLoss,
    ScheduledFault,
    TokenRevocation,
)
from harness.scenario._checks import (
    EXACTLY_ONCE,
    breaker_transitions_legal,
    effects_at_most_once,
    no_calls_while_open,
    nothing_lost,
    truthful_outcomes,
)
from harness.scenario._checks_tokens import TOKEN_CHECKS
from harness.scenario._runner import Scenario
from harness.scenario._settings import UpstreamSettings
from harness.scenario._workload import PlannedOperation, Workload

__all__ = [
    "SCENARIOS",
    "stk_callbacks_lost",
    "stk_push_answer_and_callback_lost",
    "stk_push_answer_lost",
    "token_revoked",
]

STK_ROUTE = "*/stk/*"
"""The callback faults' route: the path of the client's STK callback URLs, which ends in the
operation id (``/<secret>/stk/stk-00007``)."""
STK_EVEN = "*/stk/stk-*[02468]"
STK_ODD = "*/stk/stk-*[13579]"


def _push(i: int) -> Operation:
    return Operation(
        operation_id=f"stk-{i:05d}",
        upstream="mpesa",
        action="stk_push",
        amount=10,
        currency="kes",
        params={"phone": f"25471{i:07d}"},
    )


def _pushes(count: int, interval: float) -> Workload:
    if count < 1:
        raise ValueError(f"a workload needs at least one operation, got operations={count!r}")
    return Workload.of(PlannedOperation(at=round(i * interval, 6), operation=_push(i)) for i in range(count))


def _burst(before: int, interval: float, burst: int, burst_at: float, concurrency: int) -> Workload:
    """``before`` pushes one per ``interval`` (they also fetch the token and warm the connections),
    then ``burst`` pushes at once at ``burst_at``: all admitted together, before any of them fails
    (and so before a breaker could open on their failures)."""
    if burst > concurrency:
        raise ValueError(
            f"the burst of {burst} pushes must go out together: raise concurrency (now {concurrency})"
        )
    if before < 1 or burst < 1:
        raise ValueError(f"need at least one push before and one in the burst, got {before!r} and {burst!r}")
    if burst_at < (before - 1) * interval:
        raise ValueError(f"the burst (at {burst_at!r}s) must come after the pushes before it")
    planned = [PlannedOperation(at=round(i * interval, 6), operation=_push(i)) for i in range(before)]
    planned += [PlannedOperation(at=burst_at, operation=_push(before + j)) for j in range(burst)]
    return Workload.of(planned)


def _daraja(prompt_delay: float, results: Mapping[str, float]) -> tuple[UpstreamSettings, ...]:
    if not prompt_delay >= 0:
        raise ValueError(f"prompt_delay must be >= 0 seconds, got {prompt_delay!r}")
    return (
        UpstreamSettings(upstream="mpesa", values={"stk_delay": prompt_delay, "stk_results": dict(results)}),
    )


MIXED_RESULTS = {"0": 0.7, "1032": 0.2, "1": 0.1}
"""Paid, cancelled by the customer, insufficient balance."""


def stk_callbacks_lost(
    *,
    operations: int = 16,
    interval: float = 0.05,
    late_by_ms: int = 4000,
    prompt_delay: float = 0.2,
    concurrency: int = 8,
) -> Scenario:
    """Daraja loses the callbacks of half the pushes and delivers the other half late, while the STK
    query keeps answering.

    Daraja documents no callback retries and integrators report lost and late callbacks; the STK
    query is the recovery path. A client that waits for the callback alone loses the payments.
    The callbacks are chosen by operation (the callback URL's path names it), not by time, so the
    scenario spoils the same callbacks however fast the machine is.
    """
    # Every prompt resolves prompt_delay after its push; leave the rules in force until the last has.
    duration = operations * interval + prompt_delay + 0.5
    return Scenario(
        name="stk_callbacks_lost",
        title="STK callbacks lost or late",
        description=(
            "The fake Daraja drops the STK callbacks of the even-numbered operations and delivers the"
            f" others {late_by_ms / 1000:g}s late (after the client stops waiting); the STK query"
            " answers throughout. Every push must end succeeded or failed by query, with one prompt each."
        ),
        workload=_pushes(operations, interval),
        schedule=FaultSchedule.of(
            [
                ScheduledFault(
                    start=0.0, duration=duration, target="mpesa", fault=CallbackDrop(route=STK_EVEN)
                ),
                ScheduledFault(
                    start=0.0,
                    duration=duration,
                    target="mpesa",
                    fault=CallbackDelay(route=STK_ODD, ms=late_by_ms),
                ),
            ]
        ),
        checks=(*EXACTLY_ONCE, *TOKEN_CHECKS),
        concurrency=concurrency,
        settings=_daraja(prompt_delay, MIXED_RESULTS),
    )


def _answer_loss(
    fault_start: float, fault_duration: float, prompt_delay: float, *, drop: bool
) -> FaultSchedule:
    faults = [
        ScheduledFault(start=fault_start, duration=fault_duration, target="mpesa", fault=ResponseLoss())
    ]
    if drop:
        # Every prompt pushed while answers are lost resolves up to prompt_delay after the fault.
        faults.append(
            ScheduledFault(
                start=fault_start,
                duration=fault_duration + prompt_delay + 0.3,
                target="mpesa",
                fault=CallbackDrop(route=STK_ROUTE),
            )
        )
    return FaultSchedule.of(faults)


def stk_push_answer_lost(
    *,
    before: int = 4,
    interval: float = 0.05,
    burst: int = 6,
    fault_start: float = 0.5,
    fault_duration: float = 0.4,
    prompt_delay: float = 0.2,
    concurrency: int = 8,
) -> Scenario:
    """Daraja accepts pushes, but their answers are lost on the way back for a while.

    Daraja has no idempotency key: a client that repeats a push whose answer it never saw prompts
    the customer twice. The callback, sent to a URL that names the operation, tells the client what
    became of each push, so nothing needs to stay parked.
    """
    return Scenario(
        name="stk_push_answer_lost",
        title="STK push answer lost",
        description=(
            "Toxiproxy's limit_data toxic drops every answer the fake Daraja sends for"
            f" {fault_duration:g}s, while {burst} pushes go out together; they are applied (a prompt is"
            " shown) but the client never sees their CheckoutRequestID."
            " No operation may be prompted twice; the callbacks, delivered straight to"
            " the client, name each operation, so every push must still end succeeded or failed."
        ),
        workload=_burst(before, interval, burst, fault_start + 0.05, concurrency),
        schedule=_answer_loss(fault_start, fault_duration, prompt_delay, drop=False),
        checks=(*EXACTLY_ONCE, breaker_transitions_legal, no_calls_while_open),
        concurrency=concurrency,
        settings=_daraja(prompt_delay, MIXED_RESULTS),
    )


def stk_push_answer_and_callback_lost(
    *,
    before: int = 4,
    interval: float = 0.05,
    burst: int = 6,
    fault_start: float = 0.5,
    fault_duration: float = 0.4,
    prompt_delay: float = 0.2,
    concurrency: int = 8,
) -> Scenario:
    """As :func:`stk_push_answer_lost`, and the callbacks of those pushes are lost too.

    Then no client can learn what became of a push whose answer it never saw: Daraja has no lookup
    by AccountReference, the query needs the CheckoutRequestID that was lost, and pushing again would
    prompt twice. Such a push must stay parked (for a human with the M-Pesa statement); the scenario
    demands no convergence of the dead-letter queue, only that nothing is prompted twice, nothing is
    misreported and nothing is left without an outcome.
    """
    return Scenario(
        name="stk_push_answer_and_callback_lost",
        title="STK push answer and callback lost",
        description=(
            f"Answers are lost for {fault_duration:g}s while {burst} pushes go out together, and the"
            " callbacks of the prompts pushed meanwhile"
            " are dropped. A push whose answer and callback were both lost cannot be settled by any"
            " client (no lookup by AccountReference; a second push would prompt twice), so it must stay"
            " parked: judged are one prompt per operation, truthful outcomes and no unknown outcome,"
            " not the convergence of the dead-letter queue."
        ),
        workload=_burst(before, interval, burst, fault_start + 0.05, concurrency),
        schedule=_answer_loss(fault_start, fault_duration, prompt_delay, drop=True),
        checks=(
            effects_at_most_once,
            truthful_outcomes,
            nothing_lost,
            breaker_transitions_legal,
            no_calls_while_open,
        ),
        concurrency=concurrency,
        settings=_daraja(prompt_delay, MIXED_RESULTS),
    )


def token_revoked(
    *,
    operations: int = 24,
    interval: float = 0.05,
    revocations: tuple[float, ...] = (0.25, 0.5),
    refusal_start: float = 0.8,
    refusal_duration: float = 0.2,
    prompt_delay: float = 0.2,
    concurrency: int = 8,
) -> Scenario:
    """Daraja revokes the client's token, twice, then refuses every token for a moment.

    Each revocation must cost one token request however many calls hold the revoked token (on
    Daraja a second request revokes the first one's token); while every token is refused, each call
    refreshes once and gives up, rather than looping.
    """
    route = "/mpesa/*"  # API calls only: the token endpoint keeps working
    faults = [
        ScheduledFault(start=at, duration=0.2, target="mpesa", fault=TokenRevocation(route=route))
        for at in revocations
    ]
    faults.append(
        ScheduledFault(
            start=refusal_start,
            duration=refusal_duration,
            target="mpesa",
            fault=TokenRevocation(route=route, count=None),
        )
    )
    return Scenario(
        name="token_revoked",
        title="OAuth token revoked",
        description=(
            f"The fake Daraja revokes its tokens at t={', '.join(f'{t:g}s' for t in revocations)} (the"
            f" next API call is refused with 404.001.03), then refuses every API call for"
            f" {refusal_duration:g}s from t={refusal_start:g}s. Token requests must stay within 1 + the"
            " revocations, no call may meet more than two refusals, and no payment may be lost or doubled."
        ),
        workload=_pushes(operations, interval),
        schedule=FaultSchedule.of(faults),
        checks=(*EXACTLY_ONCE, *TOKEN_CHECKS),
        concurrency=concurrency,
        settings=_daraja(prompt_delay, MIXED_RESULTS),
    )


SCENARIOS: dict[str, Callable[..., Scenario]] = {
    "stk_callbacks_lost": stk_callbacks_lost,
    "stk_push_answer_and_callback_lost": stk_push_answer_and_callback_lost,
    "stk_push_answer_lost": stk_push_answer_lost,
    "token_revoked": token_revoked,
}
