"""The real backend: faults realised as Toxiproxy toxics on the real server."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from harness.chaos._faults import Blackhole, ConnectionReset, Fault, Latency, Outage, ResponseLoss
from harness.toxiproxy import Latency as LatencyToxic
from harness.toxiproxy import LimitData, ResetPeer, Stream, Timeout, ToxicSpec, Toxiproxy

__all__ = ["ActiveFault", "ToxiproxyFaults", "toxics_for"]


def toxics_for(fault: Fault, name: str) -> list[ToxicSpec]:
    """The toxics that produce ``fault``; an empty list for faults that are not toxics (outage)."""
    match fault:
        case ResponseLoss():
            return [LimitData(bytes=0, stream=Stream.DOWNSTREAM, name=f"{name}_down")]
        case ConnectionReset(after_ms=after_ms):
            return [ResetPeer(timeout_ms=after_ms, stream=Stream.DOWNSTREAM, name=f"{name}_down")]
        case Latency(ms=ms, jitter_ms=jitter_ms):
            return [
                LatencyToxic(
                    latency_ms=ms,
                    jitter_ms=jitter_ms,
                    stream=Stream.DOWNSTREAM,
                    name=f"{name}_down",
                )
            ]
        case Blackhole():
            return [Timeout(timeout_ms=0, stream=Stream.UPSTREAM, name=f"{name}_up")]
        case Outage():
            return []
    raise TypeError(f"the Toxiproxy backend cannot realise {fault.describe()}")


@dataclass(frozen=True, slots=True)
class ActiveFault:
    """A fault in force: the toxics (network faults) or fake rules (HTTP faults) that realise it."""

    target: str
    fault: Fault
    toxic_names: tuple[str, ...]
    rule_ids: tuple[int, ...] = ()


class ToxiproxyFaults:
    """Applies and clears faults on the proxies named after their targets."""

    def __init__(self, toxiproxy: Toxiproxy) -> None:
        self._toxiproxy = toxiproxy
        self._outages: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._serial = 0

    def apply(self, target: str, fault: Fault) -> ActiveFault:
        with self._lock:
            self._serial += 1
            name = f"f{self._serial}_{fault.KIND}"
        if isinstance(fault, Outage):
            with self._lock:
                self._outages[target] += 1
                first = self._outages[target] == 1
            if first:
                self._toxiproxy.disable(target)
            return ActiveFault(target, fault, ())
        added = [self._toxiproxy.add_toxic(target, spec).name for spec in toxics_for(fault, name)]
        return ActiveFault(target, fault, tuple(added))

    def clear(self, active: ActiveFault) -> None:
        if isinstance(active.fault, Outage):
            with self._lock:
                self._outages[active.target] -= 1
                last = self._outages[active.target] == 0
            if last:
                self._toxiproxy.enable(active.target)
            return
        for toxic in active.toxic_names:
            self._toxiproxy.remove_toxic(active.target, toxic, missing_ok=True)

    def clear_all(self) -> None:
        with self._lock:
            self._outages.clear()
        self._toxiproxy.reset()
