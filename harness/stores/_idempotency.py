"""The idempotency store: the first caller executes, every later caller gets the stored outcome.

Rules (Stripe's v1 semantics and the IETF draft's, see ``reference/upstreams.md`` §3.4, §4, §5):

* A key nobody holds is claimed atomically by exactly one caller, who executes the operation under a
  lease. Its result is stored and replayed to every later caller until the record expires (24 h).
* A key held by a live lease is *in progress*: by policy the caller gets :class:`KeyInProgressError`
  at once (the draft's 409) or waits, polling, until the key completes, is freed or its lease runs
  out, up to ``wait_timeout``.
* An owner that crashed never finishes: once its lease runs out,
  exactly one new caller takes the key over (the backend hands out a strictly greater fence), and
  the old owner's late completion is refused (:class:`LeaseLostError`).
* The same key with another payload is :class:`FingerprintMismatchError` (the draft's 422), whatever
  the record's state.
* A *retryable* failure frees the key (nothing to replay; the next caller executes again, as Stripe
  does for 429s and conflicts). A *definite* failure (a decline, a validation error) is stored and
  replayed as :class:`StoredFailureError`, so a declined charge is not re-attempted under its key.

Which failures are definite is decided by ``is_definite``; the default trusts
:class:`DefiniteFailure` and an ``error_class`` attribute holding an
:class:`~harness.resilience.ErrorClass` (decline, validation, not found), and frees the key for
anything else: the safe side, because the upstream's own idempotency key still dedupes a retry.

Sync and async faces share one core (:meth:`_begin`, :meth:`complete`, :meth:`_finish_failure`);
the async face only awaits the operation and runs backend calls in a worker thread.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from harness.resilience import Clock, ErrorClass
from harness.stores._backend import StoreBackend
from harness.stores._checks import is_finite_number, is_int_at_least
from harness.stores._errors import (
    FingerprintMismatchError,
    InvalidPayloadError,
    KeyInProgressError,
    LeaseLostError,
    StoredFailureError,
)
from harness.stores._json import DEFAULT_MAX_PAYLOAD_BYTES, JSONValue, decode_json, encode_json, fingerprint
from harness.stores._keys import validate_key
from harness.stores._model import (
    ErrorInfo,
    IdempotencyRecord,
    IdempotencyStats,
    IdempotentResult,
    Lease,
    RecordState,
)

__all__ = [
    "DefiniteFailure",
    "IdempotencyConfig",
    "IdempotencyStore",
    "InProgressPolicy",
    "default_is_definite",
]


class InProgressPolicy(enum.StrEnum):
    CONFLICT = "conflict"
    """Raise :class:`KeyInProgressError` at once (the IETF draft's 409, Stripe's)."""
    WAIT = "wait"
    """Poll until the key completes, is freed or its lease runs out; conflict after ``wait_timeout``."""


def _positive(owner: str, name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = is_finite_number(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{owner}.{name} must be a finite number {bound}, got {value!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class IdempotencyConfig:
    ttl: float = 24 * 3600.0
    """Seconds a record lives after creation; Stripe prunes keys once they are at least 24 h old."""
    lease: float = 30.0
    """Seconds an owner may hold an in-progress key before another caller may take it over."""
    in_progress: InProgressPolicy = InProgressPolicy.CONFLICT
    wait_timeout: float = 30.0
    poll_interval: float = 0.05
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    """Limit for the payload and the stored result, as UTF-8 JSON."""
    expiring_soon: float = 3600.0
    """Window for :attr:`IdempotencyStats.expiring_soon`."""

    def __post_init__(self) -> None:
        for name in ("ttl", "lease", "poll_interval", "expiring_soon"):
            _positive("IdempotencyConfig", name, getattr(self, name))
        _positive("IdempotencyConfig", "wait_timeout", self.wait_timeout, allow_zero=True)
        object.__setattr__(self, "in_progress", InProgressPolicy(self.in_progress))
        if not is_int_at_least(self.max_payload_bytes, 16):
            raise ValueError(
                f"IdempotencyConfig.max_payload_bytes must be an int >= 16, got {self.max_payload_bytes!r}"
            )


class DefiniteFailure(Exception):
    """Raise from an idempotent operation to have its failure stored and replayed, not retried."""

    def __init__(self, message: str, *, error_class: str = "definite", status: int | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.status = status


# Failures that an upstream stores under its own key too (Stripe replays 4xx after execution began),
# or that no retry can change. REJECTED (breaker open) and AUTH are not here: nothing was executed.
_DEFINITE_CLASSES = frozenset({ErrorClass.DECLINE, ErrorClass.VALIDATION, ErrorClass.NOT_FOUND})


def default_is_definite(exc: BaseException) -> bool:
    if isinstance(exc, DefiniteFailure):
        return True
    error_class = getattr(exc, "error_class", None)
    return isinstance(error_class, ErrorClass) and error_class in _DEFINITE_CLASSES


class IdempotencyStore:
    """Exactly-once execution per key, over any :class:`StoreBackend`.

    ``clock`` sets created/expiry times and leases; in several processes sharing a backend, give
    each the same kind of clock (``SystemClock`` on one machine, ``UnixClock`` across machines or
    reboots).
    """

    def __init__(
        self,
        backend: StoreBackend,
        *,
        clock: Clock,
        config: IdempotencyConfig | None = None,
        is_definite: Callable[[BaseException], bool] = default_is_definite,
    ) -> None:
        self.backend = backend
        self.clock = clock
        self.config = config if config is not None else IdempotencyConfig()
        self.is_definite = is_definite

    def __repr__(self) -> str:
        return f"IdempotencyStore({self.backend!r}, config={self.config!r})"

    # -- the core -------------------------------------------------------------------------------

    def _fingerprint(self, payload: object) -> str:
        return fingerprint(payload, limit=self.config.max_payload_bytes, what="payload")

    def _begin(self, key: str, fp: str) -> Lease | IdempotentResult | IdempotencyRecord:
        """Claim, replay, raise, or return the in-progress record someone else holds."""
        now = self.clock.now()
        record, claimed = self.backend.idem_claim(
            key=key,
            fingerprint=fp,
            now=now,
            lease_until=now + self.config.lease,
            expires_at=now + self.config.ttl,
        )
        if claimed:
            return Lease(
                key=key,
                fence=record.fence,
                lease_until=now + self.config.lease,
                fingerprint=fp,
                took_over=record.created_at != now,
            )
        if record.fingerprint != fp:
            raise FingerprintMismatchError(key)
        if record.state is RecordState.COMPLETED:
            return IdempotentResult(key=key, value=record.response, replayed=True)
        if record.state is RecordState.FAILED:
            raise StoredFailureError(key, record.error or ErrorInfo(error_class="unknown", message=""))
        return record

    def _check_wait(self, key: str, record: IdempotencyRecord, started: float) -> None:
        waited = self.clock.now() - started
        if self.config.in_progress is InProgressPolicy.CONFLICT or waited >= self.config.wait_timeout:
            raise KeyInProgressError(key, lease_until=record.lease_until, waited=waited)

    def _finish_failure(self, lease: Lease, exc: BaseException) -> None:
        """Store a definite failure or free the key; never let a bookkeeping error hide ``exc``."""
        definite = isinstance(exc, Exception) and self.is_definite(exc)
        try:
            if definite:
                done = self.backend.idem_fail(
                    key=lease.key, fence=lease.fence, error=ErrorInfo.from_exception(exc)
                )
            else:
                done = self.backend.idem_release(key=lease.key, fence=lease.fence)
        except Exception as store_exc:
            exc.add_note(
                f"harness.stores: could not record this failure for key {lease.key!r} ({store_exc!r});"
                " the key stays in progress until its lease runs out"
            )
            return
        if not done:
            exc.add_note(str(LeaseLostError(lease.key, fence=lease.fence)))

    # -- step by step ---------------------------------------------------------------------------

    def begin(self, key: str, *, payload: JSONValue = None) -> Lease | IdempotentResult:
        """Claim ``key`` (a :class:`Lease`) or get its stored result; never waits.

        Raises :class:`KeyInProgressError`, :class:`FingerprintMismatchError`,
        :class:`StoredFailureError`, and the validation errors, before anything is written.
        """
        key = validate_key(key)
        step = self._begin(key, self._fingerprint(payload))
        if isinstance(step, IdempotencyRecord):
            raise KeyInProgressError(key, lease_until=step.lease_until)
        return step

    def complete(self, lease: Lease, value: JSONValue) -> IdempotentResult:
        """Store ``value`` as the key's result; everyone gets this same (JSON-decoded) value.

        If the value cannot be stored the operation has still run, so the key is *not* freed (that
        would let it run again): a failure is stored instead, and the validation error raised.
        """
        try:
            text = encode_json(value, what="result", limit=self.config.max_payload_bytes)
        except InvalidPayloadError as exc:
            error = ErrorInfo(error_class="unstorable_result", message=str(exc))
            if not self.backend.idem_fail(key=lease.key, fence=lease.fence, error=error):
                exc.add_note(str(LeaseLostError(lease.key, fence=lease.fence)))
            raise
        if not self.backend.idem_complete(key=lease.key, fence=lease.fence, response_json=text):
            raise LeaseLostError(lease.key, fence=lease.fence)
        return IdempotentResult(key=lease.key, value=decode_json(text), replayed=False)

    def fail(self, lease: Lease, error: ErrorInfo) -> None:
        """Store a definite failure, replayed to later callers as :class:`StoredFailureError`."""
        if not self.backend.idem_fail(key=lease.key, fence=lease.fence, error=error):
            raise LeaseLostError(lease.key, fence=lease.fence)

    def release(self, lease: Lease) -> None:
        """Free the key after a retryable failure: the next caller executes."""
        if not self.backend.idem_release(key=lease.key, fence=lease.fence):
            raise LeaseLostError(lease.key, fence=lease.fence)

    def renew(self, lease: Lease) -> Lease:
        """Extend the lease by ``config.lease`` from now, for operations that run long."""
        lease_until = self.clock.now() + self.config.lease
        if not self.backend.idem_renew(key=lease.key, fence=lease.fence, lease_until=lease_until):
            raise LeaseLostError(lease.key, fence=lease.fence)
        return Lease(
            key=lease.key,
            fence=lease.fence,
            lease_until=lease_until,
            fingerprint=lease.fingerprint,
            took_over=lease.took_over,
        )

    # -- one call -------------------------------------------------------------------------------

    def with_idempotency(
        self, key: str, fn: Callable[[], JSONValue], *, payload: JSONValue = None
    ) -> IdempotentResult:
        """Run ``fn`` once for ``key`` across every caller sharing the backend; replay otherwise."""
        key = validate_key(key)
        fp = self._fingerprint(payload)
        started = self.clock.now()
        while True:
            step = self._begin(key, fp)
            if not isinstance(step, IdempotencyRecord):
                break
            self._check_wait(key, step, started)
            self.clock.sleep(self.config.poll_interval)
        if isinstance(step, IdempotentResult):
            return step
        try:
            value = fn()
        except BaseException as exc:
            self._finish_failure(step, exc)
            raise
        return self.complete(step, value)

    async def awith_idempotency(
        self, key: str, fn: Callable[[], Awaitable[JSONValue]], *, payload: JSONValue = None
    ) -> IdempotentResult:
        """The async face of :meth:`with_idempotency`; backend calls run in a worker thread."""
        key = validate_key(key)
        fp = self._fingerprint(payload)
        started = self.clock.now()
        while True:
            step = await asyncio.to_thread(self._begin, key, fp)
            if not isinstance(step, IdempotencyRecord):
                break
            self._check_wait(key, step, started)
            await self.clock.sleep_async(self.config.poll_interval)
        if isinstance(step, IdempotentResult):
            return step
        try:
            value = await fn()
        except BaseException as exc:
            # Also on cancellation: the key must not stay in progress until the lease runs out.
            await asyncio.shield(asyncio.to_thread(self._finish_failure, step, exc))
            raise
        return await asyncio.to_thread(self.complete, step, value)

    # -- housekeeping ---------------------------------------------------------------------------

    def get(self, key: str) -> IdempotencyRecord | None:
        """The key's live record; ``None`` if there is none or it has expired (then it counts as new)."""
        record = self.backend.idem_get(validate_key(key))
        if record is None or record.expired(self.clock.now()):
            return None
        return record

    def stats(self) -> IdempotencyStats:
        now = self.clock.now()
        return self.backend.idem_stats(now=now, soon_until=now + self.config.expiring_soon)

    def purge_expired(self) -> int:
        """Delete expired records; returns how many. Keys held by a live lease are kept."""
        return self.backend.idem_purge(now=self.clock.now())
