"""The fake Daraja over real HTTP: tokens, STK push/query/callback, B2C, Daraja's error envelope."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

PHONE = "254708374149"


class Daraja:
    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.admin = fake.admin
        self.creds = fake.credentials()
        self.http = httpx.Client(base_url=fake.url, timeout=10)
        self.token = self.new_token()

    def new_token(self) -> str:
        response = self.http.get(
            "/oauth/v1/generate",
            params={"grant_type": "client_credentials"},
            auth=(self.creds["consumer_key"], self.creds["consumer_secret"]),
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def post(self, path: str, body: dict[str, Any], token: str | None = None) -> httpx.Response:
        return self.http.post(path, json=body, headers={"Authorization": f"Bearer {token or self.token}"})

    def password(self, timestamp: str) -> str:
        raw = self.creds["shortcode"] + self.creds["passkey"] + timestamp
        return base64.b64encode(raw.encode()).decode()

    def push_body(self, callback: str, **overrides: Any) -> dict[str, Any]:
        timestamp = time.strftime("%Y%m%d%H%M%S")
        body = {
            "BusinessShortCode": int(self.creds["shortcode"]),
            "Password": self.password(timestamp),
            "Timestamp": timestamp,
            "TransactionType": "CustomerPayBillOnline",
            "Amount": "10",
            "PartyA": int(PHONE),
            "PartyB": int(self.creds["shortcode"]),
            "PhoneNumber": PHONE,
            "CallBackURL": callback,
            "AccountReference": "op-1",
            "TransactionDesc": "Payment",
        }
        body.update(overrides)
        return body

    def push(self, callback: str, **overrides: Any) -> httpx.Response:
        return self.post("/mpesa/stkpush/v1/processrequest", self.push_body(callback, **overrides))

    def query(self, checkout_id: str) -> httpx.Response:
        timestamp = time.strftime("%Y%m%d%H%M%S")
        body = {
            "BusinessShortCode": self.creds["shortcode"],
            "Password": self.password(timestamp),
            "Timestamp": timestamp,
            "CheckoutRequestID": checkout_id,
        }
        return self.post("/mpesa/stkpushquery/v1/query", body)

    def b2c_body(self, result: str, timeout: str, **overrides: Any) -> dict[str, Any]:
        body = {
            "OriginatorConversationID": "op-b2c-1",
            "InitiatorName": self.creds["initiator_name"],
            "SecurityCredential": self.creds["security_credential"],
            "CommandID": "BusinessPayment",
            "Amount": 100,
            "PartyA": 600996,
            "PartyB": PHONE,
            "Remarks": "Salary",
            "QueueTimeOutURL": timeout,
            "ResultURL": result,
            "Occassion": "",
        }
        body.update(overrides)
        return body

    def effects(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.admin.ledger() if kind is None or e["kind"] == kind]


@pytest.fixture
def daraja(mpesa_fake: Any) -> Iterator[Daraja]:
    mpesa_fake.admin.configure(stk_delay=0.2, b2c_delay=0.2)
    client = Daraja(mpesa_fake)
    yield client
    client.http.close()


def _envelope(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert set(body) == {"requestId", "errorCode", "errorMessage"}, body
    assert response.status_code == int(body["errorCode"][:3])
    return response.status_code, body["errorCode"], body["errorMessage"]


# -- OAuth ----------------------------------------------------------------------------------------


def test_a_token_expires_in_the_string_3599_and_a_new_one_revokes_the_old(
    daraja: Daraja, receiver: Any
) -> None:
    response = daraja.http.get(
        "/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=(daraja.creds["consumer_key"], daraja.creds["consumer_secret"]),
    )
    old = response.json()["access_token"]
    new = daraja.new_token()

    assert response.json()["expires_in"] == "3599"
    assert len(old) == 28
    assert _envelope(daraja.push(receiver.url(), token=old))[1] == "404.001.03"
    assert (
        daraja.post("/mpesa/stkpush/v1/processrequest", daraja.push_body(receiver.url()), new).status_code
        == 200
    )


def test_a_token_stops_working_when_it_expires(daraja: Daraja, receiver: Any) -> None:
    daraja.admin.advance_clock(3600)

    assert _envelope(daraja.push(receiver.url())) == (404, "404.001.03", "Invalid Access Token")


@pytest.mark.parametrize(
    ("params", "auth", "code"),
    [
        ({"grant_type": "password"}, "basic", "400.008.02"),
        ({}, "basic", "400.008.02"),
        ({"grant_type": "client_credentials"}, "bearer", "400.008.01"),
        ({"grant_type": "client_credentials"}, "wrong", "400.008.01"),
    ],
)
def test_bad_token_requests_answer_in_daraja_codes(
    daraja: Daraja, params: dict[str, str], auth: str, code: str
) -> None:
    headers = {
        "basic": {
            "Authorization": "Basic "
            + base64.b64encode(
                b"%s:%s" % (daraja.creds["consumer_key"].encode(), daraja.creds["consumer_secret"].encode())
            ).decode()
        },
        "bearer": {"Authorization": "Bearer abc"},
        "wrong": {"Authorization": "Basic " + base64.b64encode(b"nobody:nothing").decode()},
    }[auth]
    response = daraja.http.get("/oauth/v1/generate", params=params, headers=headers)

    assert _envelope(response)[:2] == (400, code)


def test_a_missing_bearer_header_is_404_001_04(daraja: Daraja, receiver: Any) -> None:
    response = daraja.http.post("/mpesa/stkpush/v1/processrequest", json=daraja.push_body(receiver.url()))

    assert _envelope(response)[1] == "404.001.04"


# -- STK push -------------------------------------------------------------------------------------


def test_an_accepted_push_is_pending_until_resolved_then_called_back_with_metadata(
    daraja: Daraja, receiver: Any, poll: Callable[..., Any]
) -> None:
    daraja.admin.configure(stk_delay=0.5)
    accepted = daraja.push(receiver.url())
    checkout = accepted.json()["CheckoutRequestID"]
    pending = daraja.query(checkout)
    [callback] = receiver.wait_for(1)
    done = daraja.query(checkout)

    assert accepted.status_code == 200
    assert accepted.json()["ResponseCode"] == "0"
    assert checkout.startswith("ws_CO_")
    assert _envelope(pending) == (500, "500.001.1001", "The transaction is being processed")
    assert pending.json()["requestId"] == checkout
    stk = callback.json()["Body"]["stkCallback"]
    assert stk["CheckoutRequestID"] == checkout
    assert stk["ResultCode"] == 0
    items = {item["Name"]: item.get("Value") for item in stk["CallbackMetadata"]["Item"]}
    assert items["Amount"] == 10.0
    assert items["PhoneNumber"] == int(PHONE)
    assert isinstance(items["TransactionDate"], int)
    assert len(items["MpesaReceiptNumber"]) == 10
    assert done.status_code == 200
    assert (done.json()["ResultCode"], done.json()["ResponseCode"]) == ("0", "0")
    assert [(e["kind"], e["operation_id"]) for e in daraja.effects()] == [
        ("stk_prompt", "op-1"),
        ("stk_payment", "op-1"),
    ]


@pytest.mark.parametrize("code", ["1", "1032", "1037", "2001"])
def test_failed_outcomes_are_called_back_without_metadata_and_move_no_money(
    daraja: Daraja, receiver: Any, code: str
) -> None:
    daraja.admin.configure(stk_results={code: 1.0})
    daraja.push(receiver.url())
    [callback] = receiver.wait_for(1)

    stk = callback.json()["Body"]["stkCallback"]
    assert stk["ResultCode"] == int(code)
    assert "CallbackMetadata" not in stk
    assert [e["kind"] for e in daraja.effects()] == ["stk_prompt"]


def test_a_second_push_to_a_busy_phone_cannot_lock_the_subscriber(daraja: Daraja, receiver: Any) -> None:
    daraja.admin.configure(stk_delay=30)
    daraja.push(receiver.url())
    second = daraja.push(receiver.url(), AccountReference="op-2")

    status, code, message = _envelope(second)
    assert (status, code) == (500, "500.001.1001")
    assert message.startswith("Unable to lock subscriber")
    assert len(daraja.effects("stk_prompt")) == 1


def test_the_same_amount_from_the_same_phone_within_two_minutes_is_rule_limited(
    daraja: Daraja, receiver: Any
) -> None:
    daraja.push(receiver.url())
    receiver.wait_for(1)
    daraja.push(receiver.url(), AccountReference="op-2")
    second = receiver.wait_for(2)[1].json()["Body"]["stkCallback"]
    daraja.admin.advance_clock(121)
    daraja.push(receiver.url(), AccountReference="op-3")
    third = receiver.wait_for(3)[2].json()["Body"]["stkCallback"]

    assert second["ResultCode"] == 17
    assert third["ResultCode"] == 0
    assert [e["operation_id"] for e in daraja.effects("stk_payment")] == ["op-1", "op-3"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("BusinessShortCode", "12"),
        ("Timestamp", "2024-01-01"),
        ("TransactionType", "CustomerPayBill"),
        ("Amount", "0"),
        ("Amount", 250_001),
        ("Amount", "1.5"),
        ("PartyA", "0712345678"),
        ("PhoneNumber", {"n": 1}),
        ("CallBackURL", "https://example.com/callback"),
        ("AccountReference", "thirteen-char"),
        ("AccountReference", ""),
        ("TransactionDesc", "fourteen chars"),
    ],
)
def test_invalid_fields_are_bad_request_invalid_field(
    daraja: Daraja, receiver: Any, field: str, value: Any
) -> None:
    response = daraja.push(receiver.url(), **{field: value})

    assert _envelope(response) == (400, "400.002.02", f"Bad Request - Invalid {field}")
    assert daraja.effects() == []


def test_a_missing_field_is_bad_request_invalid_field(daraja: Daraja, receiver: Any) -> None:
    body = daraja.push_body(receiver.url())
    del body["PartyB"]

    assert _envelope(daraja.post("/mpesa/stkpush/v1/processrequest", body)) == (
        400,
        "400.002.02",
        "Bad Request - Invalid PartyB",
    )


def test_a_wrong_password_is_500_001_1001_wrong_credentials(daraja: Daraja, receiver: Any) -> None:
    response = daraja.push(receiver.url(), Password=base64.b64encode(b"nope").decode())

    assert _envelope(response) == (500, "500.001.1001", "Wrong credentials")


def test_malformed_json_and_wrong_content_type_answer_like_daraja(daraja: Daraja) -> None:
    headers = {"Authorization": f"Bearer {daraja.token}"}
    malformed = daraja.http.post(
        "/mpesa/stkpush/v1/processrequest",
        content=b"{oops",
        headers={**headers, "Content-Type": "application/json"},
    )
    form = daraja.http.post("/mpesa/stkpush/v1/processrequest", data={"a": "b"}, headers=headers)
    huge = daraja.http.post(
        "/mpesa/stkpush/v1/processrequest",
        content=b'{"a": "' + b"x" * 70_000 + b'"}',
        headers={**headers, "Content-Type": "application/json"},
    )

    assert _envelope(malformed)[1] == "400.002.05"
    assert _envelope(form) == (400, "400.002.02", "Bad Request - Invalid BusinessShortCode")
    assert _envelope(huge)[1] == "400.002.05"


def test_unknown_paths_and_methods_answer_in_the_envelope(daraja: Daraja) -> None:
    assert _envelope(daraja.http.post("/mpesa/nothing/v1/here"))[1] == "404.001.01"
    assert _envelope(daraja.http.get("/mpesa/stkpush/v1/processrequest"))[1] == "405.001"


# -- B2C ------------------------------------------------------------------------------------------


def test_b2c_refuses_a_reused_originator_conversation_id_and_pays_once(daraja: Daraja, receiver: Any) -> None:
    body = daraja.b2c_body(receiver.url("/result"), receiver.url("/timeout"))
    first = daraja.post("/mpesa/b2c/v3/paymentrequest", body)
    second = daraja.post("/mpesa/b2c/v3/paymentrequest", {**body, "Amount": 200})
    [result] = receiver.wait_for(1, path="/result")

    assert first.status_code == 200
    assert first.json()["OriginatorConversationID"] == "op-b2c-1"
    assert first.json()["ConversationID"].startswith("AG_")
    assert _envelope(second) == (500, "500.002.1001", "Duplicate OriginatorConversationID.")
    payload = result.json()["Result"]
    assert payload["ResultCode"] == 0
    assert payload["OriginatorConversationID"] == "op-b2c-1"
    keys = {p["Key"] for p in payload["ResultParameters"]["ResultParameter"]}
    assert {"TransactionAmount", "TransactionReceipt", "TransactionCompletedDateTime"} <= keys
    [effect] = daraja.effects("b2c_payment")
    assert (effect["operation_id"], effect["amount"]) == ("op-b2c-1", 100)


def test_b2c_with_a_wrong_security_credential_ends_in_2001_and_moves_no_money(
    daraja: Daraja, receiver: Any
) -> None:
    body = daraja.b2c_body(receiver.url("/result"), receiver.url("/timeout"), SecurityCredential="forged")
    accepted = daraja.post("/mpesa/b2c/v3/paymentrequest", body)
    [result] = receiver.wait_for(1, path="/result")

    assert accepted.status_code == 200
    assert result.json()["Result"]["ResultCode"] == 2001
    assert daraja.effects("b2c_payment") == []


def test_a_b2c_queue_timeout_notifies_the_timeout_url(daraja: Daraja, receiver: Any) -> None:
    daraja.admin.configure(b2c_results={"timeout": 1.0})
    daraja.post(
        "/mpesa/b2c/v3/paymentrequest", daraja.b2c_body(receiver.url("/result"), receiver.url("/timeout"))
    )
    receiver.wait_for(1, path="/timeout")

    assert receiver.wait_for(0, path="/result") == []
    assert daraja.effects("b2c_payment") == []


# -- faults ---------------------------------------------------------------------------------------


def test_throttling_is_a_500_spike_arrest_never_a_429(daraja: Daraja, receiver: Any) -> None:
    daraja.admin.add_fault({"kind": "throttle", "path": "/mpesa/*", "count": 1})
    throttled = daraja.push(receiver.url())

    assert _envelope(throttled) == (500, "500.003.02", "Error Occurred: Spike Arrest Violation")
    assert daraja.push(receiver.url()).status_code == 200


def test_token_revocation_forces_a_new_token(daraja: Daraja, receiver: Any) -> None:
    daraja.admin.add_fault({"kind": "token_revocation", "path": "/mpesa/*", "count": 1})
    revoked = daraja.push(receiver.url())
    still_revoked = daraja.push(receiver.url())
    fresh = daraja.post(
        "/mpesa/stkpush/v1/processrequest", daraja.push_body(receiver.url()), daraja.new_token()
    )

    assert _envelope(revoked)[1] == "404.001.03"
    assert _envelope(still_revoked)[1] == "404.001.03"
    assert fresh.status_code == 200


def test_a_dropped_callback_is_never_delivered_but_the_query_still_knows(
    daraja: Daraja, receiver: Any, poll: Callable[..., Any]
) -> None:
    daraja.admin.add_fault({"kind": "callback_drop", "path": "/callback", "count": 1})
    checkout = daraja.push(receiver.url()).json()["CheckoutRequestID"]
    [dropped] = poll(
        lambda: [d for d in daraja.admin.deliveries() if d["ref"] == checkout],
        what="the dropped delivery's log",
    )

    assert dropped["fault"] == "callback_drop"
    assert dropped["status"] is None
    assert receiver.received() == []
    assert daraja.query(checkout).json()["ResultCode"] == "0"


def test_a_duplicated_callback_arrives_twice(daraja: Daraja, receiver: Any) -> None:
    daraja.admin.add_fault({"kind": "callback_duplicate", "params": {"copies": 2}})
    daraja.push(receiver.url())
    first, second = receiver.wait_for(2)

    assert first.body == second.body


def test_a_late_callback_arrives_after_the_result_is_queryable(
    daraja: Daraja, receiver: Any, poll: Callable[..., Any]
) -> None:
    daraja.admin.add_fault({"kind": "callback_delay", "params": {"ms": 1500}})
    checkout = daraja.push(receiver.url()).json()["CheckoutRequestID"]
    resolved = poll(lambda: daraja.query(checkout).status_code == 200, what="the prompt to resolve")

    assert resolved
    assert receiver.received() == []  # resolved, but the callback is still held back
    receiver.wait_for(1)
