"""The driver protocol: what the harness certifies.

A *driver* is the user's integration client behind a small interface. The harness hands it an
:class:`Operation` with a caller-chosen id and gets back an :class:`Outcome`; the driver never learns
what faults are active. Everything else the harness knows, it learns from the fake upstreams'
ground truth, so a driver that reports nothing can still be certified. A driver that does report its
attempts and breaker transitions through :class:`DriverSetup.events` gets the state-machine checks
too.

A driver is loaded by import path, ``package.module:factory``; the factory takes one
:class:`DriverSetup` and returns a :class:`Driver`.
"""

from __future__ import annotations

import enum
import importlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from harness.resilience import BreakerTransition, Clock, ErrorClass

__all__ = [
    "AttemptEvent",
    "Driver",
    "DriverFactory",
    "DriverLoadError",
    "DriverSetup",
    "Endpoint",
    "EventSink",
    "NullEventSink",
    "Operation",
    "Outcome",
    "OutcomeKind",
    "SettlingDriver",
    "load_driver_factory",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Endpoint:
    """Where a driver reaches one upstream: the proxied base URL and the test credentials."""

    upstream: str
    base_url: str
    credentials: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __repr__(self) -> str:
        # Credentials are test secrets, but secrets all the same: never print them.
        return f"Endpoint(upstream={self.upstream!r}, base_url={self.base_url!r}, credentials=<hidden>)"


@dataclass(frozen=True, kw_only=True, slots=True)
class Operation:
    """One logical operation the workload asks the driver to perform.

    ``operation_id`` is chosen by the harness and is what checkers join on: a driver should carry it
    to the upstream (Stripe ``metadata[operation_id]``, a Fineract ``externalId`` ...) so that the
    upstream's ledger can be matched against the driver's report.
    """

    operation_id: str
    upstream: str
    action: str
    amount: int
    currency: str = "usd"
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


class OutcomeKind(enum.StrEnum):
    SUCCEEDED = "succeeded"
    """Done, with exactly one effect upstream."""
    FAILED = "failed"
    """Definitely not done: no effect upstream."""
    PARKED = "parked"
    """Handed to a dead-letter queue for later replay."""
    UNKNOWN = "unknown"
    """The driver cannot tell whether the upstream applied it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """What a driver reports for one operation."""

    kind: OutcomeKind
    reference: str | None = None
    """The upstream's id for the effect (``pi_...``), on success."""
    error: ErrorClass | None = None
    detail: str = ""
    dead_letter_id: str | None = None

    @classmethod
    def succeeded(cls, reference: str) -> Outcome:
        return cls(kind=OutcomeKind.SUCCEEDED, reference=reference)

    @classmethod
    def failed(cls, error: ErrorClass, detail: str = "") -> Outcome:
        return cls(kind=OutcomeKind.FAILED, error=error, detail=detail)

    @classmethod
    def unknown(cls, error: ErrorClass, detail: str = "") -> Outcome:
        return cls(kind=OutcomeKind.UNKNOWN, error=error, detail=detail)

    @classmethod
    def parked(cls, dead_letter_id: str, error: ErrorClass, detail: str = "") -> Outcome:
        return cls(kind=OutcomeKind.PARKED, dead_letter_id=dead_letter_id, error=error, detail=detail)


@dataclass(frozen=True, kw_only=True, slots=True)
class AttemptEvent:
    """One attempt at an operation, as the driver saw it.

    ``started_at`` is on the clock the harness gave the driver (:attr:`DriverSetup.clock`).
    ``outcome`` is ``"ok"``, ``"error"`` or ``"rejected"`` (refused locally, nothing sent).
    """

    operation_id: str
    upstream: str
    action: str
    attempt: int
    started_at: float
    latency: float
    outcome: str
    error: ErrorClass | None = None
    status_code: int | None = None
    correlation_id: str | None = None
    idempotency_key: str | None = None
    breaker_state: str | None = None


@runtime_checkable
class EventSink(Protocol):
    """Where a driver may publish what it did; the run's history recorder is one."""

    def attempt(self, event: AttemptEvent) -> None: ...

    def breaker_transition(self, event: BreakerTransition) -> None: ...


class NullEventSink:
    """Discards events, for drivers used outside a run."""

    def attempt(self, event: AttemptEvent) -> None:
        return None

    def breaker_transition(self, event: BreakerTransition) -> None:
        return None


@dataclass(frozen=True, kw_only=True, slots=True)
class DriverSetup:
    """Everything a driver factory receives.

    ``state_dir`` is a folder of the run's own where the driver may keep durable state (its
    dead-letter queue, its idempotency store); ``None`` outside a run.
    """

    endpoints: Mapping[str, Endpoint]
    clock: Clock
    rng: random.Random
    events: EventSink = field(default_factory=NullEventSink)
    options: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    state_dir: Path | None = None


@runtime_checkable
class Driver(Protocol):
    """The client under test."""

    def perform(self, operation: Operation) -> Outcome: ...

    def close(self) -> None: ...


@runtime_checkable
class SettlingDriver(Driver, Protocol):
    """A driver that can finish what it left open.

    After the workload, once every fault is cleared, the harness calls ``settle()``: the driver
    replays its dead-letter queue, reconciles operations whose outcome it does not know (e.g. by
    repeating them under their idempotency key) and returns the new outcome of every operation it
    settled, by operation id. Operations it does not mention keep their outcome.
    """

    def settle(self) -> Mapping[str, Outcome]: ...


DriverFactory = Callable[[DriverSetup], Driver]


class DriverLoadError(Exception):
    """A ``package.module:factory`` path that does not lead to a callable."""


def load_driver_factory(path: str) -> DriverFactory:
    """Import ``package.module:factory`` and return the factory."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise DriverLoadError(
            f"driver path {path!r} must look like 'package.module:factory', e.g. 'harness.drivers:reference'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DriverLoadError(f"cannot import driver module {module_name!r}: {exc}") from exc
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise DriverLoadError(f"{module_name!r} has no callable {attribute!r}")
    return factory  # type: ignore[no-any-return]
