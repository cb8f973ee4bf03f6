"""Fault schedules: validated on construction, saved and replayed exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given

from harness.chaos import (
    Blackhole,
    ConnectionReset,
    FaultSchedule,
    Latency,
    Outage,
    ResponseLoss,
    ScheduledFault,
    fault_from_json,
    fault_schedules,
    toxics_for,
)


@given(fault_schedules(targets=("stripe", "mpesa"), horizon=5.0, max_faults=4))
def test_any_schedule_survives_a_json_round_trip(schedule: FaultSchedule) -> None:
    assert FaultSchedule.from_json(json.loads(json.dumps(schedule.to_json()))) == schedule


@given(fault_schedules(horizon=2.0, max_faults=3))
def test_generated_faults_stay_within_the_horizon(schedule: FaultSchedule) -> None:
    for scheduled in schedule.faults:
        assert 0 <= scheduled.start < scheduled.end <= 2.0 + 1e-9


def test_schedule_saved_to_a_file_loads_back(tmp_path: Path) -> None:
    schedule = FaultSchedule.of(
        [
            ScheduledFault(start=1.0, duration=0.5, target="stripe", fault=Latency(ms=200, jitter_ms=20)),
            ScheduledFault(start=0.2, duration=1.0, target="stripe", fault=ResponseLoss()),
        ]
    )
    path = tmp_path / "schedule.json"

    schedule.save(path)

    assert FaultSchedule.load(path) == schedule
    assert [f.start for f in FaultSchedule.load(path).faults] == [0.2, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": -1.0, "duration": 1.0, "target": "stripe"}, "start"),
        ({"start": 0.0, "duration": 0.0, "target": "stripe"}, "duration"),
        ({"start": 0.0, "duration": 1.0, "target": ""}, "target"),
    ],
)
def test_scheduled_fault_rejects_nonsense(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScheduledFault(fault=ResponseLoss(), **kwargs)  # type: ignore[arg-type]


def test_unknown_fault_kind_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="response_loss"):
        fault_from_json({"kind": "meteor_strike"})


def test_bad_fault_parameters_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match="latency"):
        fault_from_json({"kind": "latency", "seconds": 3})


def test_each_network_fault_maps_to_toxics_with_the_right_stream() -> None:
    assert [t.to_json()["type"] for t in toxics_for(ResponseLoss(), "f")] == ["limit_data"]
    assert toxics_for(ResponseLoss(), "f")[0].to_json()["attributes"] == {"bytes": 0}
    assert toxics_for(Blackhole(), "f")[0].to_json()["stream"] == "upstream"
    assert toxics_for(ConnectionReset(after_ms=5), "f")[0].to_json()["type"] == "reset_peer"
    assert toxics_for(Outage(), "f") == []


@given(fault_schedules(horizon=2.0, resolution=0.1, min_duration=0.3))
def test_coarse_schedules_keep_to_their_grid_and_minimum(schedule: FaultSchedule) -> None:
    for scheduled in schedule.faults:
        assert scheduled.duration >= 0.3 - 1e-9
        assert scheduled.end <= 2.0 + 1e-9
        for value in (scheduled.start, scheduled.duration):
            assert abs(value * 10 - round(value * 10)) < 1e-6


def test_a_minimum_duration_as_long_as_the_horizon_is_refused() -> None:
    with pytest.raises(ValueError, match="min_duration"):
        fault_schedules(horizon=1.0, resolution=0.1, min_duration=1.0)
