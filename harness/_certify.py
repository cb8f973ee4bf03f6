"""Certification: run the scenario catalogue against a driver and write the report."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from harness._driver import DriverFactory, load_driver_factory
from harness.report import CertificationReport, write_report
from harness.scenario import CATALOGUE, RunResult, Scenario, run_scenario
from harness.stack import Stack, StackConfig

__all__ = ["DEFAULT_DRIVER", "CertifyConfig", "certify", "select_scenarios"]

DEFAULT_DRIVER = "harness.drivers:reference"

ScenarioStarted = Callable[[Scenario], Callable[[int, int], None] | None]


@dataclass(frozen=True, kw_only=True)
class CertifyConfig:
    driver: str = DEFAULT_DRIVER
    scenarios: tuple[str, ...] = ()
    """Names from the catalogue; empty means all of them."""
    seed: int = 0
    out_dir: Path = Path("reports")
    options: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        select_scenarios(self.scenarios)  # fail on construction, not half-way through a run


def select_scenarios(names: Sequence[str]) -> list[Scenario]:
    unknown = [n for n in names if n not in CATALOGUE]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; known: {sorted(CATALOGUE)}")
    return [CATALOGUE[n]() for n in (names or sorted(CATALOGUE))]


def _run_folder(out_dir: Path, driver: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    short = re.sub(r"[^A-Za-z0-9_.-]+", "-", driver.rsplit(":", 1)[-1])
    folder = out_dir / f"{stamp}-{short}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = out_dir / f"{stamp}-{short}-{suffix}"
    return folder


def certify(
    config: CertifyConfig,
    *,
    driver_factory: DriverFactory | None = None,
    on_scenario: ScenarioStarted | None = None,
) -> CertificationReport:
    """Run the selected scenarios against the driver, on one real stack, and write the report.

    ``driver_factory`` overrides loading ``config.driver`` by import path (used by tests and notebooks).
    """
    factory = driver_factory or load_driver_factory(config.driver)
    scenarios = select_scenarios(config.scenarios)
    folder = _run_folder(config.out_dir, config.driver)
    upstreams = tuple(sorted(set().union(*(s.upstreams() for s in scenarios))))
    results: list[RunResult] = []
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
    return write_report(
        results, folder, driver=config.driver, seed=config.seed, toxiproxy_version=toxiproxy_version
    )
