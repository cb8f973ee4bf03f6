"""One fault vocabulary, fault schedules, and the backends that realise them.

Network faults (:class:`ResponseLoss`, :class:`ConnectionReset`, :class:`Latency`, :class:`Blackhole`,
:class:`Outage`) are realised by Toxiproxy; HTTP faults (:class:`HttpFault` and its kinds) by the fake
upstreams themselves; :class:`StackFaults` dispatches both on a running stack.
"""

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
from harness.chaos._http_faults import (
    HTTP_FAULT_KINDS,
    CallbackDelay,
    CallbackDrop,
    CallbackDuplicate,
    CommitThenFail,
    HttpError,
    HttpFault,
    MalformedBody,
    ServerDelay,
    Throttle,
    TokenRevocation,
    WrongContentType,
)
from harness.chaos._schedule import FaultSchedule, ScheduledFault
from harness.chaos._stack_backend import AdminFaults, FaultAdmin, FaultTargets, StackFaults
from harness.chaos._strategies import callback_faults, fault_schedules, faults, http_faults
from harness.chaos._toxiproxy_backend import ActiveFault, ToxiproxyFaults, toxics_for

__all__ = [
    "FAULT_KINDS",
    "HTTP_FAULT_KINDS",
    "ActiveFault",
    "AdminFaults",
    "Blackhole",
    "CallbackDelay",
    "CallbackDrop",
    "CallbackDuplicate",
    "CommitThenFail",
    "ConnectionReset",
    "Fault",
    "FaultAdmin",
    "FaultSchedule",
    "FaultTargets",
    "HttpError",
    "HttpFault",
    "Latency",
    "MalformedBody",
    "Outage",
    "ResponseLoss",
    "ScheduledFault",
    "ServerDelay",
    "StackFaults",
    "Throttle",
    "TokenRevocation",
    "ToxiproxyFaults",
    "WrongContentType",
    "callback_faults",
    "fault_from_json",
    "fault_schedules",
    "faults",
    "http_faults",
    "toxics_for",
]
