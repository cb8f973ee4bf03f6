"""What the dead-letter queue says about the upstreams: common errors and failure rates.

A queue only holds failures, so a *rate* needs to know how many operations were tried in all: pass
those totals (per provider, per provider and operation) and each group gets ``failure_rate``;
without them it is ``None`` and ``share`` (the group's part of the queue) is what there is. Rates
count distinct operation ids, so an operation parked twice is one failure, not two.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harness.stores._model import DeadLetter

__all__ = ["ErrorCount", "FailureGroup", "FailurePatterns", "analyse_failures"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ErrorCount:
    error_class: str
    status: int | None
    message: str
    count: int


@dataclass(frozen=True, kw_only=True, slots=True)
class FailureGroup:
    provider: str
    operation: str | None
    """``None`` for a per-provider group."""
    entries: int
    operations: int
    """Distinct operation ids."""
    unresolved: int
    """Entries not yet resolved or discarded."""
    attempts: int
    share: float
    """This group's part of all entries analysed."""
    failure_rate: float | None
    """Distinct failed operations over the total given for this group, if one was given."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FailurePatterns:
    total_entries: int
    common_errors: tuple[ErrorCount, ...]
    by_provider: tuple[FailureGroup, ...]
    by_operation: tuple[FailureGroup, ...]


def _group(
    provider: str,
    operation: str | None,
    entries: list[DeadLetter],
    total_entries: int,
    total_operations: int | None,
) -> FailureGroup:
    operations = len({e.operation_id for e in entries})
    if total_operations is not None and total_operations < 0:
        raise ValueError(f"operation totals must be >= 0, got {total_operations} for {provider}/{operation}")
    return FailureGroup(
        provider=provider,
        operation=operation,
        entries=len(entries),
        operations=operations,
        unresolved=sum(not e.status.terminal for e in entries),
        attempts=sum(e.attempts for e in entries),
        share=len(entries) / total_entries if total_entries else 0.0,
        failure_rate=(operations / total_operations if total_operations else None),
    )


def analyse_failures(
    entries: Iterable[DeadLetter],
    *,
    top: int = 10,
    provider_totals: Mapping[str, int] | None = None,
    operation_totals: Mapping[tuple[str, str], int] | None = None,
) -> FailurePatterns:
    """Most common errors first; groups ordered by entries (most first), then by name."""
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top!r}")
    items = list(entries)
    errors = Counter((e.error.error_class, e.error.status, e.error.message) for e in items)
    common = tuple(
        ErrorCount(error_class=c, status=s, message=m, count=n)
        for (c, s, m), n in sorted(errors.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][2]))[:top]
    )
    providers: dict[str, list[DeadLetter]] = {}
    operations: dict[tuple[str, str], list[DeadLetter]] = {}
    for e in items:
        providers.setdefault(e.provider, []).append(e)
        operations.setdefault((e.provider, e.operation), []).append(e)
    by_provider = [
        _group(p, None, group, len(items), (provider_totals or {}).get(p)) for p, group in providers.items()
    ]
    by_operation = [
        _group(p, o, group, len(items), (operation_totals or {}).get((p, o)))
        for (p, o), group in operations.items()
    ]

    def order(g: FailureGroup) -> tuple[int, str, str]:
        return (-g.entries, g.provider, g.operation or "")

    return FailurePatterns(
        total_entries=len(items),
        common_errors=common,
        by_provider=tuple(sorted(by_provider, key=order)),
        by_operation=tuple(sorted(by_operation, key=order)),
    )
