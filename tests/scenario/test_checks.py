"""Each checker passes a clean history and fails, with its evidence, a history that breaks it."""

from __future__ import annotations

from pathlib import Path

from harness.scenario import History, effects_at_most_once, truthful_outcomes
from tests.scenario.builders import build_history, effect, op


def test_one_effect_per_operation_passes() -> None:
    history = build_history(
        operations=[op("a", "succeeded"), op("b", "succeeded")], effects=[effect("a"), effect("b")]
    )

    result = effects_at_most_once(history)

    assert result.passed
    assert result.evidence.empty


def test_a_second_effect_for_one_operation_fails_with_both_effects_as_evidence() -> None:
    history = build_history(
        operations=[op("a", "unknown"), op("b", "succeeded")],
        effects=[effect("a", 0.1), effect("a", 0.2), effect("b", 0.3)],
    )

    result = effects_at_most_once(history)

    assert not result.passed
    assert list(result.evidence["operation_id"]) == ["a", "a"]
    assert "1 operations applied more than once (1 extra charge effects)" in result.summary


def test_an_effect_that_names_no_operation_of_the_run_fails() -> None:
    """A driver that does not pass its operation ids would otherwise get a green light blind."""
    history = build_history(operations=[op("a", "succeeded")], effects=[effect("a"), effect(None)])

    result = effects_at_most_once(history)

    assert not result.passed
    assert "cannot be attributed" in result.summary
    assert len(result.evidence) == 1


def test_truthful_outcomes_accepts_unknown_with_or_without_effect() -> None:
    history = build_history(
        operations=[op("a", "unknown"), op("b", "unknown"), op("c", "failed"), op("d", "succeeded")],
        effects=[effect("a"), effect("d")],
    )

    assert truthful_outcomes(history).passed


def test_a_reported_success_without_its_effect_fails() -> None:
    history = build_history(operations=[op("a", "succeeded")], effects=[])

    result = truthful_outcomes(history)

    assert not result.passed
    assert list(result.evidence["operation_id"]) == ["a"]
    assert "1 successes without an effect" in result.summary


def test_a_reported_failure_whose_effect_was_applied_fails() -> None:
    history = build_history(operations=[op("a", "failed")], effects=[effect("a")])

    result = truthful_outcomes(history)

    assert not result.passed
    assert int(result.evidence["effects"].iloc[0]) == 1


def test_check_results_serialise_to_plain_json() -> None:
    history = build_history(operations=[op("a", "failed")], effects=[effect("a")])

    data = truthful_outcomes(history).to_json()

    assert data["passed"] is False
    assert data["evidence_rows"] == 1
    assert data["evidence"][0]["operation_id"] == "a"
    assert data["evidence"][0]["reference"] is None


def test_history_survives_a_save_and_load(tmp_path: Path) -> None:
    history = build_history(operations=[op("a", "succeeded")], effects=[effect("a")])

    loaded = History.load(history.save(tmp_path / "h"))

    assert loaded.meta == history.meta
    assert list(loaded.operations["operation_id"]) == ["a"]
    assert list(loaded.effects["object_id"]) == list(history.effects["object_id"])


def test_effects_of_different_kinds_for_one_operation_are_not_a_duplicate() -> None:
    """An STK prompt and then the payment it led to are one operation's two effects."""
    history = build_history(
        operations=[op("a", "succeeded")],
        effects=[effect("a", 0.1, "stk_prompt"), effect("a", 0.9, "stk_payment")],
    )

    assert effects_at_most_once(history).passed


def test_a_second_prompt_for_the_same_operation_is_a_duplicate() -> None:
    history = build_history(
        operations=[op("a", "unknown")],
        effects=[effect("a", 0.1, "stk_prompt"), effect("a", 0.4, "stk_prompt")],
    )

    result = effects_at_most_once(history)

    assert not result.passed
    assert "stk_prompt" in result.summary
    assert list(result.evidence["kind"]) == ["stk_prompt", "stk_prompt"]


def test_a_failure_may_leave_a_prompt_behind_but_not_a_payment() -> None:
    prompted = build_history(operations=[op("a", "failed")], effects=[effect("a", 0.1, "stk_prompt")])
    paid = build_history(
        operations=[op("a", "failed")],
        effects=[effect("a", 0.1, "stk_prompt"), effect("a", 0.5, "stk_payment")],
    )

    assert truthful_outcomes(prompted).passed
    assert not truthful_outcomes(paid).passed
