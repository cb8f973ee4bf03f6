"""The fake Stripe over real HTTP: PaymentIntents, idempotency rules, limits, test cards, webhooks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from harness.webhooks import SignatureVerificationError, verify_signature


class Stripe:
    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.admin = fake.admin
        self.key = fake.credentials()["secret_key"]
        self.http = httpx.Client(
            base_url=fake.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=10
        )

    def post(
        self, path: str, data: dict[str, str] | None = None, *, key: str | None = None
    ) -> httpx.Response:
        headers = {} if key is None else {"Idempotency-Key": key}
        return self.http.post(path, data=data or {}, headers=headers)

    def charge(self, operation_id: str, *, key: str | None = None, **extra: str) -> httpx.Response:
        data = {
            "amount": "1000",
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": "true",
            "metadata[operation_id]": operation_id,
            **extra,
        }
        return self.post("/v1/payment_intents", data, key=key)

    def effects(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.admin.ledger() if kind is None or e["kind"] == kind]


@pytest.fixture
def stripe(stripe_fake: Any) -> Iterator[Stripe]:
    client = Stripe(stripe_fake)
    yield client
    client.http.close()


def test_a_replayed_key_returns_the_stored_charge_and_applies_it_once(stripe: Stripe) -> None:
    first = stripe.charge("op-1", key="key-1")
    second = stripe.charge("op-1", key="key-1")

    assert first.status_code == second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotency-key"] == "key-1"
    assert second.headers["request-id"] != first.headers["request-id"]
    assert [e["operation_id"] for e in stripe.effects("charge")] == ["op-1"]
    assert stripe.effects()[0]["idempotency_key"] == "key-1"


def test_the_same_key_with_other_parameters_is_an_idempotency_error_and_charges_nothing(
    stripe: Stripe,
) -> None:
    stripe.charge("op-1", key="key-1")
    other = stripe.charge("op-1", key="key-1", amount="2000")

    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"
    assert "key-1" in other.json()["error"]["message"]
    assert len(stripe.effects("charge")) == 1


def _concurrently(*calls: Callable[[], httpx.Response]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return [f.result() for f in [pool.submit(call) for call in calls]]


def test_a_key_in_flight_gets_409_idempotency_key_in_use_with_should_retry(stripe: Stripe) -> None:
    # Both requests are in flight together: each spends 1.5 s inside its idempotency window.
    stripe.admin.configure(processing_delay=1.5)
    responses = _concurrently(
        lambda: stripe.charge("op-1", key="key-1"), lambda: stripe.charge("op-1", key="key-1")
    )

    assert sorted(r.status_code for r in responses) == [200, 409]
    conflict = next(r for r in responses if r.status_code == 409)
    assert conflict.json()["error"]["code"] == "idempotency_key_in_use"
    assert conflict.json()["error"]["type"] == "idempotency_error"
    assert conflict.headers["stripe-should-retry"] == "true"
    assert len(stripe.effects("charge")) == 1


def test_the_in_flight_error_type_is_configurable(stripe: Stripe) -> None:
    stripe.admin.configure(processing_delay=1.5, in_flight_error_type="invalid_request_error")
    responses = _concurrently(
        lambda: stripe.charge("op-1", key="key-1"), lambda: stripe.charge("op-1", key="key-1")
    )

    conflict = next(r for r in responses if r.status_code == 409)
    assert conflict.json()["error"]["type"] == "invalid_request_error"


def test_a_401_stores_nothing_so_the_key_later_executes(stripe: Stripe, http: httpx.Client) -> None:
    rejected = http.post(
        stripe.fake.url + "/v1/payment_intents",
        data={"amount": "1000", "currency": "usd"},
        headers={"Authorization": "Bearer sk_test_wrong", "Idempotency-Key": "key-1"},
    )
    accepted = stripe.charge("op-1", key="key-1")

    assert rejected.status_code == 401
    assert rejected.json()["error"]["type"] == "invalid_request_error"
    assert "sk_test_wrong"[:8] in rejected.json()["error"]["message"]
    assert accepted.status_code == 200
    assert "idempotent-replayed" not in accepted.headers


def test_a_validation_400_stores_nothing_but_an_execution_400_is_replayed(stripe: Stripe) -> None:
    invalid = stripe.post("/v1/payment_intents", {"currency": "usd"}, key="key-1")
    fixed = stripe.post("/v1/payment_intents", {"amount": "1000", "currency": "usd"}, key="key-1")
    capture_key = "capture-1"
    pi = fixed.json()["id"]
    wrong_state = stripe.post(f"/v1/payment_intents/{pi}/capture", key=capture_key)
    again = stripe.post(f"/v1/payment_intents/{pi}/capture", key=capture_key)

    assert invalid.status_code == 400
    assert invalid.json()["error"]["code"] == "parameter_missing"
    assert fixed.status_code == 200
    assert "idempotent-replayed" not in fixed.headers
    assert wrong_state.status_code == 400
    assert wrong_state.json()["error"]["code"] == "payment_intent_unexpected_state"
    assert again.status_code == 400
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == wrong_state.json()


def test_a_429_stores_nothing_so_the_key_succeeds_once_the_limiter_allows(
    stripe: Stripe, poll: Callable[..., Any]
) -> None:
    stripe.admin.configure(rate_limit_enabled=True, rate_limit_per_second=1)
    stripe.http.get("/v1/payment_intents")  # spends the bucket's only token
    limited = stripe.charge("op-1", key="key-1")
    admitted = poll(
        lambda: (r := stripe.charge("op-1", key="key-1")).status_code == 200 and r,
        timeout=5,
        what="the rate limiter to admit the key",
    )

    assert limited.status_code == 429
    assert "idempotent-replayed" not in admitted.headers  # executed afresh: the 429 stored nothing
    assert len(stripe.effects("charge")) == 1


def test_the_rate_limit_answer_is_a_429_rate_limit_with_retry_after(stripe: Stripe) -> None:
    stripe.admin.configure(rate_limit_enabled=True, rate_limit_per_second=2)
    responses = [stripe.http.get("/v1/payment_intents") for _ in range(6)]
    limited = [r for r in responses if r.status_code == 429]

    assert limited, [r.status_code for r in responses]
    assert limited[0].json()["error"]["code"] == "rate_limit"
    assert float(limited[0].headers["retry-after"]) > 0
    assert "stripe-should-retry" not in limited[0].headers


def test_keys_longer_than_255_characters_are_refused(stripe: Stripe) -> None:
    response = stripe.charge("op-1", key="k" * 256)

    assert response.status_code == 400
    assert "255" in response.json()["error"]["message"]
    assert stripe.effects() == []


def test_a_key_older_than_24_hours_counts_as_new(stripe: Stripe) -> None:
    first = stripe.charge("op-1", key="key-1")
    stripe.admin.advance_clock(24 * 3600 + 1)
    second = stripe.charge("op-1", key="key-1")

    assert second.status_code == 200
    assert second.json()["id"] != first.json()["id"]
    assert len(stripe.effects("charge")) == 2


@pytest.mark.parametrize(
    ("number", "code", "decline_code"),
    [
        ("4000000000000002", "card_declined", "generic_decline"),
        ("4000000000009995", "card_declined", "insufficient_funds"),
        ("4000000000000119", "processing_error", "processing_error"),
    ],
)
def test_declining_test_cards_answer_402_card_error_and_charge_nothing(
    stripe: Stripe, number: str, code: str, decline_code: str
) -> None:
    response = stripe.post(
        "/v1/payment_intents",
        {
            "amount": "1000",
            "currency": "usd",
            "confirm": "true",
            "payment_method_data[type]": "card",
            "payment_method_data[card][number]": number,
        },
    )

    error = response.json()["error"]
    assert response.status_code == 402
    assert (error["type"], error["code"], error["decline_code"]) == ("card_error", code, decline_code)
    assert error["payment_intent"]["status"] == "requires_payment_method"
    assert error["payment_intent"]["last_payment_error"]["decline_code"] == decline_code
    assert stripe.effects("charge") == []


def test_the_4242_card_succeeds_and_charges_once(stripe: Stripe) -> None:
    response = stripe.post(
        "/v1/payment_intents",
        {
            "amount": "1500",
            "currency": "eur",
            "confirm": "true",
            "payment_method_data[type]": "card",
            "payment_method_data[card][number]": "4242424242424242",
            "metadata[operation_id]": "op-9",
        },
    )

    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"
    assert response.json()["amount_received"] == 1500
    [effect] = stripe.effects("charge")
    assert (effect["operation_id"], effect["amount"], effect["currency"]) == ("op-9", 1500, "eur")


def test_manual_capture_holds_then_charges_and_a_captured_intent_cannot_be_cancelled(stripe: Stripe) -> None:
    created = stripe.charge("op-1", capture_method="manual").json()
    captured = stripe.post(f"/v1/payment_intents/{created['id']}/capture", {"amount_to_capture": "600"})
    cancel = stripe.post(f"/v1/payment_intents/{created['id']}/cancel")

    assert created["status"] == "requires_capture"
    assert created["amount_capturable"] == 1000
    assert captured.json()["status"] == "succeeded"
    assert captured.json()["amount_received"] == 600
    assert cancel.status_code == 400
    assert cancel.json()["error"]["code"] == "payment_intent_unexpected_state"
    assert [(e["kind"], e["amount"]) for e in stripe.effects()] == [("authorization", 1000), ("charge", 600)]


def test_the_status_flow_from_creation_to_confirmation_and_cancellation(stripe: Stripe) -> None:
    bare = stripe.post("/v1/payment_intents", {"amount": "1000", "currency": "usd"}).json()
    attached = stripe.post(f"/v1/payment_intents/{bare['id']}", {"payment_method": "pm_card_visa"}).json()
    confirmed = stripe.post(f"/v1/payment_intents/{bare['id']}/confirm").json()
    other = stripe.post("/v1/payment_intents", {"amount": "1000", "currency": "usd"}).json()
    cancelled = stripe.post(f"/v1/payment_intents/{other['id']}/cancel", {"cancellation_reason": "abandoned"})
    retrieved = stripe.http.get(f"/v1/payment_intents/{other['id']}").json()

    assert bare["status"] == "requires_payment_method"
    assert attached["status"] == "requires_confirmation"
    assert confirmed["status"] == "succeeded"
    assert cancelled.json()["status"] == "canceled"
    assert retrieved["cancellation_reason"] == "abandoned"
    listed = stripe.http.get("/v1/payment_intents", params={"limit": 1}).json()
    assert listed["object"] == "list"
    assert listed["has_more"] is True
    assert listed["data"][0]["id"] == other["id"]


def test_a_3ds_card_leaves_the_intent_requiring_action(stripe: Stripe) -> None:
    response = stripe.charge("op-1", payment_method="pm_card_authenticationRequired")

    assert response.status_code == 200
    assert response.json()["status"] == "requires_action"
    assert response.json()["next_action"]["type"] == "use_stripe_sdk"
    assert stripe.effects() == []


def test_concurrent_writes_to_one_intent_get_lock_timeout_with_should_retry(stripe: Stripe) -> None:
    pi = stripe.post("/v1/payment_intents", {"amount": "1000", "currency": "usd"}).json()["id"]
    stripe.admin.configure(processing_delay=1.5, lock_timeout=0.1)
    responses = _concurrently(
        lambda: stripe.post(f"/v1/payment_intents/{pi}", {"description": "a"}, key="key-a"),
        lambda: stripe.post(f"/v1/payment_intents/{pi}", {"description": "b"}, key="key-b"),
    )

    assert sorted(r.status_code for r in responses) == [200, 429]
    locked_index = [r.status_code for r in responses].index(429)
    locked = responses[locked_index]
    assert locked.json()["error"]["code"] == "lock_timeout"
    assert locked.headers["stripe-should-retry"] == "true"
    # A 429 stores nothing: the locked-out key executes on retry.
    stripe.admin.configure(processing_delay=0.0)
    name = "ab"[locked_index]
    retry = stripe.post(f"/v1/payment_intents/{pi}", {"description": name}, key=f"key-{name}")
    assert retry.status_code == 200
    assert "idempotent-replayed" not in retry.headers


def test_an_injected_500_is_stored_under_the_key_and_says_do_not_retry(stripe: Stripe) -> None:
    stripe.admin.add_fault(
        {"kind": "error", "path": "/v1/payment_intents", "params": {"status": 500}, "count": 1}
    )
    failed = stripe.charge("op-1", key="key-1")
    replayed = stripe.charge("op-1", key="key-1")
    fresh = stripe.charge("op-1", key="key-2")

    assert failed.status_code == 500
    assert failed.json()["error"]["type"] == "api_error"
    assert failed.headers["stripe-should-retry"] == "false"
    assert replayed.status_code == 500
    assert replayed.headers["idempotent-replayed"] == "true"
    assert fresh.status_code == 200
    assert [e["idempotency_key"] for e in stripe.effects("charge")] == ["key-2"]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_injected_gateway_errors_are_not_stored(stripe: Stripe, status: int) -> None:
    stripe.admin.add_fault({"kind": "error", "params": {"status": status}, "count": 1})
    failed = stripe.charge("op-1", key="key-1")
    retried = stripe.charge("op-1", key="key-1")

    assert failed.status_code == status
    assert failed.json()["error"]["type"] == "api_error"
    assert retried.status_code == 200
    assert "idempotent-replayed" not in retried.headers


@pytest.mark.parametrize(
    ("body", "content_type", "param"),
    [
        (b"amount=abc&currency=usd", "application/x-www-form-urlencoded", "amount"),
        (b"amount=1000&currency=xyz", "application/x-www-form-urlencoded", "currency"),
        (b"amount=1000&currency=usd&bogus=1", "application/x-www-form-urlencoded", "bogus"),
        (b"amount=1000&currency=usd&metadata=x&metadata[a]=b", "application/x-www-form-urlencoded", None),
        (b'{"amount": 1000}', "application/json", None),
        (b"amount=1000&currency=usd&confirm=maybe", "application/x-www-form-urlencoded", "confirm"),
        (b"a" * 70_000, "application/x-www-form-urlencoded", None),
    ],
)
def test_bad_input_gets_a_400_invalid_request_error_never_a_traceback(
    stripe: Stripe, body: bytes, content_type: str, param: str | None
) -> None:
    response = stripe.http.post("/v1/payment_intents", content=body, headers={"Content-Type": content_type})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error.get("param") == param or param is None
    assert "Traceback" not in response.text
    assert stripe.effects() == []


def test_unknown_urls_answer_stripes_404(stripe: Stripe) -> None:
    response = stripe.http.get("/v1/charges_that_do_not_exist")

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "Unrecognized request URL" in response.json()["error"]["message"]


# -- webhooks -------------------------------------------------------------------------------------


def _endpoint(stripe: Stripe, url: str, events: list[str]) -> dict[str, Any]:
    data = {"url": url, **{f"enabled_events[{i}]": e for i, e in enumerate(events)}}
    response = stripe.post("/v1/webhook_endpoints", data)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_webhooks_are_signed_with_the_endpoint_secret_and_verify(stripe: Stripe, receiver: Any) -> None:
    endpoint = _endpoint(
        stripe, receiver.url("/hooks"), ["payment_intent.succeeded", "payment_intent.created"]
    )
    pi = stripe.charge("op-1").json()
    deliveries = receiver.wait_for(2, path="/hooks")

    types = sorted(d.json()["type"] for d in deliveries)
    assert types == ["payment_intent.created", "payment_intent.succeeded"]
    for delivery in deliveries:
        verify_signature(
            delivery.body, delivery.headers["stripe-signature"], endpoint["secret"], now=time.time()
        )
        assert delivery.json()["data"]["object"]["id"] == pi["id"]
    with pytest.raises(SignatureVerificationError):
        verify_signature(
            deliveries[0].body + b" ",
            deliveries[0].headers["stripe-signature"],
            endpoint["secret"],
            now=time.time(),
        )
    assert "secret" not in stripe.http.get(f"/v1/webhook_endpoints/{endpoint['id']}").json()


def test_a_failed_webhook_delivery_is_retried_until_acknowledged(
    stripe: Stripe, receiver: Any, poll: Callable[..., Any]
) -> None:
    stripe.admin.configure(webhook_retry_delays=[0.05, 0.05, 0.05], webhook_jitter=0.0)
    _endpoint(stripe, receiver.url("/hooks"), ["payment_intent.succeeded"])
    receiver.statuses = [500, 500]
    stripe.charge("op-1")
    deliveries = receiver.wait_for(3, path="/hooks")

    assert len({d.json()["id"] for d in deliveries}) == 1
    logged = poll(lambda: len(rows := stripe.admin.deliveries()) >= 3 and rows, what="three delivery rows")
    assert [(d["attempt"], d["status"]) for d in logged] == [(1, 500), (2, 500), (3, 200)]


def test_webhook_endpoints_must_be_on_loopback(stripe: Stripe) -> None:
    response = stripe.post(
        "/v1/webhook_endpoints", {"url": "https://example.com/hook", "enabled_events[0]": "*"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "url"


def test_the_verifier_rejects_stale_and_foreign_signatures() -> None:
    import hashlib
    import hmac

    body = b'{"id": "evt_1"}'
    signed_at = 1_700_000_000
    good = hmac.new(b"whsec_abc", f"{signed_at}.".encode() + body, hashlib.sha256).hexdigest()
    header = f"t={signed_at},v1=deadbeef,v1={good},v0=ignored"

    assert verify_signature(body, header, "whsec_abc", now=signed_at + 10) == signed_at
    with pytest.raises(SignatureVerificationError, match="tolerance"):
        verify_signature(body, header, "whsec_abc", now=signed_at + 301)
    with pytest.raises(SignatureVerificationError, match="matches"):
        verify_signature(body, header, "whsec_other", now=signed_at)
    with pytest.raises(SignatureVerificationError):
        verify_signature(body, f"t={signed_at}", "whsec_abc", now=signed_at)
