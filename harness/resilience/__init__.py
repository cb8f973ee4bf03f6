"""The reference resilience library: breaker, retry, budget, timeouts, bulkhead, rate limiter, token
cache, fallback, metrics, the error taxonomy, and the resilient HTTP client that composes them, with
named profiles of real systems' settings.

Pure logic: nothing here reads the wall clock or the global random source; pass a
:class:`Clock` and a ``random.Random``.
"""

from harness.resilience._breaker import (
    AUTOMATIC_TRANSITIONS,
    LEGAL_TRANSITIONS,
    MANUAL_TRANSITIONS,
    BreakerState,
    BreakerTransition,
    CircuitBreaker,
    CircuitOpenError,
    IllegalTransitionError,
    Permit,
)
from harness.resilience._breaker_classify import (
    CallOutcome,
    default_exception_outcome,
    default_result_outcome,
    error_class_of,
    outcome_for,
)
from harness.resilience._breaker_config import BreakerConfig, CountWindow, TimeWindow
from harness.resilience._breaker_events import (
    BreakerEvent,
    BreakerReset,
    BreakerSnapshot,
    CallFailed,
    CallIgnored,
    CallRejected,
    CallSucceeded,
    SlowCall,
)
from harness.resilience._breaker_store import BreakerRecord, BreakerStore, LocalBreakerStore
from harness.resilience._budget import BudgetConfig, RetryBudget
from harness.resilience._bulkhead import Bulkhead, BulkheadConfig, Slot
from harness.resilience._client import AsyncResilientClient, CallResult, ClientConfig, ResilientClient
from harness.resilience._clock import (
    Clock,
    SystemClock,
    VirtualClock,
    WallClock,
    wait_event,
    wait_event_async,
    wall_time,
)
from harness.resilience._correlation import CORRELATION_HEADER, new_correlation_id
from harness.resilience._errors import (
    BulkheadFullError,
    ConfigError,
    DeadlineExceededError,
    ErrorClass,
    RateLimitedError,
    RejectedError,
    classify_exception,
    classify_response,
    classify_status,
)
from harness.resilience._fallback import FallbackChain, FallbackResult, FallbackSource
from harness.resilience._metrics import ClientMetrics, OperationStats, percentile
from harness.resilience._profiles import DEFAULT_PROFILE, PROFILES, Profile, get_profile
from harness.resilience._ratelimit import RateLimitConfig, TokenBucket
from harness.resilience._retrier import Retrier
from harness.resilience._retry import (
    Backoff,
    BackoffKind,
    Jitter,
    RetryDecision,
    RetryPolicy,
    RetryPresets,
    RetryRun,
    StopReason,
)
from harness.resilience._signals import RetrySignals, retry_after_seconds, should_retry_header
from harness.resilience._timeouts import Deadline, TimeoutConfig
from harness.resilience._tokens import Token, TokenAuth, TokenCache, TokenFetchError, parse_expires_in

__all__ = [
    "AUTOMATIC_TRANSITIONS",
    "CORRELATION_HEADER",
    "DEFAULT_PROFILE",
    "LEGAL_TRANSITIONS",
    "MANUAL_TRANSITIONS",
    "PROFILES",
    "AsyncResilientClient",
    "Backoff",
    "BackoffKind",
    "BreakerConfig",
    "BreakerEvent",
    "BreakerRecord",
    "BreakerReset",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerStore",
    "BreakerTransition",
    "BudgetConfig",
    "Bulkhead",
    "BulkheadConfig",
    "BulkheadFullError",
    "CallFailed",
    "CallIgnored",
    "CallOutcome",
    "CallRejected",
    "CallResult",
    "CallSucceeded",
    "CircuitBreaker",
    "CircuitOpenError",
    "ClientConfig",
    "ClientMetrics",
    "Clock",
    "ConfigError",
    "CountWindow",
    "Deadline",
    "DeadlineExceededError",
    "ErrorClass",
    "FallbackChain",
    "FallbackResult",
    "FallbackSource",
    "IllegalTransitionError",
    "Jitter",
    "LocalBreakerStore",
    "OperationStats",
    "Permit",
    "Profile",
    "RateLimitConfig",
    "RateLimitedError",
    "RejectedError",
    "ResilientClient",
    "Retrier",
    "RetryBudget",
    "RetryDecision",
    "RetryPolicy",
    "RetryPresets",
    "RetryRun",
    "RetrySignals",
    "Slot",
    "SlowCall",
    "StopReason",
    "SystemClock",
    "TimeWindow",
    "TimeoutConfig",
    "Token",
    "TokenAuth",
    "TokenBucket",
    "TokenCache",
    "TokenFetchError",
    "VirtualClock",
    "WallClock",
    "classify_exception",
    "classify_response",
    "classify_status",
    "default_exception_outcome",
    "default_result_outcome",
    "error_class_of",
    "get_profile",
    "new_correlation_id",
    "outcome_for",
    "parse_expires_in",
    "percentile",
    "retry_after_seconds",
    "should_retry_header",
    "wait_event",
    "wait_event_async",
    "wall_time",
]
