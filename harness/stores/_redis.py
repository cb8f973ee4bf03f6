"""The Redis backend (redis-py), for when several processes or machines share the stores.

Atomicity. Every step that decides ownership or moves an entry through its workflow is one Lua
script, which Redis runs without interleaving anything else: the claim (take a free, expired or
abandoned key and hand out the next fence), the owner's completion, failure, release and renewal
(each a compare-and-set on the fence), and each dead-letter transition (a compare-and-set on status
and fence). ``WATCH``/``MULTI`` could do the same with more round trips and retries; a script is one
round trip and cannot livelock.

Time. Expiry and leases are computed from the service's injected clock and stored as fields, so the
contract holds under a virtual clock, and a record is expired exactly when the other backends say
so. Redis ``EXPIRE`` is set only as garbage collection, ``gc_grace`` seconds *after* the logical
expiry, so it can never make a live key vanish early; purge and stats skip hashes it has removed.

Durability is the server's: with ``appendonly yes`` and ``appendfsync always`` an acknowledged
write is on disk before the reply. Killing a *client* loses nothing either way, since the server
holds every acknowledged write; the crash test kills clients (and restarts the server once, from
its append-only file).

Layout under ``<namespace>:``: ``fence`` (counter), ``idem:r:<key>`` (hash per record),
``idem:exp`` (sorted set of keys by expiry), ``dlq:seq`` (counter), ``dlq:e:<id>`` (hash per
entry), ``dlq:all`` (sorted set of ids by sequence). Scripts build some key names from these
prefixes, so this backend needs a standalone Redis, not Redis Cluster.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from harness.stores._backend import NewDeadLetter, take
from harness.stores._checks import is_nonempty_str
from harness.stores._model import (
    DeadLetter,
    DeadLetterFilter,
    DeadLetterStatus,
    DeadLetterUpdate,
    ErrorInfo,
    IdempotencyRecord,
    IdempotencyStats,
    RecordState,
)

if TYPE_CHECKING:
    import redis

__all__ = ["RedisBackend"]

_LEASE_OVER = """
local function lease_over(state, lease_text, now)
  if state ~= 'in_progress' then return true end
  if not lease_text then return false end
  return tonumber(lease_text) <= now
end
"""

# KEYS: record, expiry index, fence counter. ARGV: key, fingerprint, now, lease_until, expires_at, gc grace.
_CLAIM = (
    _LEASE_OVER
    + """
local now = tonumber(ARGV[3])
local cur = redis.call('HMGET', KEYS[1], 'state', 'fingerprint', 'expires_at', 'lease_until')
local fresh = false
local takeover = false
if not cur[1] then
  fresh = true
elseif tonumber(cur[3]) <= now and lease_over(cur[1], cur[4], now) then
  fresh = true
elseif cur[1] == 'in_progress' and cur[4] and tonumber(cur[4]) <= now and cur[2] == ARGV[2] then
  takeover = true
end
if not (fresh or takeover) then
  return {0, redis.call('HGETALL', KEYS[1])}
end
local fence = redis.call('INCR', KEYS[3])
if fresh then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'fingerprint', ARGV[2], 'state', 'in_progress', 'created_at', ARGV[3],
             'expires_at', ARGV[5], 'lease_until', ARGV[4], 'fence', fence)
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
else
  redis.call('HSET', KEYS[1], 'lease_until', ARGV[4], 'fence', fence)
end
local grace = tonumber(ARGV[6])
if grace > 0 then
  local expires_at = tonumber(redis.call('HGET', KEYS[1], 'expires_at'))
  redis.call('EXPIRE', KEYS[1], math.max(1, math.ceil(expires_at - now + grace)))
end
return {1, redis.call('HGETALL', KEYS[1])}
"""
)

# KEYS: record. ARGV: fence, new state, field, value.
_FINISH = """
local cur = redis.call('HMGET', KEYS[1], 'state', 'fence')
if cur[1] ~= 'in_progress' or cur[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], ARGV[3], ARGV[4])
redis.call('HDEL', KEYS[1], 'lease_until')
return 1
"""

# KEYS: record, expiry index. ARGV: fence, key.
_RELEASE = """
local cur = redis.call('HMGET', KEYS[1], 'state', 'fence')
if cur[1] ~= 'in_progress' or cur[2] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""

# KEYS: record. ARGV: fence, lease_until.
_RENEW = """
local cur = redis.call('HMGET', KEYS[1], 'state', 'fence')
if cur[1] ~= 'in_progress' or cur[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
return 1
"""

# KEYS: expiry index. ARGV: record key prefix, now, soon_until.
_STATS = (
    _LEASE_OVER
    + """
local now = tonumber(ARGV[2])
local soon = tonumber(ARGV[3])
local c = {total = 0, in_progress = 0, completed = 0, failed = 0, soon = 0, expired = 0, abandoned = 0}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local cur = redis.call('HMGET', ARGV[1] .. member, 'state', 'expires_at', 'lease_until')
  if cur[1] then
    local expires_at = tonumber(cur[2])
    if expires_at <= now and lease_over(cur[1], cur[3], now) then
      c.expired = c.expired + 1
    else
      c.total = c.total + 1
      c[cur[1]] = c[cur[1]] + 1
      if cur[1] == 'in_progress' and cur[3] and tonumber(cur[3]) <= now then c.abandoned = c.abandoned + 1 end
      if expires_at > now and expires_at <= soon then c.soon = c.soon + 1 end
    end
  end
end
return {c.total, c.in_progress, c.completed, c.failed, c.soon, c.expired, c.abandoned}
"""
)

# KEYS: expiry index. ARGV: record key prefix, now.
_PURGE = (
    _LEASE_OVER
    + """
local now = tonumber(ARGV[2])
local purged = 0
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])) do
  local key = ARGV[1] .. member
  local cur = redis.call('HMGET', key, 'state', 'expires_at', 'lease_until')
  if not cur[1] then
    redis.call('ZREM', KEYS[1], member)
  elseif tonumber(cur[2]) <= now and lease_over(cur[1], cur[3], now) then
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], member)
    purged = purged + 1
  end
end
return purged
"""
)

# KEYS: sequence, index. ARGV: entry key prefix, then field/value pairs. Ids match dead_letter_id().
_DLQ_ADD = """
local seq = redis.call('INCR', KEYS[1])
local id = 'dlq-' .. seq
local key = ARGV[1] .. id
redis.call('HSET', key, 'seq', seq, unpack(ARGV, 2))
redis.call('ZADD', KEYS[2], seq, id)
return {id, redis.call('HGETALL', key)}
"""

# KEYS: entry. ARGV: expectation JSON {statuses, fence?, stale_before?}, change JSON {set, del, incr}.
# Numbers travel as strings: cjson and Lua's tostring print 14 digits, which would round times.
_DLQ_UPDATE = """
local cur = redis.call('HMGET', KEYS[1], 'status', 'fence', 'lease_until')
if not cur[1] then return {0} end
local ex = cjson.decode(ARGV[1])
local ok = false
for _, s in ipairs(ex.statuses) do
  if s == cur[1] then ok = true end
end
if (not ok) and ex.stale_before and cur[1] == 'requeued' and cur[3]
   and tonumber(cur[3]) <= tonumber(ex.stale_before) then
  ok = true
end
if ok and ex.fence and cur[2] ~= ex.fence then ok = false end
if not ok then return {0} end
local ch = cjson.decode(ARGV[2])
for field, value in pairs(ch.set) do redis.call('HSET', KEYS[1], field, value) end
for _, field in ipairs(ch.del) do redis.call('HDEL', KEYS[1], field) end
for field, amount in pairs(ch.incr) do redis.call('HINCRBY', KEYS[1], field, amount) end
return {1, redis.call('HGETALL', KEYS[1])}
"""

# KEYS: index. ARGV: entry key prefix, updated_before, then the statuses to purge.
_DLQ_PURGE = """
local doomed = {}
for i = 3, #ARGV do doomed[ARGV[i]] = true end
local before = tonumber(ARGV[2])
local purged = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. id
  local cur = redis.call('HMGET', key, 'status', 'updated_at')
  if not cur[1] then
    redis.call('ZREM', KEYS[1], id)
  elseif doomed[cur[1]] and tonumber(cur[2]) < before then
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], id)
    purged = purged + 1
  end
end
return purged
"""


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _hash(flat: Sequence[object]) -> dict[str, str]:
    items = [_text(v) for v in flat]
    return dict(zip(items[0::2], items[1::2], strict=True))


def _decode(mapping: Any) -> dict[str, str]:
    """An HGETALL reply as text, whether or not the client decodes responses itself."""
    return {_text(k): _text(v) for k, v in dict(mapping).items()}


def _num(value: float) -> str:
    """A float as text that parses back to the same double (``repr`` round-trips exactly)."""
    if not math.isfinite(value):
        raise ValueError(f"times must be finite, got {value!r}")
    return repr(float(value))


def _opt_float(fields: Mapping[str, str], name: str) -> float | None:
    value = fields.get(name)
    return None if value is None or value == "" else float(value)


def _record(key: str, fields: Mapping[str, str]) -> IdempotencyRecord:
    return IdempotencyRecord(
        key=key,
        fingerprint=fields["fingerprint"],
        state=RecordState(fields["state"]),
        created_at=float(fields["created_at"]),
        expires_at=float(fields["expires_at"]),
        fence=int(fields["fence"]),
        lease_until=_opt_float(fields, "lease_until"),
        response_json=fields.get("response"),
        error=ErrorInfo.from_json(json.loads(fields["error"])) if "error" in fields else None,
    )


def _entry(fields: Mapping[str, str]) -> DeadLetter:
    status = fields.get("error_status")
    return DeadLetter(
        id=fields["id"],
        seq=int(fields["seq"]),
        operation_id=fields["operation_id"],
        operation=fields["operation"],
        provider=fields["provider"],
        payload_json=fields["payload"],
        error=ErrorInfo(
            error_class=fields["error_class"],
            message=fields["error_message"],
            status=int(status) if status else None,
        ),
        attempts=int(fields["attempts"]),
        first_attempt_at=float(fields["first_attempt_at"]),
        last_attempt_at=float(fields["last_attempt_at"]),
        tags=MappingProxyType(json.loads(fields["tags"])),
        status=DeadLetterStatus(fields["status"]),
        parked_at=float(fields["parked_at"]),
        updated_at=float(fields["updated_at"]),
        resolved_at=_opt_float(fields, "resolved_at"),
        lease_until=_opt_float(fields, "lease_until"),
        fence=int(fields["fence"]),
    )


class RedisBackend:
    """Both stores in one Redis database, under ``namespace``; share it between processes freely."""

    def __init__(
        self, client: redis.Redis, *, namespace: str = "harness", gc_grace: float | None = 86400.0
    ) -> None:
        if not is_nonempty_str(namespace) or any(c.isspace() for c in namespace):
            raise ValueError(f"namespace must be a non-empty str without spaces, got {namespace!r}")
        if gc_grace is not None and gc_grace <= 0:
            raise ValueError(f"gc_grace must be > 0 seconds, or None to never set EXPIRE; got {gc_grace!r}")
        self.client = client
        self.namespace = namespace
        self.gc_grace = gc_grace
        ns = f"{namespace}:"
        self._fence_key = ns + "fence"
        self._record_prefix = ns + "idem:r:"
        self._expiry_index = ns + "idem:exp"
        self._seq_key = ns + "dlq:seq"
        self._entry_prefix = ns + "dlq:e:"
        self._entry_index = ns + "dlq:all"
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)
        self._stats = client.register_script(_STATS)
        self._purge = client.register_script(_PURGE)
        self._dlq_add = client.register_script(_DLQ_ADD)
        self._dlq_update = client.register_script(_DLQ_UPDATE)
        self._dlq_purge = client.register_script(_DLQ_PURGE)

    @classmethod
    def from_url(
        cls, url: str, *, namespace: str = "harness", gc_grace: float | None = 86400.0
    ) -> RedisBackend:
        """Connect to ``redis://host:port/db``; the connection pool is safe to share between threads."""
        import redis

        client = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=30.0, socket_connect_timeout=10.0
        )
        return cls(client, namespace=namespace, gc_grace=gc_grace)

    def __repr__(self) -> str:
        return f"RedisBackend(namespace={self.namespace!r})"

    def close(self) -> None:
        self.client.close()

    # -- idempotency ----------------------------------------------------------------------------

    def idem_get(self, key: str) -> IdempotencyRecord | None:
        fields = _decode(self.client.hgetall(self._record_prefix + key))
        return _record(key, fields) if fields else None

    def idem_claim(
        self, *, key: str, fingerprint: str, now: float, lease_until: float, expires_at: float
    ) -> tuple[IdempotencyRecord, bool]:
        claimed, flat = self._claim(
            keys=[self._record_prefix + key, self._expiry_index, self._fence_key],
            args=[
                key,
                fingerprint,
                _num(now),
                _num(lease_until),
                _num(expires_at),
                _num(self.gc_grace or 0.0),
            ],
        )
        return _record(key, _hash(flat)), int(claimed) == 1

    def idem_complete(self, *, key: str, fence: int, response_json: str) -> bool:
        done = self._finish(
            keys=[self._record_prefix + key], args=[fence, "completed", "response", response_json]
        )
        return int(done) == 1

    def idem_fail(self, *, key: str, fence: int, error: ErrorInfo) -> bool:
        done = self._finish(
            keys=[self._record_prefix + key], args=[fence, "failed", "error", json.dumps(error.to_json())]
        )
        return int(done) == 1

    def idem_release(self, *, key: str, fence: int) -> bool:
        done = self._release(keys=[self._record_prefix + key, self._expiry_index], args=[fence, key])
        return int(done) == 1

    def idem_renew(self, *, key: str, fence: int, lease_until: float) -> bool:
        done = self._renew(keys=[self._record_prefix + key], args=[fence, _num(lease_until)])
        return int(done) == 1

    def idem_stats(self, *, now: float, soon_until: float) -> IdempotencyStats:
        counts = [
            int(c)
            for c in self._stats(
                keys=[self._expiry_index], args=[self._record_prefix, _num(now), _num(soon_until)]
            )
        ]
        total, in_progress, completed, failed, expiring_soon, expired, abandoned = counts
        return IdempotencyStats(
            total=total,
            in_progress=in_progress,
            completed=completed,
            failed=failed,
            expiring_soon=expiring_soon,
            expired=expired,
            abandoned=abandoned,
        )

    def idem_purge(self, *, now: float) -> int:
        return int(self._purge(keys=[self._expiry_index], args=[self._record_prefix, _num(now)]))

    # -- dead letters ---------------------------------------------------------------------------

    def dlq_add(self, entry: NewDeadLetter) -> DeadLetter:
        fields: dict[str, str] = {
            "operation_id": entry.operation_id,
            "operation": entry.operation,
            "provider": entry.provider,
            "payload": entry.payload_json,
            "error_class": entry.error.error_class,
            "error_message": entry.error.message,
            "attempts": str(entry.attempts),
            "first_attempt_at": _num(entry.first_attempt_at),
            "last_attempt_at": _num(entry.last_attempt_at),
            "tags": json.dumps(dict(entry.tags), sort_keys=True),
            "status": str(DeadLetterStatus.FAILED),
            "parked_at": _num(entry.parked_at),
            "updated_at": _num(entry.parked_at),
            "fence": "0",
        }
        if entry.error.status is not None:
            fields["error_status"] = str(entry.error.status)
        entry_id, flat = self._dlq_add(
            keys=[self._seq_key, self._entry_index],
            args=[self._entry_prefix, *(x for pair in fields.items() for x in pair)],
        )
        return _entry({**_hash(flat), "id": _text(entry_id)})

    def dlq_get(self, entry_id: str) -> DeadLetter | None:
        fields = _decode(self.client.hgetall(self._entry_prefix + entry_id))
        return _entry({**fields, "id": entry_id}) if fields else None

    def dlq_list(self, flt: DeadLetterFilter) -> list[DeadLetter]:
        # Filtering happens here, over every entry: fine for a queue that should stay near empty, and
        # it keeps one predicate (DeadLetterFilter.matches) for all backends.
        ids = [_text(i) for i in self.client.zrange(self._entry_index, 0, -1)]
        entries: list[DeadLetter] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            pipe = self.client.pipeline(transaction=False)
            for entry_id in chunk:
                pipe.hgetall(self._entry_prefix + entry_id)
            for entry_id, mapping in zip(chunk, pipe.execute(), strict=True):
                fields = _decode(mapping)
                if fields:
                    entries.append(_entry({**fields, "id": entry_id}))
        return take(filter(flt.matches, entries), flt.limit)

    def dlq_update(self, entry_id: str, update: DeadLetterUpdate) -> DeadLetter | None:
        expect: dict[str, object] = {"statuses": sorted(str(s) for s in update.expect)}
        if update.expect_fence is not None:
            expect["fence"] = str(update.expect_fence)
        if update.stale_before is not None:
            expect["stale_before"] = _num(update.stale_before)
        sets: dict[str, str] = {"status": str(update.status), "updated_at": _num(update.updated_at)}
        deletes: list[str] = []
        if update.lease_until is None:
            deletes.append("lease_until")
        else:
            sets["lease_until"] = _num(update.lease_until)
        if update.last_attempt_at is not None:
            sets["last_attempt_at"] = _num(update.last_attempt_at)
        if update.resolved_at is not None:
            sets["resolved_at"] = _num(update.resolved_at)
        if update.error is not None:
            sets["error_class"] = update.error.error_class
            sets["error_message"] = update.error.message
            if update.error.status is None:
                deletes.append("error_status")
            else:
                sets["error_status"] = str(update.error.status)
        increments: dict[str, int] = {}
        if update.bump_fence:
            increments["fence"] = 1
        if update.attempts_delta:
            increments["attempts"] = update.attempts_delta
        change = {"set": sets, "del": deletes, "incr": increments}
        # cjson turns an empty object into an empty table, the same as an empty array: both iterate fine.
        reply = self._dlq_update(
            keys=[self._entry_prefix + entry_id], args=[json.dumps(expect), json.dumps(change)]
        )
        if int(reply[0]) != 1:
            return None
        return _entry({**_hash(reply[1]), "id": entry_id})

    def dlq_purge(self, *, statuses: frozenset[DeadLetterStatus], updated_before: float) -> int:
        return int(
            self._dlq_purge(
                keys=[self._entry_index],
                args=[self._entry_prefix, _num(updated_before), *sorted(str(s) for s in statuses)],
            )
        )
