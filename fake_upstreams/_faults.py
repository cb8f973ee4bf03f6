"""HTTP-level fault rules, as the admin API receives them, and the book that decides when one fires.

A rule says *what* goes wrong (``kind`` and its ``params``), *where* (``method`` and a ``path`` glob;
for callback kinds the glob is matched against the callback URL's path) and *how often* (``count``
firings at most, each with ``probability``, after ``skip`` matching requests pass untouched).
Probabilities are drawn from the fake's own seeded ``random.Random``, so a run with the same seed and
the same requests fires the same faults.

Request kinds (realised by :mod:`fake_upstreams._fault_middleware`):

========================  ============================================================  ==========
kind                      what the client sees                                           effect?
========================  ============================================================  ==========
``error``                 ``params.status`` (500/502/503/504) with the API's error body  not applied
``throttle``              the API's throttling answer (Stripe 429 + Retry-After, Daraja   not applied
                          500.003.02, Fineract's gateway 429)
``delay``                 the normal answer, ``params.ms`` later (``phase`` before or     applied
                          after the handler ran)
``commit_then_fail``      the handler runs and commits, then a 500 in the API's shape     applied
                          (``mode=error``) or the connection is dropped (``mode=drop``)
``malformed_body``        the handler runs; the body is cut in half (``mode=garbage``,    applied
                          valid framing) or the connection closes mid-body (``truncated``)
``wrong_content_type``    the handler runs; the answer carries ``params.content_type``     applied
``token_revocation``      the credential the client holds stops working now (Daraja       not applied
                          revokes its tokens; Stripe and Fineract answer 401)
========================  ============================================================  ==========

Callback kinds (realised by :mod:`fake_upstreams._scheduler`): ``callback_drop``,
``callback_duplicate`` (``params.copies``), ``callback_delay`` (``params.ms``).
"""

from __future__ import annotations

import fnmatch
import math
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.responses import Response
from starlette.types import Scope

__all__ = [
    "CALLBACK_KINDS",
    "REQUEST_KINDS",
    "Dialect",
    "FaultBook",
    "FaultRule",
    "FaultRuleError",
    "parse_rule",
]

REQUEST_KINDS = frozenset(
    {
        "error",
        "throttle",
        "delay",
        "commit_then_fail",
        "malformed_body",
        "wrong_content_type",
        "token_revocation",
    }
)
CALLBACK_KINDS = frozenset({"callback_drop", "callback_duplicate", "callback_delay"})
PRE_EXECUTION_KINDS = frozenset({"error", "throttle", "token_revocation"})
_MAX_DELAY_MS = 120_000
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class FaultRuleError(ValueError):
    """A rule the admin API refuses; the message names the field and says what to send instead."""


class Dialect(Protocol):
    """How one upstream words the faults that answer in its own shape."""

    error_statuses: frozenset[int]
    throttle_variants: frozenset[str]
    throttle_default: str

    def fault_response(self, rule: FaultRule, scope: Scope) -> Response:
        """The answer for a pre-execution fault: ``error``, ``throttle`` or ``token_revocation``."""
        ...

    def error_response(self, status: int, scope: Scope) -> Response:
        """The API's own error body for ``status`` (used after a commit, so never stored)."""
        ...


@dataclass(kw_only=True)
class FaultRule:
    id: int
    kind: str
    path: str = "*"
    method: str | None = None
    count: int | None = None
    probability: float = 1.0
    skip: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    matched: int = 0
    fired: int = 0

    @property
    def is_callback(self) -> bool:
        return self.kind in CALLBACK_KINDS

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "path": self.path,
            "method": self.method,
            "count": self.count,
            "probability": self.probability,
            "skip": self.skip,
            "params": dict(self.params),
            "matched": self.matched,
            "fired": self.fired,
        }


def _int(params: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FaultRuleError(f"params.{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def _choice(params: Mapping[str, Any], name: str, default: str, allowed: frozenset[str]) -> str:
    value = params.get(name, default)
    if value not in allowed:
        raise FaultRuleError(f"params.{name} must be one of {sorted(allowed)}, got {value!r}")
    return str(value)


def _params(kind: str, raw: Mapping[str, Any], dialect: Dialect) -> dict[str, Any]:
    known: dict[str, tuple[str, ...]] = {
        "error": ("status",),
        "throttle": ("variant", "retry_after"),
        "delay": ("ms", "phase"),
        "commit_then_fail": ("mode", "status"),
        "malformed_body": ("mode",),
        "wrong_content_type": ("content_type",),
        "token_revocation": (),
        "callback_drop": (),
        "callback_duplicate": ("copies",),
        "callback_delay": ("ms",),
    }
    unknown = sorted(set(raw) - set(known[kind]))
    if unknown:
        raise FaultRuleError(f"fault {kind!r} takes params {list(known[kind])}, not {unknown}")
    statuses = frozenset(str(s) for s in dialect.error_statuses)
    params: dict[str, Any] = {}
    if kind in ("error", "commit_then_fail"):
        status = raw.get("status", 500)
        if str(status) not in statuses or isinstance(status, bool):
            raise FaultRuleError(
                f"params.status must be one of {sorted(dialect.error_statuses)} here, got {status!r}"
            )
        params["status"] = int(status)
    if kind == "throttle":
        variants = dialect.throttle_variants
        params["variant"] = _choice(raw, "variant", dialect.throttle_default, variants)
        retry_after = raw.get("retry_after", 1)
        if (
            isinstance(retry_after, bool)
            or not isinstance(retry_after, int | float)
            or not 0 <= retry_after <= 3600
        ):
            raise FaultRuleError(f"params.retry_after must be seconds from 0 to 3600, got {retry_after!r}")
        params["retry_after"] = retry_after
    if kind in ("delay", "callback_delay"):
        params["ms"] = _int(raw, "ms", 1000, 0, _MAX_DELAY_MS)
    if kind == "delay":
        params["phase"] = _choice(raw, "phase", "before", frozenset({"before", "after"}))
    if kind == "commit_then_fail":
        params["mode"] = _choice(raw, "mode", "error", frozenset({"error", "drop"}))
    if kind == "malformed_body":
        params["mode"] = _choice(raw, "mode", "garbage", frozenset({"garbage", "truncated"}))
    if kind == "wrong_content_type":
        content_type = raw.get("content_type", "text/html; charset=utf-8")
        if not isinstance(content_type, str) or not content_type or not content_type.isascii():
            raise FaultRuleError(
                f"params.content_type must be a non-empty ASCII string, got {content_type!r}"
            )
        params["content_type"] = content_type
    if kind == "callback_duplicate":
        params["copies"] = _int(raw, "copies", 2, 2, 10)
    return params


def parse_rule(data: Any, *, dialect: Dialect) -> FaultRule:
    """Validate an admin API body into a rule; raises :class:`FaultRuleError` with a precise message."""
    if not isinstance(data, dict):
        raise FaultRuleError('a fault rule is a JSON object such as {"kind": "error", "path": "/v1/*"}')
    allowed = {"kind", "path", "method", "count", "probability", "skip", "params"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise FaultRuleError(f"unknown fields {unknown}; a rule has {sorted(allowed)}")
    kind = data.get("kind")
    if kind not in REQUEST_KINDS | CALLBACK_KINDS:
        raise FaultRuleError(f"kind must be one of {sorted(REQUEST_KINDS | CALLBACK_KINDS)}, got {kind!r}")
    path = data.get("path", "*")
    if not isinstance(path, str) or not path:
        raise FaultRuleError(f"path must be a non-empty glob such as '/v1/payment_intents*', got {path!r}")
    method = data.get("method")
    if method is not None:
        if not isinstance(method, str) or method.upper() not in _METHODS:
            raise FaultRuleError(f"method must be one of {sorted(_METHODS)} or null, got {method!r}")
        method = method.upper()
    count = data.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise FaultRuleError(f"count must be a positive integer or null (no limit), got {count!r}")
    probability = data.get("probability", 1.0)
    if (
        isinstance(probability, bool)
        or not isinstance(probability, int | float)
        or not math.isfinite(probability)
        or not 0 < probability <= 1
    ):
        raise FaultRuleError(f"probability must be a number in (0, 1], got {probability!r}")
    skip = data.get("skip", 0)
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
        raise FaultRuleError(f"skip must be an integer >= 0, got {skip!r}")
    raw_params = data.get("params", {})
    if not isinstance(raw_params, dict):
        raise FaultRuleError(f"params must be a JSON object, got {raw_params!r}")
    if kind == "throttle" and not dialect.throttle_variants:
        raise FaultRuleError("this upstream has no throttling answer")
    return FaultRule(
        id=0,  # assigned by FaultBook.add
        kind=kind,
        path=path,
        method=method,
        count=count,
        probability=float(probability),
        skip=skip,
        params=_params(kind, raw_params, dialect),
    )


class FaultBook:
    """The rules in force on one fake. At most one rule fires per request: the first that matches."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._rules: list[FaultRule] = []
        self._next_id = 1
        self._lock = threading.Lock()
        self.active = False
        """True while any rule exists: the hot path checks this one attribute and nothing else."""

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            rule.id = self._next_id
            self._next_id += 1
            self._rules.append(rule)
            self.active = True
        return rule

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            self.active = bool(self._rules)
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self.active = False

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def pick(self, method: str, path: str, *, callback: bool = False) -> FaultRule | None:
        if not self.active:
            return None
        with self._lock:
            for rule in self._rules:
                if rule.is_callback != callback:
                    continue
                if rule.method is not None and rule.method != method:
                    continue
                if not fnmatch.fnmatchcase(path, rule.path):
                    continue
                rule.matched += 1
                if rule.exhausted or rule.matched <= rule.skip:
                    continue
                if rule.probability < 1.0 and self.rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule
        return None
