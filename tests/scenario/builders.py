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
        "dead_letter_id": None,
        "initial_outcome": outcome,
        "settled_at": None,
    }


def effect(operation_id: str | None, t: float = 0.005, kind: str = "charge") -> dict[str, Any]:
    return {
        "t": t,
        "upstream": "stripe",
        "kind": kind,
        "object_id": f"pi_{operation_id}_{t}",
        "operation_id": operation_id,
        "idempotency_key": None,
        "amount": 1000,
        "currency": "usd",
    }


def attempt(
    operation_id: str,
    t: float,
    outcome: str = "ok",
    *,
    latency: float = 0.01,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    return {
        "t": t,
        "upstream": "stripe",
        "action": "charge",
        "operation_id": operation_id,
        "attempt": 1,
        "correlation_id": correlation_id or f"c-{operation_id}",
        "idempotency_key": None,
        "outcome": outcome,
        "error": None,
        "status_code": None,
        "latency": latency,
        "breaker_state": "closed",
    }


def request(operation_id: str | None, t: float, status: int = 200) -> dict[str, Any]:
    return {
        "t": t,
        "upstream": "stripe",
        "method": "POST",
        "path": "/v1/payment_intents",
        "status": status,
        "duration": 0.001,
        "idempotency_key": None,
        "correlation_id": None if operation_id is None else f"c-{operation_id}",
        "replayed": False,
        "fault": None,
    }


def transition(
    t: float, from_state: str, to_state: str, reason: str = "rule", *, manual: bool = False
) -> dict[str, Any]:
    return {
        "t": t,
        "breaker": "stripe",
        "from_state": from_state,
        "to_state": to_state,
        "reason": reason,
        "manual": manual,
        "generation": None,
    }


def fault(start: float, end: float) -> dict[str, Any]:
    return {
        "start": start,
        "end": end,
        "planned_start": start,
        "planned_end": end,
        "target": "stripe",
        "fault": "outage()",
        "kind": "outage",
    }
