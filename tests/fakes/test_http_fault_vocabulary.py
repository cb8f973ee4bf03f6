"""The HTTP faults of harness.chaos: values, JSON round-trips, the rules they become, and
StackFaults dispatching network faults to Toxiproxy and HTTP faults to the fakes on a real stack.

The rule-compatibility property runs in-process against ``fake_upstreams._faults.parse_rule`` (the
exact function behind ``POST /__admin/faults``) because it is pure validation: serving it over HTTP
would test uvicorn a thousand times, not the contract. The StackFaults test uses the real stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fake_upstreams._faults import parse_rule
from fake_upstreams.cbs import FineractDialect
from fake_upstreams.mpesa import DarajaDialect
from fake_upstreams.stripe import StripeDialect
from harness.chaos import (
    FAULT_KINDS,
    HTTP_FAULT_KINDS,
    CallbackDuplicate,
    CommitThenFail,
    FaultSchedule,
    HttpError,
    HttpFault,
    Latency,
    ScheduledFault,
    ServerDelay,
    StackFaults,
    Throttle,
    TokenRevocation,
    callback_faults,
    fault_from_json,
    fault_schedules,
    faults,
    http_faults,
)
from harness.stack import Stack, StackConfig

DIALECTS = {"stripe": StripeDialect, "mpesa": DarajaDialect, "cbs": FineractDialect}


def test_every_http_fault_kind_is_registered_in_the_vocabulary() -> None:
    for cls in HTTP_FAULT_KINDS:
        assert FAULT_KINDS[cls.KIND] is cls
    assert len({cls.KIND for cls in HTTP_FAULT_KINDS}) == len(HTTP_FAULT_KINDS)


@given(fault=st.one_of(http_faults(), callback_faults()))
def test_http_faults_round_trip_through_json(fault: HttpFault) -> None:
    assert fault_from_json(fault.to_json()) == fault


@given(fault=st.one_of(http_faults(), callback_faults()))
def test_every_drawn_fault_is_a_rule_every_fake_accepts(fault: HttpFault) -> None:
    for dialect in DIALECTS.values():
        rule = parse_rule(fault.to_rule(), dialect=dialect)  # type: ignore[arg-type]
        assert rule.kind == fault.RULE_KIND
        assert rule.path == fault.route


@given(schedule=fault_schedules(kinds=faults(http=True), targets=("stripe", "mpesa")))
def test_schedules_with_http_faults_save_and_load(schedule: FaultSchedule, tmp_path_factory: Any) -> None:
    path = tmp_path_factory.mktemp("schedule") / "schedule.json"
    schedule.save(path)

    assert FaultSchedule.load(path) == schedule


@given(fault=faults())
def test_the_default_fault_strategy_draws_only_network_faults(fault: Any) -> None:
    assert not isinstance(fault, HttpFault)


@pytest.mark.parametrize(
    ("build", "mentions"),
    [
        (lambda: HttpError(status=418), "status"),
        (lambda: HttpError(probability=0.0), "probability"),
        (lambda: HttpError(count=0), "count"),
        (lambda: HttpError(route=""), "route"),
        (lambda: HttpError(method="get"), "method"),
        (lambda: ServerDelay(ms=-5), "ms"),
        (lambda: Throttle(retry_after=-1), "retry_after"),
        (lambda: CallbackDuplicate(copies=11), "copies"),
    ],
)
def test_bad_fault_parameters_are_refused_with_the_name_of_the_parameter(build: Any, mentions: str) -> None:
    with pytest.raises(ValueError, match=mentions):
        build()


def test_rules_carry_route_count_probability_and_params() -> None:
    rule = CommitThenFail(drop=True, route="/v1/payment_intents", method="POST", count=2).to_rule()

    assert rule == {
        "kind": "commit_then_fail",
        "path": "/v1/payment_intents",
        "method": "POST",
        "probability": 1.0,
        "count": 2,
        "params": {"mode": "drop", "status": 500},
    }
    assert TokenRevocation().count == 1


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state: Path = tmp_path_factory.mktemp("stack")
    with Stack(StackConfig(upstreams=("stripe",), state_dir=state)) as running:
        yield running


def _get(stack: Stack) -> int:
    endpoint = stack.endpoints()["stripe"]
    key = endpoint.credentials["secret_key"]
    try:
        response = httpx.get(
            endpoint.base_url + "/v1/payment_intents", headers={"Authorization": f"Bearer {key}"}, timeout=1.0
        )
    except httpx.TimeoutException:
        return -1
    return response.status_code


def test_stack_faults_realise_http_faults_on_the_fake_and_clear_them(stack: Stack) -> None:
    backend = StackFaults(stack)
    active = backend.apply("stripe", HttpError(status=503))
    during = _get(stack)
    backend.clear(active)
    after = _get(stack)

    assert active.rule_ids
    assert not active.toxic_names
    assert (during, after) == (503, 200)
    assert stack.admin("stripe").faults() == []
    assert stack.admin("stripe").requests()[-2]["fault"] == "error"


def test_stack_faults_send_network_faults_to_toxiproxy_and_clear_all_clears_both(stack: Stack) -> None:
    backend = StackFaults(stack)
    network = backend.apply("stripe", Latency(ms=5000))
    backend.apply("stripe", HttpError(status=502))
    slow = _get(stack)
    backend.clear_all()
    after = _get(stack)

    assert network.toxic_names
    assert not network.rule_ids
    assert slow == -1  # Toxiproxy held the answer past the client's timeout
    assert after == 200
    assert stack.toxiproxy.get_proxy("stripe").toxics == ()
    assert stack.admin("stripe").faults() == []


def test_a_scheduled_http_fault_serialises_with_its_target() -> None:
    scheduled = ScheduledFault(start=0.1, duration=0.5, target="mpesa", fault=Throttle(variant="quota"))

    assert ScheduledFault.from_json(scheduled.to_json()) == scheduled
