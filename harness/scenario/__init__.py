"""Workloads, the scenario runner, the history schema and the invariant checkers."""

from harness.scenario._catalogue import (
    CATALOGUE,
    card_declines,
    response_lost_after_commit,
    upstream_outage,
)
from harness.scenario._checks import (
    DEFINITE_STATUSES,
    EXACTLY_ONCE,
    NON_COMMITTING_KINDS,
    Check,
    CheckResult,
    breaker_stays_closed,
    breaker_transitions_legal,
    dead_letters_converge,
    driver_honours_protocol,
    effects_at_most_once,
    no_calls_while_open,
    no_retry_after_definite_answer,
    nothing_lost,
    recovers_after_faults,
    truthful_outcomes,
)
from harness.scenario._explore import Exploration, ExploreConfig, explore
from harness.scenario._history import TABLES, History, HistoryRecorder
from harness.scenario._metrics import run_metrics
from harness.scenario._runner import RunResult, Scenario, run_scenario
from harness.scenario._sweep import grid, sweep
from harness.scenario._workload import PlannedOperation, Workload

__all__ = [
    "CATALOGUE",
    "DEFINITE_STATUSES",
    "EXACTLY_ONCE",
    "NON_COMMITTING_KINDS",
    "TABLES",
    "Check",
    "CheckResult",
    "Exploration",
    "ExploreConfig",
    "History",
    "HistoryRecorder",
    "PlannedOperation",
    "RunResult",
    "Scenario",
    "Workload",
    "breaker_stays_closed",
    "breaker_transitions_legal",
    "card_declines",
    "dead_letters_converge",
    "driver_honours_protocol",
    "effects_at_most_once",
    "explore",
    "grid",
    "no_calls_while_open",
    "no_retry_after_definite_answer",
    "nothing_lost",
    "recovers_after_faults",
    "response_lost_after_commit",
    "run_metrics",
    "run_scenario",
    "sweep",
    "truthful_outcomes",
    "upstream_outage",
]
