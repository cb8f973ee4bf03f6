"""One fault vocabulary, fault schedules, and the backends that realise them."""

from harness.chaos._faults import (
    FAULT_KINDS,
    Blackhole,
    ConnectionReset,
    Fault,
    Latency,
    Outage,
    ResponseLoss,
    fault_from_json,
)
from harness.chaos._schedule import FaultSchedule, ScheduledFault
from harness.chaos._strategies import fault_schedules, faults
from harness.chaos._toxiproxy_backend import ActiveFault, ToxiproxyFaults, toxics_for

__all__ = [
    "FAULT_KINDS",
    "ActiveFault",
    "Blackhole",
    "ConnectionReset",
    "Fault",
    "FaultSchedule",
    "Latency",
    "Outage",
    "ResponseLoss",
    "ScheduledFault",
    "ToxiproxyFaults",
    "fault_from_json",
    "fault_schedules",
    "faults",
    "toxics_for",
]
