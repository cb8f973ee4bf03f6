"""Builders of small synthetic histories for checker and metrics tests."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.scenario import TABLES, History


def build_history(**tables: list[dict[str, Any]]) -> History:
    frames = {name: pd.DataFrame(tables.get(name, []), columns=columns) for name, columns in TABLES.items()}
    return History(meta={"run_id": "synthetic", "scenario": "synthetic", "duration": 3.0}, **frames)


def op(operation_id: str, outcome: str, planned_at: float = 0.0) -> dict[str, Any]:
    return {
        "operation_id": operation_id,
        "upstream": "stripe",
        "action": "charge",
        "amount": 1000,
        "planned_at": planned_at,
        "started": planned_at,
        "ended": planned_at + 0.01,
        "outcome": outcome,
        "reference": None,
        "error": None,
        "detail": "",
    }


def effect(operation_id: str | None, t: float = 0.005) -> dict[str, Any]:
    return {
        "t": t,
        "upstream": "stripe",
        "kind": "charge",
        "object_id": f"pi_{operation_id}_{t}",
        "operation_id": operation_id,
        "idempotency_key": None,
        "amount": 1000,
        "currency": "usd",
    }
