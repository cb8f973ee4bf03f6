"""Run metrics: the numbers a user tunes thresholds by, computed from the history tables only."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.scenario._history import History

__all__ = ["run_metrics"]


def _in_windows(times: pd.Series, faults: pd.DataFrame) -> pd.Series:
    inside = pd.Series(False, index=times.index)
    for start, end in zip(faults["start"], faults["end"], strict=True):
        inside |= (times >= start) & (times < end)
    return inside


def _share(mask: pd.Series, of: pd.Series) -> float | None:
    total = int(of.sum())
    return None if total == 0 else float((mask & of).sum()) / total


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_metrics(history: History) -> dict[str, Any]:
    """Availability in and out of fault windows, wasted calls, detection and recovery times,
    latency percentiles and retry amplification."""
    ops, attempts, faults = history.operations, history.attempts, history.faults
    succeeded = ops["outcome"] == "succeeded"
    in_fault = _in_windows(ops["planned_at"], faults)
    sent = attempts[attempts["outcome"] != "rejected"]
    failed_in_fault = _in_windows(sent["t"], faults) & (sent["outcome"] == "error")
    ok = attempts[attempts["outcome"] == "ok"]
    latency = ok["latency"]

    time_to_detect = None
    time_to_recover = None
    if len(faults):
        first_start, last_end = float(faults["start"].min()), float(faults["end"].max())
        opened = history.breaker_events[
            (history.breaker_events["to_state"] == "open") & (history.breaker_events["t"] >= first_start)
        ]
        if len(opened):
            time_to_detect = float(opened["t"].min()) - first_start
        after = ok[ok["t"] >= last_end]
        if len(after):
            time_to_recover = float(after["t"].min()) - last_end

    metrics: dict[str, Any] = {
        "operations": len(ops),
        "outcomes": {str(k): int(v) for k, v in ops["outcome"].value_counts().items()},
        "availability_in_faults": _share(succeeded, in_fault),
        "availability_outside_faults": _share(succeeded, ~in_fault),
        "attempts_sent": len(sent),
        "attempts_rejected": int((attempts["outcome"] == "rejected").sum()),
        "retry_amplification": None if len(ops) == 0 else len(sent) / len(ops),
        "wasted_calls": int(failed_in_fault.sum()),
        "upstream_requests": len(history.requests),
        "effects": len(history.effects),
        "time_to_detect": time_to_detect,
        "time_to_recover": time_to_recover,
        "latency_p50": None if latency.empty else float(latency.quantile(0.50)),
        "latency_p95": None if latency.empty else float(latency.quantile(0.95)),
        "latency_p99": None if latency.empty else float(latency.quantile(0.99)),
    }
    return {key: _clean(value) for key, value in metrics.items()}
