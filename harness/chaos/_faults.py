"""The fault vocabulary: what can go wrong between a client and its upstream.

Faults are frozen values that say *what* happens, in the terms of a payment integration ("the
answer is lost after the upstream committed"), not how a backend produces it. The real backend turns
the network faults below into Toxiproxy toxics and the HTTP faults of :mod:`._http_faults` into rules
on the fakes' admin API; the same values serialise to JSON, so a failing schedule can be saved, shrunk
and replayed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

__all__ = [
    "FAULT_KINDS",
    "Blackhole",
    "ConnectionReset",
    "Fault",
    "Latency",
    "Outage",
    "ResponseLoss",
    "fault_from_json",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Fault:
    KIND: ClassVar[str] = ""
    AMBIGUOUS: ClassVar[bool] = False
    """Whether the upstream may apply requests whose answers the client never sees."""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.KIND, **asdict(self)}

    def describe(self) -> str:
        params = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"{self.KIND}({params})"


@dataclass(frozen=True, kw_only=True, slots=True)
class ResponseLoss(Fault):
    """Requests reach the upstream and are applied; every answer is cut off before the client reads it."""

    KIND: ClassVar[str] = "response_loss"
    AMBIGUOUS: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectionReset(Fault):
    """The connection is dropped after the upstream's first answer chunk is discarded."""

    KIND: ClassVar[str] = "connection_reset"
    AMBIGUOUS: ClassVar[bool] = True
    after_ms: int = 0

    def __post_init__(self) -> None:
        if self.after_ms < 0:
            raise ValueError(f"ConnectionReset.after_ms must be >= 0, got {self.after_ms!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Latency(Fault):
    """Every answer is delayed by ``ms`` ± ``jitter_ms``."""

    KIND: ClassVar[str] = "latency"
    ms: int
    jitter_ms: int = 0

    def __post_init__(self) -> None:
        if self.ms < 0 or self.jitter_ms < 0:
            raise ValueError(f"Latency needs ms >= 0 and jitter_ms >= 0, got {self.ms!r}, {self.jitter_ms!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Blackhole(Fault):
    """Requests are swallowed before they reach the upstream; the client waits for its own timeout."""

    KIND: ClassVar[str] = "blackhole"


@dataclass(frozen=True, kw_only=True, slots=True)
class Outage(Fault):
    """The upstream is unreachable: new connections are refused, open ones closed."""

    KIND: ClassVar[str] = "outage"


FAULT_KINDS: dict[str, type[Fault]] = {
    cls.KIND: cls for cls in (ResponseLoss, ConnectionReset, Latency, Blackhole, Outage)
}
"""Every fault kind by name; :mod:`harness.chaos._http_faults` registers the HTTP-level kinds here when
the package is imported (as it always is before this module can be)."""


def fault_from_json(data: dict[str, Any]) -> Fault:
    params = dict(data)
    kind = params.pop("kind", None)
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known kinds: {sorted(FAULT_KINDS)}")
    try:
        return FAULT_KINDS[kind](**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for fault {kind!r}: {exc}") from exc
