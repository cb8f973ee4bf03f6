"""The combined real backend: network faults through Toxiproxy, HTTP faults through the fakes.

:class:`StackFaults` has the same ``apply``/``clear``/``clear_all`` face as
:class:`~harness.chaos.ToxiproxyFaults` and dispatches on the fault: an
:class:`~harness.chaos.HttpFault` becomes a rule on the target fake's admin API (reached directly,
never through the proxy), anything else a set of toxics on the target's proxy. It needs only what a
running :class:`~harness.stack.Stack` offers, described by :class:`FaultTargets`, so it can be driven
by any object with the same shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from harness.chaos._faults import Fault
from harness.chaos._http_faults import HttpFault
from harness.chaos._toxiproxy_backend import ActiveFault, ToxiproxyFaults
from harness.toxiproxy import Toxiproxy

__all__ = ["AdminFaults", "FaultAdmin", "FaultTargets", "StackFaults"]


class FaultAdmin(Protocol):
    """The part of :class:`~harness.stack.UpstreamAdmin` that switches fault rules."""

    def add_fault(self, rule: Mapping[str, Any]) -> dict[str, Any]: ...

    def remove_fault(self, rule_id: int, *, missing_ok: bool = False) -> None: ...

    def clear_faults(self) -> None: ...


class FaultTargets(Protocol):
    """What :class:`StackFaults` needs from a running stack."""

    @property
    def toxiproxy(self) -> Toxiproxy: ...

    @property
    def upstreams(self) -> Mapping[str, Any]: ...

    def admin(self, upstream: str) -> FaultAdmin: ...


class AdminFaults:
    """HTTP faults as rules on the fakes' admin APIs, one admin client per target upstream."""

    def __init__(self, admins: Mapping[str, FaultAdmin]) -> None:
        self._admins = dict(admins)

    def _admin(self, target: str) -> FaultAdmin:
        try:
            return self._admins[target]
        except KeyError:
            raise ValueError(f"no fake upstream named {target!r}; known: {sorted(self._admins)}") from None

    def apply(self, target: str, fault: Fault) -> ActiveFault:
        if not isinstance(fault, HttpFault):
            raise TypeError(f"the fakes' admin API cannot realise {fault.describe()}; it is a network fault")
        rule = self._admin(target).add_fault(fault.to_rule())
        return ActiveFault(target, fault, (), (int(rule["id"]),))

    def clear(self, active: ActiveFault) -> None:
        for rule_id in active.rule_ids:
            self._admin(active.target).remove_fault(rule_id, missing_ok=True)

    def clear_all(self, targets: Iterable[str] | None = None) -> None:
        for target in self._admins if targets is None else targets:
            self._admin(target).clear_faults()


class StackFaults:
    """Applies any fault of the vocabulary on a running stack."""

    def __init__(self, stack: FaultTargets) -> None:
        self._stack = stack
        self._network = ToxiproxyFaults(stack.toxiproxy)

    def _http(self) -> AdminFaults:
        return AdminFaults({name: self._stack.admin(name) for name in self._stack.upstreams})

    def apply(self, target: str, fault: Fault) -> ActiveFault:
        if isinstance(fault, HttpFault):
            return self._http().apply(target, fault)
        return self._network.apply(target, fault)

    def clear(self, active: ActiveFault) -> None:
        if isinstance(active.fault, HttpFault):
            self._http().clear(active)
        else:
            self._network.clear(active)

    def clear_all(self) -> None:
        self._network.clear_all()
        self._http().clear_all()
