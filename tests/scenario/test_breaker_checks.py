"""Breaker and retry checks on synthetic histories: each passes a clean run and fails a broken one."""

from __future__ import annotations

import pytest

from harness.scenario import (
    breaker_transitions_legal,
    no_calls_while_open,
    no_retry_after_definite_answer,
    recovers_after_faults,
)
from tests.scenario.builders import attempt, build_history, fault, op, request, transition

OPEN_THEN_CLOSE = [
    transition(1.0, "closed", "open"),
    transition(2.0, "open", "half_open"),
    transition(2.1, "half_open", "closed"),
]


def test_legal_transition_sequence_passes() -> None:
    assert breaker_transitions_legal(build_history(breaker_events=OPEN_THEN_CLOSE)).passed


def test_closed_straight_to_half_open_is_illegal() -> None:
    history = build_history(breaker_events=[transition(1.0, "closed", "half_open")])

    result = breaker_transitions_legal(history)

    assert not result.passed
    assert list(result.evidence["to_state"]) == ["half_open"]


def test_open_straight_to_closed_is_legal_only_by_hand() -> None:
    automatic = build_history(
        breaker_events=[transition(1.0, "closed", "open"), transition(2.0, "open", "closed")]
    )
    by_hand = build_history(
        breaker_events=[transition(1.0, "closed", "open"), transition(2.0, "open", "closed", manual=True)]
    )

    assert not breaker_transitions_legal(automatic).passed
    assert breaker_transitions_legal(by_hand).passed


def test_a_transition_from_a_state_the_breaker_was_not_in_is_inconsistent() -> None:
    history = build_history(
        breaker_events=[transition(1.0, "closed", "open"), transition(2.0, "half_open", "closed")]
    )

    result = breaker_transitions_legal(history)

    assert not result.passed
    assert list(result.evidence["expected_from"]) == ["open"]


def test_breaker_checks_without_breaker_events_are_not_applicable_rather_than_passed_silently() -> None:
    history = build_history(requests=[request("a", 1.5)])

    for check in (breaker_transitions_legal, no_calls_while_open):
        result = check(history)
        assert result.passed
        assert not result.applicable
        assert result.summary.startswith("not applicable")


def test_no_request_while_open_passes() -> None:
    history = build_history(
        breaker_events=OPEN_THEN_CLOSE,
        attempts=[attempt("a", 0.5), attempt("b", 1.5, "rejected"), attempt("c", 2.05)],
        requests=[request("a", 0.5), request("c", 2.05)],
    )

    assert no_calls_while_open(history).passed


def test_a_request_arriving_while_open_fails_even_if_the_client_says_it_rejected() -> None:
    history = build_history(
        breaker_events=OPEN_THEN_CLOSE,
        attempts=[attempt("b", 1.5, "rejected")],
        requests=[request("b", 1.5)],
    )

    result = no_calls_while_open(history)

    assert not result.passed
    assert list(result.evidence["correlation_id"]) == ["c-b"]
    assert float(result.evidence["open_since"].iloc[0]) == 1.0


def test_a_request_already_in_flight_when_the_breaker_opened_is_excused() -> None:
    history = build_history(
        breaker_events=OPEN_THEN_CLOSE,
        attempts=[attempt("a", 0.99, "error", latency=0.05)],
        requests=[request("a", 1.01)],
    )

    assert no_calls_while_open(history).passed


def test_a_breaker_still_open_at_the_end_of_the_run_counts_to_the_end() -> None:
    history = build_history(breaker_events=[transition(1.0, "closed", "open")], requests=[request("z", 2.9)])

    assert not no_calls_while_open(history).passed


def test_retrying_a_declined_request_fails() -> None:
    history = build_history(
        requests=[
            request("a", 0.1, 402),
            request("a", 0.2, 402),
            request("b", 0.3, 500),
            request("b", 0.4, 200),
        ]
    )

    result = no_retry_after_definite_answer(history)

    assert not result.passed
    assert list(result.evidence["t"]) == [0.2]


def test_retrying_after_server_errors_is_fine() -> None:
    history = build_history(requests=[request("b", 0.3, 500), request("b", 0.4, 503), request("b", 0.5, 200)])

    assert no_retry_after_definite_answer(history).passed


def test_recovery_fails_when_an_operation_after_the_bound_does_not_succeed() -> None:
    history = build_history(
        faults=[fault(0.5, 1.5)],
        operations=[op("a", "failed", 1.0), op("b", "succeeded", 2.5), op("c", "failed", 2.7)],
    )

    result = recovers_after_faults(within=1.0)(history)

    assert not result.passed
    assert list(result.evidence["operation_id"]) == ["c"]


def test_recovery_passes_when_failures_stay_inside_the_bound() -> None:
    history = build_history(
        faults=[fault(0.5, 1.5)],
        operations=[op("a", "failed", 1.0), op("b", "failed", 2.0), op("c", "succeeded", 2.6)],
    )

    assert recovers_after_faults(within=1.0)(history).passed


def test_recovery_cannot_be_judged_without_operations_after_the_bound() -> None:
    history = build_history(faults=[fault(0.5, 1.5)], operations=[op("a", "failed", 1.0)])

    result = recovers_after_faults(within=1.0)(history)

    assert not result.applicable
    assert "lengthen the workload" in result.summary


def test_recovery_bound_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="within"):
        recovers_after_faults(within=-1)
