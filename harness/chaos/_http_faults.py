"""HTTP-level faults: what the upstream itself does wrong, realised by the fake upstreams.

Where the network faults in :mod:`harness.chaos._faults` are Toxiproxy's business (bytes delayed,
dropped, cut), these happen inside the upstream: it answers 503 in its own error shape, throttles,
is slow, commits and then fails, sends a broken body, revokes a token, or mishandles a callback. Each
is a frozen value with a JSON round-trip like every other fault, and turns into one fault rule for
the target fake's admin API (``POST /__admin/faults``, see ``fake_upstreams._faults``).

Every HTTP fault can be narrowed to a ``route`` (a glob over the request path; for the callback
faults, over the callback URL's path) and a ``method``, and limited to ``count`` firings or a
``probability`` per matching request (drawn from the fake's seeded random source).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.chaos._faults import FAULT_KINDS, Fault

__all__ = [
    "HTTP_FAULT_KINDS",
    "CallbackDelay",
    "CallbackDrop",
    "CallbackDuplicate",
    "CommitThenFail",
    "HttpError",
    "HttpFault",
    "MalformedBody",
    "ServerDelay",
    "Throttle",
    "TokenRevocation",
    "WrongContentType",
]

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_ERROR_STATUSES = frozenset({409, 500, 502, 503, 504})


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpFault(Fault):
    """A fault the target fake realises itself, through its admin API."""

    RULE_KIND: ClassVar[str] = ""
    route: str = "*"
    method: str | None = None
    probability: float = 1.0
    count: int | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not self.route:
            raise ValueError(
                f"{name}.route must be a non-empty path glob such as '/v1/*', got {self.route!r}"
            )
        if self.method is not None and self.method not in _METHODS:
            raise ValueError(
                f"{name}.method must be one of {sorted(_METHODS)} (upper case) or None, got {self.method!r}"
            )
        if not (math.isfinite(self.probability) and 0 < self.probability <= 1):
            raise ValueError(f"{name}.probability must be in (0, 1], got {self.probability!r}")
        if self.count is not None and self.count < 1:
            raise ValueError(f"{name}.count must be >= 1 or None (no limit), got {self.count!r}")
        self._check()

    def _check(self) -> None:
        """Checks of the subclass's own parameters."""

    def params(self) -> dict[str, Any]:
        return {}

    def to_rule(self) -> dict[str, Any]:
        """The body of ``POST /__admin/faults`` that switches this fault on."""
        return {
            "kind": self.RULE_KIND,
            "path": self.route,
            "method": self.method,
            "probability": self.probability,
            "count": self.count,
            "params": self.params(),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpError(HttpFault):
    """The upstream answers ``status`` in its own error shape, without applying the request.

    409 is only offered by Fineract (an optimistic-lock conflict); a Stripe 500 is stored under the
    request's idempotency key and says ``Stripe-Should-Retry: false``, as Stripe's does.
    """

    KIND: ClassVar[str] = "http_error"
    RULE_KIND: ClassVar[str] = "error"
    status: int = 503

    def _check(self) -> None:
        if self.status not in _ERROR_STATUSES:
            raise ValueError(
                f"HttpError.status must be one of {sorted(_ERROR_STATUSES)}, got {self.status!r}"
            )

    def params(self) -> dict[str, Any]:
        return {"status": self.status}


@dataclass(frozen=True, kw_only=True, slots=True)
class Throttle(HttpFault):
    """The upstream's own throttling answer: Stripe 429 (``rate_limit``, or ``lock_timeout`` with
    ``Stripe-Should-Retry: true``), Daraja HTTP 500 ``500.003.02`` (``spike_arrest``; ``quota`` is
    ``500.003.03``), Fineract's gateway 429 (``gateway``). ``variant`` None takes the upstream's usual one."""

    KIND: ClassVar[str] = "throttle"
    RULE_KIND: ClassVar[str] = "throttle"
    retry_after: float = 1.0
    variant: str | None = None

    def _check(self) -> None:
        if not (math.isfinite(self.retry_after) and 0 <= self.retry_after <= 3600):
            raise ValueError(f"Throttle.retry_after must be seconds from 0 to 3600, got {self.retry_after!r}")

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"retry_after": self.retry_after}
        if self.variant is not None:
            params["variant"] = self.variant
        return params


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerDelay(HttpFault):
    """The upstream takes ``ms`` longer to answer. With ``after_commit`` the request has already been
    applied when the wait starts, so a client that times out cannot know it was."""

    KIND: ClassVar[str] = "server_delay"
    RULE_KIND: ClassVar[str] = "delay"
    AMBIGUOUS: ClassVar[bool] = True
    ms: int
    after_commit: bool = False

    def _check(self) -> None:
        if not 0 <= self.ms <= 120_000:
            raise ValueError(f"ServerDelay.ms must be from 0 to 120000, got {self.ms!r}")

    def params(self) -> dict[str, Any]:
        return {"ms": self.ms, "phase": "after" if self.after_commit else "before"}


@dataclass(frozen=True, kw_only=True, slots=True)
class CommitThenFail(HttpFault):
    """The upstream applies the request, then answers ``status`` (a 500 by default) in its own shape,
    or with ``drop`` closes the connection without any answer: the classic double-charge trigger."""

    KIND: ClassVar[str] = "commit_then_fail"
    RULE_KIND: ClassVar[str] = "commit_then_fail"
    AMBIGUOUS: ClassVar[bool] = True
    drop: bool = False
    status: int = 500

    def _check(self) -> None:
        if self.status not in _ERROR_STATUSES:
            raise ValueError(
                f"CommitThenFail.status must be one of {sorted(_ERROR_STATUSES)}, got {self.status!r}"
            )

    def params(self) -> dict[str, Any]:
        return {"mode": "drop" if self.drop else "error", "status": self.status}


@dataclass(frozen=True, kw_only=True, slots=True)
class MalformedBody(HttpFault):
    """The upstream applies the request; its answer's body is cut in half (valid framing, invalid
    JSON) or, with ``truncated``, the connection closes in the middle of the body."""

    KIND: ClassVar[str] = "malformed_body"
    RULE_KIND: ClassVar[str] = "malformed_body"
    AMBIGUOUS: ClassVar[bool] = True
    truncated: bool = False

    def params(self) -> dict[str, Any]:
        return {"mode": "truncated" if self.truncated else "garbage"}


@dataclass(frozen=True, kw_only=True, slots=True)
class WrongContentType(HttpFault):
    """The upstream applies the request; its answer claims ``content_type`` (HTML, as a WAF page does)."""

    KIND: ClassVar[str] = "wrong_content_type"
    RULE_KIND: ClassVar[str] = "wrong_content_type"
    AMBIGUOUS: ClassVar[bool] = True
    content_type: str = "text/html; charset=utf-8"

    def _check(self) -> None:
        if not self.content_type or not self.content_type.isascii():
            raise ValueError(
                f"WrongContentType.content_type must be non-empty ASCII, got {self.content_type!r}"
            )

    def params(self) -> dict[str, Any]:
        return {"content_type": self.content_type}


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenRevocation(HttpFault):
    """The credential the client holds stops working: Daraja revokes its OAuth tokens (the client must
    fetch a new one); Stripe and Fineract, which have no tokens, answer 401 to the matched requests.
    Fires once by default."""

    KIND: ClassVar[str] = "token_revocation"
    RULE_KIND: ClassVar[str] = "token_revocation"
    count: int | None = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackDrop(HttpFault):
    """The upstream never delivers the callback or webhook (M-Pesa callbacks are known to get lost)."""

    KIND: ClassVar[str] = "callback_drop"
    RULE_KIND: ClassVar[str] = "callback_drop"


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackDuplicate(HttpFault):
    """The upstream delivers the callback or webhook ``copies`` times."""

    KIND: ClassVar[str] = "callback_duplicate"
    RULE_KIND: ClassVar[str] = "callback_duplicate"
    copies: int = 2

    def _check(self) -> None:
        if not 2 <= self.copies <= 10:
            raise ValueError(f"CallbackDuplicate.copies must be from 2 to 10, got {self.copies!r}")

    def params(self) -> dict[str, Any]:
        return {"copies": self.copies}


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackDelay(HttpFault):
    """The upstream delivers the callback or webhook ``ms`` late (after the client may have given up)."""

    KIND: ClassVar[str] = "callback_delay"
    RULE_KIND: ClassVar[str] = "callback_delay"
    ms: int

    def _check(self) -> None:
        if not 0 <= self.ms <= 120_000:
            raise ValueError(f"CallbackDelay.ms must be from 0 to 120000, got {self.ms!r}")

    def params(self) -> dict[str, Any]:
        return {"ms": self.ms}


HTTP_FAULT_KINDS: tuple[type[HttpFault], ...] = (
    HttpError,
    Throttle,
    ServerDelay,
    CommitThenFail,
    MalformedBody,
    WrongContentType,
    TokenRevocation,
    CallbackDrop,
    CallbackDuplicate,
    CallbackDelay,
)
FAULT_KINDS.update({cls.KIND: cls for cls in HTTP_FAULT_KINDS})
