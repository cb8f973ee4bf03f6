"""One error taxonomy shared by breakers, retries, reports and checkers.

A payment client has to answer three different questions about every failed attempt, and mixing
them up is how money is lost or charged twice:

* may it be retried at all (a card decline must never be retried),
* does it say something about the upstream's health (a validation error must not trip a breaker),
* may the upstream have applied the effect anyway (a lost response after commit is *ambiguous*).

:class:`ErrorClass` carries the answers; :func:`classify_exception` and :func:`classify_status`
map httpx errors and HTTP statuses onto it.
"""

from __future__ import annotations

import enum

import httpx

__all__ = ["ErrorClass", "classify_exception", "classify_status"]


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
_AMBIGUOUS = frozenset({ErrorClass.TIMEOUT, ErrorClass.RESET, ErrorClass.PROTOCOL, ErrorClass.SERVER_ERROR})


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
