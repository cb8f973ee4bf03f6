"""Deliberately broken M-Pesa clients: each has the one defect an M-Pesa scenario exists to catch.

Like :mod:`._controls` for Stripe, these are small and self-contained (httpx, a token cached under a
lock, the callback listener), so that changes to the reference integration cannot accidentally fix
them. Without a flaw the client is plain but sound: it sends a push once, refreshes a refused token
once per call, learns the result from the callback or the STK query, and reports UNKNOWN (it parks
nothing) when it cannot.
"""

from __future__ import annotations

import base64
import secrets
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from harness._driver import AttemptEvent, DriverSetup, Operation, Outcome
from harness.drivers._mpesa import (
    OAUTH_PATH,
    PUSH_PATH,
    QUERY_PATH,
    SANDBOX_PHONE,
    account_reference,
    daraja_password,
    daraja_timestamp,
    result_outcome,
)
from harness.drivers._mpesa_callbacks import CallbackInbox
from harness.resilience import ErrorClass, classify_exception, classify_response, wall_time

__all__ = [
    "MpesaControlDriver",
    "MpesaFlaws",
    "stk_callbacks_only",
    "stk_repush_after_lost_answer",
    "token_every_call",
    "token_refresh_loop",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class MpesaFlaws:
    repush_after_lost_answer: bool = False
    """Pushes again when a push's answer is lost or the phone is "locked": a second prompt."""
    token_every_call: bool = False
    """Fetches a new token before every request, revoking the one its other calls hold."""
    refresh_loop: bool = False
    """On an invalid-token answer, refreshes and retries the call until Daraja accepts it."""
    callbacks_only: bool = False
    """Never queries: waits for the callback, and knows nothing when it is lost."""


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int | None
    body: Mapping[str, Any] | None
    error: ErrorClass | None


class MpesaControlDriver:
    RESULT_WAIT = 3.0
    POLL = 0.1
    REPUSHES = 10
    LOOP_LIMIT = 20

    def __init__(self, setup: DriverSetup, flaws: MpesaFlaws) -> None:
        self.flaws = flaws
        self._clock = setup.clock
        self._rng = setup.rng
        self._events = setup.events
        endpoint = setup.endpoints["mpesa"]
        self._credentials = dict(endpoint.credentials)
        key = f"{self._credentials['consumer_key']}:{self._credentials['consumer_secret']}"
        self._basic = "Basic " + base64.b64encode(key.encode()).decode()
        self._http = httpx.Client(base_url=endpoint.base_url, timeout=2.0, trust_env=False)
        self._token: str | None = None
        self._token_lock = threading.Lock()
        self.inbox = CallbackInbox(secrets.token_hex(12))

    def close(self) -> None:
        self._http.close()
        self.inbox.close()

    def perform(self, operation: Operation) -> Outcome:
        if operation.action != "stk_push":
            raise ValueError(f"the M-Pesa control driver only does stk_push, not {operation.action!r}")
        checkout: str | None = None
        for _ in range(self.REPUSHES):
            answer = self._call(operation, "stk_push", PUSH_PATH, self._push_body(operation))
            if answer.error is None and answer.body is not None and answer.body.get("CheckoutRequestID"):
                checkout = str(answer.body["CheckoutRequestID"])
                break
            busy = answer.error is ErrorClass.CONFLICT
            lost = answer.error is None or answer.error.ambiguous
            if not (lost or busy):
                return Outcome.failed(answer.error or ErrorClass.PROTOCOL, "push refused")
            if not self.flaws.repush_after_lost_answer:
                if busy:
                    return Outcome.failed(ErrorClass.CONFLICT, "a prompt is live on the phone")
                break
            self._clock.sleep(self.POLL)
        deadline = self._clock.now() + self.RESULT_WAIT
        while True:
            for callback in self.inbox.received("stk", operation.operation_id):
                result = callback.body.get("Body", {}).get("stkCallback", {})
                if result.get("ResultCode") is not None:
                    return result_outcome(
                        result["ResultCode"], result.get("ResultDesc"), result["CheckoutRequestID"]
                    )
            if checkout is not None and not self.flaws.callbacks_only:
                answer = self._call(operation, "stk_query", QUERY_PATH, self._query_body(checkout))
                if answer.body is not None and answer.body.get("ResultCode") is not None:
                    return result_outcome(answer.body["ResultCode"], answer.body.get("ResultDesc"), checkout)
            if self._clock.now() >= deadline:
                return Outcome.unknown(ErrorClass.TIMEOUT, "no result in time")
            self._clock.sleep(self.POLL)

    # -- requests -------------------------------------------------------------------------------

    def _call(self, operation: Operation, action: str, path: str, body: dict[str, Any]) -> _Answer:
        correlation = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        refreshes = 0
        attempt = 0
        while True:
            attempt += 1
            token = self._fresh_token() if self.flaws.token_every_call else self._cached_token()
            started = self._clock.now()
            try:
                response = self._http.post(
                    path,
                    json=body,
                    headers={"Authorization": f"Bearer {token}", "X-Correlation-ID": correlation},
                )
            except httpx.HTTPError as exc:
                failure = classify_exception(exc)
                self._emit(
                    operation,
                    action,
                    attempt=attempt,
                    started=started,
                    error=failure,
                    status=None,
                    correlation=correlation,
                )
                return _Answer(None, None, failure)
            error = classify_response(response)
            self._emit(
                operation,
                action,
                attempt=attempt,
                started=started,
                error=error,
                status=response.status_code,
                correlation=correlation,
            )
            limit = self.LOOP_LIMIT if self.flaws.refresh_loop else 1
            if error is ErrorClass.AUTH and refreshes < limit:
                refreshes += 1
                self._invalidate(token)
                continue
            try:
                parsed = response.json()
            except ValueError:
                parsed = None
            return _Answer(response.status_code, parsed if isinstance(parsed, dict) else None, error)

    def _fetch(self) -> str:
        response = self._http.get(
            OAUTH_PATH, params={"grant_type": "client_credentials"}, headers={"Authorization": self._basic}
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def _cached_token(self) -> str:
        with self._token_lock:
            if self._token is None:
                self._token = self._fetch()
            return self._token

    def _fresh_token(self) -> str:
        token = self._fetch()
        with self._token_lock:
            self._token = token
        return token

    def _invalidate(self, token: str) -> None:
        with self._token_lock:
            if self._token == token:
                self._token = None

    def _stamp(self) -> tuple[str, str]:
        timestamp = daraja_timestamp(wall_time(self._clock) or 0.0)
        shortcode = self._credentials["shortcode"]
        return timestamp, daraja_password(shortcode, self._credentials["passkey"], timestamp)

    def _push_body(self, operation: Operation) -> dict[str, Any]:
        timestamp, password = self._stamp()
        phone = operation.params.get("phone", SANDBOX_PHONE)
        return {
            "BusinessShortCode": self._credentials["shortcode"],
            "Password": password,
            "Timestamp": timestamp,
            "TransactionType": "CustomerPayBillOnline",
            "Amount": operation.amount,
            "PartyA": phone,
            "PartyB": self._credentials["shortcode"],
            "PhoneNumber": phone,
            "CallBackURL": self.inbox.url("stk", operation.operation_id),
            "AccountReference": account_reference(operation.operation_id),
            "TransactionDesc": "Payment",
        }

    def _query_body(self, checkout: str) -> dict[str, Any]:
        timestamp, password = self._stamp()
        return {
            "BusinessShortCode": self._credentials["shortcode"],
            "Password": password,
            "Timestamp": timestamp,
            "CheckoutRequestID": checkout,
        }

    def _emit(
        self,
        operation: Operation,
        action: str,
        *,
        attempt: int,
        started: float,
        error: ErrorClass | None,
        status: int | None,
        correlation: str,
    ) -> None:
        self._events.attempt(
            AttemptEvent(
                operation_id=operation.operation_id,
                upstream="mpesa",
                action=action,
                attempt=attempt,
                started_at=started,
                latency=self._clock.now() - started,
                outcome="ok" if error is None else "error",
                error=error,
                status_code=status,
                correlation_id=correlation,
            )
        )


def stk_repush_after_lost_answer(setup: DriverSetup) -> MpesaControlDriver:
    """Pushes again when a push's answer is lost (and while the phone is "locked"): prompts twice."""
    return MpesaControlDriver(setup, MpesaFlaws(repush_after_lost_answer=True))


def stk_callbacks_only(setup: DriverSetup) -> MpesaControlDriver:
    """Trusts Daraja's callbacks alone and never queries: a lost callback is a lost payment."""
    return MpesaControlDriver(setup, MpesaFlaws(callbacks_only=True))


def token_every_call(setup: DriverSetup) -> MpesaControlDriver:
    """Fetches a new OAuth token for every request (on Daraja each one revokes the last)."""
    return MpesaControlDriver(setup, MpesaFlaws(token_every_call=True))


def token_refresh_loop(setup: DriverSetup) -> MpesaControlDriver:
    """On an invalid-token answer, refreshes and retries until Daraja accepts: a loop."""
    return MpesaControlDriver(setup, MpesaFlaws(refresh_loop=True))
