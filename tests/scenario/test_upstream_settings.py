"""Upstream settings windows: validated on construction, applied on the run's timeline by the runner,
restored when the window closes and before the settle phase, and the before-settle hook's place."""

from __future__ import annotations

from typing import Any

import pytest

from harness._driver import DriverSetup, Operation, Outcome
from harness.chaos import FaultSchedule
from harness.resilience import ErrorClass
from harness.scenario import (
    PlannedOperation,
    Scenario,
    UpstreamSettings,
    Workload,
    nothing_lost,
    run_scenario,
)
from harness.stack import Stack


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"upstream": "", "values": {"a": 1}}, "upstream"),
        ({"upstream": "stripe", "values": {}}, "values"),
        ({"upstream": "stripe", "values": {"a": 1}, "start": -1.0}, "start"),
        ({"upstream": "stripe", "values": {"a": 1}, "start": 1.0, "end": 1.0}, "end"),
        ({"upstream": "stripe", "values": {"a": 1}, "end": float("inf")}, "end"),
    ],
)
def test_a_settings_window_that_cannot_work_is_refused_naming_the_parameter(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=f"UpstreamSettings.{message}"):
        UpstreamSettings(**kwargs)


def test_the_values_of_a_window_cannot_be_changed_behind_its_back() -> None:
    values = {"rate_limit_enabled": True}
    window = UpstreamSettings(upstream="stripe", values=values)
    values["rate_limit_enabled"] = False

    assert window.values == {"rate_limit_enabled": True}
    with pytest.raises(TypeError):
        window.values["x"] = 1  # type: ignore[index]


def _scenario(*settings: UpstreamSettings, at: tuple[float, ...] = (0.0,), **extra: Any) -> Scenario:
    return Scenario(
        name="settings-test",
        title="t",
        description="d",
        workload=Workload.of(
            PlannedOperation(
                at=t,
                operation=Operation(operation_id=f"op-{i}", upstream="stripe", action="charge", amount=1),
            )
            for i, t in enumerate(at)
        ),
        schedule=FaultSchedule.of([]),
        checks=(nothing_lost,),
        concurrency=1,
        settings=settings,
        **extra,
    )


def test_two_windows_setting_one_setting_at_once_are_refused() -> None:
    first = UpstreamSettings(upstream="stripe", values={"rate_limit_enabled": True}, start=0.0, end=1.0)
    clash = UpstreamSettings(upstream="stripe", values={"rate_limit_enabled": False}, start=0.5)
    later = UpstreamSettings(upstream="stripe", values={"rate_limit_enabled": False}, start=1.0)
    other = UpstreamSettings(upstream="stripe", values={"lock_timeout": 1.0}, start=0.5)

    with pytest.raises(ValueError, match="overlap"):
        _scenario(first, clash)
    assert len(_scenario(first, later, other).settings) == 3


def test_a_scenario_needs_the_upstreams_its_settings_change() -> None:
    scenario = _scenario(UpstreamSettings(upstream="cbs", values={"locked_loans": ["1"]}))

    assert scenario.upstreams() == {"stripe", "cbs"}


def _state(stack: Stack) -> tuple[bool, float]:
    config = stack.admin("stripe").config()
    return config["rate_limit_enabled"], config["lock_timeout"]


class _SeesSettings:
    """Reads the fake's settings at every step the runner gives it, and remembers them."""

    def __init__(self, stack: Stack, seen: list[tuple[str, Any]]) -> None:
        self.stack = stack
        self.seen = seen

    def _read(self, when: str) -> None:
        self.seen.append((when, _state(self.stack)))

    def perform(self, operation: Operation) -> Outcome:
        self._read(operation.operation_id)
        return Outcome.failed(ErrorClass.VALIDATION)

    def settle(self) -> dict[str, Outcome]:
        self._read("settle")
        return {}

    def close(self) -> None:
        return None


def test_the_runner_applies_a_window_on_time_and_restores_it_when_it_closes_and_before_settling(
    harness_stack: Stack,
) -> None:
    seen: list[tuple[str, Any]] = []

    def operator(stack: Stack) -> None:
        seen.append(("before_settle", _state(stack)))

    scenario = _scenario(
        UpstreamSettings(upstream="stripe", values={"rate_limit_enabled": True}, start=0.2, end=0.5),
        UpstreamSettings(upstream="stripe", values={"lock_timeout": 0.5}, start=0.6),
        at=(0.0, 0.3, 0.7),
        before_settle=operator,
    )

    def factory(setup: DriverSetup) -> _SeesSettings:
        return _SeesSettings(harness_stack, seen)

    result = run_scenario(scenario, harness_stack, factory)

    assert seen == [
        ("op-0", (False, 2.0)),
        ("op-1", (True, 2.0)),
        ("op-2", (False, 0.5)),
        ("before_settle", (False, 2.0)),
        ("settle", (False, 2.0)),
    ]
    assert [s["values"] for s in result.history.meta["settings"]] == [
        {"rate_limit_enabled": True},
        {"lock_timeout": 0.5},
    ]
