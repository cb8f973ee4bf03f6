"""Run a scenario on the real stack: workload and fault schedule on one timeline, then the checks.

Operations run on a small thread pool so that faults are applied on time even while calls block;
the main thread walks the timeline. Whatever happens (a check failing, a driver raising, Ctrl-C),
every fault is cleared and every upstream setting the scenario changed is restored before the
function returns.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from harness._driver import (
    Driver,
    DriverFactory,
    DriverSetup,
    Operation,
    Outcome,
    OutcomeKind,
    SettlingDriver,
)
from harness.chaos import ActiveFault, FaultSchedule, ScheduledFault, StackFaults
from harness.resilience import Clock, SystemClock
from harness.scenario._checks import DRIVER_RAISED, Check, CheckResult, driver_honours_protocol
from harness.scenario._history import History, HistoryRecorder
from harness.scenario._settings import UpstreamSettings, check_no_overlap
from harness.scenario._workload import PlannedOperation, Workload
from harness.stack import Stack

__all__ = ["RunResult", "Scenario", "run_scenario"]

Progress = Callable[[int, int], None]

UNIVERSAL_CHECKS: tuple[Check, ...] = (driver_honours_protocol,)
"""Checked on every run, whatever the scenario lists: properties of the run itself."""


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    title: str
    description: str
    workload: Workload
    schedule: FaultSchedule
    checks: tuple[Check, ...]
    concurrency: int = 4
    settle: float = 0.0
    """Seconds to wait after the last operation before reading the upstreams' ground truth."""
    settings: tuple[UpstreamSettings, ...] = ()
    """Upstream run-time settings on the timeline (e.g. Stripe's rate limiter switched on)."""
    before_settle: Callable[[Stack], object] | None = None
    """What happens upstream once the workload is over and before the driver's settle phase, e.g. a
    back-office checker approving the commands waiting in Fineract's maker-checker inbox."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"Scenario.concurrency must be >= 1, got {self.concurrency!r}")
        if self.settle < 0:
            raise ValueError(f"Scenario.settle must be >= 0 seconds, got {self.settle!r}")
        if not self.checks:
            raise ValueError(f"scenario {self.name!r} has no checks, so it could never fail")
        check_no_overlap(self.settings)

    def upstreams(self) -> set[str]:
        planned = {p.operation.upstream for p in self.workload.planned}
        return planned | self.schedule.targets() | {s.upstream for s in self.settings}


@dataclass(frozen=True, kw_only=True)
class RunResult:
    scenario: Scenario
    history: History
    checks: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def run_id(self) -> str:
        return str(self.history.meta["run_id"])

    def check(self, name: str) -> CheckResult:
        for result in self.checks:
            if result.name == name:
                return result
        raise KeyError(f"no check named {name!r}; this run has {[c.name for c in self.checks]}")


@dataclass(order=True)
class _Event:
    at: float
    order: int
    action: Callable[[], None] = field(compare=False)


def run_scenario(
    scenario: Scenario,
    stack: Stack,
    driver_factory: DriverFactory,
    *,
    seed: int = 0,
    driver_name: str = "",
    options: Mapping[str, object] | None = None,
    run_id: str | None = None,
    clock: Clock | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run ``scenario`` once against a driver built by ``driver_factory`` on a running stack."""
    missing = scenario.upstreams() - set(stack.upstreams)
    if missing:
        raise ValueError(
            f"scenario {scenario.name!r} needs upstreams {sorted(missing)} that the stack did not start"
        )
    run_id = run_id or f"{scenario.name}-{uuid.UUID(int=random.Random(seed).getrandbits(128)).hex[:8]}"
    run = _Run(scenario, stack, clock or SystemClock(), progress)
    run.prepare()
    state_dir = stack.state_dir / "drivers" / run_id
    if state_dir.exists():
        shutil.rmtree(state_dir)  # a rerun under the same id starts from a clean slate, as the fakes do
    setup = DriverSetup(
        endpoints=stack.endpoints(),
        clock=run.clock,
        rng=random.Random(seed),
        events=run.recorder,
        options=dict(options or {}),
        state_dir=state_dir,
    )
    run.execute(driver_factory(setup))
    meta = {
        "run_id": run_id,
        "scenario": scenario.name,
        "title": scenario.title,
        "driver": driver_name,
        "seed": seed,
        "started_wall": run.started_wall,
        "duration": run.clock.now() - run.origin,
        "backend": "real",
        "schedule": scenario.schedule.to_json(),
        "settings": [window.to_json() for window in scenario.settings],
        "options": {k: repr(v) for k, v in (options or {}).items()},
    }
    history = run.collect(meta)
    checks = (*scenario.checks, *(c for c in UNIVERSAL_CHECKS if c not in scenario.checks))
    return RunResult(scenario=scenario, history=history, checks=tuple(check(history) for check in checks))


class _Run:
    """One run's moving parts: the timeline, the fault backend and the recorder."""

    def __init__(self, scenario: Scenario, stack: Stack, clock: Clock, progress: Progress | None) -> None:
        self.scenario = scenario
        self.stack = stack
        self.clock = clock
        self.progress = progress
        self.faults = StackFaults(stack)
        self.origin = 0.0
        self.started_wall = 0.0
        self.recorder = HistoryRecorder(origin=0.0)
        self._active: dict[int, ActiveFault] = {}
        self._applied_at: dict[int, float] = {}
        self._replaced: dict[int, dict[str, Any]] = {}
        """Per settings window in force: the values it replaced, to restore when it closes."""
        self._done = 0
        self._done_lock = threading.Lock()

    def now(self) -> float:
        return self.clock.now() - self.origin

    def prepare(self) -> None:
        """Start from a clean slate: no toxics, empty ledgers, then start the clock."""
        self.faults.clear_all()
        for name in self.stack.upstreams:
            self.stack.admin(name).reset()
        self.origin = self.clock.now()
        self.started_wall = time.time()
        self.recorder = HistoryRecorder(origin=self.origin)

    def execute(self, driver: Driver) -> None:
        events: list[_Event] = []
        for index, scheduled in enumerate(self.scenario.schedule.faults):
            events.append(_Event(scheduled.start, 0, partial(self._apply, index)))
            events.append(_Event(scheduled.end, 1, partial(self._clear, index)))
        for index, window in enumerate(self.scenario.settings):
            events.append(_Event(window.start, 0, partial(self._configure, index)))
            if window.end is not None:
                events.append(_Event(window.end, 1, partial(self._restore, index)))
        pending: list[Future[None]] = []
        pool = ThreadPoolExecutor(max_workers=self.scenario.concurrency, thread_name_prefix="harness-op")

        def submit(planned: PlannedOperation) -> None:
            pending.append(pool.submit(self._perform, driver, planned))

        for planned in self.scenario.workload.planned:
            events.append(_Event(planned.at, 2, partial(submit, planned)))
        try:
            for event in sorted(events):
                self.clock.sleep(event.at - self.now())
                event.action()
            for future in pending:
                future.result()
            self._release()
            pool.shutdown(wait=True)
            self.clock.sleep(self.scenario.settle)
            if self.scenario.before_settle is not None:
                self.scenario.before_settle(self.stack)
            if isinstance(driver, SettlingDriver):
                self._settle(driver)
        finally:
            self._release()
            pool.shutdown(wait=True, cancel_futures=True)
            driver.close()

    def _settle(self, driver: SettlingDriver) -> None:
        """Let the driver replay what it parked, now that every fault is cleared."""
        try:
            settled = dict(driver.settle())
        except Exception as exc:  # reported by the driver_honours_protocol check, like any driver bug
            self.recorder.unsettled(f"{DRIVER_RAISED}{exc!r} in settle()", self.now())
            return
        strangers = sorted(set(settled) - self.recorder.operation_ids())
        if strangers:
            self.recorder.protocol_violation(
                f"settle() returned outcomes for operations this run never gave the driver: {strangers[:5]}"
            )
        for operation_id, outcome in settled.items():
            if operation_id not in strangers:
                self.recorder.settle(operation_id, _outcome_fields(outcome), self.now())

    def collect(self, meta: dict[str, Any]) -> History:
        """Read the upstreams' ground truth and assemble the history."""
        requests: list[dict[str, Any]] = []
        effects: list[dict[str, Any]] = []
        for name in sorted(self.stack.upstreams):
            admin = self.stack.admin(name)
            requests += [_relative(row, self.origin, name) for row in admin.requests()]
            effects += [_relative(row, self.origin, name) for row in admin.ledger()]
        return self.recorder.build(meta=meta, requests=requests, effects=effects)

    def _perform(self, driver: Driver, planned: PlannedOperation) -> None:
        op = planned.operation
        started = self.now()
        try:
            outcome = driver.perform(op)
        except Exception as exc:  # a driver bug must not abort the run; it is reported as such
            outcome = Outcome(kind=OutcomeKind.UNKNOWN, detail=f"{DRIVER_RAISED}{exc!r}")
        self.recorder.operation(_operation_row(op, planned.at, started, self.now(), outcome))
        with self._done_lock:
            self._done += 1
            done = self._done
        if self.progress is not None:
            self.progress(done, len(self.scenario.workload))

    def _apply(self, index: int) -> None:
        scheduled = self.scenario.schedule.faults[index]
        self._active[index] = self.faults.apply(scheduled.target, scheduled.fault)
        self._applied_at[index] = self.now()

    def _release(self) -> None:
        """Clear every fault still applied and restore every setting a window still holds."""
        for index in list(self._active):
            self._clear(index)
        for index in list(self._replaced):
            self._restore(index)

    def _configure(self, index: int) -> None:
        window = self.scenario.settings[index]
        admin = self.stack.admin(window.upstream)
        current = admin.config()
        self._replaced[index] = {name: current.get(name) for name in window.values}
        admin.configure(window.values)

    def _restore(self, index: int) -> None:
        replaced = self._replaced.pop(index, None)
        if replaced is not None:
            self.stack.admin(self.scenario.settings[index].upstream).configure(replaced)

    def _clear(self, index: int) -> None:
        active = self._active.pop(index, None)
        if active is not None:
            self.faults.clear(active)
            scheduled = self.scenario.schedule.faults[index]
            self.recorder.fault(_fault_row(scheduled, self._applied_at[index], self.now()))


def _outcome_fields(outcome: Outcome) -> dict[str, Any]:
    return {
        "outcome": str(outcome.kind),
        "reference": outcome.reference,
        "error": None if outcome.error is None else str(outcome.error),
        "detail": outcome.detail,
        "dead_letter_id": outcome.dead_letter_id,
    }


def _operation_row(
    op: Operation, planned_at: float, started: float, ended: float, outcome: Outcome
) -> dict[str, Any]:
    fields = _outcome_fields(outcome)
    return {
        "operation_id": op.operation_id,
        "upstream": op.upstream,
        "action": op.action,
        "amount": op.amount,
        "planned_at": planned_at,
        "started": started,
        "ended": ended,
        **fields,
        "initial_outcome": fields["outcome"],
        "settled_at": None,
    }


def _fault_row(scheduled: ScheduledFault, start: float, end: float) -> dict[str, Any]:
    return {
        "start": start,
        "end": end,
        "planned_start": scheduled.start,
        "planned_end": scheduled.end,
        "target": scheduled.target,
        "fault": scheduled.fault.describe(),
        "kind": scheduled.fault.KIND,
    }


def _relative(row: dict[str, Any], origin: float, upstream: str) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in ("seq", "t_mono", "t_wall", "detail")}
    out["t"] = row["t_mono"] - origin
    out["upstream"] = upstream
    return out
