"""The reference client's Fineract (Mifos X core banking) integration: loan repayments.

A repayment is money the customer has already paid (at a till, through M-Pesa ...); the core banking
system must book it exactly once, and must not be told "failed" about a repayment it may still book.
How the client keeps to that (upstreams.md §2):

* **Two guards against a double repayment.** The operation id travels as the repayment's
  ``externalId``, which Fineract keeps unique across loan transactions (a second use is a 400 on
  ``externalId``), and the ``Idempotency-Key`` is derived from it (Fineract >= 1.9 replays the stored
  answer with ``x-served-from-cache: true``). Either one alone prevents a second booking; a 1.8.x
  server has only the first, which is why a 400 "externalId must be unique" reads as *already
  applied*: the client looks the transaction up and reports the repayment done.
* **Reconciliation before repetition.** A parked repayment is first looked up by its external id
  (``GET /loans/{id}/transactions/external-id/{externalId}``); only if Fineract has no such
  transaction is it repeated, under the same key and external id.
* **"Not now" is not "no".** A loan locked by the close-of-business job (409 ``error.msg.loan.locked``),
  an optimistic-lock conflict (409), a gateway's 429 or a refusal on the client's side (breaker open)
  say nothing about the repayment itself: after the client's own retries it is parked and repeated
  in the settle phase, never reported failed. A key still in flight (425 with
  ``x-served-from-cache``) is worse than "not now": another request is booking this very repayment,
  so the outcome is unknown until a lookup finds it.
* **Maker-checker.** A 200 with ``rollbackTransaction: true`` means Fineract validated the command,
  rolled it back and queued it for a checker. It is not done, and not failed either (a checker may
  approve it at any time, and a caller told "failed" would collect the money again), so it is
  reported as not known yet and parked; the settle phase's lookup finds the transaction once it is
  approved. It stays parked while nobody approves it: only a person can settle it.
* **Definite answers.** A 403 domain-rule violation is a DECLINE (never retried), other 4xx settle
  as :func:`~harness.drivers.honest_outcome` says; a 400 without Fineract's error envelope (and not
  its tenant refusal) did not come from Fineract and is read as PROTOCOL, as for Stripe.

Authentication goes through the resilience library's :class:`~harness.resilience.TokenCache`:
``POST /authentication`` (with the tenant header) once for every caller, then ``Authorization: Basic
<base64EncodedAuthenticationKey>`` on every call. The key is base64("user:password"), not an issued
token, so it never expires; a 401 drops it and the client logs in again once.

Amounts: :attr:`Operation.amount` is in minor units (cents) and is sent as an exact decimal string
(``1001`` -> ``"10.01"``); the fake's ledger records the repayment in cents again. Repayments carry
no currency (the loan's applies). Dates are sent as ``yyyy-MM-dd`` with locale ``en``: numbers only,
so neither side's month names can differ.

Operation parameters (all optional): ``loan_id`` (default ``"1"``, an active loan of the fake's demo
tenant, which holds active loans 1 to 10), ``transaction_date`` (ISO ``yyyy-mm-dd``; default today,
UTC, by the client's clock), ``payment_type_id``, ``note``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from harness._driver import Operation, Outcome, OutcomeKind
from harness.drivers._integration import (
    Integration,
    IntegrationSetup,
    honest_outcome,
    idempotency_key,
    resilient_client,
)
from harness.resilience import (
    CallResult,
    CircuitBreaker,
    ErrorClass,
    Token,
    TokenAuth,
    TokenCache,
    classify_response,
    wall_time,
)

__all__ = [
    "BASE",
    "DEFAULT_LOAN_ID",
    "CbsIntegration",
    "FineractLoginError",
    "classify_fineract",
    "fineract_codes",
    "fineract_detail",
    "is_pending_approval",
    "repayment_amount",
]

BASE = "/fineract-provider/api/v1"
TENANT_HEADER = "Fineract-Platform-TenantId"
DEFAULT_LOAN_ID = "1"
DATE_FORMAT = "yyyy-MM-dd"
DUPLICATE_EXTERNAL_ID = "validation.msg.loan.transaction.externalId.value.must.be.unique"
TRANSACTION_NOT_FOUND = "error.msg.loan.transaction.external.id.invalid"
_REALM = "Fineract Platform API"
_MAKER = "maker"


class FineractLoginError(Exception):
    """``POST /authentication`` did not give a key; the message never carries the credentials."""


def _json(response: httpx.Response | None) -> Any:
    if response is None:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def fineract_codes(response: httpx.Response | None) -> set[str]:
    """Every ``userMessageGlobalisationCode`` of a Fineract error envelope: the top one and each of
    ``errors[]`` (where the specific reason lives, e.g. the duplicate ``externalId``)."""
    body = _json(response)
    if not isinstance(body, dict):
        return set()
    codes = {body.get("userMessageGlobalisationCode")}
    errors = body.get("errors")
    if isinstance(errors, list):
        codes |= {e.get("userMessageGlobalisationCode") for e in errors if isinstance(e, dict)}
    return {c for c in codes if isinstance(c, str)}


def fineract_detail(response: httpx.Response | None) -> str:
    """A Fineract error in a line: the status, the top code and each specific reason with its message
    (the envelope's first 200 characters, which is all a raw body gives, never reach the reason)."""
    body = _json(response)
    if response is None or not isinstance(body, dict) or "userMessageGlobalisationCode" not in body:
        return ""
    reasons = [
        f"{e.get('userMessageGlobalisationCode')}: {e.get('defaultUserMessage') or e.get('developerMessage')}"
        for e in body.get("errors") or []
        if isinstance(e, dict)
    ]
    return "; ".join([f"{response.status_code} {body['userMessageGlobalisationCode']}", *reasons])[:500]


def classify_fineract(response: httpx.Response) -> ErrorClass | None:
    """Fineract's answers on the shared taxonomy (:func:`~harness.resilience.classify_response`
    already reads its 403 domain rule as DECLINE; 409 and 425 are CONFLICT, a gateway's 429 THROTTLED),
    except that a 400 Fineract did not send is PROTOCOL: Fineract's 400s carry its error envelope, or
    are its tenant refusal (plain text with ``WWW-Authenticate: Basic realm="Fineract Platform API"``).
    """
    error = classify_response(response)
    if error is ErrorClass.VALIDATION and response.status_code == 400:
        enveloped = bool(fineract_codes(response))
        tenant_refusal = _REALM in response.headers.get("www-authenticate", "")
        if not (enveloped or tenant_refusal):
            return ErrorClass.PROTOCOL
    return error


def is_pending_approval(body: object) -> bool:
    """A maker-checker answer: validated, rolled back, waiting for a checker (not applied)."""
    return isinstance(body, dict) and body.get("rollbackTransaction") is True


def repayment_amount(cents: int) -> str:
    """Minor units as Fineract's decimal amount, exactly (no float on the way)."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _served_from_cache(response: httpx.Response | None) -> bool:
    return response is not None and response.headers.get("x-served-from-cache") == "true"


def _transaction_id(body: object) -> str:
    return str(body.get("resourceId", "")) if isinstance(body, dict) else ""


@dataclass(frozen=True, slots=True)
class _Lookup:
    """What a lookup by external id found: ``outcome`` None means Fineract has no such transaction."""

    outcome: Outcome | None
    attempts: int


class CbsIntegration(Integration):
    UPSTREAM: ClassVar[str] = "cbs"
    ACTIONS: ClassVar[frozenset[str]] = frozenset({"repayment"})

    def __init__(self, setup: IntegrationSetup) -> None:
        super().__init__(setup)
        credentials = setup.endpoint.credentials
        self._tenant = credentials.get("tenant", "default")
        self._logins = {_MAKER: (credentials["username"], credentials["password"])}
        self._login_http = httpx.Client(
            base_url=setup.endpoint.base_url,
            timeout=setup.config.timeouts.for_attempt(None),
            trust_env=False,
        )
        self.tokens = TokenCache(clock=setup.clock, fetch=self._login)
        self.client = resilient_client(
            setup,
            self.UPSTREAM,
            auth=TokenAuth(cache=self.tokens, credential=_MAKER, scheme="Basic"),
            classify=classify_fineract,
            headers={TENANT_HEADER: self._tenant},
        )

    # -- authentication ---------------------------------------------------------------------------

    def _login(self, credential: str) -> Token:
        username, password = self._logins[credential]
        response = self._login_http.post(
            f"{BASE}/authentication",
            json={"username": username, "password": password},
            headers={TENANT_HEADER: self._tenant},
        )
        body = _json(response)
        key = body.get("base64EncodedAuthenticationKey") if isinstance(body, dict) else None
        if response.status_code != 200 or not isinstance(key, str) or not key:
            raise FineractLoginError(
                f"POST {BASE}/authentication as {credential!r} answered {response.status_code}"
                f" {sorted(fineract_codes(response))} without an authentication key"
            )
        return Token(key)  # base64(user:password): it never expires

    # -- the repayment ----------------------------------------------------------------------------

    @staticmethod
    def _loan_path(operation: Operation) -> str:
        loan = quote(operation.params.get("loan_id", DEFAULT_LOAN_ID), safe="")
        return f"{BASE}/loans/{loan}/transactions"

    def _body(self, operation: Operation) -> dict[str, Any] | Outcome:
        when = operation.params.get("transaction_date")
        if when is None:
            now = wall_time(self.setup.clock)
            if now is None:
                return Outcome.failed(
                    ErrorClass.VALIDATION,
                    "no transaction date: the client's clock has no calendar time; pass"
                    " params={'transaction_date': 'yyyy-mm-dd'}",
                )
            when = datetime.fromtimestamp(now, UTC).date().isoformat()
        body: dict[str, Any] = {
            "transactionDate": when,
            "transactionAmount": repayment_amount(operation.amount),
            "locale": "en",
            "dateFormat": DATE_FORMAT,
            "externalId": operation.operation_id,
        }
        if "payment_type_id" in operation.params:
            body["paymentTypeId"] = operation.params["payment_type_id"]
        if "note" in operation.params:
            body["note"] = operation.params["note"]
        return body

    def perform(self, operation: Operation, *, replay: bool = False) -> tuple[Outcome, int]:
        body = self._body(operation)
        if isinstance(body, Outcome):
            return body, 0
        result = self.client.request(
            "POST",
            self._loan_path(operation),
            params={"command": "repayment"},
            json=body,
            operation=operation.action,
            operation_id=operation.operation_id,
            idempotency_key=idempotency_key(operation) if self.setup.idempotency_keys else None,
        )
        outcome, lookups = self._judge(operation, result, replay=replay)
        return outcome, result.attempts + lookups

    def _judge(self, operation: Operation, result: CallResult, *, replay: bool) -> tuple[Outcome, int]:
        """The honest outcome of a repayment call, and the attempts a lookup took on top."""
        response = result.response
        if result.error is None and response is not None:
            body = _json(response)
            if is_pending_approval(body):
                command = body.get("commandId")
                return Outcome.unknown(
                    ErrorClass.CONFLICT,
                    f"awaiting a checker's approval (maker-checker command {command}): validated but"
                    " not applied; parked until a lookup by externalId finds it approved",
                ), 0
            if isinstance(body, dict) and _served_from_cache(response):
                return Outcome(
                    kind=OutcomeKind.SUCCEEDED,
                    reference=_transaction_id(body),
                    detail="replayed from Fineract's idempotency-key cache",
                ), 0
        if result.error is ErrorClass.VALIDATION and DUPLICATE_EXTERNAL_ID in fineract_codes(response):
            return self._already_applied(operation)
        if result.error is ErrorClass.CONFLICT and _served_from_cache(response):
            # 425 (409 before FINERACT-2000) from the key store: another request with this key is
            # being processed right now, and may well book the repayment.
            return Outcome.unknown(
                ErrorClass.CONFLICT, "Fineract is still processing another request with this idempotency key"
            ), 0
        outcome = honest_outcome(result, _transaction_id, replay=replay)
        detail = fineract_detail(response) if outcome.kind is not OutcomeKind.SUCCEEDED else ""
        return (dataclasses.replace(outcome, detail=detail) if detail else outcome), 0

    def _already_applied(self, operation: Operation) -> tuple[Outcome, int]:
        """Fineract refused the external id as taken: an earlier attempt was booked. Find it."""
        lookup = self._find(operation)
        if lookup.outcome is not None:
            if lookup.outcome.kind is OutcomeKind.UNKNOWN:
                detail = (
                    "Fineract says the externalId is taken (booked before), but the lookup failed:"
                    f" {lookup.outcome.detail}"
                )
                return Outcome.unknown(lookup.outcome.error or ErrorClass.PROTOCOL, detail), lookup.attempts
            return lookup.outcome, lookup.attempts
        loan = operation.params.get("loan_id", DEFAULT_LOAN_ID)
        return Outcome.failed(
            ErrorClass.VALIDATION,
            f"externalId {operation.operation_id!r} is taken by a transaction that is not on loan {loan}",
        ), lookup.attempts

    def _find(self, operation: Operation) -> _Lookup:
        """Look the repayment up by its external id (the operation id)."""
        result = self.client.request(
            "GET",
            f"{self._loan_path(operation)}/external-id/{quote(operation.operation_id, safe='')}",
            operation=f"{operation.action}_lookup",
            operation_id=operation.operation_id,
        )
        body = _json(result.response)
        if result.error is None and isinstance(body, dict) and body.get("id") is not None:
            return _Lookup(
                Outcome(
                    kind=OutcomeKind.SUCCEEDED,
                    reference=str(body["id"]),
                    detail="found by externalId",
                ),
                result.attempts,
            )
        if result.error is ErrorClass.NOT_FOUND and TRANSACTION_NOT_FOUND in fineract_codes(result.response):
            return _Lookup(None, result.attempts)
        return _Lookup(
            Outcome.unknown(result.error or ErrorClass.PROTOCOL, f"lookup by externalId: {result.detail}"),
            result.attempts,
        )

    # -- parking and settling -----------------------------------------------------------------------

    def can_replay(self, operation: Operation, outcome: Outcome) -> bool:
        """Park what may still be booked and what was refused only for now (see the module docstring).

        With or without idempotency keys: a repeat of a repayment that was booked after all is a 400
        on its external id, which :meth:`perform` reads as "already applied".
        """
        if outcome.kind is OutcomeKind.UNKNOWN:
            return True
        error = outcome.error
        return (
            outcome.kind is OutcomeKind.FAILED
            and error is not None
            and (error.retryable or error is ErrorClass.REJECTED)
        )

    def reconcile(self, operation: Operation) -> tuple[Outcome, int]:
        """Look the parked repayment up first; repeat it (same key, same external id) only if
        Fineract has no transaction with its external id."""
        lookup = self._find(operation)
        if lookup.outcome is not None:
            return lookup.outcome, lookup.attempts
        outcome, attempts = self.perform(operation, replay=True)
        return outcome, attempts + lookup.attempts

    def breaker(self) -> CircuitBreaker | None:
        return self.client.breaker

    def close(self) -> None:
        self.client.close()
        self._login_http.close()
