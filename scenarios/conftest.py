"""Shared helpers for scenario tests."""

from __future__ import annotations

from harness.scenario import RunResult


def failures(result: RunResult) -> str:
    """Every failed check with its evidence, for an assertion message that explains itself."""
    return "\n".join(
        f"{c.name}: {c.summary}\n{c.evidence.head(10).to_string()}" for c in result.checks if not c.passed
    )
