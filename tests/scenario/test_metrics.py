from __future__ import annotations

from typing import Any

from harness.scenario import run_metrics
from tests.scenario.builders import build_history, effect, op


def _attempt(operation_id: str, t: float, outcome: str, error: str | None = None) -> dict[str, Any]:
    return {
        "t": t,
        "upstream": "stripe",
        "action": "charge",
        "operation_id": operation_id,
        "attempt": 1,
        "correlation_id": None,
        "idempotency_key": None,
        "outcome": outcome,
        "error": error,
        "status_code": None,
        "latency": 0.01,
        "breaker_state": "closed",
    }


def test_metrics_split_availability_by_fault_window() -> None:
    history = build_history(
        operations=[op("a", "succeeded", 0.0), op("b", "unknown", 1.0), op("c", "succeeded", 2.5)],
        attempts=[
            _attempt("a", 0.0, "ok"),
            _attempt("b", 1.0, "error", "reset"),
            _attempt("b", 1.1, "rejected", "rejected"),
            _attempt("c", 2.5, "ok"),
        ],
        faults=[
            {
                "start": 0.5,
                "end": 2.0,
                "planned_start": 0.5,
                "planned_end": 2.0,
                "target": "stripe",
                "fault": "response_loss()",
                "kind": "response_loss",
            }
        ],
        breaker_events=[
            {"t": 1.05, "breaker": "stripe", "from_state": "closed", "to_state": "open", "reason": "x"}
        ],
        effects=[effect("a"), effect("b", 1.0), effect("c", 2.5)],
    )

    metrics = run_metrics(history)

    assert metrics["availability_in_faults"] == 0.0
    assert metrics["availability_outside_faults"] == 1.0
    assert metrics["attempts_sent"] == 3
    assert metrics["attempts_rejected"] == 1
    assert metrics["retry_amplification"] == 1.0
    assert metrics["wasted_calls"] == 1
    assert metrics["time_to_detect"] == 1.05 - 0.5
    assert metrics["time_to_recover"] == 0.5


def test_metrics_of_an_empty_run_are_none_not_nan() -> None:
    metrics = run_metrics(build_history())

    assert metrics["availability_in_faults"] is None
    assert metrics["latency_p50"] is None
    assert metrics["retry_amplification"] is None
