"""The reference resilience library: breaker, retry, error taxonomy, injected time.

Pure logic: nothing here reads the wall clock or the global random source; pass a
:class:`Clock` and a ``random.Random``.
"""

from harness.resilience._breaker import (
    LEGAL_TRANSITIONS,
    BreakerConfig,
    BreakerState,
    BreakerTransition,
    CircuitBreaker,
    CircuitOpenError,
    Permit,
)
from harness.resilience._clock import Clock, SystemClock, VirtualClock
from harness.resilience._errors import ErrorClass, classify_exception, classify_status
from harness.resilience._retry import Backoff, Jitter, RetryPolicy

__all__ = [
    "LEGAL_TRANSITIONS",
    "Backoff",
    "BreakerConfig",
    "BreakerState",
    "BreakerTransition",
    "CircuitBreaker",
    "CircuitOpenError",
    "Clock",
    "ErrorClass",
    "Jitter",
    "Permit",
    "RetryPolicy",
    "SystemClock",
    "VirtualClock",
    "classify_exception",
    "classify_status",
]
