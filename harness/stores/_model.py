"""The values the stores keep and hand back: records, leases, dead letters, filters.

All frozen: a record read from a store is a snapshot, and changing it must go through the store's
compare-and-set operations, never through an attribute.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from harness.stores._checks import is_finite_number, is_nonempty_str
from harness.stores._json import JSONValue, decode_json

__all__ = [
    "MAX_ERROR_MESSAGE",
    "DeadLetter",
    "DeadLetterFilter",
    "DeadLetterStatus",
    "DeadLetterUpdate",
    "ErrorInfo",
    "IdempotencyRecord",
    "IdempotencyStats",
    "IdempotentResult",
    "Lease",
    "RecordState",
    "WorkItem",
]

MAX_ERROR_MESSAGE = 2000
"""Error messages are cut to this many characters: a full upstream body does not belong in a queue."""


def _empty_tags() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, kw_only=True, slots=True)
class ErrorInfo:
    """Why something failed, in a form any process can store and read back.

    ``error_class`` is the :class:`~harness.resilience.ErrorClass` value when the failure was
    classified (``"server_error"``, ``"decline"`` ...), otherwise the exception's type name.
    """

    error_class: str
    message: str
    status: int | None = None

    def __post_init__(self) -> None:
        if not is_nonempty_str(self.error_class):
            raise ValueError(f"ErrorInfo.error_class must be a non-empty str, got {self.error_class!r}")
        if not isinstance(self.message, str):
            raise TypeError(f"ErrorInfo.message must be a str, got {type(self.message).__name__}")
        if len(self.message) > MAX_ERROR_MESSAGE:
            object.__setattr__(self, "message", self.message[: MAX_ERROR_MESSAGE - 1] + "…")
        if self.status is not None and (isinstance(self.status, bool) or not isinstance(self.status, int)):
            raise ValueError(f"ErrorInfo.status must be an int HTTP status or None, got {self.status!r}")

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        """Read ``error_class`` and a status from the exception where it carries them.

        An ``error_class`` attribute (our drivers' errors, :class:`DefiniteFailure`) wins; a status
        comes from ``status_code``/``status`` or from an httpx-style ``response.status_code``.
        """
        error_class = getattr(exc, "error_class", None)
        name = str(error_class) if isinstance(error_class, str) and error_class else type(exc).__name__
        status: object = getattr(exc, "status_code", None)
        if status is None:
            status = getattr(exc, "status", None)
        if status is None:
            status = getattr(getattr(exc, "response", None), "status_code", None)
        return cls(
            error_class=name,
            message=str(exc) or type(exc).__name__,
            status=status if isinstance(status, int) and not isinstance(status, bool) else None,
        )

    def to_json(self) -> dict[str, JSONValue]:
        return {"error_class": self.error_class, "message": self.message, "status": self.status}

    @classmethod
    def from_json(cls, value: object) -> ErrorInfo:
        if not isinstance(value, Mapping):
            raise TypeError(f"stored error is not an object: {type(value).__name__}")
        status = value.get("status")
        return cls(
            error_class=str(value["error_class"]),
            message=str(value["message"]),
            status=int(status) if status is not None else None,
        )


# -- idempotency ---------------------------------------------------------------------------------


class RecordState(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    """An owner holds the lease and is executing the operation."""
    COMPLETED = "completed"
    """Done; the stored response is replayed to every later caller."""
    FAILED = "failed"
    """Failed definitely; the stored error is replayed instead of executing again."""


@dataclass(frozen=True, kw_only=True, slots=True)
class IdempotencyRecord:
    """A key's record as stored. ``response_json`` is the canonical JSON text of the result."""

    key: str
    fingerprint: str
    state: RecordState
    created_at: float
    expires_at: float
    fence: int
    """Fencing token of the current owner: unique per claim in this store, it only ever grows."""
    lease_until: float | None = None
    response_json: str | None = None
    error: ErrorInfo | None = None

    @property
    def response(self) -> JSONValue:
        return None if self.response_json is None else decode_json(self.response_json)

    def expired(self, now: float) -> bool:
        """Past its expiry and not held by a live lease: the key counts as new again."""
        lease_over = self.state is not RecordState.IN_PROGRESS or (
            self.lease_until is not None and self.lease_until <= now
        )
        return self.expires_at <= now and lease_over

    def lease_expired(self, now: float) -> bool:
        return (
            self.state is RecordState.IN_PROGRESS and self.lease_until is not None and self.lease_until <= now
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Lease:
    """Proof that the holder may execute ``key``; completing or failing needs the same fence."""

    key: str
    fence: int
    lease_until: float
    fingerprint: str
    took_over: bool = False
    """True when the previous owner's lease had run out (it probably crashed)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class IdempotentResult:
    """The outcome of an idempotent call: the value, and whether it was replayed from the store."""

    key: str
    value: JSONValue
    replayed: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class IdempotencyStats:
    """Counts as seen at one instant; expired records (awaiting purge) are counted apart."""

    total: int
    in_progress: int
    completed: int
    failed: int
    expiring_soon: int
    expired: int
    abandoned: int
    """In progress with a lease that has run out: the owner probably crashed."""


# -- dead letters --------------------------------------------------------------------------------


class DeadLetterStatus(enum.StrEnum):
    FAILED = "failed"
    """Parked after failing; waiting for review or replay."""
    REVIEWING = "reviewing"
    """Someone is looking at it."""
    REQUEUED = "requeued"
    """A replay holds it (with a lease, so a crashed replayer releases it)."""
    DISCARDED = "discarded"
    """Given up on purpose. Terminal."""
    RESOLVED = "resolved"
    """Replayed successfully (or completed late). Terminal."""

    @property
    def terminal(self) -> bool:
        return self in (DeadLetterStatus.DISCARDED, DeadLetterStatus.RESOLVED)


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkItem:
    """What a piece of work is, as far as a dead-letter queue needs to replay it."""

    operation_id: str
    operation: str
    provider: str
    payload: JSONValue = None
    tags: Mapping[str, str] = field(default_factory=_empty_tags)

    def __post_init__(self) -> None:
        for name in ("operation_id", "operation", "provider"):
            value = getattr(self, name)
            if not is_nonempty_str(value):
                raise ValueError(f"WorkItem.{name} must be a non-empty str, got {value!r}")
        tags: object = self.tags
        if not isinstance(tags, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
        ):
            raise ValueError("WorkItem.tags must map str to str (e.g. {'tenant': 't1', 'venue': 'v9'})")
        object.__setattr__(self, "tags", MappingProxyType(dict(self.tags)))


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadLetter:
    """One parked operation. ``payload_json`` is canonical JSON; ``payload`` decodes it."""

    id: str
    seq: int
    operation_id: str
    operation: str
    provider: str
    payload_json: str
    error: ErrorInfo
    attempts: int
    first_attempt_at: float
    last_attempt_at: float
    tags: Mapping[str, str]
    status: DeadLetterStatus
    parked_at: float
    updated_at: float
    resolved_at: float | None = None
    lease_until: float | None = None
    fence: int = 0

    @property
    def payload(self) -> JSONValue:
        return decode_json(self.payload_json)

    def to_json(self) -> dict[str, JSONValue]:
        """The entry as one JSON object (payload and tags nested), as :meth:`export_jsonl` writes it."""
        return {
            "id": self.id,
            "seq": self.seq,
            "operation_id": self.operation_id,
            "operation": self.operation,
            "provider": self.provider,
            "payload": self.payload,
            "error": self.error.to_json(),
            "attempts": self.attempts,
            "first_attempt_at": self.first_attempt_at,
            "last_attempt_at": self.last_attempt_at,
            "tags": dict(self.tags),
            "status": str(self.status),
            "parked_at": self.parked_at,
            "updated_at": self.updated_at,
            "resolved_at": self.resolved_at,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadLetterFilter:
    """Which entries to list. ``since``/``until`` bound ``last_attempt_at`` (``since <= t < until``)."""

    statuses: frozenset[DeadLetterStatus] | None = None
    provider: str | None = None
    operation: str | None = None
    since: float | None = None
    until: float | None = None
    tags: Mapping[str, str] = field(default_factory=_empty_tags)
    """Every listed tag must match (e.g. ``{"tenant": "t1"}``)."""
    min_attempts: int | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.statuses is not None:
            object.__setattr__(self, "statuses", frozenset(DeadLetterStatus(s) for s in self.statuses))
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and not is_finite_number(value):
                raise ValueError(f"DeadLetterFilter.{name} must be a finite number of seconds, got {value!r}")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"DeadLetterFilter.limit must be >= 0 or None, got {self.limit!r}")
        if self.min_attempts is not None and self.min_attempts < 0:
            raise ValueError(f"DeadLetterFilter.min_attempts must be >= 0 or None, got {self.min_attempts!r}")
        object.__setattr__(self, "tags", MappingProxyType(dict(self.tags)))

    def matches(self, entry: DeadLetter) -> bool:
        """The predicate every backend applies (SQLite also pre-filters in SQL)."""
        if self.statuses is not None and entry.status not in self.statuses:
            return False
        if self.provider is not None and entry.provider != self.provider:
            return False
        if self.operation is not None and entry.operation != self.operation:
            return False
        if self.since is not None and entry.last_attempt_at < self.since:
            return False
        if self.until is not None and entry.last_attempt_at >= self.until:
            return False
        if self.min_attempts is not None and entry.attempts < self.min_attempts:
            return False
        return all(entry.tags.get(k) == v for k, v in self.tags.items())


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadLetterUpdate:
    """A compare-and-set step on one entry, applied atomically by the backend.

    Applied only if the entry's status is in ``expect`` (or it is ``requeued`` with a lease that ran
    out at or before ``stale_before``) and, when ``expect_fence`` is set, its fence equals it. Then:
    status := ``status``; lease := ``lease_until`` (``None`` clears it); fence += 1 if
    ``bump_fence``; attempts += ``attempts_delta``; the optional fields replace theirs when given.
    """

    expect: frozenset[DeadLetterStatus]
    status: DeadLetterStatus
    updated_at: float
    expect_fence: int | None = None
    stale_before: float | None = None
    lease_until: float | None = None
    bump_fence: bool = False
    attempts_delta: int = 0
    last_attempt_at: float | None = None
    error: ErrorInfo | None = None
    resolved_at: float | None = None

    def applies_to(self, entry: DeadLetter) -> bool:
        status_ok = entry.status in self.expect or (
            self.stale_before is not None
            and entry.status is DeadLetterStatus.REQUEUED
            and entry.lease_until is not None
            and entry.lease_until <= self.stale_before
        )
        return status_ok and (self.expect_fence is None or entry.fence == self.expect_fence)
