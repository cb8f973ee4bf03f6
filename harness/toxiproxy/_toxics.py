"""Typed Toxiproxy toxics with their real units.

Toxiproxy's units are mixed (milliseconds almost everywhere, *microseconds* for the slicer delay) and
omitted attributes silently become zero, which turns ``bandwidth`` into "never deliver". Each class
here names its unit in the field name and refuses values that would not do what the name says.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "Bandwidth",
    "Latency",
    "LimitData",
    "ResetPeer",
    "Slicer",
    "SlowClose",
    "Stream",
    "Timeout",
    "Toxic",
    "ToxicSpec",
]


class Stream(enum.StrEnum):
    UPSTREAM = "upstream"
    """Bytes from the client towards the server."""
    DOWNSTREAM = "downstream"
    """Bytes from the server back to the client."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Toxic:
    """A toxic as the server reports it."""

    name: str
    type: str
    stream: Stream
    toxicity: float
    attributes: Mapping[str, Any]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Toxic:
        return cls(
            name=data["name"],
            type=data["type"],
            stream=Stream(data.get("stream", "downstream")),
            toxicity=float(data.get("toxicity", 1.0)),
            attributes=dict(data.get("attributes") or {}),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class ToxicSpec:
    """Base of the typed toxics: what to ask the server to add."""

    TYPE: ClassVar[str] = ""
    stream: Stream = Stream.DOWNSTREAM
    toxicity: float = 1.0
    name: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.toxicity <= 1.0:
            raise ValueError(f"toxicity is a probability per connection in [0, 1], got {self.toxicity!r}")

    def attributes(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def resolved_name(self) -> str:
        return self.name or f"{self.TYPE}_{self.stream}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.resolved_name,
            "type": self.TYPE,
            "stream": str(self.stream),
            "toxicity": self.toxicity,
            "attributes": self.attributes(),
        }


def _non_negative(owner: str, **values: float) -> None:
    for field_name, value in values.items():
        if value < 0:
            raise ValueError(f"{owner}.{field_name} must be >= 0, got {value!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Latency(ToxicSpec):
    """Delay each chunk in *one* direction by ``latency_ms`` ± ``jitter_ms``.

    For a round-trip delay add one on each stream; Toxiproxy's README suggests otherwise, its code
    does not.
    """

    TYPE: ClassVar[str] = "latency"
    latency_ms: int = 0
    jitter_ms: int = 0

    def __post_init__(self) -> None:
        ToxicSpec.__post_init__(self)
        _non_negative("Latency", latency_ms=self.latency_ms, jitter_ms=self.jitter_ms)

    def attributes(self) -> dict[str, Any]:
        return {"latency": self.latency_ms, "jitter": self.jitter_ms}


@dataclass(frozen=True, kw_only=True, slots=True)
class Bandwidth(ToxicSpec):
    """Pace data to ``rate_kb_per_s``. A rate of 0 stalls the stream for ever, so it needs ``stall=True``."""

    TYPE: ClassVar[str] = "bandwidth"
    rate_kb_per_s: int
    stall: bool = False

    def __post_init__(self) -> None:
        ToxicSpec.__post_init__(self)
        _non_negative("Bandwidth", rate_kb_per_s=self.rate_kb_per_s)
        if self.rate_kb_per_s == 0 and not self.stall:
            raise ValueError(
                "Bandwidth(rate_kb_per_s=0) never delivers a byte; pass stall=True if that is"
                " what you want, or use Timeout() to swallow data"
            )

    def attributes(self) -> dict[str, Any]:
        return {"rate": self.rate_kb_per_s}


@dataclass(frozen=True, kw_only=True, slots=True)
class SlowClose(ToxicSpec):
    """Forward data normally, then hold the close for ``delay_ms``."""

    TYPE: ClassVar[str] = "slow_close"
    delay_ms: int

    def __post_init__(self) -> None:
        ToxicSpec.__post_init__(self)
        _non_negative("SlowClose", delay_ms=self.delay_ms)

    def attributes(self) -> dict[str, Any]:
        return {"delay": self.delay_ms}


@dataclass(frozen=True, kw_only=True, slots=True)
class Timeout(ToxicSpec):
    """Swallow all data; close ``timeout_ms`` after the toxic starts (0: never close).

    Removing it closes the connections it touched.
    """

    TYPE: ClassVar[str] = "timeout"
    timeout_ms: int = 0

    def __post_init__(self) -> None:
        ToxicSpec.__post_init__(self)
        _non_negative("Timeout", timeout_ms=self.timeout_ms)

    def attributes(self) -> dict[str, Any]:
        return {"timeout": self.timeout_ms}


@dataclass(frozen=True, kw_only=True, slots=True)
class ResetPeer(ToxicSpec):
    """Drop the first chunk, wait ``timeout_ms``, then close.

    The close is a TCP RST only for connections opened after the toxic was added.
    """

    TYPE: ClassVar[str] = "reset_peer"
    timeout_ms: int = 0

    def __post_init__(self) -> None:
        ToxicSpec.__post_init__(self)
        _non_negative("ResetPeer", timeout_ms=self.timeout_ms)

    def attributes(self) -> dict[str, Any]:
        return {"timeout": self.timeout_ms}


@dataclass(frozen=True, kw_only=True, slots=True)
class Slicer(ToxicSpec):
    """Cut chunks into pieces of ``average_size`` ± ``size_variation`` bytes, ``delay_us`` apart."""

    TYPE: ClassVar[str] = "slicer"
    average_size: int
    size_variation: int = 0
    delay_us: int = 0

    def __post_init__(self) -> None:
        ToxicSpec.__post_init__(self)
        _non_negative("Slicer", size_variation=self.size_variation, delay_us=self.delay_us)
        if self.average_size < 1:
            raise ValueError(f"Slicer.average_size must be >= 1 byte, got {self.average_size!r}")
        if self.size_variation >= self.average_size:
            raise ValueError(
                f"Slicer.size_variation ({self.size_variation}) must be below average_size"
                f" ({self.average_size})"
            )

    def attributes(self) -> dict[str, Any]:
        return {
            "average_size": self.average_size,
            "size_variation": self.size_variation,
            "delay": self.delay_us,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class LimitData(ToxicSpec):
    """Forward at most ``bytes`` per connection, then close. ``bytes=0`` drops every answer whole."""

    TYPE: ClassVar[str] = "limit_data"
    bytes: int

    def __post_init__(self) -> None:
        ToxicSpec.__post_init__(self)
        _non_negative("LimitData", bytes=self.bytes)

    def attributes(self) -> dict[str, Any]:
        return {"bytes": self.bytes}
