"""BreakerConfig and its windows refuse settings that cannot work, naming the parameter and the fix."""

from __future__ import annotations

import dataclasses
import math

import pytest

from harness.resilience import BreakerConfig, BreakerState, CountWindow, TimeWindow
from harness.resilience._errors import ConfigError


def test_the_default_config_is_five_consecutive_failures() -> None:
    config = BreakerConfig()
    assert (config.failure_threshold, config.failure_rate_threshold, config.slow_call_rate_threshold) == (
        5,
        None,
        None,
    )
    assert (config.half_open_permits, config.success_threshold) == (1, 1)


def test_config_is_frozen_and_keyword_only() -> None:
    config = BreakerConfig(failure_threshold=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.failure_threshold = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        BreakerConfig(3)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"failure_threshold": 0}, r"failure_threshold must be >= 1, got 0"),
        ({"failure_threshold": -3}, r"failure_threshold must be >= 1"),
        ({"failure_rate_threshold": 0}, r"failure_rate_threshold is a percentage in \(0, 100\], got 0"),
        ({"failure_rate_threshold": 100.5}, r"failure_rate_threshold is a percentage in \(0, 100\]"),
        ({"failure_rate_threshold": math.nan}, r"failure_rate_threshold is a percentage"),
        (
            {"slow_call_rate_threshold": -1, "slow_call_duration": 1.0},
            r"slow_call_rate_threshold is a percentage",
        ),
        ({"slow_call_rate_threshold": 50}, r"slow_call_rate_threshold needs slow_call_duration"),
        ({"slow_call_duration": 0.0}, r"slow_call_duration must be a finite number of seconds > 0"),
        (
            {"failure_threshold": None},
            r"no trip rule, so the breaker could never open; set failure_threshold, failure_rate_threshold",
        ),
        (
            {"failure_rate_threshold": 50, "window": CountWindow(size=10), "minimum_calls": 20},
            r"minimum_calls \(20\) is larger than the count window \(10 calls\).*lower minimum_calls",
        ),
        ({"minimum_calls": 0}, r"minimum_calls must be >= 1"),
        ({"open_duration": 0}, r"open_duration must be a finite number of seconds > 0"),
        ({"open_duration": math.inf}, r"open_duration must be a finite number of seconds > 0"),
        ({"open_duration_multiplier": 0.5}, r"open_duration_multiplier must be a finite number >= 1"),
        ({"open_duration_multiplier": 2.0}, r"open_duration_multiplier > 1 needs max_open_duration"),
        (
            {"open_duration": 10.0, "max_open_duration": 5.0},
            r"max_open_duration \(5.0\) is below open_duration \(10.0\)",
        ),
        ({"half_open_permits": 0}, r"half_open_permits must be >= 1"),
        ({"success_threshold": 0}, r"success_threshold must be >= 1"),
        (
            {"half_open_permits": 2, "success_threshold": 3},
            r"success_threshold \(3\) is larger than half_open_permits \(2\).*raise half_open_permits",
        ),
        ({"max_half_open_duration": -1.0}, r"max_half_open_duration must be a finite number of seconds > 0"),
        (
            {"after_half_open_timeout": BreakerState.HALF_OPEN},
            r"after_half_open_timeout must be BreakerState.OPEN or BreakerState.CLOSED",
        ),
    ],
)
def test_impossible_settings_are_refused_with_the_parameter_and_the_fix(
    settings: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        BreakerConfig(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"failure_threshold": "5"}, r"failure_threshold must be a whole number, got '5'"),
        ({"failure_threshold": True}, r"failure_threshold must be a whole number, got True"),
        ({"window": 100}, r"window must be a CountWindow or a TimeWindow, got 100"),
    ],
)
def test_settings_of_the_wrong_type_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        BreakerConfig(**settings)  # type: ignore[arg-type]


def test_a_consecutive_rule_can_be_switched_off_for_rates_only() -> None:
    config = BreakerConfig(failure_threshold=None, failure_rate_threshold=50, minimum_calls=10)
    assert config.failure_threshold is None
    assert config.judges_rates


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (lambda: CountWindow(size=0), r"CountWindow.size must be >= 1"),
        (lambda: TimeWindow(duration=0.0), r"TimeWindow.duration must be a finite number of seconds > 0"),
        (lambda: TimeWindow(duration=10.0, bucket=3.0), r"must be a whole multiple of TimeWindow.bucket"),
        (lambda: TimeWindow(duration=1.0, bucket=2.0), r"must be a whole multiple of TimeWindow.bucket"),
        (
            lambda: TimeWindow(duration=3600.0, bucket=0.01),
            r"at most 10000 are allowed, so use larger buckets",
        ),
    ],
)
def test_impossible_windows_are_refused(window: object, message: str) -> None:
    assert callable(window)
    with pytest.raises(ConfigError, match=message):
        window()


def test_a_time_window_knows_its_bucket_count() -> None:
    assert TimeWindow(duration=60.0, bucket=1.0).buckets == 60
    assert TimeWindow(duration=3.0, bucket=0.5).buckets == 6
    assert TimeWindow(duration=0.3, bucket=0.1).buckets == 3
