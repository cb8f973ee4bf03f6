"""Durable state for the resilience layer: the idempotency store and the dead-letter queue.

These are the two places where a resilience layer can lose money (an operation applied twice) or
lose work (an operation dropped), so both rest on the database's own atomicity, never on a read in
Python followed by a write, and both are proved against process kills and races (``tests/stores``).

Backends, one contract (the same test suite runs against each)::

    SQLiteBackend.in_folder(run_dir)       default: one WAL file, survives SIGKILL
    RedisBackend.from_url(url, namespace)  several processes or hosts sharing state
    MemoryBackend()                        unit tests

Idempotency::

    store = IdempotencyStore(backend, clock=clock)
    key = derive_key(operation="charge", provider="stripe", tenant="t1", payload=body)
    result = store.with_idempotency(key, lambda: charge(body), payload=body)
    result.value, result.replayed

Dead letters, and the settle phase that replays them::

    dlq = DeadLetterQueue(backend, clock=clock)
    entry = dlq.park(WorkItem(operation_id=..., operation="charge", provider="stripe", payload=body),
                     error=exc, attempts=3)
    report = dlq.requeue_many(replay_handler)   # success resolves, failure counts an attempt

A circuit breaker shared by processes or hosts keeps its state in Redis too::

    breaker = RedisBreakerStore.from_url(url, "stripe", config, clock=UnixClock()).breaker()

Every store takes an injected :class:`~harness.resilience.Clock` (``VirtualClock`` in tests);
:class:`UnixClock` is for stores that must outlive a reboot or span hosts.
"""

from harness.stores._analysis import ErrorCount, FailureGroup, FailurePatterns, analyse_failures
from harness.stores._backend import StoreBackend
from harness.stores._clock import UnixClock
from harness.stores._dead_letters import (
    LEGAL_DEAD_LETTER_TRANSITIONS,
    DeadLetterConfig,
    DeadLetterQueue,
    DeadLetterStats,
    ReplayHandler,
    ReplayOutcome,
    RequeueReport,
)
from harness.stores._errors import (
    DeadLetterNotFoundError,
    DeadLetterTransitionError,
    ExecutorClosedError,
    FingerprintMismatchError,
    InvalidKeyError,
    InvalidPayloadError,
    KeyInProgressError,
    LeaseLostError,
    PayloadNotSerializableError,
    PayloadTooLargeError,
    SchemaVersionError,
    StoredFailureError,
    StoreError,
)
from harness.stores._export import DEAD_LETTER_COLUMNS
from harness.stores._idempotency import (
    DefiniteFailure,
    IdempotencyConfig,
    IdempotencyStore,
    InProgressPolicy,
    default_is_definite,
)
from harness.stores._json import DEFAULT_MAX_PAYLOAD_BYTES, JSONValue, fingerprint
from harness.stores._keys import MAX_KEY_LENGTH, derive_key, validate_key
from harness.stores._memory import MemoryBackend
from harness.stores._model import (
    DeadLetter,
    DeadLetterFilter,
    DeadLetterStatus,
    ErrorInfo,
    IdempotencyRecord,
    IdempotencyStats,
    IdempotentResult,
    Lease,
    RecordState,
    WorkItem,
)
from harness.stores._redis import RedisBackend
from harness.stores._redis_breaker import (
    BreakerConfigMismatchError,
    BreakerStoreContentionError,
    BreakerStoreError,
    BreakerStoreUnavailableError,
    BreakerTimeBaseError,
    RedisBreakerStore,
    time_base_of,
)
from harness.stores._redis_server import RedisServer, RedisServerNotFound, find_redis_server
from harness.stores._shutdown import LateCompletion, ParkedError, ParkingExecutor, ShutdownReport
from harness.stores._sqlite import SCHEMA_VERSION, SQLiteBackend

__all__ = [
    "DEAD_LETTER_COLUMNS",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "LEGAL_DEAD_LETTER_TRANSITIONS",
    "MAX_KEY_LENGTH",
    "SCHEMA_VERSION",
    "BreakerConfigMismatchError",
    "BreakerStoreContentionError",
    "BreakerStoreError",
    "BreakerStoreUnavailableError",
    "BreakerTimeBaseError",
    "DeadLetter",
    "DeadLetterConfig",
    "DeadLetterFilter",
    "DeadLetterNotFoundError",
    "DeadLetterQueue",
    "DeadLetterStats",
    "DeadLetterStatus",
    "DeadLetterTransitionError",
    "DefiniteFailure",
    "ErrorCount",
    "ErrorInfo",
    "ExecutorClosedError",
    "FailureGroup",
    "FailurePatterns",
    "FingerprintMismatchError",
    "IdempotencyConfig",
    "IdempotencyRecord",
    "IdempotencyStats",
    "IdempotencyStore",
    "IdempotentResult",
    "InProgressPolicy",
    "InvalidKeyError",
    "InvalidPayloadError",
    "JSONValue",
    "KeyInProgressError",
    "LateCompletion",
    "Lease",
    "LeaseLostError",
    "MemoryBackend",
    "ParkedError",
    "ParkingExecutor",
    "PayloadNotSerializableError",
    "PayloadTooLargeError",
    "RecordState",
    "RedisBackend",
    "RedisBreakerStore",
    "RedisServer",
    "RedisServerNotFound",
    "ReplayHandler",
    "ReplayOutcome",
    "RequeueReport",
    "SQLiteBackend",
    "SchemaVersionError",
    "ShutdownReport",
    "StoreBackend",
    "StoreError",
    "StoredFailureError",
    "UnixClock",
    "WorkItem",
    "analyse_failures",
    "default_is_definite",
    "derive_key",
    "find_redis_server",
    "fingerprint",
    "time_base_of",
    "validate_key",
]
