"""The in-memory backend: for unit tests and single-process tools; nothing survives the process.

Atomicity comes from one lock around plain dicts, which is exactly as strong as the SQLite and Redis
backends within one process, so the contract suite holds for it too.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading

from harness.stores._backend import NewDeadLetter, apply_update, dead_letter_id, stats_of, take
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

__all__ = ["MemoryBackend"]


class MemoryBackend:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, IdempotencyRecord] = {}
        self._fences = itertools.count(1)
        self._entries: dict[str, DeadLetter] = {}
        self._seq = itertools.count(1)

    def __repr__(self) -> str:
        return "MemoryBackend()"

    def close(self) -> None:
        return None

    # -- idempotency ----------------------------------------------------------------------------

    def idem_get(self, key: str) -> IdempotencyRecord | None:
        with self._lock:
            return self._records.get(key)

    def idem_claim(
        self, *, key: str, fingerprint: str, now: float, lease_until: float, expires_at: float
    ) -> tuple[IdempotencyRecord, bool]:
        with self._lock:
            current = self._records.get(key)
            if current is None or current.expired(now):
                record = IdempotencyRecord(
                    key=key,
                    fingerprint=fingerprint,
                    state=RecordState.IN_PROGRESS,
                    created_at=now,
                    expires_at=expires_at,
                    fence=next(self._fences),
                    lease_until=lease_until,
                )
            elif current.lease_expired(now) and current.fingerprint == fingerprint:
                record = dataclasses.replace(current, fence=next(self._fences), lease_until=lease_until)
            else:
                return current, False
            self._records[key] = record
            return record, True

    def _owned(self, key: str, fence: int) -> IdempotencyRecord | None:
        current = self._records.get(key)
        if current is None or current.state is not RecordState.IN_PROGRESS or current.fence != fence:
            return None
        return current

    def idem_complete(self, *, key: str, fence: int, response_json: str) -> bool:
        with self._lock:
            current = self._owned(key, fence)
            if current is None:
                return False
            self._records[key] = dataclasses.replace(
                current, state=RecordState.COMPLETED, response_json=response_json, lease_until=None
            )
            return True

    def idem_fail(self, *, key: str, fence: int, error: ErrorInfo) -> bool:
        with self._lock:
            current = self._owned(key, fence)
            if current is None:
                return False
            self._records[key] = dataclasses.replace(
                current, state=RecordState.FAILED, error=error, lease_until=None
            )
            return True

    def idem_release(self, *, key: str, fence: int) -> bool:
        with self._lock:
            if self._owned(key, fence) is None:
                return False
            del self._records[key]
            return True

    def idem_renew(self, *, key: str, fence: int, lease_until: float) -> bool:
        with self._lock:
            current = self._owned(key, fence)
            if current is None:
                return False
            self._records[key] = dataclasses.replace(current, lease_until=lease_until)
            return True

    def idem_stats(self, *, now: float, soon_until: float) -> IdempotencyStats:
        with self._lock:
            records = list(self._records.values())
        return stats_of(records, now=now, soon_until=soon_until)

    def idem_purge(self, *, now: float) -> int:
        with self._lock:
            doomed = [key for key, record in self._records.items() if record.expired(now)]
            for key in doomed:
                del self._records[key]
            return len(doomed)

    # -- dead letters ---------------------------------------------------------------------------

    def dlq_add(self, entry: NewDeadLetter) -> DeadLetter:
        with self._lock:
            seq = next(self._seq)
            stored = DeadLetter(
                id=dead_letter_id(seq),
                seq=seq,
                operation_id=entry.operation_id,
                operation=entry.operation,
                provider=entry.provider,
                payload_json=entry.payload_json,
                error=entry.error,
                attempts=entry.attempts,
                first_attempt_at=entry.first_attempt_at,
                last_attempt_at=entry.last_attempt_at,
                tags=entry.tags,
                status=DeadLetterStatus.FAILED,
                parked_at=entry.parked_at,
                updated_at=entry.parked_at,
            )
            self._entries[stored.id] = stored
            return stored

    def dlq_get(self, entry_id: str) -> DeadLetter | None:
        with self._lock:
            return self._entries.get(entry_id)

    def dlq_list(self, flt: DeadLetterFilter) -> list[DeadLetter]:
        with self._lock:
            entries = sorted(self._entries.values(), key=lambda e: e.seq)
        return take(filter(flt.matches, entries), flt.limit)

    def dlq_update(self, entry_id: str, update: DeadLetterUpdate) -> DeadLetter | None:
        with self._lock:
            current = self._entries.get(entry_id)
            if current is None or not update.applies_to(current):
                return None
            updated = apply_update(current, update)
            self._entries[entry_id] = updated
            return updated

    def dlq_purge(self, *, statuses: frozenset[DeadLetterStatus], updated_before: float) -> int:
        with self._lock:
            doomed = [
                e.id for e in self._entries.values() if e.status in statuses and e.updated_at < updated_before
            ]
            for entry_id in doomed:
                del self._entries[entry_id]
            return len(doomed)
