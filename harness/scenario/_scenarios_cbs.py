"""Fineract (core banking) scenarios: loan repayments under lost answers, close-of-business locks and
maker-checker, against the fake Fineract's demo tenant (active loans 1 to 10).

Repayments are spread over several loans (``params={"loan_id": ...}``) so that a lock on some loans
leaves the others working, as Fineract's close-of-business job does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import httpx

from harness.chaos import CommitThenFail, FaultSchedule, ScheduledFault
from harness.scenario._checks import (
    EXACTLY_ONCE,
    breaker_stays_closed,
    breaker_transitions_legal,
    no_calls_while_open,
)
from harness.scenario._checks_outcomes import every_operation_succeeds, no_premature_success
from harness.scenario._runner import Scenario
from harness.scenario._settings import UpstreamSettings
from harness.scenario._workload import Workload
from harness.stack import Stack

__all__ = [
    "SCENARIOS",
    "approve_pending_commands",
    "close_of_business_lock",
    "maker_checker_approval",
    "repayment_commit_then_fail",
]

BASE = "/fineract-provider/api/v1"
REPAYMENT_ROUTE = f"{BASE}/loans/*/transactions"
DEMO_LOANS = 10
"""The fake's demo tenant holds active loans 1 to 10 (``fake_upstreams/cbs/_demo.py``)."""


def _loans(count: int) -> Callable[[int], dict[str, str]]:
    if not 1 <= count <= DEMO_LOANS:
        raise ValueError(
            f"loans must be from 1 to {DEMO_LOANS} (the demo tenant's active loans), got {count!r}"
        )
    return lambda i: {"loan_id": str(i % count + 1)}


def repayment_commit_then_fail(
    *,
    operations: int = 40,
    interval: float = 0.03,
    fault_start: float = 0.3,
    fault_duration: float = 0.6,
    drop: bool = False,
    key_cache: bool = True,
    loans: int = DEMO_LOANS,
    concurrency: int = 4,
) -> Scenario:
    """Fineract books each repayment, then the answer fails (a 500, or with ``drop`` no answer).

    A client that repeats a repayment without its external id or idempotency key books it again.
    ``key_cache=False`` runs Fineract as 1.8.x did, without the Idempotency-Key store, so that only
    the unique ``externalId`` stands between a retry and a second booking. (Like every settings
    window, it ends with the workload; a settle phase that looks a repayment up before repeating it
    does not depend on the store either way.)
    """
    answer = "the connection is dropped" if drop else "Fineract answers 500"
    server = "" if key_cache else " Fineract runs without its Idempotency-Key store (1.8.x)."
    return Scenario(
        name="repayment_commit_then_fail",
        title="Repayment booked, then the answer fails",
        description=(
            f"Every repayment is booked, then {answer} (the fake's commit_then_fail fault on"
            f" {REPAYMENT_ROUTE}); retries and the settle phase must not book any repayment twice, and"
            f" none may be left unknown.{server}"
        ),
        workload=Workload.steady(
            count=operations, interval=interval, upstream="cbs", action="repayment", params=_loans(loans)
        ),
        schedule=FaultSchedule.of(
            [
                ScheduledFault(
                    start=fault_start,
                    duration=fault_duration,
                    target="cbs",
                    fault=CommitThenFail(route=REPAYMENT_ROUTE, method="POST", drop=drop),
                )
            ]
        ),
        checks=(*EXACTLY_ONCE, breaker_transitions_legal, no_calls_while_open),
        concurrency=concurrency,
        settings=()
        if key_cache
        else (UpstreamSettings(upstream="cbs", values={"idempotency_enabled": False}),),
    )


def close_of_business_lock(
    *,
    operations: int = 40,
    interval: float = 0.05,
    lock_start: float = 0.4,
    lock_duration: float = 0.8,
    locked: Sequence[str] = ("3", "4"),
    loans: int = 5,
    concurrency: int = 4,
) -> Scenario:
    """Fineract's close-of-business job locks some loans for a while: repayments on them get 409
    ``error.msg.loan.locked``, then the lock lifts.

    The repayments are owed all the same: each must be booked once the lock lifts (parked and
    repeated later, not reported failed), none twice, and a lock is not an outage (no breaker opens).
    """
    if not lock_duration > 0:
        raise ValueError(
            f"close_of_business_lock(lock_duration=...) must be > 0 seconds, got {lock_duration!r}"
        )
    return Scenario(
        name="close_of_business_lock",
        title="Loans locked by close of business",
        description=(
            f"Loans {', '.join(locked)} are locked by the close-of-business job (409 error.msg.loan.locked)"
            f" from {lock_start:g}s for {lock_duration:g}s; every repayment must still be booked exactly"
            " once, and the lock must not open a breaker."
        ),
        workload=Workload.steady(
            count=operations, interval=interval, upstream="cbs", action="repayment", params=_loans(loans)
        ),
        schedule=FaultSchedule.of([]),
        checks=(*EXACTLY_ONCE, every_operation_succeeds, breaker_stays_closed),
        concurrency=concurrency,
        settings=(
            UpstreamSettings(
                upstream="cbs",
                values={"locked_loans": list(locked)},
                start=lock_start,
                end=lock_start + lock_duration,
            ),
        ),
    )


def approve_pending_commands(stack: Stack) -> None:
    """A back-office checker approves every command waiting in Fineract's maker-checker inbox.

    Done on the fake directly (not through Toxiproxy), with the checker's own credentials: the
    client under test holds only the maker's.
    """
    upstream = stack.upstreams["cbs"]
    credentials = upstream.credentials
    tenant = {"Fineract-Platform-TenantId": credentials["tenant"]}
    with httpx.Client(base_url=upstream.direct_url + BASE, timeout=10.0, trust_env=False) as http:
        login = http.post(
            "/authentication",
            json={"username": credentials["checker_username"], "password": credentials["checker_password"]},
            headers=tenant,
        )
        login.raise_for_status()
        checker = {**tenant, "Authorization": "Basic " + login.json()["base64EncodedAuthenticationKey"]}
        inbox = http.get("/makercheckers", headers=checker)
        inbox.raise_for_status()
        for entry in inbox.json():
            http.post(
                f"/makercheckers/{entry['id']}", params={"command": "approve"}, headers=checker
            ).raise_for_status()


def maker_checker_approval(
    *,
    operations: int = 30,
    interval: float = 0.04,
    window_start: float = 0.3,
    window_duration: float = 0.5,
    loans: int = DEMO_LOANS,
    concurrency: int = 4,
) -> Scenario:
    """Maker-checker is switched on for repayments for a while: Fineract answers 200 with
    ``rollbackTransaction: true`` and books nothing until a checker approves.

    Such a repayment must not be reported done when the answer comes; a checker approves the inbox
    once the workload is over, and the settle phase must then find every repayment booked once.
    """
    return Scenario(
        name="maker_checker_approval",
        title="Repayments waiting for a checker",
        description=(
            f"Maker-checker is on for loan repayments from {window_start:g}s for {window_duration:g}s (200"
            " with rollbackTransaction: true, nothing booked); a checker approves the inbox after the"
            " workload. No repayment may be reported done before it is booked."
        ),
        workload=Workload.steady(
            count=operations, interval=interval, upstream="cbs", action="repayment", params=_loans(loans)
        ),
        schedule=FaultSchedule.of([]),
        checks=(*EXACTLY_ONCE, no_premature_success),
        concurrency=concurrency,
        settings=(
            UpstreamSettings(
                upstream="cbs",
                values={"maker_checker_enabled": True, "maker_checker_tasks": ["REPAYMENT_LOAN"]},
                start=window_start,
                end=window_start + window_duration,
            ),
        ),
        before_settle=approve_pending_commands,
    )


SCENARIOS: dict[str, Callable[..., Scenario]] = {
    "close_of_business_lock": close_of_business_lock,
    "maker_checker_approval": maker_checker_approval,
    "repayment_commit_then_fail": repayment_commit_then_fail,
}
