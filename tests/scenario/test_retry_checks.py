"""Retry-discipline and outcome checks on synthetic histories (each passes a clean run and fails a
broken one), and the request log's ``retry_after`` column on a real fake."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from fake_upstreams._base import _retry_after
from harness.scenario import (
    every_operation_succeeds,
    no_premature_success,
    retries_honour_retry_after,
    retry_amplification_within,
)
from harness.stack import Stack
from tests.scenario.builders import build_history, effect, op, request


def _answer(
    operation_id: str | None, t: float, status: int = 200, retry_after: float | None = None
) -> dict[str, Any]:
    return {**request(operation_id, t, status), "duration": 0.01, "retry_after": retry_after}


# -- retries_honour_retry_after --------------------------------------------------------------------


def test_a_retry_that_waits_as_long_as_retry_after_asks_passes() -> None:
    history = build_history(
        requests=[_answer("a", 0.0, 429, retry_after=1.0), _answer("a", 1.02), _answer("b", 0.5)]
    )

    result = retries_honour_retry_after(history)

    assert result.passed
    assert result.applicable
    assert result.evidence.empty


def test_a_retry_sooner_than_retry_after_fails_with_the_request_and_its_wait() -> None:
    history = build_history(
        requests=[
            _answer("a", 0.0, 429, retry_after=1.0),
            _answer("a", 0.05, 429, retry_after=1.0),
            _answer("a", 1.2),
            _answer("b", 0.0, 429, retry_after=2.0),
            _answer("b", 1.5),
        ]
    )

    result = retries_honour_retry_after(history)

    assert not result.passed
    assert list(result.evidence["correlation_id"]) == ["c-a", "c-b"]
    first, second = result.evidence.to_dict(orient="records")
    assert (first["t"], first["retry_after"]) == (0.05, 1.0)
    assert first["waited"] == pytest.approx(0.04)
    assert (second["t"], second["retry_after"]) == (1.5, 2.0)
    assert second["waited"] == pytest.approx(1.49)


def test_the_wait_is_measured_from_the_end_of_the_answer_not_its_arrival() -> None:
    slow = {**_answer("a", 0.0, 429, retry_after=1.0), "duration": 0.5}
    history = build_history(requests=[slow, _answer("a", 1.3)])

    assert not retries_honour_retry_after(history).passed


def test_requests_of_other_operations_may_come_at_any_time() -> None:
    history = build_history(requests=[_answer("a", 0.0, 429, retry_after=1.0), _answer("b", 0.02)])

    assert retries_honour_retry_after(history).passed


@pytest.mark.parametrize(
    ("requests", "why"),
    [
        ([_answer("a", 0.0, 500), _answer("a", 0.01)], "no answer of the upstream carried Retry-After"),
        ([_answer(None, 0.0, 429, retry_after=1.0), _answer(None, 0.01)], "without a correlation id"),
    ],
)
def test_without_retry_after_answers_to_group_the_check_is_not_applicable(
    requests: list[dict[str, Any]], why: str
) -> None:
    result = retries_honour_retry_after(build_history(requests=requests))

    assert result.passed
    assert not result.applicable
    assert why in result.summary


def test_a_history_saved_before_the_retry_after_column_is_not_judged() -> None:
    history = build_history(requests=[_answer("a", 0.0, 429, retry_after=1.0)])
    older = dataclasses.replace(history, requests=history.requests.drop(columns=["retry_after"]))

    result = retries_honour_retry_after(older)

    assert not result.applicable


# -- retry_amplification_within -----------------------------------------------------------------


def _three_ops() -> list[dict[str, Any]]:
    return [op("a", "succeeded"), op("b", "succeeded"), op("c", "succeeded")]


def test_requests_per_operation_within_the_limit_pass() -> None:
    requests = [_answer("a", 0.0, 429), _answer("a", 1.0), _answer("b", 0.1), _answer("c", 0.2)]

    result = retry_amplification_within(1.5)(build_history(operations=_three_ops(), requests=requests))

    assert result.passed
    assert "1.33 each" in result.summary


def test_a_retry_storm_fails_with_the_busiest_operations_first() -> None:
    storm = [_answer("a", i * 0.02, 429) for i in range(6)]
    requests = [*storm, _answer("b", 0.1), _answer("c", 0.2)]

    result = retry_amplification_within(2.0)(build_history(operations=_three_ops(), requests=requests))

    assert not result.passed
    assert result.evidence.iloc[0]["correlation_id"] == "c-a"
    assert result.evidence.iloc[0]["requests"] == 6


def test_requests_to_upstreams_the_workload_did_not_use_are_not_counted() -> None:
    other = [{**_answer("x", 0.1 * i), "upstream": "cbs"} for i in range(10)]

    result = retry_amplification_within(1.0)(build_history(operations=_three_ops(), requests=other))

    assert result.passed


@pytest.mark.parametrize("limit", [0.5, float("nan"), float("inf")])
def test_an_amplification_limit_below_one_or_not_finite_is_refused(limit: float) -> None:
    with pytest.raises(ValueError, match="limit"):
        retry_amplification_within(limit)


def test_amplification_without_operations_is_not_applicable() -> None:
    assert not retry_amplification_within(2.0)(build_history()).applicable


# -- no_premature_success -------------------------------------------------------------------------


def test_successes_reported_after_their_effect_pass() -> None:
    history = build_history(operations=[op("a", "succeeded")], effects=[effect("a", t=0.005)])

    result = no_premature_success(history)

    assert result.passed
    assert result.applicable


def test_a_success_reported_before_its_effect_existed_fails_even_if_the_effect_came_later() -> None:
    approved_later = effect("a", t=2.0)
    history = build_history(
        operations=[op("a", "succeeded"), op("b", "succeeded"), op("c", "succeeded")],
        effects=[approved_later, effect("b", t=0.005)],
    )

    result = no_premature_success(history)

    assert not result.passed
    assert list(result.evidence["operation_id"]) == ["a", "c"]
    assert "1 applied only later, 1 never" in result.summary


def test_a_prompt_is_not_the_payment_it_asks_for() -> None:
    history = build_history(
        operations=[op("a", "succeeded")],
        effects=[effect("a", t=0.001, kind="stk_prompt"), effect("a", t=5.0, kind="stk_payment")],
    )

    assert not no_premature_success(history).passed


def test_a_run_without_reported_successes_is_not_judged_for_premature_ones() -> None:
    history = build_history(operations=[op("a", "parked")], effects=[effect("a", t=2.0)])

    assert not no_premature_success(history).applicable


# -- every_operation_succeeds ---------------------------------------------------------------------


def test_every_operation_succeeding_passes() -> None:
    assert every_operation_succeeds(build_history(operations=_three_ops())).passed


def test_an_operation_dropped_as_failed_or_left_parked_fails() -> None:
    history = build_history(operations=[op("a", "succeeded"), op("b", "failed"), op("c", "parked")])

    result = every_operation_succeeds(history)

    assert not result.passed
    assert list(result.evidence["operation_id"]) == ["b", "c"]


# -- the request log's retry_after --------------------------------------------------------------


def test_retry_after_is_read_from_seconds_and_from_an_http_date() -> None:
    later = format_datetime(datetime.fromtimestamp(1_000_030, UTC), usegmt=True)

    assert _retry_after([(b"retry-after", b"1.5")], now_wall=0.0) == 1.5
    assert _retry_after([(b"retry-after", later.encode())], now_wall=1_000_000.0) == 30.0
    assert _retry_after([(b"content-type", b"text/plain")], now_wall=0.0) is None
    assert _retry_after([(b"retry-after", b"soon")], now_wall=0.0) is None
    assert _retry_after([(b"retry-after", b"-3")], now_wall=0.0) is None


def test_the_upstream_log_records_the_retry_after_each_answer_carried(harness_stack: Stack) -> None:
    admin = harness_stack.admin("stripe")
    admin.reset()
    admin.add_fault(
        {"kind": "throttle", "path": "/v1/payment_intents", "count": 1, "params": {"retry_after": 2.5}}
    )
    secret = harness_stack.upstreams["stripe"].credentials["secret_key"]
    try:
        with httpx.Client(base_url=harness_stack.upstreams["stripe"].direct_url, timeout=10.0) as http:
            statuses = [
                http.post(
                    "/v1/payment_intents",
                    data={"amount": "100", "currency": "usd"},
                    headers={"Authorization": f"Bearer {secret}"},
                ).status_code
                for _ in range(2)
            ]
        logged = [(r["status"], r["retry_after"]) for r in admin.requests()]
    finally:
        admin.reset()

    assert statuses == [429, 200]
    assert logged == [(429, 2.5), (200, None)]
