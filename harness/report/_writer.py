"""Certification reports: ``report.json`` for machines, ``report.html`` for people, ``junit.xml`` for CI.

JUnit XML is written with the standard library's ElementTree: the format is a handful of elements and
no maintained library would remove more code than it adds.
"""

from __future__ import annotations

import base64
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from harness.plots import timeline
from harness.scenario import Exploration, RunResult, run_metrics

__all__ = ["CertificationReport", "write_report"]

EVIDENCE_ROWS_IN_HTML = 30


@dataclass(frozen=True, kw_only=True)
class CertificationReport:
    folder: Path
    certified: bool
    data: dict[str, Any]

    @property
    def json_path(self) -> Path:
        return self.folder / "report.json"

    @property
    def html_path(self) -> Path:
        return self.folder / "report.html"

    @property
    def junit_path(self) -> Path:
        return self.folder / "junit.xml"


def _version() -> str:
    try:
        return metadata.version("resilience-harness")
    except metadata.PackageNotFoundError:
        return "unknown"


def _png(result: RunResult) -> bytes:
    buffer = io.BytesIO()
    timeline(result.history).savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _scenario_entry(result: RunResult, folder: Path) -> dict[str, Any]:
    history_dir = result.history.save(folder / "history" / result.run_id)
    plot = _png(result)
    (folder / f"timeline-{result.run_id}.png").write_bytes(plot)
    return {
        "name": result.scenario.name,
        "title": result.scenario.title,
        "description": result.scenario.description,
        "run_id": result.run_id,
        "passed": result.passed,
        "checks": [c.to_json() for c in result.checks],
        "metrics": run_metrics(result.history),
        "schedule": result.scenario.schedule.to_json(),
        "history": str(history_dir.relative_to(folder)),
        "plot": f"timeline-{result.run_id}.png",
    }


def _exploration_entry(exploration: Exploration, folder: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "scenario": exploration.scenario.name,
        "runs": exploration.runs,
        "found": exploration.found,
        "minimal_schedule": None,
        "schedule_file": None,
        "counterexample": None,
    }
    run = exploration.counterexample
    if run is not None:
        schedules = folder / "schedules"
        schedules.mkdir(exist_ok=True)
        path = schedules / f"{exploration.scenario.name}.json"
        run.scenario.schedule.save(path)
        entry.update(
            minimal_schedule=run.scenario.schedule.to_json(),
            schedule_file=str(path.relative_to(folder)),
            counterexample=_scenario_entry(run, folder),
        )
    return entry


def write_report(
    results: Sequence[RunResult],
    folder: Path,
    *,
    driver: str,
    seed: int,
    toxiproxy_version: str = "unknown",
    explorations: Sequence[Exploration] = (),
) -> CertificationReport:
    """Write every artefact of a certification run into ``folder`` and return what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    certified = bool(results) and all(r.passed for r in results) and not any(e.found for e in explorations)
    data: dict[str, Any] = {
        "verdict": "certified" if certified else "not certified",
        "certified": certified,
        "driver": driver,
        "seed": seed,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "harness_version": _version(),
        "toxiproxy_version": toxiproxy_version,
        "scenarios": [_scenario_entry(r, folder) for r in results],
        "explorations": [_exploration_entry(e, folder) for e in explorations],
    }
    report = CertificationReport(folder=folder, certified=certified, data=data)
    report.json_path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    report.html_path.write_text(_html(data, results, folder))
    report.junit_path.write_bytes(_junit(data))
    return report


def _html(data: dict[str, Any], results: Sequence[RunResult], folder: Path) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", ""),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    scenarios = []
    for entry, result in zip(data["scenarios"], results, strict=True):
        checks = []
        for check_json, check in zip(entry["checks"], result.checks, strict=True):
            evidence: pd.DataFrame = check.evidence.head(EVIDENCE_ROWS_IN_HTML)
            checks.append({**check_json, "evidence_html": evidence.to_html(index=False, border=0, na_rep="")})
        scenarios.append(
            {
                **entry,
                "checks": checks,
                "plot": base64.b64encode((folder / entry["plot"]).read_bytes()).decode(),
                "schedule_json": json.dumps(entry["schedule"], indent=2),
            }
        )
    return env.get_template("report.html.j2").render(
        **{
            **data,
            "scenarios": scenarios,
            "explorations": [_html_exploration(e, folder) for e in data["explorations"]],
            "verdict_text": data["verdict"].upper(),
        }
    )


def _html_exploration(entry: dict[str, Any], folder: Path) -> dict[str, Any]:
    counterexample = entry["counterexample"]
    if counterexample is None:
        return {**entry, "plot": None, "failed": []}
    return {
        **entry,
        "plot": base64.b64encode((folder / counterexample["plot"]).read_bytes()).decode(),
        "failed": [c for c in counterexample["checks"] if not c["passed"]],
        "schedule_json": json.dumps(entry["minimal_schedule"], indent=2),
    }


def _junit(data: dict[str, Any]) -> bytes:
    checks = [(s, c) for s in data["scenarios"] for c in s["checks"]]
    explorations = data["explorations"]
    suite = ET.Element(
        "testsuite",
        name="harness certify",
        tests=str(len(checks) + len(explorations)),
        failures=str(sum(not c["passed"] for _, c in checks) + sum(e["found"] for e in explorations)),
        errors="0",
        skipped=str(sum(not c["applicable"] for _, c in checks)),
    )
    for scenario, check in checks:
        case = ET.SubElement(suite, "testcase", classname=f"harness.{scenario['name']}", name=check["name"])
        if not check["applicable"]:
            ET.SubElement(case, "skipped", message=check["summary"])
        elif not check["passed"]:
            failure = ET.SubElement(case, "failure", message=check["summary"])
            failure.text = json.dumps(check["evidence"][:10], indent=1, default=str)
    for exploration in explorations:
        case = ET.SubElement(
            suite, "testcase", classname=f"harness.{exploration['scenario']}", name="explore_fault_schedules"
        )
        if exploration["found"]:
            failure = ET.SubElement(
                case,
                "failure",
                message=f"a fault schedule breaks the driver (replay it: {exploration['schedule_file']})",
            )
            failure.text = json.dumps(exploration["minimal_schedule"], indent=1)
    suites = ET.Element("testsuites")
    suites.append(suite)
    xml: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return xml
