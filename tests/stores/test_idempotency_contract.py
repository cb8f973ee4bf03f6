"""The idempotency contract, run unchanged against every backend (memory, SQLite, real Redis).

Time is a VirtualClock throughout: expiry, leases and waiting are decided on the injected clock, so
a 24-hour expiry or a 30-second lease is crossed by advancing the clock, never by waiting.
"""

from __future__ import annotations

import asyncio
import datetime
import math
from collections.abc import Callable

import pytest

from harness.resilience import ErrorClass, VirtualClock
from harness.stores import (
    DefiniteFailure,
    ErrorInfo,
    FingerprintMismatchError,
    IdempotencyConfig,
    IdempotencyStore,
    InProgressPolicy,
    InvalidKeyError,
    KeyInProgressError,
    Lease,
    LeaseLostError,
    PayloadNotSerializableError,
    PayloadTooLargeError,
    RecordState,
    StoreBackend,
    StoredFailureError,
)

PAYLOAD = {"amount": 1500, "currency": "usd", "customer": "cus_1"}


def make_store(backend: StoreBackend, clock: VirtualClock, **config: object) -> IdempotencyStore:
    return IdempotencyStore(backend, clock=clock, config=IdempotencyConfig(**config))  # type: ignore[arg-type]


class Counter:
    """An operation that counts its executions and returns the count."""

    def __init__(self, value: object = None) -> None:
        self.calls = 0
        self.value = value

    def __call__(self) -> object:
        self.calls += 1
        return {"call": self.calls} if self.value is None else self.value


def raising(exc: BaseException) -> Callable[[], object]:
    def operation() -> object:
        raise exc

    return operation


class SteppingClock(VirtualClock):
    """A virtual clock that runs a callback on the first sleep: 'meanwhile, elsewhere ...'.

    It lets a single-threaded test interleave a waiter with the owner it waits for, deterministically.
    """

    def __init__(self, start: float, meanwhile: Callable[[], None]) -> None:
        super().__init__(start)
        self._meanwhile: Callable[[], None] | None = meanwhile

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        callback, self._meanwhile = self._meanwhile, None
        if callback is not None:
            callback()


# -- execute once, replay afterwards ------------------------------------------------------------


def test_first_caller_executes_and_later_callers_replay_the_stored_result(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    store = make_store(backend, clock)
    op = Counter()

    first = store.with_idempotency("key-1", op, payload=PAYLOAD)
    clock.advance(3600)
    second = store.with_idempotency("key-1", op, payload=PAYLOAD)

    assert op.calls == 1
    assert (first.value, first.replayed) == ({"call": 1}, False)
    assert (second.value, second.replayed) == ({"call": 1}, True)
    record = store.get("key-1")
    assert record is not None
    assert record.state is RecordState.COMPLETED
    assert record.created_at == 1_000_000.0
    assert record.expires_at == 1_000_000.0 + 24 * 3600
    assert record.lease_until is None


def test_first_caller_gets_the_same_json_value_as_the_replayers(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    store = make_store(backend, clock)

    first = store.with_idempotency("key-1", lambda: {"ids": ("a", "b"), "ok": True, "ratio": 0.25})
    second = store.with_idempotency("key-1", lambda: None)

    assert first.value == second.value == {"ids": ["a", "b"], "ok": True, "ratio": 0.25}


def test_keys_are_independent(backend: StoreBackend, clock: VirtualClock) -> None:
    store = make_store(backend, clock)
    op = Counter()

    a = store.with_idempotency("key-a", op)
    b = store.with_idempotency("key-b", op)

    assert (a.value, b.value, op.calls) == ({"call": 1}, {"call": 2}, 2)


def test_payload_key_order_does_not_change_the_fingerprint(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    store = make_store(backend, clock)
    op = Counter()

    store.with_idempotency("key-1", op, payload={"a": 1, "b": [1, 2]})
    replay = store.with_idempotency("key-1", op, payload={"b": [1, 2], "a": 1})

    assert replay.replayed
    assert op.calls == 1


# -- fingerprints --------------------------------------------------------------------------------


def test_same_key_with_another_payload_is_an_error_once_completed(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    store = make_store(backend, clock)
    op = Counter()
    store.with_idempotency("key-1", op, payload=PAYLOAD)

    with pytest.raises(FingerprintMismatchError, match="key-1"):
        store.with_idempotency("key-1", op, payload={**PAYLOAD, "amount": 1})
    assert op.calls == 1


def test_same_key_with_another_payload_is_an_error_while_in_progress(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    store = make_store(backend, clock)
    store.begin("key-1", payload=PAYLOAD)

    with pytest.raises(FingerprintMismatchError):
        store.begin("key-1", payload={**PAYLOAD, "amount": 1})


def test_another_payload_cannot_take_over_an_abandoned_key(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    store = make_store(backend, clock, lease=30.0)
    store.begin("key-1", payload=PAYLOAD)
    clock.advance(31)

    with pytest.raises(FingerprintMismatchError):
        store.begin("key-1", payload={**PAYLOAD, "amount": 1})
    lease = store.begin("key-1", payload=PAYLOAD)
    assert isinstance(lease, Lease)
    assert lease.took_over


def test_same_key_with_another_payload_is_an_error_after_a_definite_failure(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    store = make_store(backend, clock)

    def decline() -> None:
        raise DefiniteFailure("card declined", error_class="decline", status=402)

    with pytest.raises(DefiniteFailure):
        store.with_idempotency("key-1", decline, payload=PAYLOAD)
    with pytest.raises(FingerprintMismatchError):
        store.with_idempotency("key-1", decline, payload={"other": True})


# -- in progress: conflict or wait ---------------------------------------------------------------


def test_in_progress_key_conflicts_under_the_conflict_policy(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    store = make_store(backend, clock, in_progress=InProgressPolicy.CONFLICT)
    owner = store.begin("key-1", payload=PAYLOAD)
    assert isinstance(owner, Lease)
    op = Counter()

    with pytest.raises(KeyInProgressError) as caught:
        store.with_idempotency("key-1", op, payload=PAYLOAD)

    assert op.calls == 0
    assert caught.value.lease_until == owner.lease_until
    assert clock.sleeps == []


def test_waiter_replays_once_the_owner_completes(backend: StoreBackend) -> None:
    owner_store = make_store(backend, VirtualClock(1_000_000.0))
    owner = owner_store.begin("key-1", payload=PAYLOAD)
    assert isinstance(owner, Lease)
    clock = SteppingClock(1_000_000.0, meanwhile=lambda: owner_store.complete(owner, {"charged": True}))
    waiter = make_store(backend, clock, in_progress=InProgressPolicy.WAIT, poll_interval=0.5)
    op = Counter()

    result = waiter.with_idempotency("key-1", op, payload=PAYLOAD)

    assert op.calls == 0
    assert (result.value, result.replayed) == ({"charged": True}, True)
    assert clock.sleeps == [0.5]


def test_waiter_executes_when_the_owner_frees_the_key_after_a_retryable_failure(
    backend: StoreBackend,
) -> None:
    owner_store = make_store(backend, VirtualClock(1_000_000.0))
    owner = owner_store.begin("key-1", payload=PAYLOAD)
    assert isinstance(owner, Lease)
    clock = SteppingClock(1_000_000.0, meanwhile=lambda: owner_store.release(owner))
    waiter = make_store(backend, clock, in_progress=InProgressPolicy.WAIT, poll_interval=0.5)
    op = Counter()

    result = waiter.with_idempotency("key-1", op, payload=PAYLOAD)

    assert (op.calls, result.replayed) == (1, False)


def test_waiter_conflicts_after_the_wait_timeout(backend: StoreBackend, clock: VirtualClock) -> None:
    store = make_store(backend, clock, in_progress=InProgressPolicy.WAIT, wait_timeout=5.0, poll_interval=1.0)
    store.begin("key-1", payload=PAYLOAD)
    op = Counter()

    with pytest.raises(KeyInProgressError, match="after waiting") as caught:
        store.with_idempotency("key-1", op, payload=PAYLOAD)

    assert op.calls == 0
    assert caught.value.waited == 5.0
    assert clock.sleeps == [1.0] * 5


def test_waiter_takes_over_when_the_owner_lease_runs_out(backend: StoreBackend, clock: VirtualClock) -> None:
    store = make_store(
        backend, clock, lease=10.0, in_progress=InProgressPolicy.WAIT, wait_timeout=60.0, poll_interval=1.0
    )
    crashed_owner = store.begin("key-1", payload=PAYLOAD)
    assert isinstance(crashed_owner, Lease)
    op = Counter()

    result = store.with_idempotency("key-1", op, payload=PAYLOAD)

    assert (op.calls, result.replayed) == (1, False)
    assert sum(clock.sleeps) == 10.0
    with pytest.raises(LeaseLostError):
        store.complete(crashed_owner, {"late": True})
    assert store.with_idempotency("key-1", op, payload=PAYLOAD).value == {"call": 1}


# -- leases and fencing --------------------------------------------------------------------------


def test_an_abandoned_key_is_taken_over_by_exactly_one_new_owner(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    store = make_store(backend, clock, lease=30.0)
    first = store.begin("key-1", payload=PAYLOAD)
    assert isinstance(first, Lease)
    clock.advance(29.9)
    with pytest.raises(KeyInProgressError):
        store.begin("key-1", payload=PAYLOAD)
    clock.advance(0.1)

    second = store.begin("key-1", payload=PAYLOAD)
    with pytest.raises(KeyInProgressError):
        store.begin("key-1", payload=PAYLOAD)

    assert isinstance(second, Lease)
    assert second.took_over
    assert not first.took_over
    assert second.fence > first.fence


def test_the_crashed_owner_can_neither_complete_fail_release_nor_renew(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    store = make_store(backend, clock, lease=30.0)
    old = store.begin("key-1", payload=PAYLOAD)
    assert isinstance(old, Lease)
    clock.advance(31)
    new = store.begin("key-1", payload=PAYLOAD)
    assert isinstance(new, Lease)

    for step in (
        lambda: store.complete(old, {"stale": True}),
        lambda: store.release(old),
        lambda: store.renew(old),
        lambda: store.fail(old, ErrorInfo(error_class="decline", message="declined", status=402)),
    ):
        with pytest.raises(LeaseLostError):
            step()

    assert store.complete(new, {"fresh": True}).value == {"fresh": True}
    record = store.get("key-1")
    assert record is not None
    assert (record.state, record.response) == (RecordState.COMPLETED, {"fresh": True})


def test_fences_only_grow_even_after_a_key_is_freed(backend: StoreBackend, clock: VirtualClock) -> None:
    store = make_store(backend, clock)
    first = store.begin("key-1")
    assert isinstance(first, Lease)
    store.release(first)
    second = store.begin("key-1")
    assert isinstance(second, Lease)

    assert second.fence > first.fence
    with pytest.raises(LeaseLostError):
        store.complete(first, "stale owner of a freed key")


def test_renewing_keeps_the_key_past_the_original_lease(backend: StoreBackend, clock: VirtualClock) -> None:
    store = make_store(backend, clock, lease=30.0)
    lease = store.begin("key-1")
    assert isinstance(lease, Lease)
    clock.advance(20)
    renewed = store.renew(lease)
    clock.advance(20)

    with pytest.raises(KeyInProgressError):
        store.begin("key-1")
    assert renewed.lease_until == 1_000_000.0 + 50.0
    assert store.complete(renewed, 1).value == 1


# -- failures ------------------------------------------------------------------------------------


class UpstreamError(Exception):
    def __init__(self, error_class: ErrorClass, status: int) -> None:
        super().__init__(f"upstream said {status}")
        self.error_class = error_class
        self.status_code = status


def test_a_retryable_failure_frees_the_key_for_the_next_caller(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    store = make_store(backend, clock)
    attempts: list[int] = []

    def flaky() -> object:
        attempts.append(1)
        if len(attempts) == 1:
            raise UpstreamError(ErrorClass.SERVER_ERROR, 503)
        return {"ok": True}

    with pytest.raises(UpstreamError):
        store.with_idempotency("key-1", flaky, payload=PAYLOAD)
    assert store.get("key-1") is None
    result = store.with_idempotency("key-1", flaky, payload=PAYLOAD)

    assert (len(attempts), result.value, result.replayed) == (2, {"ok": True}, False)


def test_an_unclassified_exception_frees_the_key(backend: StoreBackend, clock: VirtualClock) -> None:
    store = make_store(backend, clock)

    with pytest.raises(TimeoutError):
        store.with_idempotency("key-1", raising(TimeoutError("read timed out")))

    assert store.get("key-1") is None


@pytest.mark.parametrize(
    ("error", "expected_class", "expected_status"),
    [
        (DefiniteFailure("card declined", error_class="decline", status=402), "decline", 402),
        (UpstreamError(ErrorClass.VALIDATION, 400), "validation", 400),
        (UpstreamError(ErrorClass.DECLINE, 402), "decline", 402),
    ],
)
def test_a_definite_failure_is_stored_and_replayed_without_executing_again(
    backend: StoreBackend, clock: VirtualClock, error: Exception, expected_class: str, expected_status: int
) -> None:
    store = make_store(backend, clock)
    calls: list[int] = []

    def declined() -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        store.with_idempotency("key-1", declined, payload=PAYLOAD)
    with pytest.raises(StoredFailureError) as replayed:
        store.with_idempotency("key-1", declined, payload=PAYLOAD)

    assert len(calls) == 1
    assert replayed.value.error.error_class == expected_class
    assert replayed.value.error.status == expected_status
    assert replayed.value.error.message == str(error)
    record = store.get("key-1")
    assert record is not None
    assert record.state is RecordState.FAILED


def test_a_custom_classifier_decides_what_is_definite(backend: StoreBackend, clock: VirtualClock) -> None:
    store = IdempotencyStore(backend, clock=clock, is_definite=lambda exc: isinstance(exc, KeyError))

    with pytest.raises(KeyError):
        store.with_idempotency("key-1", lambda: {}["missing"])
    with pytest.raises(StoredFailureError):
        store.with_idempotency("key-1", lambda: 1)


def test_a_result_that_cannot_be_stored_is_recorded_as_failed_so_it_never_runs_twice(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    store = make_store(backend, clock)
    op = Counter(value={"when": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)})

    with pytest.raises(PayloadNotSerializableError, match=r"result\['when'\]"):
        store.with_idempotency("key-1", op)
    with pytest.raises(StoredFailureError) as replayed:
        store.with_idempotency("key-1", op)

    assert op.calls == 1
    assert replayed.value.error.error_class == "unstorable_result"


# -- expiry, stats, purge ------------------------------------------------------------------------


def test_a_record_counts_as_new_once_it_expires(backend: StoreBackend, clock: VirtualClock) -> None:
    store = make_store(backend, clock, ttl=3600.0)
    op = Counter()
    store.with_idempotency("key-1", op, payload=PAYLOAD)
    clock.advance(3599)
    assert store.with_idempotency("key-1", op, payload=PAYLOAD).replayed
    clock.advance(1)

    fresh = store.with_idempotency("key-1", op, payload={"a different": "payload"})

    assert (fresh.replayed, fresh.value, op.calls) == (False, {"call": 2}, 2)
    record = store.get("key-1")
    assert record is not None
    assert record.created_at == clock.now()


def test_stats_count_states_expiring_soon_expired_and_abandoned(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    store = make_store(backend, clock, ttl=7200.0, lease=30.0, expiring_soon=3600.0)
    store.with_idempotency("old-done", lambda: 1)
    with pytest.raises(DefiniteFailure):
        store.with_idempotency("old-failed", raising(DefiniteFailure("no")))
    clock.advance(3700)  # the two above now expire within the hour
    store.with_idempotency("new-done", lambda: 2)
    store.begin("abandoned")
    clock.advance(60)
    store.begin("running")
    stale_store = make_store(backend, clock, ttl=10.0)
    stale_store.with_idempotency("already-expired", lambda: 3)
    clock.advance(11)

    stats = store.stats()

    assert (stats.total, stats.completed, stats.failed, stats.in_progress) == (5, 2, 1, 2)
    assert (stats.expiring_soon, stats.expired, stats.abandoned) == (2, 1, 1)


def test_purge_removes_expired_records_but_keeps_a_live_lease(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    store = make_store(backend, clock, ttl=10.0, lease=60.0)
    store.with_idempotency("done", lambda: 1)
    held = store.begin("held")
    assert isinstance(held, Lease)
    clock.advance(20)  # both past their expiry; "held" is still leased

    purged = store.purge_expired()

    assert purged == 1
    assert store.get("done") is None
    assert backend.idem_get("done") is None
    with pytest.raises(KeyInProgressError):
        store.begin("held")
    assert store.complete(held, "finished").value == "finished"
    assert store.purge_expired() == 1


def test_get_hides_expired_records(backend: StoreBackend, clock: VirtualClock) -> None:
    store = make_store(backend, clock, ttl=10.0)
    store.with_idempotency("key-1", lambda: 1)
    clock.advance(10)

    assert store.get("key-1") is None
    assert backend.idem_get("key-1") is not None  # still stored until purged


# -- async face ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_face_executes_once_and_replays(backend: StoreBackend, clock: VirtualClock) -> None:
    store = make_store(backend, clock)
    calls: list[int] = []

    async def charge() -> object:
        calls.append(1)
        await asyncio.sleep(0)
        return {"charged": len(calls)}

    first = await store.awith_idempotency("key-1", charge, payload=PAYLOAD)
    second = await store.awith_idempotency("key-1", charge, payload=PAYLOAD)

    assert (first.value, first.replayed, second.value, second.replayed) == (
        {"charged": 1},
        False,
        {"charged": 1},
        True,
    )
    assert len(calls) == 1


@pytest.mark.anyio
async def test_async_cancellation_frees_the_key(backend: StoreBackend, clock: VirtualClock) -> None:
    store = make_store(backend, clock)
    started = asyncio.Event()

    async def hangs() -> object:
        started.set()
        await asyncio.Event().wait()
        return None

    task = asyncio.ensure_future(store.awith_idempotency("key-1", hangs))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert store.get("key-1") is None


@pytest.mark.anyio
async def test_async_waiter_conflicts_while_the_key_is_held(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    store = make_store(backend, clock, in_progress=InProgressPolicy.WAIT, wait_timeout=2.0, poll_interval=1.0)
    store.begin("key-1")

    with pytest.raises(KeyInProgressError):
        await store.awith_idempotency("key-1", lambda: asyncio.sleep(0, result=1))
    assert clock.sleeps == [1.0, 1.0]


# -- bad input writes nothing --------------------------------------------------------------------


class NotJson:
    pass


BAD_KEYS = [
    pytest.param("", "empty", id="empty"),
    pytest.param("   ", "empty", id="blank"),
    pytest.param("k" * 256, "256 characters; the limit is 255", id="too-long"),
    pytest.param("line\nbreak", "control character", id="newline"),
    pytest.param("nul\x00", "control character", id="nul"),
    pytest.param(42, "must be a str", id="not-a-str"),
]


@pytest.mark.parametrize(("key", "message"), BAD_KEYS)
def test_an_invalid_key_raises_a_clear_error_and_writes_nothing(
    backend: StoreBackend, clock: VirtualClock, key: object, message: str
) -> None:
    store = make_store(backend, clock)
    op = Counter()

    with pytest.raises(InvalidKeyError, match=message):
        store.with_idempotency(key, op)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        store.begin(key)  # type: ignore[arg-type]

    assert op.calls == 0
    assert store.stats().total == 0


def test_a_key_of_exactly_255_characters_is_accepted(backend: StoreBackend, clock: VirtualClock) -> None:
    store = make_store(backend, clock)

    assert store.with_idempotency("k" * 255, lambda: "ok").value == "ok"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param(
            {"items": [1, {"when": datetime.date(2024, 1, 1)}]},
            r"payload\['items'\]\[1\]\['when'\] is a datetime.date",
            id="date",
        ),
        pytest.param({"amount": math.nan}, r"payload\['amount'\] is nan", id="nan"),
        pytest.param({1: "one"}, "key of type int", id="int-key"),
        pytest.param({"obj": NotJson()}, r"payload\['obj'\] is a .*NotJson", id="object"),
        pytest.param({"bytes": b"\x00"}, "bytes", id="bytes"),
    ],
)
def test_a_payload_that_is_not_json_raises_naming_the_field_and_writes_nothing(
    backend: StoreBackend, clock: VirtualClock, payload: object, message: str
) -> None:
    store = make_store(backend, clock)
    op = Counter()

    with pytest.raises(PayloadNotSerializableError, match=message):
        store.with_idempotency("key-1", op, payload=payload)  # type: ignore[arg-type]

    assert op.calls == 0
    assert backend.idem_get("key-1") is None


def test_a_payload_with_a_reference_cycle_is_refused(backend: StoreBackend, clock: VirtualClock) -> None:
    store = make_store(backend, clock)
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic

    with pytest.raises(PayloadNotSerializableError, match="cycle"):
        store.with_idempotency("key-1", lambda: 1, payload=cyclic)  # type: ignore[arg-type]
    assert backend.idem_get("key-1") is None


def test_an_oversized_payload_raises_naming_size_and_limit_and_writes_nothing(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    store = make_store(backend, clock, max_payload_bytes=1024)
    op = Counter()

    with pytest.raises(
        PayloadTooLargeError, match=r"payload is 1,0\d\d bytes as JSON; the limit is 1,024"
    ) as caught:
        store.with_idempotency("key-1", op, payload={"blob": "x" * 1024})

    assert (caught.value.limit, caught.value.what) == (1024, "payload")
    assert op.calls == 0
    assert store.stats().total == 0
    assert backend.idem_get("key-1") is None


def test_an_oversized_result_is_recorded_as_failed_not_freed(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    store = make_store(backend, clock, max_payload_bytes=64)
    op = Counter(value="y" * 100)

    with pytest.raises(PayloadTooLargeError, match="result is 102 bytes"):
        store.with_idempotency("key-1", op)
    with pytest.raises(StoredFailureError):
        store.with_idempotency("key-1", op)
    assert op.calls == 1


def test_error_messages_never_quote_the_payload(backend: StoreBackend, clock: VirtualClock) -> None:
    store = make_store(backend, clock, max_payload_bytes=64)
    secret = "4242424242424242"

    with pytest.raises(PayloadTooLargeError) as too_large:
        store.with_idempotency("key-1", lambda: 1, payload={"card": secret * 10})
    with pytest.raises(PayloadNotSerializableError) as not_json:
        store.with_idempotency("key-1", lambda: 1, payload={"card": secret, "x": NotJson()})  # type: ignore[dict-item]

    assert secret not in str(too_large.value)
    assert secret not in str(not_json.value)
