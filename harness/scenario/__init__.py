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
from harness.scenario._checks_outcomes import every_operation_succeeds, no_premature_success
from harness.scenario._checks_retry import retries_honour_retry_after, retry_amplification_within
from harness.scenario._checks_tokens import (
    TOKEN_CHECKS,
    no_invalid_token_loop,
    token_refresh_single_flight,
)
from harness.scenario._explore import Exploration, ExploreConfig, explore
from harness.scenario._history import TABLES, History, HistoryRecorder
from harness.scenario._metrics import run_metrics
from harness.scenario._runner import RunResult, Scenario, run_scenario
from harness.scenario._scenarios_cbs import (
    approve_pending_commands,
    close_of_business_lock,
    maker_checker_approval,
    repayment_commit_then_fail,
)
from harness.scenario._scenarios_mpesa import (
    stk_callbacks_lost,
    stk_push_answer_and_callback_lost,
    stk_push_answer_lost,
    token_revoked,
)
from harness.scenario._scenarios_stripe import rate_limited
from harness.scenario._settings import UpstreamSettings
from harness.scenario._sweep import grid, sweep
from harness.scenario._workload import PlannedOperation, Workload

__all__ = [
    "CATALOGUE",
    "DEFINITE_STATUSES",
    "EXACTLY_ONCE",
    "NON_COMMITTING_KINDS",
    "TABLES",
    "TOKEN_CHECKS",
    "Check",
    "CheckResult",
    "Exploration",
    "ExploreConfig",
    "History",
    "HistoryRecorder",
    "PlannedOperation",
    "RunResult",
    "Scenario",
    "UpstreamSettings",
    "Workload",
    "approve_pending_commands",
    "breaker_stays_closed",
    "breaker_transitions_legal",
    "card_declines",
    "close_of_business_lock",
    "dead_letters_converge",
    "driver_honours_protocol",
    "effects_at_most_once",
    "every_operation_succeeds",
    "explore",
    "grid",
    "maker_checker_approval",
    "no_calls_while_open",
    "no_invalid_token_loop",
    "no_premature_success",
    "no_retry_after_definite_answer",
    "nothing_lost",
    "rate_limited",
    "recovers_after_faults",
    "repayment_commit_then_fail",
    "response_lost_after_commit",
    "retries_honour_retry_after",
    "retry_amplification_within",
    "run_metrics",
    "run_scenario",
    "stk_callbacks_lost",
    "stk_push_answer_and_callback_lost",
    "stk_push_answer_lost",
    "sweep",
    "token_refresh_single_flight",
    "token_revoked",
    "truthful_outcomes",
    "upstream_outage",
]
