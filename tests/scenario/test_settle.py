"""The settle phase: a driver's final word on what it left open, and the checks that judge it."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from harness import DriverSetup, Operation, Outcome, OutcomeKind
from harness.chaos import FaultSchedule
from harness.resilience import ErrorClass
from harness.scenario import Scenario, Workload, dead_letters_converge, nothing_lost, run_scenario
from harness.stack import Stack
from tests.scenario.builders import build_history, op


def test_an_unknown_outcome_after_settling_is_lost() -> None:
    history = build_history(operations=[op("a", "succeeded"), op("b", "unknown"), op("c", "parked")])

    result = nothing_lost(history)

    assert not result.passed
    assert list(result.evidence["operation_id"]) == ["b"]


def test_parked_operations_must_be_replayed_to_an_end() -> None:
    replayed = {**op("a", "succeeded"), "initial_outcome": "parked", "settled_at": 3.0}
    stuck = op("b", "parked")

    assert dead_letters_converge(build_history(operations=[replayed])).passed
    result = dead_letters_converge(build_history(operations=[replayed, stuck]))
    assert not result.passed
    assert list(result.evidence["operation_id"]) == ["b"]


def test_dead_letter_check_is_not_applicable_when_nothing_was_parked() -> None:
    assert not dead_letters_converge(build_history(operations=[op("a", "succeeded")])).applicable


class _ParkThenSettle:
    """Charges for real, reports every operation parked, and settles them as succeeded."""

    def __init__(self, setup: DriverSetup, *, settle_error: Exception | None = None, extra: str = "") -> None:
        stripe = setup.endpoints["stripe"]
        self.http = httpx.Client(
            base_url=stripe.base_url,
            headers={"Authorization": f"Bearer {stripe.credentials['secret_key']}"},
            trust_env=False,
        )
        self.references: dict[str, str] = {}
        self.settle_error = settle_error
        self.extra = extra
        self.state_dir = setup.state_dir

    def perform(self, operation: Operation) -> Outcome:
        response = self.http.post(
            "/v1/payment_intents",
            data={
                "amount": operation.amount,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": "true",
                "metadata[operation_id]": operation.operation_id,
            },
        )
        self.references[operation.operation_id] = response.json()["id"]
        return Outcome.parked(f"dl-{operation.operation_id}", ErrorClass.TIMEOUT)

    def settle(self) -> Mapping[str, Outcome]:
        if self.settle_error is not None:
            raise self.settle_error
        settled = {op_id: Outcome.succeeded(ref) for op_id, ref in self.references.items()}
        if self.extra:
            settled[self.extra] = Outcome.succeeded("pi_never")
        return settled

    def close(self) -> None:
        self.http.close()


def _scenario() -> Scenario:
    return Scenario(
        name="settle_probe",
        title="settle probe",
        description="three charges, no faults",
        workload=Workload.steady(count=3, interval=0.0),
        schedule=FaultSchedule.of([]),
        checks=(nothing_lost, dead_letters_converge),
    )


def test_the_runner_records_both_the_initial_and_the_settled_outcome(harness_stack: Stack) -> None:
    seen: list[DriverSetup] = []

    def factory(setup: DriverSetup) -> _ParkThenSettle:
        seen.append(setup)
        return _ParkThenSettle(setup)

    result = run_scenario(_scenario(), harness_stack, factory, run_id="settle-probe")

    ops = result.history.operations
    assert list(ops["initial_outcome"]) == [OutcomeKind.PARKED] * 3
    assert list(ops["outcome"]) == [OutcomeKind.SUCCEEDED] * 3
    assert ops["settled_at"].notna().all()
    assert result.passed
    assert seen[0].state_dir == harness_stack.state_dir / "drivers" / "settle-probe"


def test_a_driver_that_raises_while_settling_is_reported_not_crashed(harness_stack: Stack) -> None:
    def factory(setup: DriverSetup) -> _ParkThenSettle:
        return _ParkThenSettle(setup, settle_error=RuntimeError("queue is gone"))

    result = run_scenario(_scenario(), harness_stack, factory)

    raised = result.check("driver_honours_protocol")
    assert not raised.passed
    assert "queue is gone" in raised.summary
    assert not result.check("dead_letters_converge").passed


def test_settling_an_operation_the_run_never_gave_is_a_driver_bug(harness_stack: Stack) -> None:
    def factory(setup: DriverSetup) -> _ParkThenSettle:
        return _ParkThenSettle(setup, extra="op-from-elsewhere")

    result = run_scenario(_scenario(), harness_stack, factory)

    assert "op-from-elsewhere" in result.check("driver_honours_protocol").summary
