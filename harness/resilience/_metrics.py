"""Rolling latency percentiles and error rates per upstream and operation, exported to Prometheus.

What the seeds track (MIFOS: response times over the last 100 measurements; the Stripe integration
service: average, p95 and success rate per provider and operation; QuantForge: p50/p95/p99 and the
error rate per integration) as one small window per (upstream, operation): the last ``window``
attempts, optionally also no older than ``max_age`` seconds on the injected clock.

Prometheus histograms and summaries cannot give a *rolling* p95 without server-side maths over
buckets, so the window is kept here and exported through a custom collector (the
prometheus-client way for values computed at scrape time): gauges for the rolling quantiles and
error ratio, and a plain cumulative counter of attempts by outcome. The collector registers with the
:class:`prometheus_client.CollectorRegistry` passed in, never the global default, so that tests and
parallel runs stay isolated. Percentiles are nearest-rank (no interpolation): every reported value
is a latency that really happened.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from harness.resilience._clock import Clock
from harness.resilience._errors import ConfigError, ErrorClass

__all__ = ["ClientMetrics", "OperationStats", "percentile"]

QUANTILES = (0.5, 0.95, 0.99)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (which must not be empty), ``q`` in [0, 1]."""
    if not values:
        raise ValueError("percentile of no values; record at least one")
    if not 0 <= q <= 1:
        raise ValueError(f"q must be in [0, 1], got {q!r}")
    ordered = sorted(values)
    rank = max(math.ceil(q * len(ordered)), 1)
    return ordered[rank - 1]


@dataclass(frozen=True, kw_only=True, slots=True)
class OperationStats:
    upstream: str
    operation: str
    count: int
    errors: int
    error_rate: float
    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None


class ClientMetrics:
    """Thread-safe; one per client (or shared by several), registered on ``registry`` if given."""

    def __init__(
        self,
        *,
        clock: Clock,
        window: int = 100,
        max_age: float | None = None,
        registry: CollectorRegistry | None = None,
        namespace: str = "resilience_client",
    ) -> None:
        if window < 1:
            raise ConfigError(f"ClientMetrics.window must be >= 1 sample, got {window!r}")
        if max_age is not None and not (math.isfinite(max_age) and max_age > 0):
            raise ConfigError(f"ClientMetrics.max_age must be > 0 seconds or None, got {max_age!r}")
        self._clock = clock
        self.window = window
        self.max_age = max_age
        self.namespace = namespace
        self._lock = threading.Lock()
        self._samples: dict[tuple[str, str], deque[tuple[float, float, bool]]] = {}
        self._totals: Counter[tuple[str, str, str]] = Counter()
        if registry is not None:
            registry.register(self)

    def record(self, upstream: str, operation: str, latency: float, error: ErrorClass | None) -> None:
        key = (upstream, operation)
        with self._lock:
            samples = self._samples.get(key)
            if samples is None:
                samples = self._samples[key] = deque(maxlen=self.window)
            samples.append((self._clock.now(), latency, error is None))
            self._totals[(upstream, operation, "ok" if error is None else str(error))] += 1

    def stats(self, upstream: str, operation: str) -> OperationStats:
        with self._lock:
            samples = self._live((upstream, operation))
        latencies = [latency for _, latency, _ in samples]
        errors = sum(1 for _, _, ok in samples if not ok)
        count = len(samples)
        return OperationStats(
            upstream=upstream,
            operation=operation,
            count=count,
            errors=errors,
            error_rate=errors / count if count else 0.0,
            mean=sum(latencies) / count if count else None,
            p50=percentile(latencies, 0.5) if count else None,
            p95=percentile(latencies, 0.95) if count else None,
            p99=percentile(latencies, 0.99) if count else None,
        )

    def keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._samples)

    def _live(self, key: tuple[str, str]) -> list[tuple[float, float, bool]]:
        samples = self._samples.get(key)
        if samples is None:
            return []
        if self.max_age is not None:
            oldest = self._clock.now() - self.max_age
            while samples and samples[0][0] < oldest:
                samples.popleft()
        return list(samples)

    def collect(self) -> Iterator[Metric]:
        ns = self.namespace
        attempts = CounterMetricFamily(
            f"{ns}_attempts",
            "Attempts by upstream, operation and outcome",
            labels=["upstream", "operation", "outcome"],
        )
        latency = GaugeMetricFamily(
            f"{ns}_latency_seconds",
            "Rolling latency quantiles over the last attempts",
            labels=["upstream", "operation", "quantile"],
        )
        error_ratio = GaugeMetricFamily(
            f"{ns}_error_ratio",
            "Share of failed attempts in the rolling window",
            labels=["upstream", "operation"],
        )
        with self._lock:
            totals = dict(self._totals)
        for (upstream, operation, outcome), value in sorted(totals.items()):
            attempts.add_metric([upstream, operation, outcome], value)
        for upstream, operation in self.keys():
            stats = self.stats(upstream, operation)
            if stats.count == 0:
                continue
            for q, seconds in zip(QUANTILES, (stats.p50, stats.p95, stats.p99), strict=True):
                assert seconds is not None
                latency.add_metric([upstream, operation, f"{q:g}"], seconds)
            error_ratio.add_metric([upstream, operation], stats.error_rate)
        yield attempts
        yield latency
        yield error_ratio
