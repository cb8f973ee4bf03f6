"""Exploration: let Hypothesis look for a fault schedule that breaks the client, then shrink it.

Each candidate schedule is a real run through Toxiproxy and the fakes, so runs are budgeted
(``max_runs`` covers generation and shrinking together). Hypothesis shrinks towards fewer, shorter,
earlier and simpler faults; what comes out is the smallest schedule found that still fails a check,
saved as JSON so it can be replayed (``harness certify --schedule FILE``).

Real runs are not perfectly repeatable (threads, sockets, the machine's load), so each schedule is
run once and its verdict remembered: Hypothesis sees a deterministic predicate, and the failing run
reported is the one that actually failed.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.errors import NoSuchExample

from harness._driver import DriverFactory
from harness.chaos import FaultSchedule, fault_schedules, faults
from harness.scenario._runner import RunResult, Scenario, run_scenario
from harness.stack import Stack

__all__ = ["Exploration", "ExploreConfig", "explore"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ExploreConfig:
    """How hard to look. ``examples`` schedules are generated; ``max_runs`` bounds every real run,
    shrinking included."""

    examples: int = 10
    max_runs: int = 40
    max_faults: int = 3
    http_faults: bool = True
    seed: int = 0
    resolution: float = 0.1
    """Fault starts and durations are multiples of this many seconds."""
    min_duration: float = 0.2
    """No fault is shorter: a fault briefer than the gap between operations breaks a client only by
    chance, and a counterexample that fails by chance cannot be replayed."""

    def __post_init__(self) -> None:
        if self.examples < 1:
            raise ValueError(f"ExploreConfig.examples must be >= 1, got {self.examples!r}")
        if self.max_runs < self.examples:
            raise ValueError(
                f"ExploreConfig.max_runs ({self.max_runs}) must be at least examples ({self.examples}),"
                " or some generated schedules would never run"
            )
        if self.max_faults < 1:
            raise ValueError(f"ExploreConfig.max_faults must be >= 1, got {self.max_faults!r}")
        if not (self.resolution > 0 and self.min_duration >= self.resolution):
            raise ValueError(
                f"ExploreConfig needs resolution > 0 and min_duration >= resolution, got"
                f" resolution={self.resolution!r}, min_duration={self.min_duration!r}"
            )


@dataclass(frozen=True, kw_only=True)
class Exploration:
    scenario: Scenario
    runs: int
    tried: tuple[FaultSchedule, ...] = field(repr=False)
    counterexample: RunResult | None
    """The run of the smallest schedule found that fails a check, if any."""

    @property
    def found(self) -> bool:
        return self.counterexample is not None

    @property
    def minimal_schedule(self) -> FaultSchedule | None:
        return None if self.counterexample is None else self.counterexample.scenario.schedule


def _key(schedule: FaultSchedule) -> str:
    return json.dumps(schedule.to_json(), sort_keys=True)


def explore(
    scenario: Scenario,
    stack: Stack,
    driver_factory: DriverFactory,
    config: ExploreConfig | None = None,
    *,
    driver_name: str = "",
    on_run: Callable[[int, FaultSchedule, RunResult], None] | None = None,
) -> Exploration:
    """Search for a fault schedule under which ``scenario``'s checks fail, and shrink it."""
    config = config or ExploreConfig()
    strategy = fault_schedules(
        targets=sorted(scenario.upstreams()),
        horizon=max(scenario.workload.duration, 2 * config.min_duration),
        max_faults=config.max_faults,
        kinds=faults(http=config.http_faults),
        resolution=config.resolution,
        min_duration=config.min_duration,
    )
    verdicts: dict[str, RunResult] = {}
    tried: list[FaultSchedule] = []

    def breaks(schedule: FaultSchedule) -> bool:
        key = _key(schedule)
        if key not in verdicts:
            if len(tried) >= config.max_runs:
                return False  # out of budget: shrinking stops at the smallest failure found so far
            tried.append(schedule)
            candidate = dataclasses.replace(scenario, schedule=schedule)
            result = run_scenario(
                candidate,
                stack,
                driver_factory,
                seed=config.seed,
                driver_name=driver_name,
                run_id=f"{scenario.name}-explore-{len(tried)}",
            )
            verdicts[key] = result
            if on_run is not None:
                on_run(len(tried), schedule, result)
        return not verdicts[key].passed

    search = settings(
        max_examples=config.examples,
        database=None,
        deadline=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    try:
        minimal = find(strategy, breaks, settings=search, random=random.Random(config.seed))
    except NoSuchExample:
        return Exploration(scenario=scenario, runs=len(tried), tried=tuple(tried), counterexample=None)
    return Exploration(
        scenario=scenario, runs=len(tried), tried=tuple(tried), counterexample=verdicts[_key(minimal)]
    )
