"""One error taxonomy shared by breakers, retries, reports and checkers.

A payment client has to answer three different questions about every failed attempt, and mixing
them up is how money is lost or charged twice:

* may it be retried at all (a card decline must never be retried),
* does it say something about the upstream's health (a validation error must not trip a breaker),
* may the upstream have applied the effect anyway (a lost response after commit is *ambiguous*).

:class:`ErrorClass` carries the answers; :func:`classify_exception` and :func:`classify_status`
map httpx errors and HTTP statuses onto it; :func:`classify_response` also reads the error bodies
of the three upstreams where the status alone misleads (Daraja's expired token is a 404, its
throttling a 500; Fineract's business-rule refusal is a 403).

The exceptions at the bottom are the *local* refusals: the client decided not to send, so nothing
was applied. Each carries ``retry_after`` when it knows when trying again could help.
"""

from __future__ import annotations

import enum
from typing import Any

import httpx

__all__ = [
    "BulkheadFullError",
    "ConfigError",
    "DeadlineExceededError",
    "ErrorClass",
    "RateLimitedError",
    "RejectedError",
    "classify_exception",
    "classify_response",
    "classify_status",
]


class ErrorClass(enum.StrEnum):
    """Why an attempt failed, from the client's side of the wire."""

    TIMEOUT = "timeout"
    """No complete answer within the deadline; the request may have been applied."""
    CONNECT = "connect"
    """The connection could not be opened; nothing was sent."""
    RESET = "reset"
    """The connection broke after the request was sent; the request may have been applied."""
    PROTOCOL = "protocol"
    """The answer was malformed or cut short; the request may have been applied."""
    SERVER_ERROR = "server_error"
    """A 5xx answer; the upstream may have committed before failing."""
    THROTTLED = "throttled"
    """Rate limited (429, or Daraja's spike-arrest 500.003.02): not applied, try later."""
    CONFLICT = "conflict"
    """The same idempotency key is still being processed (409/425): not applied by this attempt."""
    AUTH = "auth"
    """Credentials missing, expired or revoked."""
    VALIDATION = "validation"
    """The request itself is wrong; retrying the same request cannot help."""
    DECLINE = "decline"
    """A business decision (card declined, insufficient funds); a definite, final answer."""
    NOT_FOUND = "not_found"
    """The resource does not exist."""
    REJECTED = "rejected"
    """Refused on the client side (breaker open, bulkhead full); nothing was sent."""
    REPLAYED_ERROR = "replayed_error"
    """The upstream replayed a server error it stored for this idempotency key (Stripe's
    ``Idempotent-Replayed``, Fineract's ``x-served-from-cache``). The operation is as unknown as it
    was, the same key will only replay it again, and the answer says nothing about the upstream's
    health now, so it must not count against a breaker."""

    @property
    def retryable(self) -> bool:
        """Whether repeating the same request might succeed."""
        return self in _RETRYABLE

    @property
    def is_upstream_failure(self) -> bool:
        """Whether this speaks of the upstream's health, i.e. should count against a breaker."""
        return self in _UPSTREAM_FAILURES

    @property
    def ambiguous(self) -> bool:
        """Whether the upstream may have applied the effect although the client saw a failure."""
        return self in _AMBIGUOUS


_RETRYABLE = frozenset(
    {
        ErrorClass.TIMEOUT,
        ErrorClass.CONNECT,
        ErrorClass.RESET,
        ErrorClass.PROTOCOL,
        ErrorClass.SERVER_ERROR,
        ErrorClass.THROTTLED,
        ErrorClass.CONFLICT,
    }
)
_UPSTREAM_FAILURES = frozenset(
    {
        ErrorClass.TIMEOUT,
        ErrorClass.CONNECT,
        ErrorClass.RESET,
        ErrorClass.PROTOCOL,
        ErrorClass.SERVER_ERROR,
    }
)
_AMBIGUOUS = frozenset(
    {
        ErrorClass.TIMEOUT,
        ErrorClass.RESET,
        ErrorClass.PROTOCOL,
        ErrorClass.SERVER_ERROR,
        ErrorClass.REPLAYED_ERROR,
    }
)
_REPLAY_HEADERS = (("idempotent-replayed", "true"), ("x-served-from-cache", "true"))


def classify_exception(exc: BaseException) -> ErrorClass:
    """Map an httpx transport error onto the taxonomy.

    Toxiproxy accepts a connection and then closes it when its upstream is down, so a client behind
    it sees "server disconnected" rather than "connection refused": both land on RESET or CONNECT
    depending on whether the request had been written.
    """
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        return ErrorClass.CONNECT
    if isinstance(exc, httpx.PoolTimeout):
        return ErrorClass.REJECTED
    if isinstance(exc, httpx.TimeoutException):
        return ErrorClass.TIMEOUT
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return ErrorClass.RESET
    if isinstance(exc, httpx.DecodingError | httpx.LocalProtocolError | ValueError):
        return ErrorClass.PROTOCOL
    if isinstance(exc, httpx.NetworkError):
        return ErrorClass.RESET
    return ErrorClass.PROTOCOL


def classify_status(status: int) -> ErrorClass | None:
    """Map an HTTP status onto the taxonomy; ``None`` for success (2xx)."""
    if 200 <= status < 300:
        return None
    if status == 408:
        # The server gave up waiting for the request; treated like a client-side timeout, which is
        # the conservative reading (the seeds list 408 among the retryable statuses).
        return ErrorClass.TIMEOUT
    if status == 429:
        return ErrorClass.THROTTLED
    if status in (409, 425):
        return ErrorClass.CONFLICT
    if status in (401, 403):
        return ErrorClass.AUTH
    if status == 402:
        return ErrorClass.DECLINE
    if status == 404:
        return ErrorClass.NOT_FOUND
    if status >= 500:
        return ErrorClass.SERVER_ERROR
    return ErrorClass.VALIDATION


# Daraja's error codes whose status misleads (upstreams.md §1.3): the expired token is a 404 or 400,
# throttling is a 500 (Daraja never sends 429).
_DARAJA_CODES = {
    "404.001.03": ErrorClass.AUTH,
    "400.003.01": ErrorClass.AUTH,
    "500.003.02": ErrorClass.THROTTLED,
    "500.003.03": ErrorClass.THROTTLED,
    "500.002.1001": ErrorClass.VALIDATION,
}
_DARAJA_BUSY = ("being processed", "lock subscriber")
_FINERACT_DOMAIN_RULE = "validation.msg.domain.rule.violation"


def classify_response(response: httpx.Response) -> ErrorClass | None:
    """Map a response onto the taxonomy, reading the upstream's error body where it matters.

    * Daraja ``{"errorCode": ...}``: ``404.001.03`` (expired token) is AUTH, spike arrest and quota
      (``500.003.02``/``.03``) are THROTTLED, ``500.001.1001`` "being processed" / "unable to lock
      subscriber" is CONFLICT (not done yet: ask again later), other ``500.001.1001`` (unknown
      merchant, wrong password) is VALIDATION, a duplicate ``OriginatorConversationID`` is VALIDATION.
    * Fineract 403 ``validation.msg.domain.rule.violation`` is a DECLINE (a business rule said no;
      never retry it), other 403s stay AUTH.
    * A 5xx the upstream replays from its idempotency store is REPLAYED_ERROR, not SERVER_ERROR.
    * Everything else goes by the status (:func:`classify_status`).
    """
    status = response.status_code
    by_status = classify_status(status)
    if by_status is None or status < 400:
        return by_status
    if status >= 500 and any(response.headers.get(h, "").lower() == v for h, v in _REPLAY_HEADERS):
        return ErrorClass.REPLAYED_ERROR
    body = _json_object(response)
    if body is None:
        return by_status
    code = body.get("errorCode")
    if isinstance(code, str):
        message = str(body.get("errorMessage", "")).lower()
        if code == "500.001.1001":
            busy = any(marker in message for marker in _DARAJA_BUSY)
            return ErrorClass.CONFLICT if busy else ErrorClass.VALIDATION
        return _DARAJA_CODES.get(code, by_status)
    if status == 403 and body.get("userMessageGlobalisationCode") == _FINERACT_DOMAIN_RULE:
        return ErrorClass.DECLINE
    return by_status


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the parameter and the fix."""


class RejectedError(Exception):
    """The client refused to send a call (nothing reached the upstream).

    ``retry_after`` is how long until trying again could succeed, when known.
    """

    error_class = ErrorClass.REJECTED

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BulkheadFullError(RejectedError):
    """Every slot is taken and the wait queue is full, or the wait for a slot ran out."""


class RateLimitedError(RejectedError):
    """The rate limiter would make the caller wait longer than it may."""


class DeadlineExceededError(RejectedError):
    """The overall deadline left no time to start (another) attempt."""
