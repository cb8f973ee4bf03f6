"""Sweeps: one scenario, many client settings, one row of metrics and verdicts per run.

This is how thresholds are tuned from evidence: run the same faults against each candidate setting
(and several seeds, since jitter and races vary), then plot the trade-offs the rows describe.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from harness._driver import DriverFactory
from harness.scenario._metrics import run_metrics
from harness.scenario._runner import RunResult, Scenario, run_scenario
from harness.stack import Stack

__all__ = ["grid", "sweep"]


def grid(**axes: Sequence[Any]) -> list[dict[str, Any]]:
    """Every combination of the axes: ``grid(a=[1, 2], b=["x"])`` gives two parameter sets."""
    if not axes:
        raise ValueError("grid() needs at least one axis, e.g. grid(open_duration=[0.5, 1.0])")
    for name, values in axes.items():
        if len(values) == 0:
            raise ValueError(f"grid axis {name!r} has no values")
    names = list(axes)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values())]


def sweep(
    scenario: Scenario,
    stack: Stack,
    parameters: Sequence[Mapping[str, Any]],
    make_driver: Callable[..., DriverFactory],
    *,
    seeds: Sequence[int] = (0,),
    on_run: Callable[[Mapping[str, Any], int, RunResult], None] | None = None,
) -> pd.DataFrame:
    """Run ``scenario`` once per parameter set and seed, with ``make_driver(**parameters)``.

    Returns one row per run: the parameters, the seed, ``passed``, one boolean column per check
    (``check:<name>``) and every metric of :func:`~harness.scenario.run_metrics`.
    """
    if not parameters:
        raise ValueError("sweep() needs at least one parameter set; build them with grid(...)")
    if not seeds:
        raise ValueError("sweep() needs at least one seed")
    rows = []
    for params in parameters:
        for seed in seeds:
            result = run_scenario(scenario, stack, make_driver(**params), seed=seed, driver_name=repr(params))
            metrics = {k: v for k, v in run_metrics(result.history).items() if not isinstance(v, dict)}
            checks = {f"check:{c.name}": c.passed for c in result.checks}
            rows.append({**params, "seed": seed, "passed": result.passed, **checks, **metrics})
            if on_run is not None:
                on_run(params, seed, result)
    return pd.DataFrame(rows)
