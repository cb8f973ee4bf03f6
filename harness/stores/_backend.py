"""The contract every backend meets: a handful of atomic operations, nothing more.

The services (:class:`IdempotencyStore`, :class:`DeadLetterQueue`) hold all policy: waiting,
classifying failures, workflow rules, validation. A backend only provides operations that are atomic
*in the database* (an upsert with a condition, a Lua script, a lock around a dict), so exactly-once
never rests on a read in Python followed by a write. Each operation is documented here once; the
contract tests in ``tests/stores`` run the same suite against every implementation.

Time is always passed in, from the service's injected clock, never read by a backend: Redis's own
TTLs run on the server's wall clock, which a test cannot move.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from harness.stores._model import (
    DeadLetter,
    DeadLetterFilter,
    DeadLetterStatus,
    DeadLetterUpdate,
    ErrorInfo,
    IdempotencyRecord,
    IdempotencyStats,
    RecordState,
)

__all__ = ["NewDeadLetter", "StoreBackend", "apply_update", "dead_letter_id", "stats_of", "take"]


def dead_letter_id(seq: int) -> str:
    """Entry ids come from the store's own sequence: unique per store, and reproducible run to run."""
    return f"dlq-{seq}"


@dataclass(frozen=True, kw_only=True, slots=True)
class NewDeadLetter:
    operation_id: str
    operation: str
    provider: str
    payload_json: str
    error: ErrorInfo
    attempts: int
    first_attempt_at: float
    last_attempt_at: float
    tags: Mapping[str, str]
    parked_at: float


@runtime_checkable
class StoreBackend(Protocol):
    """Durable (or, for unit tests, in-memory) state behind both services."""

    # -- idempotency ----------------------------------------------------------------------------

    def idem_get(self, key: str) -> IdempotencyRecord | None:
        """The stored record, expired or not (the service decides what expiry means)."""
        ...

    def idem_claim(
        self, *, key: str, fingerprint: str, now: float, lease_until: float, expires_at: float
    ) -> tuple[IdempotencyRecord, bool]:
        """Atomically take the key if it is free; return the record after the call and whether we took it.

        Free means: no record; or an expired one (``expires_at <= now`` and no live lease), which is
        replaced by a fresh record (new fingerprint, ``created_at = now``); or an in-progress record
        whose lease ran out (``lease_until <= now``) *with the same fingerprint*, which is taken over
        (same created/expiry times). Taking the key assigns a new fence, strictly greater than every
        fence this store has handed out, and sets ``lease_until``.
        """
        ...

    def idem_complete(self, *, key: str, fence: int, response_json: str) -> bool:
        """If the key is in progress under ``fence``: mark it completed with the response. Else False."""
        ...

    def idem_fail(self, *, key: str, fence: int, error: ErrorInfo) -> bool:
        """If the key is in progress under ``fence``: mark it failed with the error. Else False."""
        ...

    def idem_release(self, *, key: str, fence: int) -> bool:
        """If the key is in progress under ``fence``: delete the record (frees the key). Else False."""
        ...

    def idem_renew(self, *, key: str, fence: int, lease_until: float) -> bool:
        """If the key is in progress under ``fence``: move its lease end. Else False."""
        ...

    def idem_stats(self, *, now: float, soon_until: float) -> IdempotencyStats:
        """Counts at ``now``; "expiring soon" means ``now < expires_at <= soon_until``."""
        ...

    def idem_purge(self, *, now: float) -> int:
        """Delete every record that :meth:`IdempotencyRecord.expired` at ``now``; return how many."""
        ...

    # -- dead letters ---------------------------------------------------------------------------

    def dlq_add(self, entry: NewDeadLetter) -> DeadLetter:
        """Store a new entry with status ``failed`` and the next id of the store's sequence."""
        ...

    def dlq_get(self, entry_id: str) -> DeadLetter | None: ...

    def dlq_list(self, flt: DeadLetterFilter) -> list[DeadLetter]:
        """Entries matching ``flt``, oldest first (by sequence), at most ``flt.limit``."""
        ...

    def dlq_update(self, entry_id: str, update: DeadLetterUpdate) -> DeadLetter | None:
        """Apply ``update`` atomically if its expectations hold; the updated entry, or None."""
        ...

    def dlq_purge(self, *, statuses: frozenset[DeadLetterStatus], updated_before: float) -> int:
        """Delete entries in ``statuses`` last updated before ``updated_before``; return how many."""
        ...

    def close(self) -> None: ...


def stats_of(records: list[IdempotencyRecord], *, now: float, soon_until: float) -> IdempotencyStats:
    """The counts for a list of records, for backends that count in Python."""
    live = [r for r in records if not r.expired(now)]
    return IdempotencyStats(
        total=len(live),
        in_progress=sum(r.state is RecordState.IN_PROGRESS for r in live),
        completed=sum(r.state is RecordState.COMPLETED for r in live),
        failed=sum(r.state is RecordState.FAILED for r in live),
        expiring_soon=sum(now < r.expires_at <= soon_until for r in live),
        expired=len(records) - len(live),
        abandoned=sum(r.lease_expired(now) for r in live),
    )


def apply_update(entry: DeadLetter, update: DeadLetterUpdate) -> DeadLetter:
    """The effect of a :class:`DeadLetterUpdate` on an entry (its preconditions already checked)."""
    return dataclasses.replace(
        entry,
        status=update.status,
        updated_at=update.updated_at,
        lease_until=update.lease_until,
        fence=entry.fence + 1 if update.bump_fence else entry.fence,
        attempts=entry.attempts + update.attempts_delta,
        last_attempt_at=entry.last_attempt_at if update.last_attempt_at is None else update.last_attempt_at,
        error=entry.error if update.error is None else update.error,
        resolved_at=entry.resolved_at if update.resolved_at is None else update.resolved_at,
    )


def take(entries: Iterable[DeadLetter], limit: int | None) -> list[DeadLetter]:
    return list(entries) if limit is None else list(itertools.islice(entries, limit))
