"""Start the real Toxiproxy and the fake upstreams as child processes, and tear them down."""

from harness.stack._admin import UpstreamAdmin, UpstreamAdminError
from harness.stack._process import ChildProcess, ProcessStartError, wait_until
from harness.stack._stack import (
    KNOWN_UPSTREAMS,
    RunningUpstream,
    Stack,
    StackConfig,
    ToxiproxyNotFound,
    find_toxiproxy_server,
)

__all__ = [
    "KNOWN_UPSTREAMS",
    "ChildProcess",
    "ProcessStartError",
    "RunningUpstream",
    "Stack",
    "StackConfig",
    "ToxiproxyNotFound",
    "UpstreamAdmin",
    "UpstreamAdminError",
    "find_toxiproxy_server",
    "wait_until",
]
