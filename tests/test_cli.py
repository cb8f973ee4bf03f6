"""`harness certify` end to end: a real stack, a real report, the documented exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.scenario import CATALOGUE

EXIT_CERTIFIED, EXIT_FAILED, EXIT_SETUP = 0, 1, 2


def _harness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _only_report(out: Path) -> Path:
    (folder,) = list(out.iterdir())
    return folder


def test_certify_reference_client_writes_a_certified_report(tmp_path: Path) -> None:
    result = _harness("certify", "--out", str(tmp_path / "reports"), cwd=tmp_path)

    assert result.returncode == EXIT_CERTIFIED, result.stderr
    folder = _only_report(tmp_path / "reports")
    report = json.loads((folder / "report.json").read_text())
    assert report["verdict"] == "certified"
    assert report["driver"] == "harness.drivers:reference"
    assert {s["name"] for s in report["scenarios"]} == set(CATALOGUE)
    for scenario in report["scenarios"]:
        assert "effects_at_most_once" in {c["name"] for c in scenario["checks"]}
        assert (folder / scenario["history"] / "attempts.parquet").exists()
    html = (folder / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert "CERTIFIED" in html
    suite = ET.parse(folder / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "0"
    assert str(folder / "report.html") in result.stdout


def test_certify_a_client_without_idempotency_keys_fails_with_evidence(tmp_path: Path) -> None:
    result = _harness(
        "certify",
        "--driver",
        "harness.drivers:reference_without_idempotency",
        "--scenario",
        "response_lost_after_commit",
        "--out",
        "r",
        cwd=tmp_path,
    )

    assert result.returncode == EXIT_FAILED, result.stderr
    report = json.loads((_only_report(tmp_path / "r") / "report.json").read_text())
    assert report["verdict"] == "not certified"
    failed = [c for s in report["scenarios"] for c in s["checks"] if not c["passed"]]
    # Double charges, and the operations it could not finish stay unknown: without a key it
    # cannot replay them safely.
    assert {c["name"] for c in failed} == {"effects_at_most_once", "nothing_lost"}
    doubled = next(c for c in failed if c["name"] == "effects_at_most_once")
    assert doubled["evidence_rows"] >= 2
    suite = ET.parse(_only_report(tmp_path / "r") / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--driver", "no_such_module:factory"], "cannot import driver module"),
        (["--driver", "harness.drivers"], "package.module:factory"),
        (["--option", "novalue"], "KEY=VALUE"),
        (["--scenario", "no_such_scenario"], "no_such_scenario"),
        (["--explore-runs", "5"], "--explore-runs needs --explore"),
    ],
)
def test_usage_errors_exit_2_with_a_one_line_reason(tmp_path: Path, args: list[str], message: str) -> None:
    result = _harness("certify", "--out", "r", *args, cwd=tmp_path)

    assert result.returncode == EXIT_SETUP
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


def test_missing_toxiproxy_is_a_setup_error_that_says_how_to_get_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "harness", "certify", "--out", "r"],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "TOXIPROXY_SERVER": "/nonexistent/toxiproxy-server"},
    )

    assert result.returncode == EXIT_SETUP
    assert "TOXIPROXY_SERVER" in result.stderr


def test_scenarios_command_lists_the_catalogue(tmp_path: Path) -> None:
    result = _harness("scenarios", cwd=tmp_path)

    assert result.returncode == 0
    assert "response_lost_after_commit" in result.stdout


def test_a_replayed_schedule_for_an_upstream_no_scenario_uses_is_refused(tmp_path: Path) -> None:
    schedule = tmp_path / "schedule.json"
    fault = {"start": 0, "duration": 1, "target": "paypal", "fault": {"kind": "outage"}}
    schedule.write_text(json.dumps({"version": 1, "faults": [fault]}))

    result = _harness("certify", "--schedule", str(schedule), "--out", "r", cwd=tmp_path)

    assert result.returncode == EXIT_SETUP
    assert "paypal" in result.stderr


def test_explore_saves_the_breaking_schedule_and_the_replay_fails_the_same_way(tmp_path: Path) -> None:
    broken = [
        "--driver",
        "harness.drivers:reference_without_idempotency",
        "--scenario",
        "response_lost_after_commit",
    ]

    explored = _harness(
        "certify", *broken, "--explore", "3", "--explore-runs", "8", "--seed", "3", "--out", "r", cwd=tmp_path
    )

    assert explored.returncode == EXIT_FAILED, explored.stderr
    report = json.loads((_only_report(tmp_path / "r") / "report.json").read_text())
    (exploration,) = report["explorations"]
    assert exploration["found"]
    schedule = _only_report(tmp_path / "r") / exploration["schedule_file"]
    replayed = _harness("certify", *broken, "--schedule", str(schedule), "--out", "replay", cwd=tmp_path)
    assert replayed.returncode == EXIT_FAILED
