"""The reference client's M-Pesa (Daraja) integration: STK push, whose outcome is the payment, and B2C.

Daraja has no idempotency key (upstreams.md §1.6), so the rules are not Stripe's:

* **A push is sent at most once per operation.** It is retried only when nothing can have reached
  Daraja's processing: a refused connection, Daraja's throttling answer (spike arrest, quota: given
  before processing), an invalid-token answer (``404.001.03``, once, after one token refresh). A push
  whose answer was lost (reset, timeout, cut body, a 5xx) is never repeated: it may have prompted the
  customer, and a repeat would prompt again. Daraja's own guards do not make a repeat safe: "Unable to
  lock subscriber" refuses a second push only while the first prompt is live, and result code 17
  stops a second *payment* within 2 minutes, not a second prompt.
* **The outcome of a push is the payment, not the prompt.** After an accepted push the client waits
  up to :attr:`MpesaOptions.result_timeout` for the result: from the callback (fast path), or from the
  STK query (fallback; its "The transaction is being processed" ``500.001.1001`` answer means pending,
  and is neither retried inside one call nor counted against the breaker). ``ResultCode`` 0 is
  SUCCEEDED (reference: the ``CheckoutRequestID``, which is what Daraja's ledger is keyed by); the
  documented failure codes are FAILED (DECLINE); an unrecognised code is UNKNOWN.
* **Where the operation id travels.** In ``AccountReference`` (at most 12 characters; a longer id is
  mapped deterministically, see :func:`account_reference`) and in the path of the callback URL (see
  :mod:`._mpesa_callbacks`), so that a callback names its operation even when the push's answer, and
  with it the ``CheckoutRequestID``, was lost. That callback is the *only* way to learn the fate of
  such a push: Daraja offers no lookup by ``AccountReference``.
* **What cannot be learned in time is parked** (:meth:`MpesaIntegration.can_replay`: any UNKNOWN), and
  reconciling it never sends the push again: it queries by ``CheckoutRequestID`` when one is known,
  and otherwise looks for the callback. A push whose answer *and* callback were both lost cannot be
  settled by any client without a human looking at the M-Pesa statement, so it stays parked: that is
  the honest outcome, not a failure to converge.
* **B2C** carries the operation id as ``OriginatorConversationID``, which Daraja de-duplicates
  (``500.002.1001`` "Duplicate OriginatorConversationID."), so a B2C request *may* be repeated: a
  duplicate answer means the first one was accepted. Its result only arrives at ``ResultURL`` (or a
  notice at ``QueueTimeOutURL``); without it the operation stays parked, and reconciling repeats the
  request (safe by the same de-duplication) and waits for the callback again.

The CheckoutRequestIDs a client learned live in its memory: the dead-letter queue stores the operation,
not what the integration learned about it, so a client restarted between parking and reconciling
keeps such pushes parked.

Tokens come from ``GET /oauth/v1/generate`` (Basic ``consumer_key:consumer_secret``; ``expires_in``
is a string on the real API) through the library's :class:`~harness.resilience.TokenCache`:
single-flight, so many callers that meet a revoked token cause one refresh, which matters on Daraja
where every new token revokes the previous one (FAQ 3).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import math
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from harness._driver import Operation, Outcome, OutcomeKind
from harness.drivers._integration import Integration, IntegrationSetup, resilient_client
from harness.drivers._mpesa_callbacks import Callback, CallbackInbox
from harness.resilience import (
    CallResult,
    CircuitBreaker,
    ClientConfig,
    ConfigError,
    ErrorClass,
    ResilientClient,
    Token,
    TokenAuth,
    TokenCache,
    parse_expires_in,
    wall_time,
)

__all__ = [
    "MPESA_FAILURE_CODES",
    "MpesaIntegration",
    "MpesaOptions",
    "TokenUnavailable",
    "account_reference",
    "daraja_password",
    "daraja_timestamp",
    "result_outcome",
]

OAUTH_PATH = "/oauth/v1/generate"
PUSH_PATH = "/mpesa/stkpush/v1/processrequest"
QUERY_PATH = "/mpesa/stkpushquery/v1/query"
B2C_PATH = "/mpesa/b2c/v3/paymentrequest"
SANDBOX_PHONE = "254708374149"
NAIROBI = timedelta(hours=3)
MAX_REFERENCE = 12
DUPLICATE_OCID = "500.002.1001"

MPESA_FAILURE_CODES = frozenset(
    {"1", "2", "3", "4", "8", "11", "17", "21", "1019", "1025", "1032", "1037", "2001", "2006", "2028"}
    | {"2040", "8006", "SFC_IC0003"}
)
"""Result codes (STK and B2C, upstreams.md §1.4 and §1.7) that say no money moved."""

_REFERENCE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_REQUIRED_CREDENTIALS = ("consumer_key", "consumer_secret", "shortcode", "passkey")


def account_reference(operation_id: str) -> str:
    """The ``AccountReference`` for an operation: its id when that fits Daraja's 12 characters, else
    ``#`` and 11 characters of the id's SHA-256 (the same id always gives the same reference).

    Effects in the ledger carry the reference, so checkers can attribute them to operations only when
    ids fit: keep operation ids to 12 characters where the ledger is judged.
    """
    if 0 < len(operation_id) <= MAX_REFERENCE:
        return operation_id
    digest = base64.b32encode(hashlib.sha256(operation_id.encode()).digest()).decode()
    return "#" + digest[: MAX_REFERENCE - 1]


def daraja_timestamp(wall: float) -> str:
    """Daraja's ``Timestamp``: Nairobi local time (UTC+3, no daylight saving), ``YYYYMMDDHHmmss``."""
    return (datetime.fromtimestamp(wall, UTC) + NAIROBI).strftime("%Y%m%d%H%M%S")


def daraja_password(shortcode: str, passkey: str, timestamp: str) -> str:
    """``base64(shortcode + passkey + timestamp)``, the STK push and query ``Password``."""
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode()).decode()


@dataclass(frozen=True, kw_only=True, slots=True)
class MpesaOptions:
    """How long the integration waits for results, and the request fields Daraja needs besides the
    operation's own. The defaults suit the fake's default prompt delay (1 s) on loopback."""

    result_timeout: float = 3.0
    """Seconds :meth:`MpesaIntegration.perform` waits for a payment's result before parking it."""
    reconcile_timeout: float = 1.0
    """Seconds one reconciliation of a parked operation waits for its result."""
    poll_interval: float = 0.1
    """Seconds from the push to the first STK query; then each wait grows by ``poll_backoff``."""
    poll_backoff: float = 1.5
    max_poll_interval: float = 1.0
    callback_tick: float = 0.02
    """How often a waiting operation looks into its callback inbox."""
    token_skew: float = 30.0
    """Refresh a token this long before it expires (at most a tenth of its lifetime)."""
    phone: str = SANDBOX_PHONE
    """The MSISDN prompted (or paid, for B2C) when the operation's params name none (``phone``)."""
    transaction_type: str = "CustomerPayBillOnline"
    description: str = "Payment"
    b2c_command: str = "BusinessPayment"
    b2c_remarks: str = "Payout"

    def __post_init__(self) -> None:
        for name in ("result_timeout", "reconcile_timeout", "token_skew"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"MpesaOptions.{name} must be a finite number >= 0 seconds, got {value!r}")
        for name in ("poll_interval", "max_poll_interval", "callback_tick"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"MpesaOptions.{name} must be a finite number > 0 seconds, got {value!r}")
        if not (math.isfinite(self.poll_backoff) and self.poll_backoff >= 1):
            raise ConfigError(f"MpesaOptions.poll_backoff must be >= 1, got {self.poll_backoff!r}")
        if len(self.description) > 13:
            raise ConfigError(
                f"MpesaOptions.description is Daraja's TransactionDesc, at most 13 characters;"
                f" got {len(self.description)}"
            )


@dataclass(slots=True)
class _Sent:
    """What the client knows about one operation's request to Daraja."""

    transaction_id: str | None = None
    """The STK ``CheckoutRequestID`` (or B2C ``ConversationID``), once known."""


def _nested(body: Mapping[str, Any], *keys: str) -> Any:
    value: Any = body
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _json(result: CallResult) -> dict[str, Any] | None:
    if result.response is None:
        return None
    try:
        body = result.response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def result_outcome(code: object, description: object, reference: str) -> Outcome:
    """A Daraja ``ResultCode`` (number in callbacks, string in queries) as the operation's outcome."""
    code = str(code).strip()
    if code == "0":
        return Outcome.succeeded(reference)
    if code in MPESA_FAILURE_CODES:
        return Outcome.failed(ErrorClass.DECLINE, f"ResultCode {code}: {description}")
    return Outcome.unknown(ErrorClass.PROTOCOL, f"unrecognised ResultCode {code!r}: {description}")


class MpesaIntegration(Integration):
    UPSTREAM: ClassVar[str] = "mpesa"
    ACTIONS: ClassVar[frozenset[str]] = frozenset({"stk_push", "b2c"})

    def __init__(self, setup: IntegrationSetup, options: MpesaOptions | None = None) -> None:
        super().__init__(setup)
        self.options = options or MpesaOptions()
        credentials = setup.endpoint.credentials
        missing = [name for name in _REQUIRED_CREDENTIALS if not credentials.get(name)]
        if missing:
            raise ConfigError(
                f"the mpesa endpoint lacks credentials {missing}; give the consumer key and secret of the"
                " Daraja app, the shortcode and its Lipa na M-Pesa passkey"
            )
        if wall_time(setup.clock) is None:
            raise ConfigError(
                "the M-Pesa integration needs a clock that knows the calendar time (Clock.wall()):"
                " Daraja's Password is stamped with Nairobi time"
            )
        self._credentials = dict(credentials)
        self._shortcode = credentials["shortcode"]
        self._basic = (
            "Basic "
            + base64.b64encode(
                f"{credentials['consumer_key']}:{credentials['consumer_secret']}".encode()
            ).decode()
        )
        self._lock = threading.Lock()
        self._inbox: CallbackInbox | None = None
        self._sent: dict[tuple[str, str], _Sent] = {}

        base = dataclasses.replace(setup.config, idempotency_keys=False)  # Daraja has no such header
        retryable = frozenset(e for e in ErrorClass if base.retry.should_retry(e))

        def client(retry_on: frozenset[ErrorClass], **more: Any) -> ResilientClient:
            config = dataclasses.replace(base, retry=dataclasses.replace(base.retry, retry_on=retry_on))
            return _client(setup, config, **more)

        self._oauth = _client(setup, dataclasses.replace(base, breaker=None))
        self.tokens = TokenCache(clock=setup.clock, fetch=self._fetch_token, skew=0.0)
        auth = TokenAuth(cache=self.tokens)
        # Queries and B2C requests may be repeated; "being processed" is waited for by the poll loop.
        self.client = client(retryable - {ErrorClass.CONFLICT}, auth=auth)
        # A push is repeated only when it cannot have been processed.
        self._push = client(
            retryable & {ErrorClass.CONNECT, ErrorClass.THROTTLED}, auth=auth, breaker=self.client.breaker
        )

    @property
    def inbox(self) -> CallbackInbox:
        """The callback listener, started with the first operation (a run without M-Pesa operations
        starts none). Its secret comes from :mod:`secrets`, not the run's seeded random source: it
        must be unguessable, and drawing it must not shift the seeded draws of the run."""
        with self._lock:
            if self._inbox is None:
                self._inbox = CallbackInbox(secrets.token_hex(12))
            return self._inbox

    # -- the Integration face -------------------------------------------------------------------

    def perform(self, operation: Operation, *, replay: bool = False) -> tuple[Outcome, int]:
        if operation.action == "b2c":
            return self._b2c(operation, replay=replay)
        return self._stk_push(operation)

    def can_replay(self, operation: Operation, outcome: Outcome) -> bool:
        """Any UNKNOWN may be parked: reconciling never repeats a push (it queries, or reads the
        callback), and repeats a B2C request only under its OriginatorConversationID. Whether the
        client sends idempotency keys is irrelevant here; Daraja has none."""
        return outcome.kind is OutcomeKind.UNKNOWN

    def reconcile(self, operation: Operation) -> tuple[Outcome, int]:
        if operation.action == "b2c":
            callback = self._b2c_callback(operation)
            if callback is not None:
                return callback, 0
            return self._b2c(operation, replay=True, wait=self.options.reconcile_timeout)
        sent = self._known(operation)
        if sent.transaction_id is None:
            outcome = self._stk_callback(operation, sent)
            if outcome is None:
                return (
                    Outcome.unknown(
                        ErrorClass.PROTOCOL,
                        "the push's answer was lost and no callback named the operation, so its"
                        " CheckoutRequestID is unknown; not pushed again (it may have prompted the"
                        " customer): check the M-Pesa statement",
                    ),
                    0,
                )
            return outcome, 0
        return self._await_stk(operation, sent, self.setup.clock.now() + self.options.reconcile_timeout)

    def breaker(self) -> CircuitBreaker | None:
        return self.client.breaker

    def close(self) -> None:
        for http in (self._push, self.client, self._oauth):
            http.close()
        with self._lock:
            inbox, self._inbox = self._inbox, None
        if inbox is not None:
            inbox.close()

    # -- tokens ---------------------------------------------------------------------------------

    def _fetch_token(self, credential: str) -> Token:
        result = self._oauth.request(
            "GET",
            OAUTH_PATH,
            params={"grant_type": "client_credentials"},
            headers={"Authorization": self._basic},
            operation="oauth_token",
        )
        body = _json(result) if result.error is None else None
        if body is None or not isinstance(body.get("access_token"), str) or not body["access_token"]:
            status = None if result.response is None else result.response.status_code
            # Never the body: on success it holds the token.
            raise TokenUnavailable(f"Daraja gave no access token (error {result.error}, status {status})")
        lifetime = parse_expires_in(body.get("expires_in"))
        margin = min(self.options.token_skew, lifetime / 10)
        return Token(body["access_token"], self.setup.clock.now() + lifetime - margin)

    # -- STK push -------------------------------------------------------------------------------

    def _stk_push(self, operation: Operation) -> tuple[Outcome, int]:
        refusal = self._refuse_locally(operation, low=1)
        if refusal is not None:
            return refusal, 0
        phone = operation.params.get("phone", self.options.phone)
        timestamp, password = self._stamp()
        body = {
            "BusinessShortCode": self._shortcode,
            "Password": password,
            "Timestamp": timestamp,
            "TransactionType": operation.params.get("transaction_type", self.options.transaction_type),
            "Amount": operation.amount,
            "PartyA": operation.params.get("party_a", phone),
            "PartyB": self._shortcode,
            "PhoneNumber": phone,
            "CallBackURL": self.inbox.url("stk", operation.operation_id),
            "AccountReference": account_reference(operation.operation_id),
            "TransactionDesc": self.options.description,
        }
        started = self.setup.clock.now()
        with self._lock:
            key = ("stk_push", operation.operation_id)
            pushed_before = key in self._sent
            sent = self._sent.setdefault(key, _Sent())
        if pushed_before:
            # This client already pushed the operation (its answer may have been lost): wait for
            # that push's result rather than prompt the customer a second time.
            return self._await_stk(operation, sent, started + self.options.result_timeout)
        result = self._push.request(
            "POST", PUSH_PATH, json=body, operation="stk_push", operation_id=operation.operation_id
        )
        answer = _json(result) if result.error is None else None
        if answer is not None and str(answer.get("ResponseCode")) == "0" and answer.get("CheckoutRequestID"):
            with self._lock:
                sent.transaction_id = str(answer["CheckoutRequestID"])
        elif result.error is not None and not (result.ambiguous or result.error.ambiguous):
            # Refused before processing (validation, wrong credentials, "Unable to lock subscriber",
            # a token Daraja kept refusing, our breaker): no prompt was sent for this operation.
            with self._lock:
                self._sent.pop(("stk_push", operation.operation_id), None)
            return Outcome.failed(result.error, result.detail), result.attempts
        # Accepted, or the answer was lost and a prompt may be live: the result decides.
        outcome, queries = self._await_stk(operation, sent, started + self.options.result_timeout)
        return outcome, result.attempts + queries

    def _await_stk(self, operation: Operation, sent: _Sent, deadline: float) -> tuple[Outcome, int]:
        clock, options = self.setup.clock, self.options
        interval = options.poll_interval
        next_query = clock.now() + interval
        attempts = 0
        while True:
            outcome = self._stk_callback(operation, sent)
            if outcome is not None:
                return outcome, attempts
            checkout = sent.transaction_id
            if checkout is not None and clock.now() >= next_query:
                outcome, used = self._query(operation, checkout)
                attempts += used
                if outcome is not None:
                    return outcome, attempts
                interval = min(interval * options.poll_backoff, options.max_poll_interval)
                next_query = clock.now() + interval
            now = clock.now()
            if now >= deadline:
                if checkout is None:
                    why = "the push's answer was lost and no callback named the operation"
                else:
                    why = f"{checkout} was still being processed"
                return Outcome.unknown(ErrorClass.TIMEOUT, f"no result within the wait: {why}"), attempts
            wake = min(deadline, now + options.callback_tick)
            if checkout is not None:
                wake = min(wake, next_query)
            clock.sleep(max(wake - now, 0.0))

    def _stk_callback(self, operation: Operation, sent: _Sent) -> Outcome | None:
        """The result a callback gave, if one arrived for this operation's push."""
        for callback in self.inbox.received("stk", operation.operation_id):
            result = _nested(callback.body, "Body", "stkCallback")
            if not isinstance(result, Mapping):
                continue
            checkout = result.get("CheckoutRequestID")
            code = result.get("ResultCode")
            if not isinstance(checkout, str) or code is None:
                continue
            with self._lock:
                if sent.transaction_id is None:
                    sent.transaction_id = checkout  # learned only now: the push's answer was lost
                elif sent.transaction_id != checkout:
                    continue  # not the prompt this client sent for the operation
            return result_outcome(code, result.get("ResultDesc"), checkout)
        return None

    def _query(self, operation: Operation, checkout: str) -> tuple[Outcome | None, int]:
        """The push's result by STK query; ``None`` while pending or unanswered."""
        timestamp, password = self._stamp()
        result = self.client.request(
            "POST",
            QUERY_PATH,
            json={
                "BusinessShortCode": self._shortcode,
                "Password": password,
                "Timestamp": timestamp,
                "CheckoutRequestID": checkout,
            },
            operation="stk_query",
            operation_id=operation.operation_id,
        )
        answer = _json(result) if result.error is None else None
        if answer is None or answer.get("ResultCode") is None:
            return None, result.attempts
        return result_outcome(answer["ResultCode"], answer.get("ResultDesc"), checkout), result.attempts

    # -- B2C ------------------------------------------------------------------------------------

    def _b2c(
        self, operation: Operation, *, replay: bool = False, wait: float | None = None
    ) -> tuple[Outcome, int]:
        refusal = self._refuse_locally(operation, low=10)
        if refusal is not None:
            return refusal, 0
        ocid = operation.operation_id
        body = {
            "OriginatorConversationID": ocid,
            "InitiatorName": self._credentials.get("initiator_name", ""),
            "SecurityCredential": self._credentials.get("security_credential", ""),
            "CommandID": operation.params.get("command", self.options.b2c_command),
            "Amount": operation.amount,
            "PartyA": self._shortcode,
            "PartyB": operation.params.get("phone", self.options.phone),
            "Remarks": self.options.b2c_remarks,
            "QueueTimeOutURL": self.inbox.url("b2c-timeout", ocid),
            "ResultURL": self.inbox.url("b2c-result", ocid),
        }
        started = self.setup.clock.now()
        sent = self._known(operation)
        result = self.client.request("POST", B2C_PATH, json=body, operation="b2c", operation_id=ocid)
        answer = _json(result)
        if result.error is None and answer is not None and answer.get("ConversationID"):
            with self._lock:
                sent.transaction_id = str(answer["ConversationID"])
        elif result.error is not None and (answer or {}).get("errorCode") == DUPLICATE_OCID:
            pass  # an earlier request under this OriginatorConversationID was accepted: wait for it
        elif result.error is not None and not (replay or result.ambiguous or result.error.ambiguous):
            return Outcome.failed(result.error, result.detail), result.attempts
        # Accepted, or a request under this id may have been: only the result callback can tell.
        deadline = started + (self.options.result_timeout if wait is None else wait)
        clock = self.setup.clock
        while True:
            outcome = self._b2c_callback(operation)
            if outcome is not None:
                return outcome, result.attempts
            now = clock.now()
            if now >= deadline:
                return (
                    Outcome.unknown(ErrorClass.TIMEOUT, "no B2C result at ResultURL within the wait"),
                    result.attempts,
                )
            clock.sleep(max(min(deadline, now + self.options.callback_tick) - now, 0.0))

    def _b2c_callback(self, operation: Operation) -> Outcome | None:
        if self.inbox.received("b2c-timeout", operation.operation_id):
            return Outcome.failed(ErrorClass.DECLINE, "the B2C request timed out in Daraja's queue")
        for callback in self.inbox.received("b2c-result", operation.operation_id):
            outcome = _b2c_result(callback)
            if outcome is not None:
                return outcome
        return None

    # -- shared ---------------------------------------------------------------------------------

    def _known(self, operation: Operation) -> _Sent:
        with self._lock:
            return self._sent.setdefault((operation.action, operation.operation_id), _Sent())

    def _stamp(self) -> tuple[str, str]:
        wall = wall_time(self.setup.clock)
        assert wall is not None  # checked at construction
        timestamp = daraja_timestamp(wall)
        return timestamp, daraja_password(self._shortcode, self._credentials["passkey"], timestamp)

    def _refuse_locally(self, operation: Operation, *, low: int) -> Outcome | None:
        """Requests Daraja would refuse, refused before sending (and so definitely not applied)."""
        if operation.currency.lower() != "kes":
            return Outcome.failed(
                ErrorClass.VALIDATION,
                f"M-Pesa moves Kenyan shillings only; the operation's currency is {operation.currency!r}:"
                " use 'kes'",
            )
        if not low <= operation.amount <= 250_000:
            return Outcome.failed(
                ErrorClass.VALIDATION,
                f"M-Pesa {operation.action} amounts are whole KES from {low} to 250000,"
                f" got {operation.amount}",
            )
        return None


class TokenUnavailable(Exception):
    """Daraja did not issue an access token (the message never carries the answer's body)."""


def _b2c_result(callback: Callback) -> Outcome | None:
    result = callback.body.get("Result")
    if not isinstance(result, Mapping) or result.get("ResultCode") is None:
        return None
    reference = result.get("TransactionID") or result.get("ConversationID") or ""
    return result_outcome(result["ResultCode"], result.get("ResultDesc"), str(reference))


def _client(setup: IntegrationSetup, config: ClientConfig, **more: Any) -> ResilientClient:
    return resilient_client(setup, MpesaIntegration.UPSTREAM, config=config, **more)
