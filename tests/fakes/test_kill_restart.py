"""The ground truth survives an upstream crash: SIGKILL a fake mid-traffic, restart it on the same
state folder and port, and every effect it acknowledged is still in its ledger."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest


def _stripe_effect(fake: Any, client: httpx.Client, n: int) -> httpx.Response:
    key = fake.credentials()["secret_key"]
    return client.post(
        "/v1/payment_intents",
        data={
            "amount": "1000",
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": "true",
            "metadata[operation_id]": f"op-{n}",
        },
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"key-{n}"},
    )


def _cbs_effect(fake: Any, client: httpx.Client, n: int) -> httpx.Response:
    creds = fake.credentials()
    basic = base64.b64encode(f"{creds['username']}:{creds['password']}".encode()).decode()
    return client.post(
        f"/fineract-provider/api/v1/loans/{n % 10 + 1}/transactions",
        params={"command": "repayment"},
        json={
            "transactionDate": "15 March 2024",
            "transactionAmount": 1,
            "locale": "en",
            "dateFormat": "dd MMMM yyyy",
            "externalId": f"op-{n}",
        },
        headers={"Authorization": f"Basic {basic}", "Fineract-Platform-TenantId": creds["tenant"]},
    )


def _mpesa_effect(fake: Any, client: httpx.Client, n: int) -> httpx.Response:
    creds = fake.credentials()
    token = client.get(
        "/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=(creds["consumer_key"], creds["consumer_secret"]),
    ).json()["access_token"]
    timestamp = time.strftime("%Y%m%d%H%M%S")
    password = base64.b64encode((creds["shortcode"] + creds["passkey"] + timestamp).encode()).decode()
    phone = f"2547{n:08d}"
    return client.post(
        "/mpesa/stkpush/v1/processrequest",
        json={
            "BusinessShortCode": creds["shortcode"],
            "Password": password,
            "Timestamp": timestamp,
            "TransactionType": "CustomerPayBillOnline",
            "Amount": 10,
            "PartyA": phone,
            "PartyB": creds["shortcode"],
            "PhoneNumber": phone,
            "CallBackURL": "http://127.0.0.1:9/callback",
            "AccountReference": f"op-{n}",
        },
        headers={"Authorization": f"Bearer {token}"},
    )


EFFECTS: dict[str, tuple[Callable[[Any, httpx.Client, int], httpx.Response], str]] = {
    "stripe": (_stripe_effect, "charge"),
    "cbs": (_cbs_effect, "repayment"),
    "mpesa": (_mpesa_effect, "stk_prompt"),
}


@pytest.mark.parametrize("name", sorted(EFFECTS))
def test_every_acknowledged_effect_survives_a_sigkill_and_restart(
    name: str, fake_factory: Callable[..., Any], poll: Callable[..., Any]
) -> None:
    fake = fake_factory(name)
    if name == "mpesa":
        fake.admin.configure(stk_delay=3600)
    apply, kind = EFFECTS[name]
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def traffic(worker: int) -> None:
        with httpx.Client(base_url=fake.url, timeout=5) as client:
            n = worker * 10_000
            while not stop.is_set():
                n += 1
                try:
                    response = apply(fake, client, n)
                except httpx.HTTPError:
                    return  # the fake died under us: this one was never acknowledged
                if response.status_code == 200:
                    with lock:
                        acknowledged.append(f"op-{n}")

    threads = [threading.Thread(target=traffic, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    poll(lambda: len(acknowledged) >= 40, timeout=30, what="40 acknowledged effects")
    fake.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    with lock:
        acked = set(acknowledged)

    fake.start()
    recorded = {e["operation_id"] for e in fake.admin.ledger() if e["kind"] == kind}

    assert acked, "no effect was acknowledged before the kill, so nothing was tested"
    assert acked <= recorded, f"lost after restart: {sorted(acked - recorded)}"


def test_an_idempotency_record_survives_a_restart(fake_factory: Callable[..., Any]) -> None:
    fake = fake_factory("stripe")
    with httpx.Client(base_url=fake.url) as client:
        first = _stripe_effect(fake, client, 1)
    fake.kill()
    fake.start()
    with httpx.Client(base_url=fake.url) as client:
        replay = _stripe_effect(fake, client, 1)

    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    assert len(fake.admin.ledger()) == 1


def test_a_prompt_accepted_before_a_crash_still_resolves_after_it(
    fake_factory: Callable[..., Any], poll: Callable[..., Any], receiver: Any
) -> None:
    fake = fake_factory("mpesa")
    fake.admin.configure(stk_delay=1.0)
    with httpx.Client(base_url=fake.url) as client:
        accepted = _mpesa_effect(fake, client, 1)
    fake.kill()
    fake.start()

    payments = poll(
        lambda: [e for e in fake.admin.ledger() if e["kind"] == "stk_payment"],
        timeout=10,
        what="the pending prompt to resolve after the restart",
    )
    assert accepted.status_code == 200
    assert [p["object_id"] for p in payments] == [accepted.json()["CheckoutRequestID"]]
