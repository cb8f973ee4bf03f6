"""The harness's pytest plugin (entry point ``pytest11: harness``).

Fixtures
    ``harness_stack``   session-wide real stack: Toxiproxy plus every fake upstream.
    ``toxiproxy``       the stack's Toxiproxy client.
    ``harness_driver``  the driver factory under test (``--harness-driver``, default the reference).
    ``run_harness_scenario``  runs a :class:`~harness.scenario.Scenario` on the stack with that driver,
                        saving its history under ``--harness-report-dir`` when a check fails.

Markers
    ``scenario``  a failure scenario run through the real Toxiproxy (select with ``-m scenario``).
    ``control``   a run against a deliberately broken client, proving a scenario can fail.

Hypothesis profiles (``--hypothesis-profile NAME`` or ``$HARNESS_HYPOTHESIS_PROFILE``)
    ``ci`` (default): derandomized, so a CI run is reproducible; ``dev``: quick, random;
    ``thorough``: many examples, for a nightly job.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from harness._driver import DriverFactory, DriverLoadError, load_driver_factory
from harness.scenario import RunResult, Scenario, run_scenario
from harness.stack import KNOWN_UPSTREAMS, Stack, StackConfig
from harness.toxiproxy import Toxiproxy

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=100,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=30)
settings.register_profile("thorough", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HARNESS_HYPOTHESIS_PROFILE", "ci"))

DEFAULT_DRIVER = "harness.drivers:reference"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "chaos and resilience harness")
    group.addoption(
        "--harness-driver",
        default=None,
        help=f"driver under test as package.module:factory (default {DEFAULT_DRIVER}; ini harness_driver)",
    )
    group.addoption(
        "--harness-report-dir",
        default=None,
        help="where to save the history of scenario runs whose checks fail (default reports/pytest)",
    )
    group.addoption("--harness-seed", type=int, default=None, help="seed for scenario runs (default 0)")
    parser.addini("harness_driver", "driver under test as package.module:factory", default=DEFAULT_DRIVER)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario: a failure scenario run through the real Toxiproxy")
    config.addinivalue_line("markers", "control: a run against a deliberately broken client")


def _driver_path(config: pytest.Config) -> str:
    return str(config.getoption("--harness-driver") or config.getini("harness_driver") or DEFAULT_DRIVER)


def pytest_report_header(config: pytest.Config) -> list[str]:
    profile = settings.get_current_profile_name()
    return [f"harness: driver {_driver_path(config)}, hypothesis profile {profile!r}"]


@pytest.fixture(scope="session")
def harness_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Toxiproxy and every fake upstream, started once for the test session."""
    config = StackConfig(upstreams=KNOWN_UPSTREAMS, state_dir=tmp_path_factory.mktemp("harness-stack"))
    with Stack(config) as stack:
        yield stack


@pytest.fixture(scope="session")
def toxiproxy(harness_stack: Stack) -> Toxiproxy:
    return harness_stack.toxiproxy


@pytest.fixture(scope="session")
def harness_driver(pytestconfig: pytest.Config) -> DriverFactory:
    path = _driver_path(pytestconfig)
    try:
        return load_driver_factory(path)
    except DriverLoadError as exc:
        raise pytest.UsageError(f"--harness-driver: {exc}") from exc


@pytest.fixture
def run_harness_scenario(
    harness_stack: Stack,
    harness_driver: DriverFactory,
    pytestconfig: pytest.Config,
    request: pytest.FixtureRequest,
) -> Callable[..., RunResult]:
    """Run a scenario with the driver under test; keep the evidence of a failing run."""
    seed = pytestconfig.getoption("--harness-seed")
    report_dir = Path(pytestconfig.getoption("--harness-report-dir") or "reports/pytest")

    def run(scenario: Scenario, *, driver: DriverFactory | None = None, seed: int | None = seed) -> RunResult:
        result = run_scenario(
            scenario,
            harness_stack,
            driver or harness_driver,
            seed=0 if seed is None else seed,
            driver_name=_driver_path(pytestconfig) if driver is None else getattr(driver, "__name__", ""),
            run_id=request.node.name,
        )
        if not result.passed:
            result.history.save(report_dir / request.node.name)
        return result

    return run
