"""Certification: run the scenario catalogue against a driver and write the report."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from harness._driver import DriverFactory, load_driver_factory
from harness.chaos import FaultSchedule
from harness.report import CertificationReport, write_report
from harness.scenario import (
    CATALOGUE,
    Exploration,
    ExploreConfig,
    RunResult,
    Scenario,
    explore,
    run_scenario,
)
from harness.stack import Stack, StackConfig

__all__ = ["DEFAULT_DRIVER", "CertifyConfig", "certify", "select_scenarios"]

DEFAULT_DRIVER = "harness.drivers:reference"

ScenarioStarted = Callable[[Scenario], Callable[[int, int], None] | None]
ExplorationStarted = Callable[[Scenario, ExploreConfig], Callable[[int], None] | None]


@dataclass(frozen=True, kw_only=True)
class CertifyConfig:
    driver: str = DEFAULT_DRIVER
    scenarios: tuple[str, ...] = ()
    """Names from the catalogue; empty means all of them."""
    seed: int = 0
    out_dir: Path = Path("reports")
    options: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    schedule: FaultSchedule | None = None
    """Replaces every selected scenario's fault schedule (to replay one an exploration found)."""
    explore: ExploreConfig | None = None
    """Also search each scenario for a fault schedule that breaks the driver."""

    def __post_init__(self) -> None:
        select_scenarios(self.scenarios)  # fail on construction, not half-way through a run
        if self.schedule is not None:
            known = {u for s in select_scenarios(self.scenarios) for u in s.upstreams()}
            unknown = self.schedule.targets() - known
            if unknown:
                raise ValueError(
                    f"the schedule targets {sorted(unknown)}, which the selected scenarios do not use;"
                    f" they use {sorted(known)}"
                )


def select_scenarios(names: Sequence[str], schedule: FaultSchedule | None = None) -> list[Scenario]:
    unknown = [n for n in names if n not in CATALOGUE]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; known: {sorted(CATALOGUE)}")
    scenarios = [CATALOGUE[n]() for n in (names or sorted(CATALOGUE))]
    if schedule is not None:
        scenarios = [dataclasses.replace(s, schedule=schedule) for s in scenarios]
    return scenarios


def _run_folder(out_dir: Path, driver: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    short = re.sub(r"[^A-Za-z0-9_.-]+", "-", driver.rsplit(":", 1)[-1])
    folder = out_dir / f"{stamp}-{short}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = out_dir / f"{stamp}-{short}-{suffix}"
    return folder


def _counter(step: Callable[[int], None] | None) -> Callable[[int, FaultSchedule, RunResult], None] | None:
    if step is None:
        return None

    def on_run(runs: int, schedule: FaultSchedule, result: RunResult) -> None:
        step(runs)

    return on_run


def certify(
    config: CertifyConfig,
    *,
    driver_factory: DriverFactory | None = None,
    on_scenario: ScenarioStarted | None = None,
    on_exploration: ExplorationStarted | None = None,
) -> CertificationReport:
    """Run the selected scenarios against the driver, on one real stack, and write the report.

    ``driver_factory`` overrides loading ``config.driver`` by import path (used by tests and notebooks).
    """
    factory = driver_factory or load_driver_factory(config.driver)
    scenarios = select_scenarios(config.scenarios, config.schedule)
    folder = _run_folder(config.out_dir, config.driver)
    upstreams = tuple(sorted(set().union(*(s.upstreams() for s in scenarios))))
    results: list[RunResult] = []
    explorations: list[Exploration] = []
    with Stack(StackConfig(upstreams=upstreams, state_dir=folder / "state", seed=config.seed)) as stack:
        toxiproxy_version = stack.toxiproxy.version()
        for scenario in scenarios:
            progress = on_scenario(scenario) if on_scenario is not None else None
            results.append(
                run_scenario(
                    scenario,
                    stack,
                    factory,
                    seed=config.seed,
                    driver_name=config.driver,
                    options=config.options,
                    run_id=scenario.name,
                    progress=progress,
                )
            )
        if config.explore is not None:
            for scenario in scenarios:
                step = on_exploration(scenario, config.explore) if on_exploration is not None else None
                explorations.append(
                    explore(
                        scenario,
                        stack,
                        factory,
                        config.explore,
                        driver_name=config.driver,
                        on_run=_counter(step),
                    )
                )
    return write_report(
        results,
        folder,
        driver=config.driver,
        seed=config.seed,
        toxiproxy_version=toxiproxy_version,
        explorations=explorations,
    )
