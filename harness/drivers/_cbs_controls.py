"""Deliberately broken Fineract repayment clients: each has the bug one CBS scenario exists to catch.

Like the Stripe controls (:mod:`harness.drivers._controls`), they are small and self-contained
(plain httpx, no resilience library), so that changes to the reference client cannot fix them. The
plain client underneath is correct for the scenarios it is run in; each flaw breaks one thing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from harness._driver import DriverSetup, Operation, Outcome, OutcomeKind
from harness.resilience import ErrorClass, classify_exception, wall_time

__all__ = [
    "CbsControlDriver",
    "CbsControlFlaws",
    "gives_up_on_locked_loans",
    "repays_without_external_id",
    "trusts_pending_commands",
]

BASE = "/fineract-provider/api/v1"
_RETRIED = frozenset({409, 425, 429, 500, 502, 503, 504})
_DUPLICATE = "validation.msg.loan.transaction.externalId.value.must.be.unique"


@dataclass(frozen=True, kw_only=True, slots=True)
class CbsControlFlaws:
    no_external_id: bool = False
    """Sends neither an ``externalId`` nor an ``Idempotency-Key``: a retry after a lost answer books
    the repayment again."""
    lock_is_final: bool = False
    """Reports a loan locked by close of business (409) as a failed repayment, never tried again."""
    pending_is_done: bool = False
    """Reports a command waiting for a checker (200, ``rollbackTransaction: true``) as booked."""


def _codes(response: httpx.Response) -> set[str]:
    try:
        body = response.json()
    except ValueError:
        return set()
    if not isinstance(body, dict):
        return set()
    errors = body.get("errors")
    if not isinstance(errors, list):
        return set()
    return {str(e.get("userMessageGlobalisationCode")) for e in errors if isinstance(e, dict)}


class CbsControlDriver:
    """A plain Fineract repayment client, then one flaw.

    Logs in once; sends ``externalId`` = the operation id and an ``Idempotency-Key``; retries 409,
    425, 429, 5xx and transport errors 4 times 20 ms apart; reads a duplicate ``externalId`` as
    already booked; and in the settle phase looks up what it could not finish by external id,
    repeating it (same key) only if Fineract has no such transaction.
    """

    MAX_ATTEMPTS = 4
    DELAY = 0.02

    def __init__(self, setup: DriverSetup, flaws: CbsControlFlaws) -> None:
        self.flaws = flaws
        self._clock = setup.clock
        self._rng = setup.rng
        cbs = setup.endpoints["cbs"]
        self._credentials = cbs.credentials
        self._tenant = {"Fineract-Platform-TenantId": cbs.credentials["tenant"]}
        self._http = httpx.Client(base_url=cbs.base_url + BASE, timeout=2.0, trust_env=False)
        self._auth: dict[str, str] | None = None
        self._unsettled: dict[str, Operation] = {}

    def close(self) -> None:
        self._http.close()

    def perform(self, operation: Operation) -> Outcome:
        outcome = self._repay(operation)
        if outcome.kind is OutcomeKind.UNKNOWN:
            self._unsettled[operation.operation_id] = operation
        return outcome

    def settle(self) -> dict[str, Outcome]:
        settled = {}
        for op_id, operation in self._unsettled.items():
            found = None if self.flaws.no_external_id else self._lookup(operation)
            settled[op_id] = found or self._repay(operation)
        return settled

    # -- plumbing -------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        if self._auth is None:
            creds = self._credentials
            login = self._http.post(
                "/authentication",
                json={"username": creds["username"], "password": creds["password"]},
                headers=self._tenant,
            )
            login.raise_for_status()
            key = login.json()["base64EncodedAuthenticationKey"]
            self._auth = {**self._tenant, "Authorization": f"Basic {key}"}
        return self._auth

    def _correlation(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _body(self, operation: Operation) -> dict[str, Any]:
        now = wall_time(self._clock) or 0.0
        when = operation.params.get("transaction_date") or _iso_date(now)
        body: dict[str, Any] = {
            "transactionDate": when,
            "transactionAmount": f"{operation.amount // 100}.{operation.amount % 100:02d}",
            "locale": "en",
            "dateFormat": "yyyy-MM-dd",
        }
        if not self.flaws.no_external_id:
            body["externalId"] = operation.operation_id
        return body

    def _loan(self, operation: Operation) -> str:
        return operation.params.get("loan_id", "1")

    def _lookup(self, operation: Operation) -> Outcome | None:
        try:
            response = self._http.get(
                f"/loans/{self._loan(operation)}/transactions/external-id/{operation.operation_id}",
                headers={**self._headers(), "X-Correlation-ID": self._correlation()},
            )
        except httpx.HTTPError:
            return None
        if response.status_code == 200:
            return Outcome.succeeded(str(response.json()["id"]))
        return None

    def _repay(self, operation: Operation) -> Outcome:
        headers = {**self._headers(), "X-Correlation-ID": self._correlation()}
        if not self.flaws.no_external_id:
            headers["Idempotency-Key"] = f"control-{operation.operation_id}"
        error = ErrorClass.PROTOCOL
        for _ in range(self.MAX_ATTEMPTS):
            try:
                response = self._http.post(
                    f"/loans/{self._loan(operation)}/transactions",
                    params={"command": "repayment"},
                    json=self._body(operation),
                    headers=headers,
                )
            except httpx.HTTPError as exc:
                error = classify_exception(exc)
                self._clock.sleep(self.DELAY)
                continue
            status = response.status_code
            if status == 200:
                body = response.json()
                if body.get("rollbackTransaction") is True and not self.flaws.pending_is_done:
                    return Outcome.unknown(ErrorClass.CONFLICT, "waiting for a checker")
                return Outcome.succeeded(str(body.get("resourceId") or body.get("commandId")))
            if status == 409 and self.flaws.lock_is_final:
                return Outcome.failed(ErrorClass.CONFLICT, "loan locked")
            if status == 400 and _DUPLICATE in _codes(response):
                return self._lookup(operation) or Outcome.unknown(ErrorClass.VALIDATION, "booked, not found")
            if status not in _RETRIED:
                kind = {403: ErrorClass.DECLINE, 404: ErrorClass.NOT_FOUND}.get(status, ErrorClass.VALIDATION)
                return Outcome.failed(kind, response.text[:200])
            error = {409: ErrorClass.CONFLICT, 425: ErrorClass.CONFLICT, 429: ErrorClass.THROTTLED}.get(
                status, ErrorClass.SERVER_ERROR
            )
            self._clock.sleep(self.DELAY)
        return Outcome.unknown(error)


def _iso_date(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).date().isoformat()


def repays_without_external_id(setup: DriverSetup) -> CbsControlDriver:
    """Repeats a repayment without external id or idempotency key: books it twice after a lost answer."""
    return CbsControlDriver(setup, CbsControlFlaws(no_external_id=True))


def gives_up_on_locked_loans(setup: DriverSetup) -> CbsControlDriver:
    """Reports a repayment on a loan locked by close of business as failed, and drops it."""
    return CbsControlDriver(setup, CbsControlFlaws(lock_is_final=True))


def trusts_pending_commands(setup: DriverSetup) -> CbsControlDriver:
    """Reports a repayment waiting for a checker's approval as booked."""
    return CbsControlDriver(setup, CbsControlFlaws(pending_is_done=True))
