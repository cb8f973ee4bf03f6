"""The fake Fineract over real HTTP: tenancy, auth, paging, repayments, idempotency, maker-checker."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

BASE = "/fineract-provider/api/v1"


class Fineract:
    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.admin = fake.admin
        self.creds = fake.credentials()
        self.tenant = {"Fineract-Platform-TenantId": self.creds["tenant"]}
        self.http = httpx.Client(base_url=fake.url + BASE, timeout=10)
        self.auth = self.login(self.creds["username"], self.creds["password"])
        self.checker = self.login(self.creds["checker_username"], self.creds["checker_password"])

    def login(self, username: str, password: str) -> dict[str, str]:
        response = self.http.post(
            "/authentication", json={"username": username, "password": password}, headers=self.tenant
        )
        assert response.status_code == 200, response.text
        return {**self.tenant, "Authorization": "Basic " + response.json()["base64EncodedAuthenticationKey"]}

    def repay(
        self,
        loan: int | str,
        external_id: str | None,
        *,
        key: str | None = None,
        as_checker: bool = False,
        **extra: Any,
    ) -> httpx.Response:
        body = {
            "transactionDate": "15 March 2024",
            "transactionAmount": 100.5,
            "locale": "en",
            "dateFormat": "dd MMMM yyyy",
            **extra,
        }
        if external_id is not None:
            body["externalId"] = external_id
        headers = dict(self.checker if as_checker else self.auth)
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.http.post(
            f"/loans/{loan}/transactions", params={"command": "repayment"}, json=body, headers=headers
        )

    def effects(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.admin.ledger() if kind is None or e["kind"] == kind]


@pytest.fixture
def cbs(cbs_fake: Any) -> Iterator[Fineract]:
    client = Fineract(cbs_fake)
    yield client
    client.http.close()


def _code(response: httpx.Response) -> str:
    body = response.json()
    assert {
        "developerMessage",
        "httpStatusCode",
        "defaultUserMessage",
        "userMessageGlobalisationCode",
        "errors",
    } <= set(body)
    assert body["httpStatusCode"] == str(response.status_code)
    return str(
        body["errors"][0]["userMessageGlobalisationCode"]
        if body["errors"]
        else body["userMessageGlobalisationCode"]
    )


def test_a_missing_tenant_is_a_plain_400_not_the_json_envelope(cbs: Fineract) -> None:
    response = cbs.http.get("/clients", headers={"Authorization": cbs.auth["Authorization"]})

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert "No tenant identifier found" in response.text
    assert response.headers["www-authenticate"] == 'Basic realm="Fineract Platform API"'


def test_the_tenant_may_come_as_a_query_parameter_and_an_unknown_one_is_refused(cbs: Fineract) -> None:
    basic = {"Authorization": cbs.auth["Authorization"]}
    known = cbs.http.get("/clients", params={"tenantIdentifier": "default"}, headers=basic)
    unknown = cbs.http.get("/clients", headers={**basic, "Fineract-Platform-TenantId": "other"})

    assert known.status_code == 200
    assert unknown.status_code == 400
    assert "other" in unknown.text


def test_authentication_returns_base64_of_user_and_password(cbs: Fineract) -> None:
    response = cbs.http.post(
        "/authentication", json={"username": "mifos", "password": "password"}, headers=cbs.tenant
    )

    assert response.json()["base64EncodedAuthenticationKey"] == base64.b64encode(b"mifos:password").decode()
    assert response.json()["authenticated"] is True


def test_bad_credentials_are_401_not_authenticated(cbs: Fineract) -> None:
    wrong = cbs.http.post(
        "/authentication", json={"username": "mifos", "password": "nope"}, headers=cbs.tenant
    )
    missing = cbs.http.post("/authentication", json={"username": "mifos"}, headers=cbs.tenant)
    basic = cbs.http.get(
        "/clients", headers={**cbs.tenant, "Authorization": "Basic " + base64.b64encode(b"mifos:x").decode()}
    )

    assert wrong.status_code == 401
    assert _code(wrong) == "error.msg.not.authenticated"
    assert missing.status_code == 400
    assert basic.status_code == 401
    assert _code(basic) == "error.msg.not.authenticated"


def test_clients_are_paged_with_offset_and_limit(cbs: Fineract) -> None:
    page = cbs.http.get("/clients", params={"offset": 10, "limit": 5}, headers=cbs.auth).json()
    ordered = cbs.http.get(
        "/clients", params={"orderBy": "displayName", "sortOrder": "DESC", "limit": 1}, headers=cbs.auth
    )
    bad = cbs.http.get("/clients", params={"limit": "ten"}, headers=cbs.auth)

    assert page["totalFilteredRecords"] == 12
    assert [c["id"] for c in page["pageItems"]] == [11, 12]
    assert ordered.json()["pageItems"][0]["displayName"] == "Moses Odhiambo"
    assert bad.status_code == 400


def test_a_repayment_is_booked_once_and_found_by_its_external_id(cbs: Fineract) -> None:
    booked = cbs.repay(1, "op-1")
    found = cbs.http.get("/loans/1/transactions/external-id/op-1", headers=cbs.auth)
    loan = cbs.http.get("/loans/1", params={"associations": "transactions"}, headers=cbs.auth).json()

    assert booked.status_code == 200
    assert booked.json()["resourceExternalId"] == "op-1"
    assert found.json()["id"] == booked.json()["resourceId"]
    assert found.json()["amount"] == 100.5
    assert loan["summary"]["totalRepayment"] == 100.5
    assert [t["externalId"] for t in loan["transactions"]] == ["op-1"]
    [effect] = cbs.effects("repayment")
    assert (effect["operation_id"], effect["amount"], effect["currency"]) == ("op-1", 10050, "USD")


def test_a_second_repayment_with_the_same_external_id_is_a_400_on_external_id(cbs: Fineract) -> None:
    cbs.repay(1, "op-1")
    duplicate = cbs.repay(1, "op-1")

    assert duplicate.status_code == 400
    assert duplicate.json()["errors"][0]["parameterName"] == "externalId"
    assert _code(duplicate) == "validation.msg.loan.transaction.externalId.value.must.be.unique"
    assert len(cbs.effects("repayment")) == 1


def test_an_idempotency_key_replays_with_served_from_cache_even_for_another_body(cbs: Fineract) -> None:
    first = cbs.repay(1, "op-1", key="key-1")
    replay = cbs.repay(1, "op-1", key="key-1")
    other_body = cbs.repay(1, "op-2", key="key-1", transactionAmount=7)

    assert replay.headers["x-served-from-cache"] == "true"
    assert other_body.headers["x-served-from-cache"] == "true"
    assert replay.json() == first.json() == other_body.json()
    assert "x-served-from-cache" not in first.headers
    assert len(cbs.effects("repayment")) == 1


def test_errors_from_the_command_are_cached_under_the_key_too(cbs: Fineract) -> None:
    failed = cbs.repay(1, "op-1", key="key-1", transactionAmount=-5)
    fixed_body = cbs.repay(1, "op-1", key="key-1")

    assert failed.status_code == fixed_body.status_code == 400
    assert fixed_body.headers["x-served-from-cache"] == "true"
    assert cbs.effects() == []


def test_a_key_still_processing_gets_425_with_the_request_json(cbs: Fineract) -> None:
    cbs.admin.configure(processing_delay=1.5)
    with ThreadPoolExecutor(2) as pool:
        responses = [f.result() for f in [pool.submit(cbs.repay, 1, "op-1", key="key-1") for _ in range(2)]]

    assert sorted(r.status_code for r in responses) == [200, 425]
    early = next(r for r in responses if r.status_code == 425)
    assert early.headers["x-served-from-cache"] == "true"
    assert early.json()["externalId"] == "op-1"
    assert len(cbs.effects("repayment")) == 1


def test_without_idempotency_support_a_key_dedupes_nothing(cbs: Fineract) -> None:
    cbs.admin.configure(idempotency_enabled=False)
    cbs.repay(1, "op-1", key="key-1")
    second = cbs.repay(1, "op-2", key="key-1")

    assert second.status_code == 200
    assert "x-served-from-cache" not in second.headers
    assert len(cbs.effects("repayment")) == 2


def test_a_loan_locked_by_close_of_business_is_409_and_nothing_is_cached(cbs: Fineract) -> None:
    cbs.admin.configure(locked_loans=["1"])
    locked = cbs.repay(1, "op-1", key="key-1")
    cbs.admin.configure(locked_loans=[])
    after = cbs.repay(1, "op-1", key="key-1")

    assert locked.status_code == 409
    assert _code(locked) == "error.msg.loan.locked"
    assert after.status_code == 200
    assert "x-served-from-cache" not in after.headers


def test_business_rules_answer_403_and_unknown_loans_404(cbs: Fineract) -> None:
    future = cbs.repay(1, "op-1", transactionDate="15 March 2099")
    early = cbs.repay(1, "op-2", transactionDate="01 January 2020")
    unknown = cbs.repay(99, "op-3")
    not_a_number = cbs.repay("abc", "op-4")

    assert future.status_code == 403
    assert future.json()["userMessageGlobalisationCode"] == "validation.msg.domain.rule.violation"
    assert _code(future) == "error.msg.loan.transaction.cannot.be.a.future.date"
    assert early.status_code == 403
    assert unknown.status_code == 404
    assert _code(unknown) == "error.msg.loan.id.invalid"
    assert not_a_number.status_code == 404
    assert cbs.effects() == []


def test_repaying_a_loan_in_full_closes_it_and_then_refuses_more(cbs: Fineract) -> None:
    loan = cbs.http.get("/loans/2", headers=cbs.auth).json()
    paid = cbs.repay(2, "op-1", transactionAmount=loan["summary"]["totalOutstanding"])
    closed = cbs.http.get("/loans/2", headers=cbs.auth).json()
    more = cbs.repay(2, "op-2")

    assert paid.status_code == 200
    assert closed["status"]["code"] == "loanStatusType.closed.obligations.met"
    assert more.status_code == 400
    assert _code(more) == "error.msg.loan.repayment.or.waiver.account.is.not.active"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "error.msg.invalid.json"),
        (b"[1, 2]", "error.msg.invalid.json"),
        (
            b'{"transactionAmount": 5, "locale": "en", "dateFormat": "dd MMMM yyyy"}',
            "validation.msg.loan.transaction.transactionDate.cannot.be.blank",
        ),
        (
            b'{"transactionDate": "x", "transactionAmount": 5, "locale": "en", "dateFormat": "dd MMMM yyyy"}',
            "validation.msg.invalid.date.pattern",
        ),
        (
            b'{"transactionDate": "15 March 2024", "transactionAmount": "lots", "locale": "en",'
            b' "dateFormat": "dd MMMM yyyy"}',
            "validation.msg.invalid.decimal.format",
        ),
        (
            b'{"transactionDate": "15 March 2024", "transactionAmount": 5, "locale": "en",'
            b' "dateFormat": "dd MMMM yyyy", "bogus": 1}',
            "error.msg.parameter.unsupported",
        ),
    ],
)
def test_bad_repayment_bodies_get_fineracts_400_envelope(cbs: Fineract, content: bytes, code: str) -> None:
    response = cbs.http.post(
        "/loans/1/transactions",
        params={"command": "repayment"},
        content=content,
        headers={**cbs.auth, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert _code(response) == code
    assert cbs.effects() == []


def test_an_unknown_command_is_a_400(cbs: Fineract) -> None:
    response = cbs.http.post("/loans/1/transactions", params={"command": "waiver"}, json={}, headers=cbs.auth)

    assert response.status_code == 400
    assert _code(response) == "validation.msg.unrecognized.query.param"


# -- maker-checker --------------------------------------------------------------------------------


def _enable_maker_checker(cbs: Fineract) -> None:
    config = cbs.http.put("/configurations/1", json={"enabled": True}, headers=cbs.checker)
    permissions = cbs.http.put(
        "/permissions", json={"permissions": {"REPAYMENT_LOAN": True}}, headers=cbs.checker
    )
    assert config.status_code == permissions.status_code == 200


def test_a_makers_repayment_waits_for_a_checker_and_is_applied_on_approval(cbs: Fineract) -> None:
    _enable_maker_checker(cbs)
    made = cbs.repay(1, "op-1", key="key-1")
    inbox = cbs.http.get("/makercheckers", headers=cbs.checker).json()
    own = cbs.http.post(
        f"/makercheckers/{made.json()['commandId']}", params={"command": "approve"}, headers=cbs.auth
    )
    before = cbs.effects()
    approved = cbs.http.post(
        f"/makercheckers/{made.json()['commandId']}", params={"command": "approve"}, headers=cbs.checker
    )
    replay = cbs.repay(1, "op-1", key="key-1")

    assert made.status_code == 200
    assert made.json() == {
        "commandId": made.json()["commandId"],
        "resourceId": 1,
        "rollbackTransaction": True,
    }
    assert [e["actionName"] for e in inbox] == ["REPAYMENT"]
    assert own.status_code == 403  # the maker holds no checker permission
    assert before == []
    assert approved.status_code == 200
    assert approved.json()["resourceExternalId"] == "op-1"
    assert replay.json() == approved.json()
    assert replay.headers["x-served-from-cache"] == "true"
    assert [e["operation_id"] for e in cbs.effects("repayment")] == ["op-1"]


def test_a_checker_cannot_approve_their_own_command_and_rejection_applies_nothing(cbs: Fineract) -> None:
    cbs.admin.configure(maker_checker_enabled=True, maker_checker_tasks=["CREATE_CLIENT", "REPAYMENT_LOAN"])
    made = cbs.http.post(
        "/clients",
        json={"officeId": 1, "firstname": "Zawadi", "lastname": "Akinyi", "externalId": "op-c1"},
        headers=cbs.auth,
    ).json()
    rejected = cbs.http.post(
        f"/makercheckers/{made['commandId']}", params={"command": "reject"}, headers=cbs.checker
    )
    gone = cbs.http.post(
        f"/makercheckers/{made['commandId']}", params={"command": "approve"}, headers=cbs.checker
    )
    direct = cbs.repay(1, "op-1", as_checker=True)

    assert made["rollbackTransaction"] is True
    assert rejected.status_code == 200
    assert gone.status_code == 404
    assert direct.status_code == 200  # CHECKER_SUPER_USER skips the queue
    assert [e["kind"] for e in cbs.effects()] == ["repayment"]


def test_creating_a_client_records_its_external_id_and_refuses_a_duplicate(cbs: Fineract) -> None:
    body = {
        "officeId": 1,
        "firstname": "Zawadi",
        "lastname": "Akinyi",
        "externalId": "op-c1",
        "active": True,
        "activationDate": "01 March 2024",
        "dateFormat": "dd MMMM yyyy",
        "locale": "en",
    }
    created = cbs.http.post("/clients", json=body, headers=cbs.auth)
    duplicate = cbs.http.post("/clients", json=body, headers=cbs.auth)
    listed = cbs.http.get("/clients", params={"externalId": "op-c1"}, headers=cbs.auth).json()

    assert created.json()["clientId"] == 13
    assert duplicate.status_code == 403
    assert _code(duplicate) == "error.msg.client.duplicate.externalId"
    assert listed["totalFilteredRecords"] == 1
    assert [e["operation_id"] for e in cbs.effects("client_created")] == ["op-c1"]


@pytest.mark.parametrize(
    ("status", "code"),
    [(409, "error.msg.platform.service.loan.conflict"), (503, "error.msg.platform.service.unavailable")],
)
def test_injected_errors_use_fineracts_envelope(cbs: Fineract, status: int, code: str) -> None:
    cbs.admin.add_fault(
        {"kind": "error", "path": f"{BASE}/loans/*", "params": {"status": status}, "count": 1}
    )
    response = cbs.repay(1, "op-1")

    assert response.status_code == status
    assert response.json()["userMessageGlobalisationCode"] == code
    assert cbs.effects() == []


def test_throttling_comes_from_a_gateway_with_retry_after(cbs: Fineract) -> None:
    cbs.admin.add_fault({"kind": "throttle", "params": {"retry_after": 2}, "count": 1})
    response = cbs.http.get("/loans/1", headers=cbs.auth)

    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.headers["content-type"].startswith("text/html")
