"""The dead-letter queue: where work goes when it cannot be done now, so that it is never dropped.

Workflow (every step is one compare-and-set in the backend, so two operators or two replayers can
never both move the same entry)::

    failed     -> reviewing | requeued | discarded | resolved
    reviewing  -> requeued | discarded | resolved
    requeued   -> resolved    the replay succeeded
               -> failed      the replay failed: one more attempt, its error kept
               -> requeued    the replay's lease ran out; another replayer took the entry over
    discarded, resolved       terminal

``failed``/``reviewing`` may also become ``resolved`` directly (:meth:`resolve`: the work completed
by other means, e.g. late, after a shutdown parked it). A replay holds its entry under a lease: if
the replayer dies, the entry becomes eligible again once the lease runs out, and the dead replayer's
late report is refused (fencing, as for idempotency keys).

How a driver uses it: park an operation it cannot finish (:meth:`park`) and report
``Outcome(kind=PARKED, dead_letter_id=entry.id)``; in the settle phase, replay what is parked
through a handler (:meth:`requeue_many`). The handler should replay under the operation's
original idempotency key, so that a replay of work that did in fact complete is harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from harness.resilience import Clock
from harness.stores._analysis import FailurePatterns, analyse_failures
from harness.stores._backend import NewDeadLetter, StoreBackend
from harness.stores._checks import is_finite_number, is_int_at_least
from harness.stores._errors import DeadLetterNotFoundError, DeadLetterTransitionError, InvalidPayloadError
from harness.stores._export import dead_letters_frame, write_jsonl
from harness.stores._json import DEFAULT_MAX_PAYLOAD_BYTES, encode_json
from harness.stores._model import (
    DeadLetter,
    DeadLetterFilter,
    DeadLetterStatus,
    DeadLetterUpdate,
    ErrorInfo,
    WorkItem,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "LEGAL_DEAD_LETTER_TRANSITIONS",
    "DeadLetterConfig",
    "DeadLetterQueue",
    "DeadLetterStats",
    "ReplayHandler",
    "ReplayOutcome",
    "RequeueReport",
]

_S = DeadLetterStatus
LEGAL_DEAD_LETTER_TRANSITIONS: frozenset[tuple[DeadLetterStatus, DeadLetterStatus]] = frozenset(
    {
        (_S.FAILED, _S.REVIEWING),
        (_S.FAILED, _S.REQUEUED),
        (_S.FAILED, _S.DISCARDED),
        (_S.FAILED, _S.RESOLVED),
        (_S.REVIEWING, _S.REQUEUED),
        (_S.REVIEWING, _S.DISCARDED),
        (_S.REVIEWING, _S.RESOLVED),
        (_S.REQUEUED, _S.RESOLVED),
        (_S.REQUEUED, _S.FAILED),
        (_S.REQUEUED, _S.REQUEUED),  # a replay whose lease ran out, taken over by a new replayer
    }
)
_OPEN = frozenset({_S.FAILED, _S.REVIEWING})

ReplayHandler = Callable[[DeadLetter], object]
"""Replays one entry: returning means success (the entry is resolved), raising means failure."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadLetterConfig:
    retention: float = 30 * 24 * 3600.0
    """Seconds after their last update that resolved and discarded entries are purged."""
    replay_lease: float = 300.0
    """Seconds a replay may hold its entry before another replayer may take it over."""
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES

    def __post_init__(self) -> None:
        for name in ("retention", "replay_lease"):
            value = getattr(self, name)
            if not is_finite_number(value) or value <= 0:
                raise ValueError(
                    f"DeadLetterConfig.{name} must be a finite number > 0 (seconds), got {value!r}"
                )
        if not is_int_at_least(self.max_payload_bytes, 16):
            raise ValueError(
                f"DeadLetterConfig.max_payload_bytes must be an int >= 16, got {self.max_payload_bytes!r}"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplayOutcome:
    entry: DeadLetter
    """The entry after the replay (or as claimed, if the replay's report was refused)."""
    resolved: bool
    error: ErrorInfo | None = None
    lost: bool = False
    """The replay's lease ran out and another replayer took the entry over; its report was refused."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RequeueReport:
    resolved: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    """Not eligible (discarded, resolved, or being replayed by someone else) or gone."""
    lost: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadLetterStats:
    total: int
    by_status: Mapping[str, int]
    by_provider: Mapping[str, int]
    unresolved: int
    oldest_unresolved_at: float | None


def _check_time(name: str, value: float) -> float:
    if not is_finite_number(value):
        raise InvalidPayloadError(f"{name} must be a finite number of seconds, got {value!r}")
    return float(value)


class DeadLetterQueue:
    def __init__(
        self, backend: StoreBackend, *, clock: Clock, config: DeadLetterConfig | None = None
    ) -> None:
        self.backend = backend
        self.clock = clock
        self.config = config if config is not None else DeadLetterConfig()

    def __repr__(self) -> str:
        return f"DeadLetterQueue({self.backend!r}, config={self.config!r})"

    # -- in ------------------------------------------------------------------------------------

    def park(
        self,
        item: WorkItem,
        *,
        error: ErrorInfo | BaseException,
        attempts: int,
        first_attempt_at: float | None = None,
        last_attempt_at: float | None = None,
    ) -> DeadLetter:
        """Hand ``item`` to the queue; returns the stored entry (its ``id`` is what a driver reports).

        Everything is validated before anything is written: a payload that is not JSON or is too
        large raises and leaves the queue untouched.
        """
        if not isinstance(item, WorkItem):
            raise TypeError(f"park() takes a WorkItem, not {type(item).__name__}")
        if not is_int_at_least(attempts, 0):
            raise InvalidPayloadError(f"attempts must be an int >= 0, got {attempts!r}")
        info = error if isinstance(error, ErrorInfo) else ErrorInfo.from_exception(error)
        payload_json = encode_json(item.payload, what="payload", limit=self.config.max_payload_bytes)
        now = self.clock.now()
        last = now if last_attempt_at is None else _check_time("last_attempt_at", last_attempt_at)
        first = last if first_attempt_at is None else _check_time("first_attempt_at", first_attempt_at)
        if first > last:
            raise InvalidPayloadError(f"first_attempt_at ({first}) is after last_attempt_at ({last})")
        return self.backend.dlq_add(
            NewDeadLetter(
                operation_id=item.operation_id,
                operation=item.operation,
                provider=item.provider,
                payload_json=payload_json,
                error=info,
                attempts=attempts,
                first_attempt_at=first,
                last_attempt_at=last,
                tags=item.tags,
                parked_at=now,
            )
        )

    # -- looking -------------------------------------------------------------------------------

    def get(self, entry_id: str) -> DeadLetter:
        entry = self.backend.dlq_get(entry_id)
        if entry is None:
            raise DeadLetterNotFoundError(entry_id)
        return entry

    def entries(self, flt: DeadLetterFilter | None = None) -> list[DeadLetter]:
        """Entries matching ``flt`` (all by default), oldest first."""
        return self.backend.dlq_list(flt if flt is not None else DeadLetterFilter())

    def stats(self) -> DeadLetterStats:
        entries = self.entries()
        by_status = {str(s): 0 for s in DeadLetterStatus}
        by_provider: dict[str, int] = {}
        for e in entries:
            by_status[str(e.status)] += 1
            by_provider[e.provider] = by_provider.get(e.provider, 0) + 1
        open_times = [e.parked_at for e in entries if not e.status.terminal]
        return DeadLetterStats(
            total=len(entries),
            by_status=by_status,
            by_provider=dict(sorted(by_provider.items())),
            unresolved=len(open_times),
            oldest_unresolved_at=min(open_times, default=None),
        )

    def failure_patterns(
        self,
        flt: DeadLetterFilter | None = None,
        *,
        top: int = 10,
        provider_totals: Mapping[str, int] | None = None,
        operation_totals: Mapping[tuple[str, str], int] | None = None,
    ) -> FailurePatterns:
        return analyse_failures(
            self.entries(flt), top=top, provider_totals=provider_totals, operation_totals=operation_totals
        )

    def export_jsonl(self, destination: Path | str | TextIO, flt: DeadLetterFilter | None = None) -> int:
        """Write matching entries as JSON Lines; returns how many."""
        return write_jsonl(self.entries(flt), destination)

    def to_frame(self, flt: DeadLetterFilter | None = None) -> pd.DataFrame:
        """Matching entries as a DataFrame with the columns of :data:`DEAD_LETTER_COLUMNS`."""
        return dead_letters_frame(self.entries(flt))

    # -- workflow ------------------------------------------------------------------------------

    def _refused(
        self, entry_id: str, target: DeadLetterStatus, allowed: Iterable[DeadLetterStatus]
    ) -> Exception:
        current = self.backend.dlq_get(entry_id)
        if current is None:
            return DeadLetterNotFoundError(entry_id)
        return DeadLetterTransitionError(
            entry_id,
            current=str(current.status),
            target=str(target),
            allowed_from=tuple(sorted(str(s) for s in allowed)),
        )

    def _move(self, entry_id: str, target: DeadLetterStatus, *, resolved: bool = False) -> DeadLetter:
        now = self.clock.now()
        update = DeadLetterUpdate(
            expect=_OPEN if target is not _S.REVIEWING else frozenset({_S.FAILED}),
            status=target,
            updated_at=now,
            resolved_at=now if resolved else None,
        )
        moved = self.backend.dlq_update(entry_id, update)
        if moved is None:
            raise self._refused(entry_id, target, update.expect)
        return moved

    def mark_reviewing(self, entry_id: str) -> DeadLetter:
        return self._move(entry_id, _S.REVIEWING)

    def discard(self, entry_id: str) -> DeadLetter:
        return self._move(entry_id, _S.DISCARDED)

    def resolve(self, entry_id: str) -> DeadLetter:
        """The work was completed by other means (late, or reconciled by hand)."""
        return self._move(entry_id, _S.RESOLVED, resolved=True)

    def _claim(self, entry_id: str) -> DeadLetter | None:
        now = self.clock.now()
        return self.backend.dlq_update(
            entry_id,
            DeadLetterUpdate(
                expect=_OPEN,
                stale_before=now,
                status=_S.REQUEUED,
                updated_at=now,
                lease_until=now + self.config.replay_lease,
                bump_fence=True,
            ),
        )

    def _replay(self, claimed: DeadLetter, handler: ReplayHandler) -> ReplayOutcome:
        error: ErrorInfo | None = None
        try:
            handler(claimed)
        except Exception as exc:
            error = ErrorInfo.from_exception(exc)
        now = self.clock.now()
        after = self.backend.dlq_update(
            claimed.id,
            DeadLetterUpdate(
                expect=frozenset({_S.REQUEUED}),
                expect_fence=claimed.fence,
                status=_S.FAILED if error is not None else _S.RESOLVED,
                updated_at=now,
                attempts_delta=1,
                last_attempt_at=now,
                error=error,
                resolved_at=None if error is not None else now,
            ),
        )
        if after is None:
            return ReplayOutcome(entry=claimed, resolved=False, error=error, lost=True)
        return ReplayOutcome(entry=after, resolved=error is None, error=error)

    def requeue(self, entry_id: str, handler: ReplayHandler) -> ReplayOutcome:
        """Replay one entry through ``handler``: success resolves it, failure counts an attempt.

        Every replay counts as an attempt, successful or not. A handler that raises a
        ``BaseException`` (interrupt, exit) leaves the entry requeued until its lease runs out.
        """
        claimed = self._claim(entry_id)
        if claimed is None:
            raise self._refused(entry_id, _S.REQUEUED, _OPEN)
        return self._replay(claimed, handler)

    def requeue_many(
        self,
        handler: ReplayHandler,
        *,
        ids: Iterable[str] | None = None,
        flt: DeadLetterFilter | None = None,
    ) -> RequeueReport:
        """Replay every eligible entry (``ids``, or those matching ``flt``; by default all open ones).

        Entries that another replayer holds, or that are closed, are skipped, never replayed twice.
        """
        if ids is not None and flt is not None:
            raise ValueError("requeue_many takes ids or flt, not both")
        if ids is None:
            flt = flt if flt is not None else DeadLetterFilter(statuses=_OPEN | {_S.REQUEUED})
            ids = [e.id for e in self.entries(flt)]
        resolved: list[str] = []
        failed: list[str] = []
        skipped: list[str] = []
        lost: list[str] = []
        for entry_id in ids:
            claimed = self._claim(entry_id)
            if claimed is None:
                skipped.append(entry_id)
                continue
            outcome = self._replay(claimed, handler)
            if outcome.lost:
                lost.append(entry_id)
            elif outcome.resolved:
                resolved.append(entry_id)
            else:
                failed.append(entry_id)
        return RequeueReport(
            resolved=tuple(resolved), failed=tuple(failed), skipped=tuple(skipped), lost=tuple(lost)
        )

    # -- housekeeping --------------------------------------------------------------------------

    def purge(self, *, include_unresolved: bool = False) -> int:
        """Delete entries untouched for longer than the retention.

        By default only closed ones (resolved, discarded): deleting an unresolved entry loses work,
        so that takes ``include_unresolved=True``. Entries being replayed are never purged.
        """
        statuses = {_S.RESOLVED, _S.DISCARDED}
        if include_unresolved:
            statuses |= _OPEN
        return self.backend.dlq_purge(
            statuses=frozenset(statuses), updated_before=self.clock.now() - self.config.retention
        )
