"""Chaos and resilience certification for payment and banking API clients.

The names here are the ones most users need; each subpackage has its own curated API:
:mod:`harness.resilience` (breaker, retry, the reference library), :mod:`harness.chaos` (faults and
schedules), :mod:`harness.stack` (the real Toxiproxy and the fakes), :mod:`harness.scenario` (runner,
history, checks), :mod:`harness.toxiproxy` (the Toxiproxy client), :mod:`harness.plots`,
:mod:`harness.report` and :mod:`harness.drivers`.
"""

from harness._certify import DEFAULT_DRIVER, CertifyConfig, certify
from harness._driver import (
    AttemptEvent,
    Driver,
    DriverFactory,
    DriverLoadError,
    DriverSetup,
    Endpoint,
    EventSink,
    NullEventSink,
    Operation,
    Outcome,
    OutcomeKind,
    SettlingDriver,
    load_driver_factory,
)
from harness.chaos import Fault, FaultSchedule, ScheduledFault
from harness.report import CertificationReport
from harness.scenario import (
    CATALOGUE,
    Check,
    CheckResult,
    History,
    RunResult,
    Scenario,
    Workload,
    run_metrics,
    run_scenario,
)
from harness.stack import Stack, StackConfig

__all__ = [
    "CATALOGUE",
    "DEFAULT_DRIVER",
    "AttemptEvent",
    "CertificationReport",
    "CertifyConfig",
    "Check",
    "CheckResult",
    "Driver",
    "DriverFactory",
    "DriverLoadError",
    "DriverSetup",
    "Endpoint",
    "EventSink",
    "Fault",
    "FaultSchedule",
    "History",
    "NullEventSink",
    "Operation",
    "Outcome",
    "OutcomeKind",
    "RunResult",
    "Scenario",
    "ScheduledFault",
    "SettlingDriver",
    "Stack",
    "StackConfig",
    "Workload",
    "certify",
    "load_driver_factory",
    "run_metrics",
    "run_scenario",
]
