"""Exploration finds a breaking fault schedule for a broken client, shrinks it, and it replays."""

from __future__ import annotations

import dataclasses

import pytest

from harness.drivers import reference_without_idempotency
from harness.scenario import ExploreConfig, explore, response_lost_after_commit, run_scenario
from harness.stack import Stack

SMALL = response_lost_after_commit(operations=20, interval=0.05)


def test_a_breaking_schedule_is_found_within_budget_and_replays_to_the_same_failure(
    harness_stack: Stack,
) -> None:
    config = ExploreConfig(examples=6, max_runs=14, seed=3, min_duration=0.4)

    exploration = explore(SMALL, harness_stack, reference_without_idempotency, config)

    assert exploration.found
    assert exploration.runs <= config.max_runs
    assert exploration.counterexample is not None
    assert not exploration.counterexample.check("effects_at_most_once").passed
    minimal = exploration.minimal_schedule
    assert minimal is not None
    assert 1 <= len(minimal) <= config.max_faults
    replay = run_scenario(
        dataclasses.replace(SMALL, schedule=minimal), harness_stack, reference_without_idempotency
    )
    assert not replay.check("effects_at_most_once").passed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"examples": 0}, "examples"),
        ({"examples": 5, "max_runs": 4}, "max_runs"),
        ({"max_faults": 0}, "max_faults"),
    ],
)
def test_explore_config_rejects_budgets_that_cannot_work(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExploreConfig(**kwargs)
