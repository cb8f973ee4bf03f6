"""History: the one schema every run produces, and everything downstream reads.

Tables (pandas DataFrames; saved as Parquet):

* ``attempts``: one row per attempt the driver reported;
* ``breaker_events``: one row per breaker transition;
* ``faults``: one row per fault as actually applied (start and end as observed);
* ``operations``: one row per operation: when it was submitted and finished, what the driver said
  (``initial_outcome``) and what it said after the settle phase (``outcome``, ``settled_at``);
* ``requests``: every request the fake upstreams received (their log, the ground truth), with the
  ``Retry-After`` seconds each answer carried (``retry_after``);
* ``effects``: every effect the fake upstreams applied (their ledger, the ground truth).

All times are seconds since the run started, on the machine's monotonic clock, which the fakes share
(``CLOCK_MONOTONIC`` is system-wide), so client and upstream rows line up.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness._driver import AttemptEvent
from harness.resilience import BreakerTransition

__all__ = ["TABLES", "History", "HistoryRecorder"]

TABLES: dict[str, list[str]] = {
    "attempts": [
        "t",
        "upstream",
        "action",
        "operation_id",
        "attempt",
        "correlation_id",
        "idempotency_key",
        "outcome",
        "error",
        "status_code",
        "latency",
        "breaker_state",
    ],
    "breaker_events": ["t", "breaker", "from_state", "to_state", "reason", "manual", "generation"],
    "faults": ["start", "end", "planned_start", "planned_end", "target", "fault", "kind"],
    "operations": [
        "operation_id",
        "upstream",
        "action",
        "amount",
        "planned_at",
        "started",
        "ended",
        "outcome",
        "reference",
        "error",
        "detail",
        "dead_letter_id",
        "initial_outcome",
        "settled_at",
    ],
    "requests": [
        "t",
        "upstream",
        "method",
        "path",
        "status",
        "duration",
        "idempotency_key",
        "correlation_id",
        "replayed",
        "fault",
        "retry_after",
    ],
    "effects": [
        "t",
        "upstream",
        "kind",
        "object_id",
        "operation_id",
        "idempotency_key",
        "amount",
        "currency",
    ],
}


def _frame(rows: list[dict[str, Any]], table: str) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=TABLES[table])


@dataclass(frozen=True, kw_only=True)
class History:
    meta: dict[str, Any]
    attempts: pd.DataFrame
    breaker_events: pd.DataFrame
    faults: pd.DataFrame
    operations: pd.DataFrame
    requests: pd.DataFrame
    effects: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in TABLES}

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in self.tables().items():
            frame.to_parquet(folder / f"{name}.parquet", index=False)
        (folder / "meta.json").write_text(json.dumps(self.meta, indent=2, default=str) + "\n")
        return folder

    @classmethod
    def load(cls, folder: Path) -> History:
        tables = {name: pd.read_parquet(folder / f"{name}.parquet") for name in TABLES}
        meta = json.loads((folder / "meta.json").read_text())
        return cls(meta=meta, **tables)


@dataclass
class HistoryRecorder:
    """Collects events during a run; thread-safe, as drivers report from worker threads.

    It is the :class:`~harness.EventSink` handed to the driver.
    """

    origin: float
    _attempts: list[dict[str, Any]] = field(default_factory=list)
    _transitions: list[dict[str, Any]] = field(default_factory=list)
    _faults: list[dict[str, Any]] = field(default_factory=list)
    _operations: list[dict[str, Any]] = field(default_factory=list)
    _violations: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, event: AttemptEvent) -> None:
        row = asdict(event)
        row["t"] = row.pop("started_at") - self.origin
        row["error"] = None if event.error is None else str(event.error)
        with self._lock:
            self._attempts.append(row)

    def breaker_transition(self, event: BreakerTransition) -> None:
        row = {
            "t": event.at - self.origin,
            "breaker": event.breaker,
            "from_state": str(event.from_state),
            "to_state": str(event.to_state),
            "reason": event.reason,
            "manual": bool(getattr(event, "manual", False)),
            "generation": getattr(event, "generation", None),
        }
        with self._lock:
            self._transitions.append(row)

    def fault(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._faults.append(row)

    def operation(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._operations.append(row)

    def settle(self, operation_id: str, fields: dict[str, Any], at: float) -> None:
        """The driver's final word on an operation, given in the settle phase."""
        with self._lock:
            for row in self._operations:
                if row["operation_id"] == operation_id:
                    row.update(fields, settled_at=at)
                    return
        raise KeyError(f"the driver settled operation {operation_id!r}, which this run never gave it")

    def operation_ids(self) -> set[str]:
        with self._lock:
            return {row["operation_id"] for row in self._operations}

    def protocol_violation(self, message: str) -> None:
        """The driver broke the driver protocol in a way no operation row can show."""
        with self._lock:
            self._violations.append(message)

    def unsettled(self, detail: str, at: float) -> None:
        """The settle phase failed: every operation still open carries the reason."""
        with self._lock:
            for row in self._operations:
                if row["outcome"] in ("unknown", "parked"):
                    row.update(detail=detail, settled_at=at)

    def build(
        self,
        *,
        meta: dict[str, Any],
        requests: list[dict[str, Any]],
        effects: list[dict[str, Any]],
    ) -> History:
        with self._lock:
            attempts = sorted(self._attempts, key=lambda r: (r["t"], r["attempt"]))
            # Listeners on different threads may deliver transitions out of order; a breaker's
            # generation orders its own transitions exactly.
            transitions = sorted(
                self._transitions, key=lambda r: (r["breaker"], r["generation"] or 0, r["t"])
            )
            faults = list(self._faults)
            operations = sorted(self._operations, key=lambda r: r["planned_at"])
            violations = list(self._violations)
        return History(
            meta={**meta, "protocol_violations": violations},
            attempts=_frame(attempts, "attempts"),
            breaker_events=_frame(transitions, "breaker_events"),
            faults=_frame(faults, "faults"),
            operations=_frame(operations, "operations"),
            requests=_frame(requests, "requests"),
            effects=_frame(effects, "effects"),
        )
