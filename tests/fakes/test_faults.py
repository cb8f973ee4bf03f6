"""HTTP fault rules as the fakes realise them, over real HTTP, and what the request log records."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from harness.stack import UpstreamAdminError


@pytest.fixture
def stripe(stripe_fake: Any) -> Iterator[tuple[Any, httpx.Client]]:
    key = stripe_fake.credentials()["secret_key"]
    with httpx.Client(
        base_url=stripe_fake.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as client:
        yield stripe_fake, client


def _charge(client: httpx.Client, op: str) -> httpx.Response:
    data = {"amount": "1000", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true"}
    return client.post("/v1/payment_intents", data={**data, "metadata[operation_id]": op})


def test_commit_then_drop_applies_the_charge_and_sends_nothing(stripe: tuple[Any, httpx.Client]) -> None:
    fake, client = stripe
    fake.admin.add_fault({"kind": "commit_then_fail", "params": {"mode": "drop"}, "count": 1})

    with pytest.raises(httpx.RemoteProtocolError):
        _charge(client, "op-1")
    after = _charge(client, "op-2")

    assert after.status_code == 200
    assert [e["operation_id"] for e in fake.admin.ledger()] == ["op-1", "op-2"]
    first = fake.admin.requests()[0]
    assert (first["status"], first["app_status"], first["fault"]) == (0, 200, "commit_then_fail")


def test_commit_then_error_answers_the_apis_500_after_applying(stripe: tuple[Any, httpx.Client]) -> None:
    fake, client = stripe
    rule = fake.admin.add_fault({"kind": "commit_then_fail", "count": 1})
    response = _charge(client, "op-1")

    assert response.status_code == 500
    assert response.json()["error"]["type"] == "api_error"
    assert len(fake.admin.ledger()) == 1
    logged = fake.admin.requests()[0]
    assert (logged["status"], logged["app_status"], logged["fault_rule"]) == (500, 200, rule["id"])


def test_a_malformed_body_keeps_valid_framing_but_is_not_json(stripe: tuple[Any, httpx.Client]) -> None:
    fake, client = stripe
    fake.admin.add_fault({"kind": "malformed_body", "count": 1})
    response = _charge(client, "op-1")

    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    assert len(fake.admin.ledger()) == 1


def test_a_truncated_body_ends_the_connection_mid_answer(stripe: tuple[Any, httpx.Client]) -> None:
    fake, client = stripe
    fake.admin.add_fault({"kind": "malformed_body", "params": {"mode": "truncated"}, "count": 1})

    with pytest.raises(httpx.RemoteProtocolError):
        _charge(client, "op-1")
    assert len(fake.admin.ledger()) == 1


def test_a_wrong_content_type_keeps_the_body(stripe: tuple[Any, httpx.Client]) -> None:
    fake, client = stripe
    fake.admin.add_fault({"kind": "wrong_content_type", "count": 1})
    response = _charge(client, "op-1")

    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.json()["status"] == "succeeded"


def test_a_delay_after_commit_applies_before_the_client_gives_up(stripe: tuple[Any, httpx.Client]) -> None:
    fake, client = stripe
    fake.admin.add_fault({"kind": "delay", "params": {"ms": 2000, "phase": "after"}, "count": 1})

    with pytest.raises(httpx.ReadTimeout):
        client.post(
            "/v1/payment_intents",
            data={"amount": "1000", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true"},
            timeout=0.3,
        )
    assert len(fake.admin.ledger()) == 1


def test_a_delay_before_the_handler_applies_nothing_until_it_runs(stripe: tuple[Any, httpx.Client]) -> None:
    fake, client = stripe
    fake.admin.add_fault({"kind": "delay", "params": {"ms": 300}, "count": 1})
    response = _charge(client, "op-1")

    assert response.status_code == 200
    assert fake.admin.requests()[0]["fault"] == "delay"


def test_rules_match_on_method_and_path_glob_and_stop_after_count(stripe: tuple[Any, httpx.Client]) -> None:
    fake, client = stripe
    fake.admin.add_fault({"kind": "error", "method": "GET", "path": "/v1/payment_intents/*", "count": 2})
    created = _charge(client, "op-1")
    statuses = [client.get(f"/v1/payment_intents/{created.json()['id']}").status_code for _ in range(3)]

    assert created.status_code == 200
    assert statuses == [500, 500, 200]
    [rule] = fake.admin.faults()
    assert (rule["matched"], rule["fired"]) == (3, 2)


def test_skip_lets_the_first_matches_through(stripe: tuple[Any, httpx.Client]) -> None:
    fake, client = stripe
    fake.admin.add_fault({"kind": "error", "params": {"status": 503}, "skip": 2, "count": 1})
    statuses = [client.get("/v1/payment_intents").status_code for _ in range(4)]

    assert statuses == [200, 200, 503, 200]


def test_probabilistic_faults_fire_the_same_way_after_every_reset(stripe: tuple[Any, httpx.Client]) -> None:
    fake, client = stripe

    def pattern() -> list[int]:
        fake.admin.reset()
        fake.admin.add_fault({"kind": "error", "probability": 0.5})
        return [client.get("/v1/payment_intents").status_code for _ in range(24)]

    first, second = pattern(), pattern()

    assert first == second
    assert 500 in first
    assert 200 in first


def test_removing_a_rule_stops_it_and_clearing_removes_all(stripe: tuple[Any, httpx.Client]) -> None:
    fake, client = stripe
    rule = fake.admin.add_fault({"kind": "error"})
    fake.admin.add_fault({"kind": "throttle", "path": "/nothing"})
    failing = client.get("/v1/payment_intents").status_code
    fake.admin.remove_fault(rule["id"])
    passing = client.get("/v1/payment_intents").status_code
    fake.admin.clear_faults()

    assert (failing, passing) == (500, 200)
    assert fake.admin.faults() == []
    fake.admin.remove_fault(rule["id"], missing_ok=True)
    with pytest.raises(httpx.HTTPStatusError):
        fake.admin.remove_fault(rule["id"])


@pytest.mark.parametrize(
    ("rule", "mentions"),
    [
        ({"kind": "explode"}, "kind"),
        ({"kind": "error", "params": {"status": 418}}, "status"),
        ({"kind": "error", "probability": 0}, "probability"),
        ({"kind": "error", "count": 0}, "count"),
        ({"kind": "error", "method": "FETCH"}, "method"),
        ({"kind": "delay", "params": {"ms": -1}}, "ms"),
        ({"kind": "throttle", "params": {"variant": "gateway"}}, "variant"),
        ({"kind": "error", "colour": "red"}, "unknown"),
        ({"kind": "callback_duplicate", "params": {"copies": 1}}, "copies"),
    ],
)
def test_a_bad_rule_is_refused_with_a_message_naming_the_field(
    stripe_fake: Any, rule: dict[str, Any], mentions: str
) -> None:
    with pytest.raises(UpstreamAdminError, match=mentions):
        stripe_fake.admin.add_fault(rule)
    assert stripe_fake.admin.faults() == []


def test_a_bad_setting_changes_nothing(stripe_fake: Any) -> None:
    before = stripe_fake.admin.config()
    with pytest.raises(UpstreamAdminError, match="lock_timeout"):
        stripe_fake.admin.configure(processing_delay=0.1, lock_timeout="soon")

    assert stripe_fake.admin.config() == before


def test_admin_traffic_is_never_logged_or_faulted(stripe: tuple[Any, httpx.Client]) -> None:
    fake, _ = stripe
    fake.admin.add_fault({"kind": "error"})

    assert fake.admin.healthy()
    assert fake.admin.requests() == []


def test_the_drop_degrades_to_a_cut_body_under_uvicorns_h11(fake_factory: Callable[..., Any]) -> None:
    fake = fake_factory("stripe", http="h11")
    fake.admin.add_fault({"kind": "commit_then_fail", "params": {"mode": "drop"}, "count": 1})
    key = fake.credentials()["secret_key"]
    with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {key}"}) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            _charge(client, "op-1")
        assert _charge(client, "op-2").status_code == 200
    assert len(fake.admin.ledger()) == 2
