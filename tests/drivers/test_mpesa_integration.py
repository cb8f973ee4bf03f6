"""The reference client's M-Pesa integration against the real fake Daraja (over real HTTP).

The fake is the session stack's (``harness_stack``), reset before each test and reached through its
Toxiproxy proxy with no toxic; faults come from the fake's own admin API, narrowed to one route, so
each test decides exactly which answer or callback is lost. Real time (the fake resolves prompts on
its own clock); no test asserts a duration.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from harness._driver import NullEventSink, Operation, OutcomeKind
from harness.chaos import StackFaults
from harness.drivers import IntegrationSetup, MpesaIntegration, MpesaOptions
from harness.drivers._mpesa import (
    account_reference,
    daraja_password,
    daraja_timestamp,
    result_outcome,
)
from harness.resilience import ClientMetrics, ConfigError, ErrorClass, SystemClock, get_profile
from harness.stack import Stack, UpstreamAdmin

PUSH = "/mpesa/stkpush/v1/processrequest"
QUERY = "/mpesa/stkpushquery/v1/query"
TOKEN = "/oauth/v1/generate"
FAST = {"result_timeout": 1.5, "reconcile_timeout": 0.5, "poll_interval": 0.05}


def push(operation_id: str = "op-1", phone: str = "254711000001", **fields: Any) -> Operation:
    return Operation(
        operation_id=operation_id,
        upstream="mpesa",
        action="stk_push",
        amount=fields.pop("amount", 10),
        currency=fields.pop("currency", "kes"),
        params={"phone": phone, **fields},
    )


@pytest.fixture
def admin(harness_stack: Stack) -> UpstreamAdmin:
    StackFaults(harness_stack).clear_all()
    mpesa = harness_stack.admin("mpesa")
    mpesa.reset()
    mpesa.configure(stk_delay=0.1, b2c_delay=0.1)
    return mpesa


def _integration(stack: Stack, **options: Any) -> MpesaIntegration:
    clock = SystemClock()
    setup = IntegrationSetup(
        endpoint=stack.endpoints()["mpesa"],
        config=get_profile("reference").config_for("mpesa"),
        clock=clock,
        rng=random.Random(0),
        events=NullEventSink(),
        metrics=ClientMetrics(clock=clock),
        idempotency_keys=True,
    )
    return MpesaIntegration(setup, MpesaOptions(**{**FAST, **options}))


@pytest.fixture
def mpesa(harness_stack: Stack, admin: UpstreamAdmin) -> Iterator[MpesaIntegration]:
    integration = _integration(harness_stack)
    yield integration
    integration.close()


def _paths(admin: UpstreamAdmin) -> list[str]:
    return [row["path"] for row in admin.requests()]


def _effects(admin: UpstreamAdmin) -> list[tuple[str, str]]:
    return [(row["kind"], row["operation_id"]) for row in admin.ledger()]


# -- the payment is the outcome -----------------------------------------------------------------


def test_a_paid_push_succeeds_with_its_checkout_request_id_after_one_prompt_and_one_payment(
    mpesa: MpesaIntegration, admin: UpstreamAdmin
) -> None:
    outcome, attempts = mpesa.perform(push())

    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert outcome.reference is not None
    assert outcome.reference.startswith("ws_CO_")
    assert _effects(admin) == [("stk_prompt", "op-1"), ("stk_payment", "op-1")]
    assert _paths(admin).count(PUSH) == 1
    assert _paths(admin).count(TOKEN) == 1
    assert attempts >= 1


def test_a_prompt_the_customer_cancels_is_a_definite_failure_that_names_the_result_code(
    mpesa: MpesaIntegration, admin: UpstreamAdmin
) -> None:
    admin.configure(stk_results={"1032": 1.0})

    outcome, _ = mpesa.perform(push())

    assert (outcome.kind, outcome.error) == (OutcomeKind.FAILED, ErrorClass.DECLINE)
    assert "1032" in outcome.detail
    assert _effects(admin) == [("stk_prompt", "op-1")]


def test_without_callbacks_the_query_learns_the_result_and_pending_answers_are_no_failure(
    mpesa: MpesaIntegration, admin: UpstreamAdmin
) -> None:
    admin.configure(stk_delay=0.4)
    admin.add_fault({"kind": "callback_drop", "path": "*"})

    outcome, _ = mpesa.perform(push())

    assert outcome.kind is OutcomeKind.SUCCEEDED
    queries = [row["status"] for row in admin.requests() if row["path"] == QUERY]
    assert 500 in queries, "the query never saw the prompt pending"
    assert queries[-1] == 200
    breaker = mpesa.client.breaker
    assert breaker is not None
    assert str(breaker.state) == "closed"
    assert [d["fault"] for d in admin.deliveries()] == ["callback_drop"]


def test_an_unrecognised_result_code_is_unknown_not_a_guess() -> None:
    assert result_outcome(0, "ok", "ws_1").kind is OutcomeKind.SUCCEEDED
    assert result_outcome("17", "Rule limited.", "ws_1").kind is OutcomeKind.FAILED
    assert result_outcome("1037", "DS timeout", "ws_1").kind is OutcomeKind.FAILED
    assert result_outcome("4242", "?", "ws_1").kind is OutcomeKind.UNKNOWN


# -- a push is sent once ------------------------------------------------------------------------


def test_a_push_whose_answer_is_dropped_is_not_sent_again_and_its_callback_settles_it(
    mpesa: MpesaIntegration, admin: UpstreamAdmin
) -> None:
    admin.add_fault({"kind": "commit_then_fail", "path": PUSH, "params": {"mode": "drop"}})

    outcome, _ = mpesa.perform(push())

    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert _paths(admin).count(PUSH) == 1
    assert _effects(admin) == [("stk_prompt", "op-1"), ("stk_payment", "op-1")]
    assert outcome.reference == admin.ledger()[0]["object_id"], "the CheckoutRequestID came by callback"


def test_performing_an_operation_again_waits_for_its_first_push_instead_of_prompting_twice(
    mpesa: MpesaIntegration, admin: UpstreamAdmin
) -> None:
    admin.add_fault({"kind": "commit_then_fail", "path": PUSH, "params": {"mode": "drop"}})

    first, _ = mpesa.perform(push())
    again, _ = mpesa.perform(push())

    assert first.kind is again.kind is OutcomeKind.SUCCEEDED
    assert first.reference == again.reference
    assert _paths(admin).count(PUSH) == 1


def test_a_push_whose_answer_and_callback_are_lost_is_parkable_and_reconciling_never_pushes_again(
    mpesa: MpesaIntegration, admin: UpstreamAdmin
) -> None:
    admin.add_fault({"kind": "commit_then_fail", "path": PUSH, "params": {"mode": "error", "status": 500}})
    admin.add_fault({"kind": "callback_drop", "path": "*"})
    operation = push()

    outcome, _ = mpesa.perform(operation)
    reconciled, _ = mpesa.reconcile(operation)

    assert outcome.kind is OutcomeKind.UNKNOWN
    assert mpesa.can_replay(operation, outcome)
    assert reconciled.kind is OutcomeKind.UNKNOWN
    assert "not pushed again" in reconciled.detail
    assert _paths(admin).count(PUSH) == 1
    assert QUERY not in _paths(admin), "there was no CheckoutRequestID to query"


def test_reconciling_a_parked_push_with_a_known_checkout_request_id_queries_it(
    harness_stack: Stack, admin: UpstreamAdmin
) -> None:
    admin.configure(stk_delay=1.0)
    admin.add_fault({"kind": "callback_drop", "path": "*"})
    impatient = _integration(harness_stack, result_timeout=0.2)
    operation = push()
    try:
        outcome, _ = impatient.perform(operation)
        assert outcome.kind is OutcomeKind.UNKNOWN, "the prompt should still have been pending"
        settled = None
        for _ in range(10):  # each reconciliation waits at most reconcile_timeout
            settled, _ = impatient.reconcile(operation)
            if settled.kind is not OutcomeKind.UNKNOWN:
                break
    finally:
        impatient.close()

    assert settled is not None
    assert settled.kind is OutcomeKind.SUCCEEDED
    assert _paths(admin).count(PUSH) == 1


def test_a_phone_with_a_live_prompt_refuses_the_push_definitely_and_it_is_not_retried(
    harness_stack: Stack, admin: UpstreamAdmin
) -> None:
    admin.configure(stk_delay=2.0)
    impatient = _integration(harness_stack, result_timeout=0.1)
    try:
        first, _ = impatient.perform(push("op-1", phone="254711000009"))
        second, _ = impatient.perform(push("op-2", phone="254711000009"))
    finally:
        impatient.close()

    assert first.kind is OutcomeKind.UNKNOWN
    assert (second.kind, second.error) == (OutcomeKind.FAILED, ErrorClass.CONFLICT)
    assert "lock subscriber" in second.detail
    assert _paths(admin).count(PUSH) == 2
    assert _effects(admin) == [("stk_prompt", "op-1")]


@pytest.mark.parametrize(
    ("operation", "why"),
    [(push(currency="usd"), "Kenyan shillings"), (push(amount=0), "from 1 to 250000")],
)
def test_a_push_daraja_would_refuse_fails_before_anything_is_sent(
    mpesa: MpesaIntegration, admin: UpstreamAdmin, operation: Operation, why: str
) -> None:
    outcome, attempts = mpesa.perform(operation)

    assert (outcome.kind, outcome.error, attempts) == (OutcomeKind.FAILED, ErrorClass.VALIDATION, 0)
    assert why in outcome.detail
    assert admin.requests() == []


# -- tokens -------------------------------------------------------------------------------------


def test_a_revoked_token_is_refreshed_once_and_the_push_goes_through(
    mpesa: MpesaIntegration, admin: UpstreamAdmin
) -> None:
    mpesa.perform(push("op-1", phone="254711000001"))
    admin.add_fault({"kind": "token_revocation", "path": "/mpesa/*", "count": 1})

    outcome, _ = mpesa.perform(push("op-2", phone="254711000002"))

    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert _paths(admin).count(TOKEN) == 2
    assert _effects(admin).count(("stk_prompt", "op-2")) == 1


def test_a_token_refused_every_time_costs_one_refresh_and_fails_the_push_without_a_loop(
    mpesa: MpesaIntegration, admin: UpstreamAdmin
) -> None:
    admin.add_fault({"kind": "token_revocation", "path": PUSH})

    outcome, _ = mpesa.perform(push())

    assert (outcome.kind, outcome.error) == (OutcomeKind.FAILED, ErrorClass.AUTH)
    assert _paths(admin) == [TOKEN, PUSH, TOKEN, PUSH]
    assert _effects(admin) == []


def test_concurrent_pushes_share_one_token(mpesa: MpesaIntegration, admin: UpstreamAdmin) -> None:
    outcomes: list[OutcomeKind] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        outcome, _ = mpesa.perform(push(f"op-{i}", phone=f"25471100001{i}"))
        with lock:
            outcomes.append(outcome.kind)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes == [OutcomeKind.SUCCEEDED] * 6
    assert _paths(admin).count(TOKEN) == 1


# -- B2C ----------------------------------------------------------------------------------------


def _b2c(operation_id: str = "payout-1", amount: int = 500) -> Operation:
    return Operation(
        operation_id=operation_id,
        upstream="mpesa",
        action="b2c",
        amount=amount,
        currency="kes",
        params={"phone": "254711000077"},
    )


def test_a_b2c_payment_succeeds_by_its_result_callback(mpesa: MpesaIntegration, admin: UpstreamAdmin) -> None:
    outcome, _ = mpesa.perform(_b2c())

    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert outcome.reference
    assert _effects(admin) == [("b2c_payment", "payout-1")]


def test_a_repeated_b2c_request_is_a_duplicate_upstream_and_pays_once(
    mpesa: MpesaIntegration, admin: UpstreamAdmin
) -> None:
    first, _ = mpesa.perform(_b2c())
    again, _ = mpesa.reconcile(_b2c())
    answers = [row["status"] for row in admin.requests() if row["path"].startswith("/mpesa/b2c/")]

    assert first.kind is again.kind is OutcomeKind.SUCCEEDED
    assert _effects(admin) == [("b2c_payment", "payout-1")]
    assert answers == [200], "reconciling used the result it already had"


def test_a_b2c_request_whose_answer_is_lost_is_repeated_and_deduplicated_by_daraja(
    mpesa: MpesaIntegration, admin: UpstreamAdmin
) -> None:
    admin.add_fault({"kind": "commit_then_fail", "path": "/mpesa/b2c/*", "count": 1})
    admin.add_fault({"kind": "callback_drop", "path": "*", "count": 1})

    outcome, _ = mpesa.perform(_b2c())
    answers = [row["status"] for row in admin.requests() if row["path"].startswith("/mpesa/b2c/")]

    assert answers == [500, 500], "the repeat was refused as a duplicate OriginatorConversationID"
    assert outcome.kind is OutcomeKind.UNKNOWN, "the only result callback was dropped"
    assert _effects(admin) == [("b2c_payment", "payout-1")]


def test_a_b2c_request_that_timed_out_in_the_queue_failed(
    mpesa: MpesaIntegration, admin: UpstreamAdmin
) -> None:
    admin.configure(b2c_results={"timeout": 1.0})

    outcome, _ = mpesa.perform(_b2c())

    assert outcome.kind is OutcomeKind.FAILED
    assert "queue" in outcome.detail
    assert _effects(admin) == []


# -- pieces and configuration -------------------------------------------------------------------


def test_account_references_fit_twelve_characters_and_long_ids_map_deterministically() -> None:
    long_a, long_b = "order-2024-000000001", "order-2024-000000002"

    assert account_reference("stk-00001") == "stk-00001"
    assert len(account_reference(long_a)) == 12
    assert account_reference(long_a) == account_reference(long_a)
    assert account_reference(long_a) != account_reference(long_b)


def test_password_is_base64_of_shortcode_passkey_and_nairobi_timestamp() -> None:
    timestamp = daraja_timestamp(0.0)

    assert timestamp == "19700101030000"
    assert daraja_password("174379", "key", timestamp) == "MTc0Mzc5a2V5MTk3MDAxMDEwMzAwMDA="


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"result_timeout": -1.0}, "result_timeout"),
        ({"poll_interval": 0.0}, "poll_interval"),
        ({"poll_backoff": 0.5}, "poll_backoff"),
        ({"description": "far too long a text"}, "description"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        MpesaOptions(**options)


def test_missing_credentials_are_refused_naming_them_without_echoing_the_others(harness_stack: Stack) -> None:
    endpoint = harness_stack.endpoints()["mpesa"]
    secret = endpoint.credentials["consumer_secret"]
    clock = SystemClock()
    setup = IntegrationSetup(
        endpoint=type(endpoint)(
            upstream="mpesa",
            base_url=endpoint.base_url,
            credentials={k: v for k, v in endpoint.credentials.items() if k != "passkey"},
        ),
        config=get_profile("reference").config_for("mpesa"),
        clock=clock,
        rng=random.Random(0),
        events=NullEventSink(),
        metrics=ClientMetrics(clock=clock),
        idempotency_keys=True,
    )

    with pytest.raises(ConfigError, match="passkey") as raised:
        MpesaIntegration(setup)
    assert secret not in str(raised.value)
