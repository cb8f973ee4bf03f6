"""The ``harness`` command.

Exit codes: 0 certified, 1 a check failed, 2 a usage or set-up error (one line on stderr saying
what to do), 3 an internal error (with its traceback).
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness._certify import DEFAULT_DRIVER, CertifyConfig, certify
from harness._driver import DriverLoadError
from harness.chaos import FaultSchedule
from harness.scenario import CATALOGUE, ExploreConfig, Scenario
from harness.stack import ProcessStartError, ToxiproxyNotFound

EXIT_CERTIFIED, EXIT_FAILED, EXIT_SETUP, EXIT_INTERNAL = 0, 1, 2, 3
_SETUP_ERRORS = (DriverLoadError, ToxiproxyNotFound, ProcessStartError, ValueError, OSError)


def _parse_options(values: tuple[str, ...]) -> dict[str, object]:
    options: dict[str, object] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--option")
        try:
            options[key] = json.loads(raw)
        except ValueError:
            options[key] = raw
    return options


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="resilience-harness", prog_name="harness")
def cli() -> None:
    """Chaos and resilience certification for payment and banking API clients."""


@cli.command()
@click.option(
    "--driver",
    default=DEFAULT_DRIVER,
    show_default=True,
    help="The client under test, as package.module:factory.",
)
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice(sorted(CATALOGUE)),
    help="Run only this scenario (repeatable). Default: the whole catalogue.",
)
@click.option("--seed", default=0, show_default=True, help="Seed for the driver's randomness and the fakes.")
@click.option(
    "--out",
    "out_dir",
    default="reports",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder under which the run's report folder is created.",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Passed to the driver factory in DriverSetup.options (VALUE parsed as JSON when it can be).",
)
@click.option(
    "--explore",
    "explore_examples",
    default=0,
    show_default=True,
    metavar="N",
    help="Also let Hypothesis generate N fault schedules per scenario and shrink any that breaks the driver.",
)
@click.option(
    "--explore-runs",
    default=None,
    type=int,
    metavar="M",
    help="At most M real runs per scenario for --explore, shrinking included (default 4 x N).",
)
@click.option(
    "--schedule",
    "schedule_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Replace the scenarios' fault schedules with this one (e.g. one an exploration saved).",
)
def certify_command(
    *,
    driver: str,
    scenarios: tuple[str, ...],
    seed: int,
    out_dir: Path,
    options: tuple[str, ...],
    explore_examples: int,
    explore_runs: int | None,
    schedule_file: Path | None,
) -> None:
    """Run the scenario catalogue against a driver and write a report with a verdict."""
    console = Console(stderr=True)
    if explore_runs is not None and explore_examples == 0:
        raise click.BadParameter("--explore-runs needs --explore N", param_hint="--explore-runs")
    try:
        exploring = None
        if explore_examples > 0:
            exploring = ExploreConfig(
                examples=explore_examples, max_runs=explore_runs or 4 * explore_examples, seed=seed
            )
        config = CertifyConfig(
            driver=driver,
            scenarios=scenarios,
            seed=seed,
            out_dir=out_dir,
            options=_parse_options(options),
            schedule=None if schedule_file is None else FaultSchedule.load(schedule_file),
            explore=exploring,
        )
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:

            def on_scenario(scenario: Scenario) -> Callable[[int, int], None]:
                task = progress.add_task(scenario.name, total=len(scenario.workload))
                return lambda done, total: progress.update(task, completed=done, total=total)

            def on_exploration(scenario: Scenario, explore: ExploreConfig) -> Callable[[int], None]:
                task = progress.add_task(f"explore {scenario.name}", total=explore.max_runs)
                return lambda runs: progress.update(task, completed=runs)

            report = certify(config, on_scenario=on_scenario, on_exploration=on_exploration)
    except click.ClickException:
        raise
    except _SETUP_ERRORS as exc:
        console.print(f"[red]harness certify: {exc}[/red]", highlight=False, soft_wrap=True)
        sys.exit(EXIT_SETUP)
    except KeyboardInterrupt:
        console.print("harness certify: interrupted; every process it started has been stopped")
        sys.exit(130)
    except Exception:
        traceback.print_exc()
        console.print("harness certify: internal error (a bug in the harness); please report it")
        sys.exit(EXIT_INTERNAL)

    table = Table(title=f"harness certify: {report.data['verdict']}")
    for column in ("scenario", "check", "result", "summary"):
        table.add_column(column)
    for scenario in report.data["scenarios"]:
        for check in scenario["checks"]:
            mark = "[green]pass[/green]" if check["passed"] else "[red]FAIL[/red]"
            if not check["applicable"]:
                mark = "[dim]n/a[/dim]"
            table.add_row(scenario["name"], check["name"], mark, check["summary"])
    for exploration in report.data["explorations"]:
        found = exploration["found"]
        table.add_row(
            exploration["scenario"],
            "explore_fault_schedules",
            "[red]FAIL[/red]" if found else "[green]pass[/green]",
            f"smallest breaking schedule saved to {exploration['schedule_file']}"
            if found
            else f"no breaking schedule in {exploration['runs']} runs",
        )
    Console().print(table)
    click.echo(f"report: {report.html_path}")
    click.echo(f"json:   {report.json_path}")
    click.echo(f"junit:  {report.junit_path}")
    sys.exit(EXIT_CERTIFIED if report.certified else EXIT_FAILED)


cli.add_command(certify_command, name="certify")


@cli.command(name="scenarios")
def list_scenarios() -> None:
    """List the scenario catalogue."""
    for name in sorted(CATALOGUE):
        scenario = CATALOGUE[name]()
        click.echo(f"{name}: {scenario.title}")
        click.echo(f"    {scenario.description}")


def main() -> None:
    cli(prog_name="harness")
