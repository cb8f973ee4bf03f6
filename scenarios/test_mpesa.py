"""M-Pesa Daraja: lost callbacks, lost push answers and revoked tokens against the fake Daraja.

Daraja has no idempotency key, so the one thing a client must never do is push a prompt twice for
one operation; its outcome is the payment, which it learns from the callback or, when that is lost,
from the STK query; and its token must be refreshed once per revocation, never in a loop.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.drivers import (
    stk_callbacks_only,
    stk_repush_after_lost_answer,
    token_every_call,
    token_refresh_loop,
)
from harness.scenario import (
    RunResult,
    stk_callbacks_lost,
    stk_push_answer_and_callback_lost,
    stk_push_answer_lost,
    token_revoked,
)
from harness.stack import Stack
from scenarios.conftest import failures

pytestmark = pytest.mark.scenario


def _failed(result: RunResult) -> list[str]:
    return [c.name for c in result.checks if not c.passed]


def _lost_push_answers(result: RunResult) -> int:
    """Pushes whose answer the client never read (the fault really bit)."""
    attempts = result.history.attempts
    pushes = attempts[attempts["action"] == "stk_push"]
    return int(pushes["error"].isin(["reset", "timeout", "protocol"]).sum())


def test_lost_and_late_callbacks_are_reconciled_by_query_with_one_prompt_each(
    run_harness_scenario: Callable[..., RunResult], harness_stack: Stack
) -> None:
    result = run_harness_scenario(stk_callbacks_lost())
    admin = harness_stack.admin("mpesa")

    assert result.passed, failures(result)
    dropped = [d["url"] for d in admin.deliveries() if d["fault"] == "callback_drop"]
    late = [j["payload"]["url"] for j in admin.jobs() if j["payload"].get("fault") == "callback_delay"]
    assert dropped, "no callback was dropped, so nothing was tested"
    assert late, "no callback was delayed, so nothing was tested"
    assert all(int(url[-1]) % 2 == 0 for url in dropped), "a callback of an odd operation was dropped"
    assert all(int(url[-1]) % 2 == 1 for url in late), "a callback of an even operation was delayed"
    outcomes = set(result.history.operations["outcome"])
    assert outcomes == {"succeeded", "failed"}, "the result mix should end in both payments and refusals"
    queries = result.history.requests["path"] == "/mpesa/stkpushquery/v1/query"
    assert queries.sum() > 0


@pytest.mark.control
def test_a_client_that_waits_for_callbacks_alone_loses_the_payments(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(stk_callbacks_lost(), driver=stk_callbacks_only)

    assert _failed(result) == ["nothing_lost"]
    assert len(result.check("nothing_lost").evidence) > 0


def test_a_push_whose_answer_was_lost_is_never_pushed_again_and_ends_by_its_callback(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(stk_push_answer_lost())

    assert _lost_push_answers(result) > 0, "no push lost its answer, so nothing was tested"
    assert result.passed, failures(result)
    ops = result.history.operations
    assert set(ops["outcome"]) <= {"succeeded", "failed"}


@pytest.mark.control
def test_a_client_that_pushes_again_after_a_lost_answer_prompts_twice(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(stk_push_answer_lost(), driver=stk_repush_after_lost_answer)

    effects = result.check("effects_at_most_once")
    assert not effects.passed
    assert "stk_prompt" in set(effects.evidence["kind"])
    assert (effects.evidence.groupby(["operation_id", "kind"]).size() > 1).any()


def test_a_push_whose_answer_and_callback_were_lost_stays_parked_and_is_not_pushed_again(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(stk_push_answer_and_callback_lost())

    assert result.passed, failures(result)
    ops = result.history.operations
    parked = ops[ops["outcome"] == "parked"]
    assert len(parked) > 0, (
        "no push lost both its answer and its callback, so nothing was tested:\n"
        + result.history.attempts.to_string()
    )
    prompts = result.history.effects
    prompts = prompts[prompts["kind"] == "stk_prompt"]
    assert set(parked["operation_id"]) <= set(prompts["operation_id"]), "parked without a prompt sent"
    assert parked["detail"].str.contains("not pushed again").all()


@pytest.mark.control
def test_the_same_faults_make_a_repushing_client_prompt_twice(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(stk_push_answer_and_callback_lost(), driver=stk_repush_after_lost_answer)

    assert "effects_at_most_once" in _failed(result)


def test_a_revoked_token_costs_one_refresh_and_a_refused_one_no_loop(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(token_revoked())

    assert result.passed, failures(result)
    requests = result.history.requests
    assert (requests["fault"] == "token_revocation").sum() >= 3, "the revocations never bit"
    assert (requests["path"] == "/oauth/v1/generate").sum() > 1, "the client never had to refresh"
    assert (requests["status"] == 404).sum() > 0


@pytest.mark.control
def test_a_client_that_fetches_a_token_for_every_call_is_caught(
    run_harness_scenario: Callable[..., RunResult],
) -> None:
    result = run_harness_scenario(token_revoked(), driver=token_every_call)

    assert "token_refresh_single_flight" in _failed(result)
    assert "no_invalid_token_loop" not in _failed(result)


@pytest.mark.control
def test_a_client_that_refreshes_in_a_loop_is_caught(run_harness_scenario: Callable[..., RunResult]) -> None:
    result = run_harness_scenario(token_revoked(), driver=token_refresh_loop)

    assert _failed(result) == ["no_invalid_token_loop"]
    assert (result.check("no_invalid_token_loop").evidence["status"] == 404).all()
