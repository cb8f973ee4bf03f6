"""Workloads: which operations a run performs, and when."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from harness._driver import Operation

__all__ = ["PlannedOperation", "Workload"]


@dataclass(frozen=True, kw_only=True, slots=True)
class PlannedOperation:
    at: float
    """Seconds after the run starts at which the operation is submitted."""
    operation: Operation


@dataclass(frozen=True, slots=True)
class Workload:
    planned: tuple[PlannedOperation, ...]

    @classmethod
    def of(cls, planned: Iterable[PlannedOperation]) -> Workload:
        items = tuple(sorted(planned, key=lambda p: p.at))
        ids = [p.operation.operation_id for p in items]
        if len(set(ids)) != len(ids):
            raise ValueError("every operation in a workload needs its own operation_id")
        if any(p.at < 0 for p in items):
            raise ValueError("operations cannot be planned before the run starts (at < 0)")
        return cls(items)

    @classmethod
    def steady(
        cls,
        *,
        count: int,
        interval: float,
        upstream: str = "stripe",
        action: str = "charge",
        amount: int = 1000,
        currency: str = "usd",
        prefix: str = "op",
        params: Callable[[int], Mapping[str, str]] | None = None,
    ) -> Workload:
        """``count`` operations, one every ``interval`` seconds, each with a distinct id.

        ``params(i)`` gives the i-th operation's upstream-specific parameters (e.g. a payment method).
        """
        if count < 1:
            raise ValueError(f"a workload needs count >= 1 operations, got {count!r}")
        if not interval >= 0:
            raise ValueError(f"interval must be >= 0 seconds, got {interval!r}")
        return cls.of(
            PlannedOperation(
                at=round(i * interval, 6),
                operation=Operation(
                    operation_id=f"{prefix}-{i:05d}",
                    upstream=upstream,
                    action=action,
                    amount=amount + i,
                    currency=currency,
                    params=dict(params(i)) if params is not None else {},
                ),
            )
            for i in range(count)
        )

    @property
    def duration(self) -> float:
        return max((p.at for p in self.planned), default=0.0)

    def __len__(self) -> int:
        return len(self.planned)
