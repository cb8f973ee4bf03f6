"""Fault schedules: a timeline of faults, each with a start, a duration and a target upstream."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.chaos._faults import Fault, fault_from_json

__all__ = ["FaultSchedule", "ScheduledFault"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduledFault:
    start: float
    duration: float
    target: str
    fault: Fault

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and self.start >= 0):
            raise ValueError(f"a fault's start must be >= 0 seconds, got {self.start!r}")
        if not (math.isfinite(self.duration) and self.duration > 0):
            raise ValueError(f"a fault's duration must be > 0 seconds, got {self.duration!r}")
        if not self.target:
            raise ValueError("a fault needs a target upstream, e.g. target='stripe'")

    @property
    def end(self) -> float:
        return self.start + self.duration

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "duration": self.duration,
            "target": self.target,
            "fault": self.fault.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScheduledFault:
        return cls(
            start=float(data["start"]),
            duration=float(data["duration"]),
            target=str(data["target"]),
            fault=fault_from_json(dict(data["fault"])),
        )


@dataclass(frozen=True, slots=True)
class FaultSchedule:
    faults: tuple[ScheduledFault, ...] = ()

    @classmethod
    def of(cls, faults: Iterable[ScheduledFault]) -> FaultSchedule:
        return cls(tuple(sorted(faults, key=lambda f: (f.start, f.end, f.target))))

    @property
    def end(self) -> float:
        return max((f.end for f in self.faults), default=0.0)

    def targets(self) -> set[str]:
        return {f.target for f in self.faults}

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "faults": [f.to_json() for f in self.faults]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultSchedule:
        if not isinstance(data.get("faults"), list):
            # A user's file with the wrong content: a value error, not a programming error.
            raise ValueError('a fault schedule is a JSON object {"version": 1, "faults": [...]}')  # noqa: TRY004
        return cls.of(ScheduledFault.from_json(item) for item in data["faults"])

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> FaultSchedule:
        return cls.from_json(json.loads(path.read_text()))

    def __len__(self) -> int:
        return len(self.faults)
