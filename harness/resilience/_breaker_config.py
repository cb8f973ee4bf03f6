"""What a breaker is told: its trip rules, its sliding window, its open and half-open timing.

Every threshold trips **at or above** its value, as in resilience4j and Polly (opossum and cockatiel trip
strictly above): with ``failure_threshold=5`` the 5th consecutive failure opens the breaker, with
``failure_rate_threshold=50`` five failures in ten calls do, and a call that takes exactly
``slow_call_duration`` seconds is slow. Rates are percentages in (0, 100].

The config is plain data (no callables) so that it can be printed, compared, swept and exported;
how exceptions and results are classified is given to the :class:`CircuitBreaker` itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.resilience._breaker_states import BreakerState
from harness.resilience._errors import ConfigError

__all__ = ["BreakerConfig", "CountWindow", "TimeWindow"]

_MAX_BUCKETS = 10_000


@dataclass(frozen=True, kw_only=True, slots=True)
class CountWindow:
    """The last ``size`` recorded calls (resilience4j's COUNT_BASED window)."""

    size: int = 100

    def __post_init__(self) -> None:
        _require_int("CountWindow.size", self.size, minimum=1)


@dataclass(frozen=True, kw_only=True, slots=True)
class TimeWindow:
    """The calls of the last ``duration`` seconds, kept in buckets of ``bucket`` seconds.

    Buckets follow resilience4j's time-based window (its issue #547): a bucket's counts are subtracted
    from the totals when it falls out, so reading the rates costs nothing. The window holds the
    current bucket and the ones before it, so a call counts for between ``duration - bucket`` and
    ``duration`` seconds after it finished.
    """

    duration: float = 60.0
    bucket: float = 1.0

    def __post_init__(self) -> None:
        _require_seconds("TimeWindow.duration", self.duration)
        _require_seconds("TimeWindow.bucket", self.bucket)
        buckets = self.duration / self.bucket
        if not math.isclose(buckets, round(buckets), rel_tol=1e-9) or round(buckets) < 1:
            raise ConfigError(
                f"TimeWindow.duration ({self.duration!r}) must be a whole multiple of TimeWindow.bucket"
                f" ({self.bucket!r}); pick a bucket that divides the duration (1.0 s is usual)"
            )
        if round(buckets) > _MAX_BUCKETS:
            raise ConfigError(
                f"TimeWindow would need {round(buckets)} buckets (duration {self.duration!r} / bucket"
                f" {self.bucket!r}); at most {_MAX_BUCKETS} are allowed, so use larger buckets"
            )

    @property
    def buckets(self) -> int:
        return round(self.duration / self.bucket)


@dataclass(frozen=True, kw_only=True, slots=True)
class BreakerConfig:
    """Trip rules and timing of one circuit breaker.

    Trip rules (any one that fires opens the breaker; set a rule to ``None`` to switch it off):

    * ``failure_threshold``: that many upstream failures in a row (on by default: 5);
    * ``failure_rate_threshold``: failure percentage over the ``window``, judged once it holds at least
      ``minimum_calls`` calls;
    * ``slow_call_rate_threshold``: percentage of calls that took ``slow_call_duration`` seconds or
      more, judged the same way.

    Open: the first trip keeps the breaker open ``open_duration`` seconds; each further trip without
    closing in between multiplies that by ``open_duration_multiplier``, up to ``max_open_duration``.
    Closing starts again from ``open_duration``.

    Half-open: up to ``half_open_permits`` probe calls are admitted; ``success_threshold`` successful
    probes close the breaker and one failed (or, with a slow-call rule, slow) probe re-opens it. With
    ``max_half_open_duration`` set, a half-open state that has not decided by then moves to
    ``after_half_open_timeout`` (OPEN by default; CLOSED is allowed), which frees permits held by
    probes that never finished (resilience4j #903).
    """

    failure_threshold: int | None = 5
    failure_rate_threshold: float | None = None
    slow_call_rate_threshold: float | None = None
    slow_call_duration: float | None = None
    window: CountWindow | TimeWindow = field(default_factory=CountWindow)
    minimum_calls: int = 10
    open_duration: float = 30.0
    open_duration_multiplier: float = 1.0
    max_open_duration: float | None = None
    half_open_permits: int = 1
    success_threshold: int = 1
    max_half_open_duration: float | None = None
    after_half_open_timeout: BreakerState = BreakerState.OPEN

    def __post_init__(self) -> None:
        self._check_trip_rules()
        self._check_window()
        self._check_timing()
        self._check_half_open()

    def _check_trip_rules(self) -> None:
        if self.failure_threshold is not None:
            _require_int("BreakerConfig.failure_threshold", self.failure_threshold, minimum=1)
        for name in ("failure_rate_threshold", "slow_call_rate_threshold"):
            rate = getattr(self, name)
            if rate is not None and not (_is_number(rate) and 0 < rate <= 100):
                raise ConfigError(
                    f"BreakerConfig.{name} is a percentage in (0, 100], got {rate!r};"
                    " e.g. 50 trips at half of the calls in the window"
                )
        if self.slow_call_duration is not None:
            _require_seconds("BreakerConfig.slow_call_duration", self.slow_call_duration)
        if self.slow_call_rate_threshold is not None and self.slow_call_duration is None:
            raise ConfigError(
                "BreakerConfig.slow_call_rate_threshold needs slow_call_duration (seconds at or above"
                " which a call counts as slow); set it, e.g. slow_call_duration=2.0"
            )
        if (
            self.failure_threshold is None
            and self.failure_rate_threshold is None
            and self.slow_call_rate_threshold is None
        ):
            raise ConfigError(
                "BreakerConfig has no trip rule, so the breaker could never open; set failure_threshold,"
                " failure_rate_threshold or slow_call_rate_threshold (to switch a breaker off, move it to"
                " DISABLED or METRICS_ONLY instead)"
            )

    def _check_window(self) -> None:
        if not isinstance(self.window, CountWindow | TimeWindow):
            raise TypeError(
                f"BreakerConfig.window must be a CountWindow or a TimeWindow, got {self.window!r}"
            )
        _require_int("BreakerConfig.minimum_calls", self.minimum_calls, minimum=1)
        if isinstance(self.window, CountWindow) and self.minimum_calls > self.window.size:
            raise ConfigError(
                f"BreakerConfig.minimum_calls ({self.minimum_calls}) is larger than the count window"
                f" ({self.window.size} calls), so no rate could ever be judged; lower minimum_calls or"
                " enlarge CountWindow.size"
            )

    def _check_timing(self) -> None:
        _require_seconds("BreakerConfig.open_duration", self.open_duration)
        multiplier = self.open_duration_multiplier
        if not (_is_number(multiplier) and math.isfinite(multiplier) and multiplier >= 1):
            raise ConfigError(
                f"BreakerConfig.open_duration_multiplier must be a finite number >= 1 (1 = no growth),"
                f" got {multiplier!r}"
            )
        if self.max_open_duration is not None:
            _require_seconds("BreakerConfig.max_open_duration", self.max_open_duration)
            if self.max_open_duration < self.open_duration:
                raise ConfigError(
                    f"BreakerConfig.max_open_duration ({self.max_open_duration!r}) is below open_duration"
                    f" ({self.open_duration!r}); the cap must be at least the first open duration"
                )
        elif multiplier > 1:
            raise ConfigError(
                "BreakerConfig.open_duration_multiplier > 1 needs max_open_duration, or the open time would"
                " grow without bound; set a cap, e.g. max_open_duration=300"
            )
        if self.max_half_open_duration is not None:
            _require_seconds("BreakerConfig.max_half_open_duration", self.max_half_open_duration)
        if self.after_half_open_timeout not in (BreakerState.OPEN, BreakerState.CLOSED):
            raise ConfigError(
                "BreakerConfig.after_half_open_timeout must be BreakerState.OPEN or BreakerState.CLOSED,"
                f" got {self.after_half_open_timeout!r}"
            )

    def _check_half_open(self) -> None:
        _require_int("BreakerConfig.half_open_permits", self.half_open_permits, minimum=1)
        _require_int("BreakerConfig.success_threshold", self.success_threshold, minimum=1)
        if self.success_threshold > self.half_open_permits:
            raise ConfigError(
                f"BreakerConfig.success_threshold ({self.success_threshold!r}) is larger than"
                f" half_open_permits ({self.half_open_permits!r}), so the breaker could never close;"
                " raise half_open_permits or lower success_threshold"
            )

    @property
    def judges_rates(self) -> bool:
        return self.failure_rate_threshold is not None or self.slow_call_rate_threshold is not None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _require_int(name: str, value: object, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")


def _require_seconds(name: str, value: object) -> None:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not (math.isfinite(value) and value > 0)
    ):
        raise ConfigError(f"{name} must be a finite number of seconds > 0, got {value!r}")
