"""The reference client's Fineract integration against the real fake Fineract (through Toxiproxy):
how it reads each answer, how it reconciles, and what it reports.

Faults are the fake's own (``POST /__admin/faults``) and its settings (COB locks, maker-checker, the
Idempotency-Key store switched off); the ground truth is the fake's ledger and request log.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from harness._driver import DriverSetup, Operation, OutcomeKind
from harness.drivers import (
    CbsIntegration,
    IntegrationSetup,
    ReferenceConfig,
    ReferenceDriver,
    classify_fineract,
    idempotency_key,
)
from harness.drivers._cbs import BASE, repayment_amount
from harness.resilience import ClientMetrics, ErrorClass, SystemClock, get_profile
from harness.scenario import approve_pending_commands
from harness.stack import Stack, UpstreamAdmin

REPAYMENTS = f"{BASE}/loans/*/transactions"


class Recorder:
    """An event sink that keeps what the client reported."""

    def __init__(self) -> None:
        self.attempts: list[Any] = []

    def attempt(self, event: Any) -> None:
        self.attempts.append(event)

    def breaker_transition(self, event: Any) -> None:
        return None


@pytest.fixture
def cbs(harness_stack: Stack) -> Iterator[UpstreamAdmin]:
    admin = harness_stack.admin("cbs")
    admin.reset()
    yield admin
    admin.reset()


def _integration(stack: Stack, *, idempotency_keys: bool = True) -> CbsIntegration:
    clock = SystemClock()
    return CbsIntegration(
        IntegrationSetup(
            endpoint=stack.endpoints()["cbs"],
            config=get_profile("reference").config_for("cbs"),
            clock=clock,
            rng=random.Random(0),
            events=Recorder(),
            metrics=ClientMetrics(clock=clock),
            idempotency_keys=idempotency_keys,
        )
    )


def _driver(stack: Stack, tmp_path: Any) -> ReferenceDriver:
    setup = DriverSetup(
        endpoints=stack.endpoints(), clock=SystemClock(), rng=random.Random(0), state_dir=tmp_path
    )
    return ReferenceDriver(setup, ReferenceConfig())


def _repayment(op_id: str = "op-1", amount: int = 1001, **params: str) -> Operation:
    return Operation(
        operation_id=op_id,
        upstream="cbs",
        action="repayment",
        amount=amount,
        params={"loan_id": "2", **params},
    )


def _repayments(admin: UpstreamAdmin) -> list[dict[str, Any]]:
    return [e for e in admin.ledger() if e["kind"] == "repayment"]


def _posts(admin: UpstreamAdmin) -> list[dict[str, Any]]:
    return [r for r in admin.requests() if r["method"] == "POST" and r["path"].endswith("/transactions")]


def _rule(kind: str, **params: Any) -> dict[str, Any]:
    return {"kind": kind, "path": REPAYMENTS, "method": "POST", "count": 1, "params": params}


def test_a_repayment_is_booked_once_in_cents_under_its_operation_id_with_a_derived_key(
    harness_stack: Stack, cbs: UpstreamAdmin
) -> None:
    integration = _integration(harness_stack)
    operation = _repayment(amount=1001)
    try:
        outcome, attempts = integration.perform(operation)
        second, _ = integration.perform(_repayment("op-2", amount=5))
    finally:
        integration.close()

    assert (outcome.kind, attempts) == (OutcomeKind.SUCCEEDED, 1)
    assert second.kind is OutcomeKind.SUCCEEDED
    booked = _repayments(cbs)
    assert [(e["operation_id"], e["amount"], e["object_id"]) for e in booked] == [
        ("op-1", 1001, outcome.reference),
        ("op-2", 5, second.reference),
    ]
    assert _posts(cbs)[0]["idempotency_key"] == idempotency_key(operation)
    logins = [r for r in cbs.requests() if r["path"] == f"{BASE}/authentication"]
    assert len(logins) == 1, "the token cache logs in once for every call"


def test_an_answer_lost_after_booking_is_replayed_from_the_key_store_not_booked_again(
    harness_stack: Stack, cbs: UpstreamAdmin
) -> None:
    cbs.add_fault(_rule("commit_then_fail", mode="error", status=500))
    integration = _integration(harness_stack)
    try:
        outcome, attempts = integration.perform(_repayment())
    finally:
        integration.close()

    assert (outcome.kind, attempts) == (OutcomeKind.SUCCEEDED, 2)
    assert "idempotency-key cache" in outcome.detail
    assert len(_repayments(cbs)) == 1
    assert [(r["status"], r["replayed"]) for r in _posts(cbs)] == [(500, False), (200, True)]


def test_without_a_key_store_a_duplicate_external_id_reads_as_booked_and_is_looked_up(
    harness_stack: Stack, cbs: UpstreamAdmin
) -> None:
    """Fineract 1.8.x: no Idempotency-Key store, only the unique externalId."""
    cbs.configure(idempotency_enabled=False)
    cbs.add_fault(_rule("commit_then_fail", mode="drop"))
    integration = _integration(harness_stack)
    try:
        outcome, attempts = integration.perform(_repayment())
    finally:
        integration.close()

    booked = _repayments(cbs)
    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert outcome.reference == booked[0]["object_id"]
    assert outcome.detail == "found by externalId"
    assert attempts == 3  # the dropped answer, the 400 on externalId, the lookup
    assert len(booked) == 1
    assert [r["status"] for r in _posts(cbs)] == [0, 400]


def test_a_domain_rule_violation_is_a_decline_answered_once_and_never_retried(
    harness_stack: Stack, cbs: UpstreamAdmin
) -> None:
    integration = _integration(harness_stack)
    try:
        outcome, attempts = integration.perform(_repayment(transaction_date="2099-01-01"))
        replay_ok = integration.can_replay(_repayment(), outcome)
    finally:
        integration.close()

    assert (outcome.kind, outcome.error, attempts) == (OutcomeKind.FAILED, ErrorClass.DECLINE, 1)
    assert "future" in outcome.detail
    assert not replay_ok
    assert _repayments(cbs) == []


def test_an_unknown_loan_fails_as_not_found(harness_stack: Stack, cbs: UpstreamAdmin) -> None:
    integration = _integration(harness_stack)
    try:
        outcome, _ = integration.perform(_repayment(loan_id="99"))
    finally:
        integration.close()

    assert (outcome.kind, outcome.error) == (OutcomeKind.FAILED, ErrorClass.NOT_FOUND)


def test_a_loan_locked_by_close_of_business_is_retried_then_parked_and_booked_once_unlocked(
    harness_stack: Stack, cbs: UpstreamAdmin, tmp_path: Any
) -> None:
    cbs.configure(locked_loans=["2"])
    driver = _driver(harness_stack, tmp_path)
    try:
        first = driver.perform(_repayment())
        booked_while_locked = _repayments(cbs)
        cbs.configure(locked_loans=[])
        settled = driver.settle()
    finally:
        driver.close()

    assert (first.kind, first.error) == (OutcomeKind.PARKED, ErrorClass.CONFLICT)
    assert "locked by the COB job" in first.detail
    assert booked_while_locked == []
    assert settled["op-1"].kind is OutcomeKind.SUCCEEDED
    assert len(_repayments(cbs)) == 1
    locked = [r for r in _posts(cbs) if r["status"] == 409]
    assert len(locked) == get_profile("reference").config_for("cbs").retry.max_attempts


def test_a_command_waiting_for_a_checker_is_parked_not_done_until_a_checker_approves_it(
    harness_stack: Stack, cbs: UpstreamAdmin, tmp_path: Any
) -> None:
    cbs.configure(maker_checker_enabled=True, maker_checker_tasks=["REPAYMENT_LOAN"])
    driver = _driver(harness_stack, tmp_path)
    try:
        made = driver.perform(_repayment())
        unapproved = driver.settle()
        approve_pending_commands(harness_stack)
        approved = driver.settle()
    finally:
        driver.close()

    assert made.kind is OutcomeKind.PARKED
    assert "checker" in made.detail
    assert unapproved["op-1"].kind is OutcomeKind.PARKED
    assert approved["op-1"].kind is OutcomeKind.SUCCEEDED
    assert approved["op-1"].reference == _repayments(cbs)[0]["object_id"]
    assert len(_repayments(cbs)) == 1


def test_reconcile_finds_a_booked_repayment_by_external_id_without_repeating_it(
    harness_stack: Stack, cbs: UpstreamAdmin
) -> None:
    integration = _integration(harness_stack)
    try:
        booked, _ = integration.perform(_repayment())
        found, lookups = integration.reconcile(_repayment())
    finally:
        integration.close()

    assert (found.kind, found.reference, lookups) == (OutcomeKind.SUCCEEDED, booked.reference, 1)
    assert len(_posts(cbs)) == 1
    assert len(_repayments(cbs)) == 1


def test_reconcile_repeats_a_repayment_fineract_never_booked(
    harness_stack: Stack, cbs: UpstreamAdmin
) -> None:
    integration = _integration(harness_stack)
    try:
        outcome, attempts = integration.reconcile(_repayment())
    finally:
        integration.close()

    assert (outcome.kind, attempts) == (OutcomeKind.SUCCEEDED, 2)  # the lookup's 404, then the repayment
    assert len(_repayments(cbs)) == 1


def test_a_second_request_while_the_key_is_in_flight_is_unknown_not_failed(
    harness_stack: Stack, cbs: UpstreamAdmin
) -> None:
    """425 from the key store: the other request may book the repayment, so nothing is definite."""
    cbs.configure(processing_delay=1.5)
    integration = _integration(harness_stack)
    try:
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(integration.perform, _repayment()) for _ in range(2)]
            outcomes = [f.result()[0] for f in futures]
    finally:
        integration.close()

    kinds = sorted(o.kind for o in outcomes)
    assert kinds == [OutcomeKind.SUCCEEDED, OutcomeKind.UNKNOWN]
    in_flight = next(o for o in outcomes if o.kind is OutcomeKind.UNKNOWN)
    assert (in_flight.error, "still processing" in in_flight.detail) == (ErrorClass.CONFLICT, True)
    assert 425 in {r["status"] for r in _posts(cbs)}
    assert len(_repayments(cbs)) == 1


def test_a_refused_credential_logs_in_again_once_and_the_repayment_goes_through(
    harness_stack: Stack, cbs: UpstreamAdmin
) -> None:
    cbs.add_fault({"kind": "token_revocation", "path": REPAYMENTS, "method": "POST", "count": 1})
    integration = _integration(harness_stack)
    try:
        outcome, attempts = integration.perform(_repayment())
    finally:
        integration.close()

    assert (outcome.kind, attempts) == (OutcomeKind.SUCCEEDED, 2)
    logins = [r for r in cbs.requests() if r["path"] == f"{BASE}/authentication"]
    assert len(logins) == 2


def test_a_throttling_gateway_is_retried_as_long_as_it_asks(harness_stack: Stack, cbs: UpstreamAdmin) -> None:
    cbs.add_fault(_rule("throttle", retry_after=0.2, variant="gateway"))
    integration = _integration(harness_stack)
    try:
        outcome, attempts = integration.perform(_repayment())
    finally:
        integration.close()

    posts = _posts(cbs)
    assert (outcome.kind, attempts) == (OutcomeKind.SUCCEEDED, 2)
    assert [(r["status"], r["retry_after"]) for r in posts] == [(429, 0.2), (200, None)]
    assert posts[1]["t_mono"] - (posts[0]["t_mono"] + posts[0]["duration"]) >= 0.2


# -- classification of answers that need no server --------------------------------------------------


def _response(
    status: int, body: Any = None, headers: dict[str, str] | None = None, text: str = ""
) -> httpx.Response:
    if body is not None:
        return httpx.Response(status, json=body, headers=headers)
    return httpx.Response(status, text=text, headers=headers)


def _envelope(status: int, code: str, *detail_codes: str) -> dict[str, Any]:
    return {
        "developerMessage": "m",
        "httpStatusCode": str(status),
        "defaultUserMessage": "m",
        "userMessageGlobalisationCode": code,
        "errors": [{"userMessageGlobalisationCode": c} for c in detail_codes],
    }


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (_response(200, {"resourceId": 1}), None),
        (
            _response(403, _envelope(403, "validation.msg.domain.rule.violation", "error.msg.x")),
            ErrorClass.DECLINE,
        ),
        (_response(403, _envelope(403, "error.msg.not.authorized")), ErrorClass.AUTH),
        (
            _response(409, _envelope(409, "error.msg.loan.locked", "error.msg.loan.locked")),
            ErrorClass.CONFLICT,
        ),
        (_response(425, {"externalId": "op-1"}, {"x-served-from-cache": "true"}), ErrorClass.CONFLICT),
        (_response(429, text="<html>429</html>", headers={"Retry-After": "1"}), ErrorClass.THROTTLED),
        (_response(500, {"Exception": "boom"}), ErrorClass.SERVER_ERROR),
        (
            _response(400, _envelope(400, "validation.msg.validation.errors.exist", "x")),
            ErrorClass.VALIDATION,
        ),
        (
            _response(
                400,
                text="No tenant identifier found",
                headers={"WWW-Authenticate": 'Basic realm="Fineract Platform API"'},
            ),
            ErrorClass.VALIDATION,
        ),
        (_response(400, text="<html>Bad Request</html>"), ErrorClass.PROTOCOL),
        (_response(400, {"error": "not Fineract's"}), ErrorClass.PROTOCOL),
    ],
    ids=[
        "ok",
        "domain-rule",
        "not-authorized",
        "cob-lock",
        "in-flight",
        "gateway-429",
        "unmapped-500",
        "validation",
        "tenant-refusal",
        "proxy-400",
        "foreign-json-400",
    ],
)
def test_fineracts_answers_are_classified_by_status_and_envelope(
    response: httpx.Response, expected: ErrorClass | None
) -> None:
    assert classify_fineract(response) is expected


@pytest.mark.parametrize(("cents", "decimal"), [(1001, "10.01"), (5, "0.05"), (100, "1.00"), (-150, "-1.50")])
def test_minor_units_become_exact_decimal_amounts(cents: int, decimal: str) -> None:
    assert repayment_amount(cents) == decimal
