"""The dead-letter queue contract, run unchanged against every backend (memory, SQLite, real Redis)."""

from __future__ import annotations

import io
import json
import math
import threading
from pathlib import Path

import pandas as pd
import pytest

from harness.resilience import VirtualClock
from harness.stores import (
    DEAD_LETTER_COLUMNS,
    LEGAL_DEAD_LETTER_TRANSITIONS,
    DeadLetter,
    DeadLetterConfig,
    DeadLetterFilter,
    DeadLetterNotFoundError,
    DeadLetterQueue,
    DeadLetterStatus,
    DeadLetterTransitionError,
    ErrorInfo,
    InvalidPayloadError,
    PayloadNotSerializableError,
    PayloadTooLargeError,
    ReplayOutcome,
    StoreBackend,
    WorkItem,
)

S = DeadLetterStatus
T0 = 1_000_000.0


def item(n: int = 1, *, provider: str = "stripe", operation: str = "charge", **tags: str) -> WorkItem:
    return WorkItem(
        operation_id=f"op-{n}",
        operation=operation,
        provider=provider,
        payload={"amount": 100 * n, "currency": "usd"},
        tags=tags or {"tenant": "t1"},
    )


TIMEOUT = ErrorInfo(error_class="timeout", message="read timed out", status=None)
SERVER_ERROR = ErrorInfo(error_class="server_error", message="upstream said 503", status=503)


@pytest.fixture
def dlq(backend: StoreBackend, clock: VirtualClock) -> DeadLetterQueue:
    return DeadLetterQueue(backend, clock=clock)


def succeed(entry: DeadLetter) -> None:
    return None


def fail_with(message: str, status: int | None = None):  # type: ignore[no-untyped-def]
    class ReplayError(Exception):
        status_code = status

    def handler(entry: DeadLetter) -> None:
        raise ReplayError(message)

    return handler


# -- parking -------------------------------------------------------------------------------------


def test_park_stores_every_field(dlq: DeadLetterQueue, clock: VirtualClock) -> None:
    entry = dlq.park(
        item(1, venue="v9"), error=SERVER_ERROR, attempts=5, first_attempt_at=T0 - 30, last_attempt_at=T0 - 1
    )

    stored = dlq.get(entry.id)
    assert stored == entry
    assert (stored.operation_id, stored.operation, stored.provider) == ("op-1", "charge", "stripe")
    assert stored.payload == {"amount": 100, "currency": "usd"}
    assert stored.error == SERVER_ERROR
    assert (stored.attempts, stored.first_attempt_at, stored.last_attempt_at) == (5, T0 - 30, T0 - 1)
    assert dict(stored.tags) == {"venue": "v9"}
    assert (stored.status, stored.parked_at, stored.updated_at, stored.resolved_at) == (
        S.FAILED,
        T0,
        T0,
        None,
    )


def test_park_takes_the_error_from_an_exception(dlq: DeadLetterQueue) -> None:
    class PaymentError(Exception):
        error_class = "decline"
        status_code = 402

    entry = dlq.park(item(), error=PaymentError("card declined"), attempts=1)

    assert entry.error == ErrorInfo(error_class="decline", message="card declined", status=402)


def test_park_defaults_attempt_times_to_now(dlq: DeadLetterQueue, clock: VirtualClock) -> None:
    clock.advance(5)

    entry = dlq.park(item(), error=TIMEOUT, attempts=0)

    assert entry.first_attempt_at == entry.last_attempt_at == T0 + 5


def test_ids_are_unique_and_entries_list_oldest_first(dlq: DeadLetterQueue) -> None:
    ids = [dlq.park(item(n), error=TIMEOUT, attempts=1).id for n in range(5)]

    assert len(set(ids)) == 5
    assert [e.id for e in dlq.entries()] == ids
    assert [e.operation_id for e in dlq.entries()] == [f"op-{n}" for n in range(5)]


def test_an_unknown_id_raises_not_found(dlq: DeadLetterQueue) -> None:
    for entry_id in ("dlq-999", "nonsense"):
        with pytest.raises(DeadLetterNotFoundError, match=entry_id):
            dlq.get(entry_id)
        with pytest.raises(DeadLetterNotFoundError):
            dlq.discard(entry_id)
        with pytest.raises(DeadLetterNotFoundError):
            dlq.requeue(entry_id, succeed)


# -- the workflow --------------------------------------------------------------------------------


def test_review_then_replay_resolves_the_entry(dlq: DeadLetterQueue, clock: VirtualClock) -> None:
    entry = dlq.park(item(), error=TIMEOUT, attempts=3)
    clock.advance(10)
    reviewing = dlq.mark_reviewing(entry.id)
    clock.advance(10)
    replayed: list[DeadLetter] = []

    outcome = dlq.requeue(entry.id, replayed.append)

    assert reviewing.status is S.REVIEWING
    assert [e.id for e in replayed] == [entry.id]
    assert replayed[0].status is S.REQUEUED
    assert outcome.resolved
    assert not outcome.lost
    after = dlq.get(entry.id)
    assert (after.status, after.resolved_at, after.attempts, after.last_attempt_at) == (
        S.RESOLVED,
        T0 + 20,
        4,
        T0 + 20,
    )
    assert after.lease_until is None


def test_a_failed_replay_counts_an_attempt_and_keeps_the_last_error(
    dlq: DeadLetterQueue, clock: VirtualClock
) -> None:
    entry = dlq.park(item(), error=TIMEOUT, attempts=3)
    clock.advance(60)

    outcome = dlq.requeue(entry.id, fail_with("still down", 503))

    assert not outcome.resolved
    assert outcome.error == ErrorInfo(error_class="ReplayError", message="still down", status=503)
    after = dlq.get(entry.id)
    assert (after.status, after.attempts, after.last_attempt_at) == (S.FAILED, 4, T0 + 60)
    assert after.error == outcome.error
    assert after.first_attempt_at == entry.first_attempt_at
    assert after.resolved_at is None
    assert dlq.requeue(entry.id, succeed).resolved
    assert dlq.get(entry.id).attempts == 5


def test_discard_closes_an_entry(dlq: DeadLetterQueue) -> None:
    entry = dlq.park(item(), error=TIMEOUT, attempts=1)

    discarded = dlq.discard(entry.id)

    assert discarded.status is S.DISCARDED
    assert discarded.resolved_at is None


STEPS = {"mark_reviewing": S.REVIEWING, "discard": S.DISCARDED, "resolve": S.RESOLVED, "requeue": S.REQUEUED}


def entry_in(dlq: DeadLetterQueue, status: DeadLetterStatus) -> DeadLetter:
    entry = dlq.park(item(), error=TIMEOUT, attempts=1)
    if status is S.REVIEWING:
        dlq.mark_reviewing(entry.id)
    elif status is S.DISCARDED:
        dlq.discard(entry.id)
    elif status is S.RESOLVED:
        dlq.requeue(entry.id, succeed)
    return dlq.get(entry.id)


@pytest.mark.parametrize("start", [S.FAILED, S.REVIEWING, S.DISCARDED, S.RESOLVED])
@pytest.mark.parametrize("step", sorted(STEPS))
def test_each_step_is_allowed_exactly_from_the_statuses_of_the_transition_table(
    dlq: DeadLetterQueue, start: DeadLetterStatus, step: str
) -> None:
    entry = entry_in(dlq, start)
    seen: list[DeadLetterStatus] = []

    def attempt() -> object:
        if step == "requeue":
            return dlq.requeue(entry.id, lambda claimed: seen.append(claimed.status))
        return getattr(dlq, step)(entry.id)

    if (start, STEPS[step]) in LEGAL_DEAD_LETTER_TRANSITIONS:
        attempt()
        after = dlq.get(entry.id)
        if step == "requeue":
            assert (seen, after.status) == ([S.REQUEUED], S.RESOLVED)
        else:
            assert after.status is STEPS[step]
    else:
        with pytest.raises(DeadLetterTransitionError, match=f"is '{start}'"):
            attempt()
        assert dlq.get(entry.id) == entry
        assert seen == []


def test_terminal_statuses_have_no_way_out() -> None:
    assert {source for source, _ in LEGAL_DEAD_LETTER_TRANSITIONS} == {S.FAILED, S.REVIEWING, S.REQUEUED}


def test_an_entry_being_replayed_is_not_replayed_again(dlq: DeadLetterQueue) -> None:
    entry = dlq.park(item(), error=TIMEOUT, attempts=1)
    inner: list[object] = []

    def replay_that_tries_again(claimed: DeadLetter) -> None:
        with pytest.raises(DeadLetterTransitionError, match="is 'requeued'"):
            dlq.requeue(entry.id, inner.append)
        inner.append(dlq.requeue_many(inner.append))

    outcome = dlq.requeue(entry.id, replay_that_tries_again)

    assert outcome.resolved
    assert len(inner) == 1
    assert inner[0].skipped == (entry.id,)  # type: ignore[attr-defined]


def test_a_replay_whose_lease_ran_out_is_taken_over_and_its_late_report_refused(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    dlq = DeadLetterQueue(backend, clock=clock, config=DeadLetterConfig(replay_lease=60.0))
    entry = dlq.park(item(), error=TIMEOUT, attempts=1)
    takeover: list[object] = []

    def slow_replay(claimed: DeadLetter) -> None:
        clock.advance(61)  # this replayer stalls past its lease; another one takes the entry over
        takeover.append(dlq.requeue(entry.id, succeed))
        raise RuntimeError("the stalled replay fails late")

    outcome = dlq.requeue(entry.id, slow_replay)

    assert outcome.lost
    assert takeover[0].resolved  # type: ignore[attr-defined]
    after = dlq.get(entry.id)
    assert after.status is S.RESOLVED
    assert after.error == TIMEOUT  # the stale failure report did not overwrite anything
    assert after.attempts == 2


def test_a_stale_replayer_cannot_report_over_the_replayer_that_took_over(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    """The stale report arrives while the new replayer holds the entry: only the fence tells them apart."""
    dlq = DeadLetterQueue(backend, clock=clock, config=DeadLetterConfig(replay_lease=60.0))
    entry = dlq.park(item(), error=TIMEOUT, attempts=1)
    stale_started, stale_may_report = threading.Event(), threading.Event()
    stale_outcome: list[ReplayOutcome] = []

    def stalls(claimed: DeadLetter) -> None:
        stale_started.set()
        assert stale_may_report.wait(timeout=30)
        raise ConnectionError("the stalled replay fails late")

    stale = threading.Thread(target=lambda: stale_outcome.append(dlq.requeue(entry.id, stalls)))
    stale.start()
    assert stale_started.wait(timeout=30)
    clock.advance(61)

    def takes_over(claimed: DeadLetter) -> None:
        stale_may_report.set()
        stale.join(timeout=30)  # the stale replayer reports now, while this one holds the entry

    fresh = dlq.requeue(entry.id, takes_over)

    assert not stale.is_alive()
    assert stale_outcome[0].lost
    assert fresh.resolved
    assert not fresh.lost
    after = dlq.get(entry.id)
    assert (after.status, after.error, after.attempts) == (S.RESOLVED, TIMEOUT, 2)


def test_requeue_many_resolves_successes_and_counts_failures(dlq: DeadLetterQueue) -> None:
    entries = [dlq.park(item(n), error=TIMEOUT, attempts=1) for n in range(4)]
    dlq.discard(entries[3].id)

    def handler(entry: DeadLetter) -> None:
        if entry.operation_id == "op-1":
            raise ConnectionError("still down")

    report = dlq.requeue_many(handler)

    assert report.resolved == (entries[0].id, entries[2].id)
    assert report.failed == (entries[1].id,)
    assert report.skipped == ()
    assert [dlq.get(e.id).status for e in entries] == [S.RESOLVED, S.FAILED, S.RESOLVED, S.DISCARDED]


def test_requeue_many_takes_explicit_ids_and_skips_closed_ones(dlq: DeadLetterQueue) -> None:
    entries = [dlq.park(item(n), error=TIMEOUT, attempts=1) for n in range(3)]
    dlq.discard(entries[1].id)
    seen: list[str] = []

    report = dlq.requeue_many(lambda e: seen.append(e.id), ids=[entries[1].id, entries[2].id, "dlq-404"])

    assert seen == [entries[2].id]
    assert report.resolved == (entries[2].id,)
    assert report.skipped == (entries[1].id, "dlq-404")
    assert dlq.get(entries[0].id).status is S.FAILED


def test_resolve_closes_an_open_entry(dlq: DeadLetterQueue, clock: VirtualClock) -> None:
    entry = dlq.park(item(), error=TIMEOUT, attempts=1)
    clock.advance(3)

    resolved = dlq.resolve(entry.id)

    assert (resolved.status, resolved.resolved_at, resolved.attempts) == (S.RESOLVED, T0 + 3, 1)


# -- filters and analysis ------------------------------------------------------------------------


def park_mix(dlq: DeadLetterQueue, clock: VirtualClock) -> list[DeadLetter]:
    entries = [
        dlq.park(item(1, provider="stripe", operation="charge", tenant="t1"), error=TIMEOUT, attempts=3),
        dlq.park(item(2, provider="stripe", operation="refund", tenant="t2"), error=SERVER_ERROR, attempts=5),
        dlq.park(item(3, provider="mpesa", operation="stk_push", tenant="t1"), error=TIMEOUT, attempts=1),
    ]
    clock.advance(100)
    entries.append(
        dlq.park(item(4, provider="mpesa", operation="stk_push", tenant="t2"), error=TIMEOUT, attempts=2)
    )
    entries.append(
        dlq.park(item(4, provider="mpesa", operation="stk_push", tenant="t2"), error=TIMEOUT, attempts=2)
    )
    dlq.mark_reviewing(entries[1].id)
    dlq.discard(entries[2].id)
    return entries


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (DeadLetterFilter(), [0, 1, 2, 3, 4]),
        (DeadLetterFilter(statuses=frozenset({S.FAILED})), [0, 3, 4]),
        (DeadLetterFilter(statuses=frozenset({S.REVIEWING, S.DISCARDED})), [1, 2]),
        (DeadLetterFilter(provider="mpesa"), [2, 3, 4]),
        (DeadLetterFilter(provider="stripe", operation="refund"), [1]),
        (DeadLetterFilter(since=T0 + 50), [3, 4]),
        (DeadLetterFilter(until=T0 + 50), [0, 1, 2]),
        (DeadLetterFilter(since=T0, until=T0 + 100), [0, 1, 2]),
        (DeadLetterFilter(tags={"tenant": "t2"}), [1, 3, 4]),
        (DeadLetterFilter(tags={"tenant": "t2"}, provider="mpesa", limit=1), [3]),
        (DeadLetterFilter(min_attempts=3), [0, 1]),
        (DeadLetterFilter(limit=2), [0, 1]),
        (DeadLetterFilter(limit=0), []),
        (DeadLetterFilter(provider="fineract"), []),
    ],
)
def test_filters_select_by_status_provider_operation_time_tags_and_attempts(
    dlq: DeadLetterQueue, clock: VirtualClock, flt: DeadLetterFilter, expected: list[int]
) -> None:
    entries = park_mix(dlq, clock)

    assert [e.id for e in dlq.entries(flt)] == [entries[i].id for i in expected]


def test_failure_patterns_rank_errors_and_give_rates_per_provider_and_operation(
    dlq: DeadLetterQueue, clock: VirtualClock
) -> None:
    park_mix(dlq, clock)

    patterns = dlq.failure_patterns(
        provider_totals={"stripe": 10, "mpesa": 4},
        operation_totals={("mpesa", "stk_push"): 4},
    )

    assert patterns.total_entries == 5
    assert [(e.error_class, e.status, e.count) for e in patterns.common_errors] == [
        ("timeout", None, 4),
        ("server_error", 503, 1),
    ]
    mpesa, stripe = patterns.by_provider
    assert (mpesa.provider, mpesa.entries, mpesa.operations, mpesa.unresolved, mpesa.attempts) == (
        "mpesa",
        3,
        2,
        2,
        5,
    )
    assert mpesa.failure_rate == 2 / 4
    assert math.isclose(mpesa.share, 3 / 5)
    assert (stripe.entries, stripe.failure_rate) == (2, 2 / 10)
    stk = patterns.by_operation[0]
    assert (stk.provider, stk.operation, stk.entries, stk.failure_rate) == ("mpesa", "stk_push", 3, 0.5)
    refund = next(g for g in patterns.by_operation if g.operation == "refund")
    assert refund.failure_rate is None


def test_stats_count_by_status_and_provider(dlq: DeadLetterQueue, clock: VirtualClock) -> None:
    park_mix(dlq, clock)

    stats = dlq.stats()

    assert stats.total == 5
    assert dict(stats.by_status) == {
        "failed": 3,
        "reviewing": 1,
        "requeued": 0,
        "discarded": 1,
        "resolved": 0,
    }
    assert dict(stats.by_provider) == {"mpesa": 3, "stripe": 2}
    assert (stats.unresolved, stats.oldest_unresolved_at) == (4, T0)


# -- retention -----------------------------------------------------------------------------------


def test_purge_deletes_only_closed_entries_past_retention(backend: StoreBackend, clock: VirtualClock) -> None:
    dlq = DeadLetterQueue(backend, clock=clock, config=DeadLetterConfig(retention=30 * 86400.0))
    old_resolved = dlq.park(item(1), error=TIMEOUT, attempts=1)
    old_discarded = dlq.park(item(2), error=TIMEOUT, attempts=1)
    old_open = dlq.park(item(3), error=TIMEOUT, attempts=1)
    dlq.resolve(old_resolved.id)
    dlq.discard(old_discarded.id)
    clock.advance(10 * 86400)
    young_resolved = dlq.park(item(4), error=TIMEOUT, attempts=1)
    dlq.resolve(young_resolved.id)
    clock.advance(20 * 86400 + 1)

    assert dlq.purge() == 2
    assert {e.id for e in dlq.entries()} == {old_open.id, young_resolved.id}
    assert dlq.purge(include_unresolved=True) == 1
    assert [e.id for e in dlq.entries()] == [young_resolved.id]


def test_purge_never_deletes_an_entry_being_replayed(backend: StoreBackend, clock: VirtualClock) -> None:
    dlq = DeadLetterQueue(backend, clock=clock, config=DeadLetterConfig(retention=10.0))
    entry = dlq.park(item(), error=TIMEOUT, attempts=1)
    purged: list[int] = []

    def replay(claimed: DeadLetter) -> None:
        clock.advance(100)
        purged.append(dlq.purge(include_unresolved=True))

    assert dlq.requeue(entry.id, replay).resolved
    assert purged == [0]


# -- export --------------------------------------------------------------------------------------


def test_export_jsonl_writes_one_object_per_entry(
    dlq: DeadLetterQueue, clock: VirtualClock, tmp_path: Path
) -> None:
    entries = park_mix(dlq, clock)
    path = tmp_path / "exports" / "dlq.jsonl"

    count = dlq.export_jsonl(path, DeadLetterFilter(provider="mpesa"))

    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert count == len(rows) == 3
    assert [r["id"] for r in rows] == [e.id for e in entries[2:]]
    assert rows[0]["payload"] == {"amount": 300, "currency": "usd"}
    assert rows[0]["error"] == {"error_class": "timeout", "message": "read timed out", "status": None}
    assert rows[0]["tags"] == {"tenant": "t1"}
    assert rows[0]["status"] == "discarded"
    assert list(tmp_path.joinpath("exports").iterdir()) == [path]  # no temporary file left behind


def test_export_jsonl_writes_to_an_open_stream(dlq: DeadLetterQueue) -> None:
    dlq.park(item(), error=TIMEOUT, attempts=1)
    out = io.StringIO()

    assert dlq.export_jsonl(out) == 1
    assert json.loads(out.getvalue())["operation_id"] == "op-1"


def test_frame_has_the_explicit_columns_and_one_row_per_entry(
    dlq: DeadLetterQueue, clock: VirtualClock
) -> None:
    assert list(dlq.to_frame().columns) == DEAD_LETTER_COLUMNS
    assert dlq.to_frame().empty
    park_mix(dlq, clock)

    frame = dlq.to_frame(DeadLetterFilter(provider="stripe"))

    assert list(frame.columns) == DEAD_LETTER_COLUMNS
    assert frame["operation_id"].tolist() == ["op-1", "op-2"]
    assert frame["status"].tolist() == ["failed", "reviewing"]
    assert frame["error_status"].tolist() == [pd.NA, 503]
    assert json.loads(frame["payload"].iloc[1]) == {"amount": 200, "currency": "usd"}
    assert json.loads(frame["tags"].iloc[1]) == {"tenant": "t2"}


# -- bad input -----------------------------------------------------------------------------------


def test_a_payload_that_is_not_json_is_refused_and_nothing_is_parked(dlq: DeadLetterQueue) -> None:
    bad = WorkItem(
        operation_id="op-1", operation="charge", provider="stripe", payload={"card": {"exp": {1, 2}}}
    )

    with pytest.raises(PayloadNotSerializableError, match=r"payload\['card'\]\['exp'\] is a builtins.set"):
        dlq.park(bad, error=TIMEOUT, attempts=1)
    assert dlq.entries() == []


def test_an_oversized_payload_is_refused_and_nothing_is_parked(
    backend: StoreBackend, clock: VirtualClock
) -> None:
    dlq = DeadLetterQueue(backend, clock=clock, config=DeadLetterConfig(max_payload_bytes=256))
    big = WorkItem(operation_id="op-1", operation="charge", provider="stripe", payload={"blob": "x" * 300})

    with pytest.raises(PayloadTooLargeError, match="the limit is 256 bytes"):
        dlq.park(big, error=TIMEOUT, attempts=1)
    assert dlq.entries() == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempts": -1}, "attempts must be an int >= 0"),
        ({"attempts": 1.5}, "attempts must be an int >= 0"),
        ({"attempts": 1, "last_attempt_at": math.inf}, "last_attempt_at must be a finite number"),
        ({"attempts": 1, "first_attempt_at": 10.0, "last_attempt_at": 5.0}, "is after last_attempt_at"),
    ],
)
def test_invalid_attempt_details_are_refused_and_nothing_is_parked(
    dlq: DeadLetterQueue, kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(InvalidPayloadError, match=message):
        dlq.park(item(), error=TIMEOUT, **kwargs)  # type: ignore[arg-type]
    assert dlq.entries() == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"operation_id": ""}, "operation_id must be a non-empty str"),
        ({"provider": None}, "provider must be a non-empty str"),
        ({"tags": {"tenant": 1}}, "tags must map str to str"),
    ],
)
def test_an_invalid_work_item_is_refused_when_built(fields: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"operation_id": "op-1", "operation": "charge", "provider": "stripe"}

    with pytest.raises(ValueError, match=message):
        WorkItem(**{**base, **fields})  # type: ignore[arg-type]


def test_a_long_error_message_is_cut_to_keep_the_queue_small(dlq: DeadLetterQueue) -> None:
    entry = dlq.park(item(), error=ErrorInfo(error_class="server_error", message="x" * 10_000), attempts=1)

    assert len(dlq.get(entry.id).error.message) == 2000
