"""Circuit-breaker state shared by many processes, or hosts, through Redis: :class:`RedisBreakerStore`.

A breaker per process learns about a failing upstream once per process; one shared breaker learns
it once for the fleet and probes it with the configured number of probes, not that many per
process. The breaker stays :class:`~harness.resilience.CircuitBreaker`; only its store changes::

    store = RedisBreakerStore.from_url(url, "stripe", config, clock=UnixClock())
    breaker = store.breaker()      # CircuitBreaker("stripe", config, clock=..., store=store)

**Atomicity: optimistic, with the rules left in Python.** Each operation loads the record
(``BreakerRecord.from_dict``), runs the breaker's own rule function on it, and writes it back
(``to_dict``) only if nobody wrote in between: a ten-line Lua compare-and-set on a version. On a
conflict the script answers with the current record and the operation simply runs again (the
operations are pure functions of the record and their arguments, so that is safe), at most
``max_attempts`` times. Not the whole state machine in Lua: that would be a second copy of
:mod:`harness.resilience._breaker_machine` to keep in step with the first, where this way the local
and the shared breaker run the very same rules (the tests run both side by side and compare them).
Not ``WATCH``/``MULTI``/``EXEC``: that costs three round trips per write (WATCH, GET, MULTI..EXEC)
with a connection pinned throughout, and a conflict costs another read; the script is one round
trip and answers a conflict with the fresh record.

Round trips and conflicts. ``peek`` (on every call) is one ``HMGET``; what it read, or what this
process last wrote, is the starting guess of the next operation, which then costs one round trip if
the guess still holds (a stale guess is caught by the version check, never trusted). The operations
of one process queue on a lock instead of racing each other in Redis, so only other processes'
writes can conflict. An operation that changes nothing is confirmed, not written: a refusal only
bumps a counter kept beside the record, and a success in a healthy closed breaker (its window all
successes) leaves the record as it was, so neither a herd of refused callers nor the healthy traffic
of many processes conflicts with itself, and a call through a closed breaker costs two round trips
(``bench/bench_breaker_store.py``). Writes that do change the record (failures, transitions) are
serialised on its one key, at about one per round trip for the whole fleet. Every write carries a
token of its writer and the last few tokens stay in the hash: when redis-py re-sends a write whose
reply was lost, the store recognises its own write instead of applying the operation twice.

**Time.** The record holds times from the breaker's clock (when it opened, until when), so every
process sharing it must read the same time base, which the hash records and every process checks
when it attaches: :class:`~harness.resilience.SystemClock` reads ``CLOCK_MONOTONIC``, which is shared
by the processes of one machine during one boot (recorded with the boot id); processes on several
hosts need Unix time (:class:`~harness.stores.UnixClock`), and then each process also checks its
clock against the Redis server's ``TIME`` (``max_clock_skew``). A
:class:`~harness.resilience.VirtualClock` is private to its process. Another clock must name its
time base (``time_base=``). A process on another time base is refused with
:class:`BreakerTimeBaseError`.

**Config.** The first process to create the record stores its config; a process that attaches with
a different one is refused (:class:`BreakerConfigMismatchError`, naming the differing fields). A
precedence rule would make the breaker's behaviour depend on which process happened to run each
operation (a threshold of 3 here and 5 there), and a different window could not even read the
record. To change the config, roll it out under a new name or namespace, or :meth:`delete` the
record once no old process is left. ``max_half_open_duration`` is required: a process that dies
holding a probe permit would otherwise keep the breaker half-open, refusing every process, forever.

**Redis unavailable: fail closed before the call, never after it.** If the state cannot be read or
written before a call (``peek``, admission, snapshots, manual moves), the call is refused with
:class:`BreakerStoreUnavailableError`, a :class:`~harness.resilience.CircuitOpenError` (error class
REJECTED), so every caller that handles an open breaker, the reference client included, treats it
as a call that was never sent. For a payment client that is the right side to fail on: a refused
payment is definitely not made and can be retried or parked; failing open would send every
process's traffic, unjudged, into an upstream that may be failing, where each call risks a charge
whose outcome is unknown and must be reconciled. The price is that Redis joins the payment path;
a caller who prefers availability can catch this error and call without the breaker. After the
call, the outcome is recorded if possible and otherwise dropped (counted in :attr:`lost_outcomes`,
logged once per outage): an error raised there would hide the result of a payment that was made,
or the exception of one that failed. The store tells the two kinds of operation apart by name
(``settle``, ``record_plain_success``, ``fold`` run after a call), as the store interface does not
say.

**Lost state.** If the record disappears (a restart without persistence, an eviction, a flush), the
next operation creates a new CLOSED record and logs a warning. Run Redis with an append-only file
for state that survives restarts, and with a ``noeviction`` or ``volatile-*`` policy (the record
has no TTL). Each record is one hash and each script touches only it, so Redis Cluster works too.

Layout: ``<namespace>:breaker:<name>``, a hash of ``record`` (JSON), ``gate`` (``"<state>
<generation>"``), ``ver`` (``"<incarnation>:<n>"``, the incarnation being the server time at
creation), ``refused`` (refusals not yet in the record's JSON), ``w`` (recent writer tokens),
``writers`` (a counter handing out writer ids), ``config``, ``time_base`` and ``schema``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple, cast

from harness.resilience import (
    BreakerConfig,
    BreakerRecord,
    BreakerState,
    BreakerTransition,
    CallOutcome,
    CircuitBreaker,
    CircuitOpenError,
    Clock,
    ConfigError,
    SystemClock,
    VirtualClock,
)
from harness.stores._checks import is_finite_number, is_int_at_least, is_nonempty_str
from harness.stores._clock import UnixClock
from harness.stores._errors import SchemaVersionError, StoreError
from harness.stores._keys import validate_key

if TYPE_CHECKING:
    import redis

__all__ = [
    "BreakerConfigMismatchError",
    "BreakerStoreContentionError",
    "BreakerStoreError",
    "BreakerStoreUnavailableError",
    "BreakerTimeBaseError",
    "RedisBreakerStore",
    "time_base_of",
]

Ts = TypeVarTuple("Ts")
R = TypeVar("R")

_log = logging.getLogger(__name__)

_SCHEMA = "1"
_RECENT_WRITERS = 8
_AFTER_CALL: dict[str, object] = {"settle": (), "record_plain_success": None, "fold": None}
"""Operations that record how a call ended, and what each returns when nothing could be recorded."""

# KEYS: the breaker's hash. ARGV: initial record, its gate, config, time base, schema.
_ATTACH = """
local created = 0
local now = redis.call('TIME')
if redis.call('EXISTS', KEYS[1]) == 0 then
  local incarnation = now[1] .. string.format('%06d', tonumber(now[2]))
  redis.call('HSET', KEYS[1], 'record', ARGV[1], 'gate', ARGV[2], 'ver', incarnation .. ':0', 'w', '',
             'config', ARGV[3], 'time_base', ARGV[4], 'schema', ARGV[5])
  created = 1
end
local writer = redis.call('HINCRBY', KEYS[1], 'writers', 1)
local cur = redis.call('HMGET', KEYS[1], 'config', 'time_base', 'schema', 'ver')
return {created, writer, cur[1], cur[2], cur[3], cur[4], now[1], now[2]}
"""

_INCARNATION = """
local function incarnation(ver)
  return string.sub(ver, 1, string.find(ver, ':', 1, true))
end
"""

# KEYS: the breaker's hash. ARGV: expected version, new record, new gate, writer token.
# Replies: {1, new version} written; {2} this token's write had already landed (a re-sent request);
# {0, version, record, refused} somebody else wrote first; {-1} the record is gone.
_WRITE = (
    _INCARNATION
    + """
local cur = redis.call('HMGET', KEYS[1], 'ver', 'w', 'record', 'refused')
if not cur[1] then return {-1} end
if cur[1] ~= ARGV[1] then
  if incarnation(cur[1]) == incarnation(ARGV[1])
     and string.find(' ' .. cur[2] .. ' ', ' ' .. ARGV[4] .. ' ', 1, true) then
    return {2}
  end
  return {0, cur[1], cur[3], cur[4]}
end
local sep = string.find(ARGV[1], ':', 1, true)
local ver = string.sub(ARGV[1], 1, sep) .. string.format('%d', tonumber(string.sub(ARGV[1], sep + 1)) + 1)
local kept = {ARGV[4]}
for token in string.gmatch(cur[2], '%S+') do
  if #kept >= """
    + str(_RECENT_WRITERS)
    + """ then break end
  kept[#kept + 1] = token
end
redis.call('HSET', KEYS[1], 'record', ARGV[2], 'gate', ARGV[3], 'ver', ver, 'w', table.concat(kept, ' '))
return {1, ver}
"""
)

# KEYS: the breaker's hash. ARGV: expected version, refusals to add, expected refusals ('' = any).
# Confirms that an operation ran on the current record; adds its refusals without a new version.
# Replies: {1} confirmed; {0, version, record, refused} the record changed; {-1} the record is gone.
_CONFIRM = """
local cur = redis.call('HMGET', KEYS[1], 'ver', 'record', 'refused')
if not cur[1] then return {-1} end
if cur[1] ~= ARGV[1] or (ARGV[3] ~= '' and (cur[3] or '0') ~= ARGV[3]) then
  return {0, cur[1], cur[2], cur[3]}
end
if tonumber(ARGV[2]) > 0 then redis.call('HINCRBY', KEYS[1], 'refused', ARGV[2]) end
return {1}
"""


class BreakerStoreError(StoreError):
    """Base of the shared breaker store's own errors."""


class BreakerStoreUnavailableError(BreakerStoreError, CircuitOpenError):
    """Redis could not be reached or did not answer, so the breaker refused the call (fails closed).

    A :class:`~harness.resilience.CircuitOpenError` (REJECTED): nothing was sent. ``state`` is OPEN,
    the state the refusal acts as; ``retry_after`` is the store's ``retry_after``.
    """

    def __init__(self, breaker: str, *, cause: BaseException, retry_after: float) -> None:
        super().__init__(breaker, BreakerState.OPEN, retry_after)
        self.args = (
            f"circuit {breaker!r} refuses the call: its shared state in Redis could not be read or"
            f" written ({type(cause).__name__}: {cause}); nothing was sent, try again in {retry_after:g}s",
        )


class BreakerStoreContentionError(BreakerStoreError, CircuitOpenError):
    """The shared state was too busy to update in time (conflicting writes, or a long queue)."""

    def __init__(self, breaker: str, *, reason: str, retry_after: float) -> None:
        super().__init__(breaker, BreakerState.OPEN, retry_after)
        self.args = (
            f"circuit {breaker!r} refuses the call: its shared state was too busy to update ({reason});"
            " nothing was sent. If this persists, raise max_attempts or queue_timeout, or share the"
            " breaker among fewer processes",
        )


class BreakerConfigMismatchError(BreakerStoreError, ConfigError):
    """The shared record was created with another config; this process may not use it."""

    def __init__(self, breaker: str, key: str, differences: Sequence[str]) -> None:
        super().__init__(
            f"breaker {breaker!r} is shared through Redis key {key!r} with a different config ("
            + "; ".join(differences)
            + "). Every process sharing a breaker must use the same config: fix this process's"
            " config, or roll the new config out under a new breaker name or namespace (or delete the"
            " shared record once no process uses the old one)"
        )
        self.differences = tuple(differences)


class BreakerTimeBaseError(BreakerStoreError, ConfigError):
    """This process's clock cannot be compared with the times in the shared record."""


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _opt_text(value: object) -> str | None:
    return None if value is None else _text(value)


@functools.cache
def _boot_id() -> str:
    """This machine's current boot: CLOCK_MONOTONIC readings are comparable exactly within it."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux: the host name is the best guess there is
        return "host:" + socket.gethostname()


def time_base_of(clock: Clock) -> str | None:
    """What ``clock.now()`` counts from, for the clocks this module knows; ``None`` for others."""
    if isinstance(clock, UnixClock):
        return "unix"
    if isinstance(clock, SystemClock):
        return f"monotonic@{_boot_id()}"
    if isinstance(clock, VirtualClock):
        return f"virtual@{socket.gethostname()}:{os.getpid()}:{id(clock):x}"
    return None


def _config_text(config: BreakerConfig) -> str:
    """The config as canonical JSON, for comparing the configs of processes sharing a breaker."""
    data = dataclasses.asdict(config)
    data["window"] = {"kind": type(config.window).__name__, **data["window"]}
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _differences(stored: str, ours: str) -> list[str]:
    theirs, mine = json.loads(stored), json.loads(ours)
    return [
        f"{name}: {theirs.get(name)!r} in Redis, {mine.get(name)!r} here"
        for name in sorted(set(theirs) | set(mine))
        if theirs.get(name) != mine.get(name)
    ]


def _encode(record: dict[str, Any]) -> str:
    """The record's JSON, with a count window whose slots are all alike put in one canonical form.

    Such a ring is the same ring whichever slot comes next, so a success recorded in a closed breaker
    whose window holds only successes (the healthy path) leaves the text unchanged: it is confirmed
    instead of written, and healthy calls from many processes do not conflict with each other.
    """
    window = record["window"]
    if window["kind"] == "count" and len(set(window["outcomes"])) <= 1:
        record["window"] = {**window, "next": 0}
    return json.dumps(record, separators=(",", ":"))


def _incarnation(version: str) -> str:
    return version.partition(":")[0]


@dataclasses.dataclass(frozen=True, slots=True)
class _Seen:
    """One consistent reading of the hash: a version, the record's JSON and the refusals beside it."""

    version: str
    record: str
    refused: int

    def newer_than(self, other: _Seen | None) -> bool:
        if other is None:
            return True
        incarnation, _, count = self.version.partition(":")
        other_incarnation, _, other_count = other.version.partition(":")
        return incarnation != other_incarnation or int(count) > int(other_count)


class RedisBreakerStore:
    """One breaker's record in a Redis hash, shared by every process that opens the same key.

    ``name`` and ``config`` must be the breaker's own (:meth:`breaker` builds it from them), ``clock``
    is the breaker's clock (it dates a record this store creates, and says the time base).
    ``max_attempts`` bounds the re-runs of an operation that keeps conflicting with other processes'
    writes; ``queue_timeout`` bounds the wait behind this process's other operations on the breaker
    (with a hung Redis they would otherwise time out one after another). Either running out counts
    as the store being unavailable: the call is refused, or after a call its outcome is dropped.
    """

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        config: BreakerConfig,
        *,
        clock: Clock,
        namespace: str = "harness",
        time_base: str | None = None,
        max_attempts: int = 64,
        queue_timeout: float = 2.0,
        retry_after: float = 1.0,
        max_clock_skew: float | None = 5.0,
    ) -> None:
        from redis.exceptions import RedisError

        validate_key(name, what="breaker name")
        if not is_nonempty_str(namespace) or any(c.isspace() for c in namespace):
            raise ValueError(f"namespace must be a non-empty str without spaces, got {namespace!r}")
        if not isinstance(config, BreakerConfig):
            raise TypeError(f"config must be a BreakerConfig, got {type(config).__name__}")
        if config.max_half_open_duration is None:
            raise ConfigError(
                "BreakerConfig.max_half_open_duration must be set for a breaker shared through Redis: a"
                " process that dies holding a probe permit would otherwise keep the breaker half-open,"
                " refusing every process, for ever; set it to a few times the upstream's timeout"
            )
        if not is_int_at_least(max_attempts, 1):
            raise ValueError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        if not (is_finite_number(queue_timeout) and queue_timeout > 0):
            raise ValueError(f"queue_timeout must be a finite number of seconds > 0, got {queue_timeout!r}")
        if not (is_finite_number(retry_after) and retry_after > 0):
            raise ValueError(f"retry_after must be a finite number of seconds > 0, got {retry_after!r}")
        if max_clock_skew is not None and not (is_finite_number(max_clock_skew) and max_clock_skew > 0):
            raise ValueError(
                f"max_clock_skew must be seconds > 0, or None not to check; got {max_clock_skew!r}"
            )
        base = time_base if time_base is not None else time_base_of(clock)
        if base is None:
            raise ConfigError(
                f"cannot tell what time base {clock!r} counts from; pass time_base= naming it (every"
                " process sharing the breaker must pass the same), or use SystemClock (one machine) or"
                " harness.stores.UnixClock (several hosts)"
            )
        if not is_nonempty_str(base) or any(c.isspace() for c in base):
            raise ValueError(f"time_base must be a non-empty str without spaces, got {base!r}")
        self.client = client
        self.name = name
        self.config = config
        self.clock = clock
        self.namespace = namespace
        self.time_base = base
        self.max_attempts = max_attempts
        self.queue_timeout = float(queue_timeout)
        self.retry_after = float(retry_after)
        self.max_clock_skew = max_clock_skew
        self.key = f"{namespace}:breaker:{name}"
        self.lost_outcomes = 0
        """Outcomes of calls that could not be recorded (Redis unavailable or too contended)."""
        self._config_text = _config_text(config)
        self._redis_error = RedisError
        self._owns_client = False
        self._attach_script = client.register_script(_ATTACH)
        self._write_script = client.register_script(_WRITE)
        self._confirm_script = client.register_script(_CONFIRM)
        self._lock = threading.Lock()
        self._queue = threading.Lock()
        self._seen: _Seen | None = None
        """The last reading or write of this process: the starting guess of its next operation."""
        self._incarnation: str | None = None
        self._born = clock.now()
        """When the record this store may create is dated: now, as the in-process store dates its own."""
        self._writer = ""
        self._writes = itertools.count(1)
        self._degraded = False

    @classmethod
    def from_url(
        cls,
        url: str,
        name: str,
        config: BreakerConfig,
        *,
        clock: Clock,
        namespace: str = "harness",
        time_base: str | None = None,
        timeout: float = 1.0,
        max_attempts: int = 64,
        queue_timeout: float | None = None,
        retry_after: float = 1.0,
        max_clock_skew: float | None = 5.0,
    ) -> RedisBreakerStore:
        """Connect to ``redis://host:port/db`` with timeouts fit for a call path.

        ``timeout`` bounds each connect and each reply; redis-py then tries once more on a fresh
        connection (which also carries a pooled connection across a Redis restart), so a dead or
        silent Redis refuses a call after about twice ``timeout``, which is also the default
        ``queue_timeout``.
        """
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        if not (is_finite_number(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
        )
        try:
            store = cls(
                client,
                name,
                config,
                clock=clock,
                namespace=namespace,
                time_base=time_base,
                max_attempts=max_attempts,
                queue_timeout=2 * timeout if queue_timeout is None else queue_timeout,
                retry_after=retry_after,
                max_clock_skew=max_clock_skew,
            )
        except BaseException:
            client.close()
            raise
        store._owns_client = True
        return store

    def breaker(
        self,
        *,
        listeners: Sequence[Callable[[BreakerTransition], None]] = (),
        classify_exception: Callable[[BaseException], CallOutcome] | None = None,
        classify_result: Callable[[Any], CallOutcome] | None = None,
    ) -> CircuitBreaker:
        """The breaker this store belongs to, built from the store's own name, config and clock."""
        return CircuitBreaker(
            self.name,
            self.config,
            clock=self.clock,
            listeners=listeners,
            classify_exception=classify_exception,
            classify_result=classify_result,
            store=self,
        )

    def close(self) -> None:
        """Close the Redis client if this store opened it (:meth:`from_url`)."""
        if self._owns_client:
            self.client.close()

    def __repr__(self) -> str:
        return f"RedisBreakerStore(key={self.key!r}, time_base={self.time_base!r})"

    # -- the BreakerStore protocol ------------------------------------------------------------------

    def peek(self) -> tuple[BreakerState, int]:
        """The shared ``(state, generation)``, read from Redis on every call."""
        try:
            gate = self._peek()
        except self._redis_error as exc:
            self._note_outage(exc)
            raise BreakerStoreUnavailableError(self.name, cause=exc, retry_after=self.retry_after) from exc
        if self._degraded:
            self._note_recovery()
        return gate

    def run(self, operation: Callable[[BreakerRecord, *Ts], R], /, *args: *Ts) -> R:
        """Apply ``operation`` to the shared record atomically (re-running it on a conflict)."""
        try:
            result = self._run(operation, args)
        except Exception as exc:
            if not isinstance(exc, self._redis_error | StoreError):
                raise  # the operation itself failed: a bug, not an outage
            name = getattr(operation, "__name__", "")
            if name in _AFTER_CALL:  # the call has happened: never hide its result or its exception
                self._note_lost_outcome(exc)
                return cast(R, _AFTER_CALL[name])
            if isinstance(exc, self._redis_error):  # before a call, a read or a move by hand: refuse
                self._note_outage(exc)
                raise BreakerStoreUnavailableError(
                    self.name, cause=exc, retry_after=self.retry_after
                ) from exc
            raise
        if self._degraded:
            self._note_recovery()
        return result

    # -- attaching ----------------------------------------------------------------------------------

    def attach(self) -> None:
        """Create the shared record, or join it after checking its config and time base.

        Operations attach by themselves; call this at start-up to find a mismatch before the first
        call does. Raises :class:`BreakerConfigMismatchError` or :class:`BreakerTimeBaseError`.
        """
        with self._lock:
            self._attach_locked(None)

    def _ensure_attached(self, version: str | None) -> None:
        """Attach if this store has not, or if ``version`` shows the record was created anew."""
        if self._incarnation is not None and (version is None or _incarnation(version) == self._incarnation):
            return
        with self._lock:
            if self._incarnation is None or (
                version is not None and _incarnation(version) != self._incarnation
            ):
                self._attach_locked(version)

    def _attach_locked(self, seen_version: str | None) -> None:
        # A first record is as old as this store (the in-process store's is as old as its breaker);
        # one created again after the state was lost starts now.
        record = BreakerRecord.initial(
            self.config, self._born if self._incarnation is None else self.clock.now()
        )
        reply = self._attach_script(
            keys=[self.key],
            args=[
                _encode(record.to_dict()),
                f"{record.state} {record.generation}",
                self._config_text,
                self.time_base,
                _SCHEMA,
            ],
        )
        created, writer, stored_config, stored_base, schema, version, seconds, micros = (
            _opt_text(v) for v in reply
        )
        assert version is not None
        assert writer is not None
        if schema != _SCHEMA:
            raise SchemaVersionError(
                f"breaker record {self.key!r} has schema {schema!r}; this code knows schema {_SCHEMA!r}:"
                " upgrade the harness in this process"
            )
        if stored_base != self.time_base:
            raise BreakerTimeBaseError(
                f"breaker {self.name!r} is shared through Redis key {self.key!r} with times on time base"
                f" {stored_base!r}, but this process's clock counts on {self.time_base!r}; every process"
                " sharing a breaker needs one time base: SystemClock serves the processes of one machine,"
                " harness.stores.UnixClock serves several hosts"
            )
        if stored_config != self._config_text:
            assert stored_config is not None
            raise BreakerConfigMismatchError(
                self.name, self.key, _differences(stored_config, self._config_text)
            )
        if self.time_base == "unix" and self.max_clock_skew is not None:
            assert seconds is not None
            assert micros is not None
            skew = self.clock.now() - (int(seconds) + int(micros) / 1e6)
            if abs(skew) > self.max_clock_skew:
                raise BreakerTimeBaseError(
                    f"this process's Unix clock is {skew:+.3f}s off the Redis server's, more than"
                    f" max_clock_skew ({self.max_clock_skew:g}s), so its times in breaker {self.name!r}"
                    " would not agree with other hosts'; synchronise the clocks (NTP) or raise max_clock_skew"
                )
        if created == "1" and self._incarnation is not None:
            _log.warning(
                "breaker %r: its shared state was gone from Redis key %r (a restart without persistence,"
                " an eviction or a flush); it starts again from CLOSED",
                self.name,
                self.key,
            )
        elif seen_version is not None and created != "1":
            _log.info("breaker %r: joined a shared record created anew by another process", self.name)
        self._writer = writer
        self._incarnation = _incarnation(version)

    # -- reading and writing ------------------------------------------------------------------------

    def _load(self) -> tuple[str | None, _Seen | None]:
        reply = self.client.hmget(self.key, ["gate", "ver", "record", "refused"])
        gate, version, record, refused = (_opt_text(v) for v in cast(list[Any], reply))
        if gate is None or version is None or record is None:
            return None, None
        return gate, _Seen(version, record, int(refused or 0))

    def _read(self) -> tuple[str, _Seen]:
        """Read the record now, creating it again if it is gone; remember it as the next guess."""
        self._ensure_attached(None)
        gate, seen = self._load()
        if gate is None or seen is None:
            with self._lock:
                self._attach_locked(None)
            gate, seen = self._load()
            if gate is None or seen is None:
                raise self._redis_error(f"breaker record {self.key!r} vanished as soon as it was created")
        self._ensure_attached(seen.version)
        if seen.newer_than(self._seen):
            self._seen = seen  # a race here costs at most a round trip: every guess is checked
        return gate, seen

    def _peek(self) -> tuple[BreakerState, int]:
        gate, _ = self._read()
        state, _, generation = gate.partition(" ")
        return BreakerState(state), int(generation)

    def _run(self, operation: Callable[[BreakerRecord, *Ts], R], args: tuple[*Ts]) -> R:
        self._ensure_attached(None)
        # The operations of this process queue here instead of racing each other in Redis: each starts
        # from what the one before it wrote, so only other processes' writes can conflict with it.
        if not self._queue.acquire(timeout=self.queue_timeout):
            raise BreakerStoreContentionError(
                self.name,
                reason=f"it waited {self.queue_timeout:g}s behind this process's other operations on it",
                retry_after=self.retry_after,
            )
        try:
            return self._run_queued(operation, args)
        finally:
            self._queue.release()

    def _run_queued(self, operation: Callable[[BreakerRecord, *Ts], R], args: tuple[*Ts]) -> R:
        seen = self._seen
        fresh = False  # True when ``seen`` was read atomically just now, so a read-only result stands
        if seen is None:
            _, seen = self._read()
            fresh = True
        for _ in range(self.max_attempts):
            data = json.loads(seen.record)
            base = int(data["not_permitted"])
            data["not_permitted"] = base + seen.refused
            record = BreakerRecord.from_dict(data)
            result = operation(record, *args)
            after = record.to_dict()
            refused = after["not_permitted"] - seen.refused - base
            after["not_permitted"] = base
            text = _encode(after)
            if text == seen.record and refused >= 0:
                # Nothing changed but (perhaps) the refusal count: confirm the reading and add refusals.
                if fresh and refused == 0:
                    return result
                reply = self._confirm_script(
                    keys=[self.key], args=[seen.version, refused, "" if refused else str(seen.refused)]
                )
                status = int(reply[0])
                if status == 1:
                    self._seen = _Seen(seen.version, seen.record, seen.refused + refused)
                    return result
            else:
                after["not_permitted"] = base + refused
                text = _encode(after)
                gate = f"{record.state} {record.generation}"
                reply = self._write_script(
                    keys=[self.key], args=[seen.version, text, gate, f"{self._writer}.{next(self._writes)}"]
                )
                status = int(reply[0])
                if status == 1:
                    self._seen = _Seen(_text(reply[1]), text, seen.refused)
                    return result
                if status == 2:
                    self._seen = None
                    return result
            if status == -1:
                self._seen = None
                _, seen = self._read()
            else:
                seen = _Seen(_text(reply[1]), _text(reply[2]), int(_opt_text(reply[3]) or 0))
                self._ensure_attached(seen.version)
            fresh = True
        self._seen = None
        raise BreakerStoreContentionError(
            self.name,
            reason=f"{self.max_attempts} attempts to update it all conflicted with other processes' writes",
            retry_after=self.retry_after,
        )

    def delete(self) -> None:
        """Drop the shared record (every process starts again from CLOSED); for tests and config changes."""
        self.client.delete(self.key)
        self._seen = None

    # -- outages ------------------------------------------------------------------------------------

    def _note_outage(self, exc: BaseException) -> None:
        with self._lock:
            first, self._degraded = not self._degraded, True
        if first:
            _log.warning(
                "breaker %r: Redis is unavailable (%s: %s); calls are refused until it answers",
                self.name,
                type(exc).__name__,
                exc,
            )

    def _note_lost_outcome(self, exc: BaseException) -> None:
        with self._lock:
            self.lost_outcomes += 1
            first, self._degraded = not self._degraded, True
        if first:
            _log.warning(
                "breaker %r: the outcome of a call could not be recorded in Redis (%s: %s); the shared"
                " state misses it (further losses are counted in lost_outcomes, not logged)",
                self.name,
                type(exc).__name__,
                exc,
            )

    def _note_recovery(self) -> None:
        with self._lock:
            was, self._degraded = self._degraded, False
        if was:
            _log.warning(
                "breaker %r: its shared state in Redis can be read and written again; %d outcomes lost"
                " so far",
                self.name,
                self.lost_outcomes,
            )
