"""Workloads, the scenario runner, the history schema and the invariant checkers."""

from harness.scenario._catalogue import CATALOGUE, response_lost_after_commit
from harness.scenario._checks import Check, CheckResult, effects_at_most_once, truthful_outcomes
from harness.scenario._history import TABLES, History, HistoryRecorder
from harness.scenario._metrics import run_metrics
from harness.scenario._runner import RunResult, Scenario, run_scenario
from harness.scenario._workload import PlannedOperation, Workload

__all__ = [
    "CATALOGUE",
    "TABLES",
    "Check",
    "CheckResult",
    "History",
    "HistoryRecorder",
    "PlannedOperation",
    "RunResult",
    "Scenario",
    "Workload",
    "effects_at_most_once",
    "response_lost_after_commit",
    "run_metrics",
    "run_scenario",
    "truthful_outcomes",
]
