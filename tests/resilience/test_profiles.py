"""Seed profiles: the real systems' numbers, where each came from, and the cross-checks on configs."""

from __future__ import annotations

import random

import pytest

from harness.resilience import (
    DEFAULT_PROFILE,
    PROFILES,
    Backoff,
    BreakerConfig,
    BulkheadConfig,
    ClientConfig,
    ConfigError,
    Jitter,
    RateLimitConfig,
    Retrier,
    RetryPolicy,
    RetryPresets,
    TimeoutConfig,
    TimeWindow,
    VirtualClock,
    get_profile,
)


def test_every_seed_has_a_profile_and_reference_is_the_default() -> None:
    assert DEFAULT_PROFILE == "reference"
    assert set(PROFILES) == {
        "reference",
        "mifos",
        "haven",
        "stripe-integration",
        "quantforge-database",
        "quantforge-ai-service",
        "quantforge-market-data",
        "quantforge-cache",
        "milokhelo",
    }
    seeds = {profile.seed.split(" ")[0] for profile in PROFILES.values() if profile.seed}
    assert seeds == {"000", "001", "002", "003", "004"}
    for profile in PROFILES.values():
        assert profile.sources, f"{profile.name} does not say where its numbers come from"
        for upstream in ("stripe", "mpesa", "cbs"):
            assert isinstance(profile.config_for(upstream), ClientConfig)


def test_haven_mpesa_breaker_opens_after_3_failures_for_120_s_within_a_30_s_call() -> None:
    mpesa = get_profile("haven").config_for("mpesa")

    assert mpesa.breaker is not None
    assert (mpesa.breaker.failure_threshold, mpesa.breaker.open_duration) == (3, 120.0)
    assert (mpesa.timeouts.attempt, mpesa.timeouts.total) == (25.0, 30.0)
    assert get_profile("haven").config_for("sms").timeouts.total == 10.0


def test_mifos_limits_are_100_per_minute_and_5_concurrent_with_maker_and_checker() -> None:
    mifos = get_profile("mifos")
    config = mifos.config_for("cbs")

    assert config.rate_limit == RateLimitConfig(limit=100, period=60.0, max_wait=30.0)
    assert config.bulkhead is not None
    assert config.bulkhead.max_concurrent == 5
    assert config.breaker is not None
    assert (config.breaker.failure_threshold, config.breaker.open_duration) == (5, 60.0)
    assert mifos.credentials == ("maker", "checker")
    assert mifos.token_lifetime == 12 * 3600


def test_the_stripe_integration_service_uses_the_standard_preset() -> None:
    config = get_profile("stripe-integration").config_for("stripe")

    assert config.retry is RetryPresets.STANDARD
    assert config.breaker is not None
    assert (config.breaker.success_threshold, config.breaker.open_duration) == (2, 60.0)


def test_quantforge_half_open_probes_are_raised_so_its_breakers_can_close() -> None:
    cache = get_profile("quantforge-cache").default
    database = get_profile("quantforge-database").default

    assert cache.breaker is not None
    assert database.breaker is not None
    assert (cache.breaker.success_threshold, cache.breaker.half_open_permits) == (10, 10)
    assert (database.breaker.success_threshold, database.breaker.half_open_permits) == (2, 3)
    assert "could never close" in get_profile("quantforge-cache").sources["breaker.half_open_permits"]
    assert database.timeouts == TimeoutConfig(attempt=15.0, connect=5.0, read=10.0, write=15.0, total=30.0)
    assert database.retry.max_attempts == 4


def test_milokhelo_waits_exactly_1_2_and_4_seconds_before_giving_up() -> None:
    clock = VirtualClock()
    retrier = Retrier(
        get_profile("milokhelo").default.retry, on=ConnectionError, clock=clock, rng=random.Random(0)
    )

    def always_fails() -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        retrier.call(always_fails)

    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_scaling_a_profile_shrinks_durations_and_keeps_counts() -> None:
    haven = get_profile("haven").scaled(0.01)
    mpesa = haven.config_for("mpesa")

    assert mpesa.breaker is not None
    assert mpesa.breaker.failure_threshold == 3
    assert mpesa.breaker.open_duration == pytest.approx(1.2)
    assert mpesa.timeouts.attempt == pytest.approx(0.25)
    assert mpesa.timeouts.total == pytest.approx(0.3)
    assert haven.name == "haven@x0.01"
    scaled_mifos = get_profile("mifos").scaled(0.1).default
    assert scaled_mifos.rate_limit is not None
    assert scaled_mifos.rate_limit.limit == 100
    assert scaled_mifos.rate_limit.period == pytest.approx(6.0)


def test_an_unknown_profile_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="choose one of reference, mifos, haven"):
        get_profile("havne")


# -- cross-checks on ClientConfig (Microsoft's standard-pipeline rules and ours) --------------------


def test_client_config_refuses_retries_whose_delays_cannot_fit_the_total_timeout() -> None:
    with pytest.raises(
        ConfigError, match=r"does not fit in timeouts.total \(60 s\).*lower max_attempts to 5"
    ):
        ClientConfig(timeouts=TimeoutConfig(attempt=10.0, total=60.0), retry=RetryPresets.AGGRESSIVE)


def test_client_config_refuses_a_retry_deadline_beyond_the_total() -> None:
    with pytest.raises(ConfigError, match="lower max_elapsed or drop it"):
        ClientConfig(timeouts=TimeoutConfig(attempt=1.0, total=5.0), retry=RetryPolicy(max_elapsed=10.0))


@pytest.mark.parametrize("layer", ["bulkhead", "rate_limit"])
def test_client_config_refuses_a_queue_that_waits_longer_than_the_total(layer: str) -> None:
    limits = {
        "bulkhead": BulkheadConfig(max_concurrent=1, max_queue=5, max_wait=60.0),
        "rate_limit": RateLimitConfig(max_wait=60.0),
    }
    with pytest.raises(ConfigError, match=f"lower {layer}.max_wait"):
        ClientConfig(timeouts=TimeoutConfig(attempt=1.0, total=30.0), **{layer: limits[layer]})  # type: ignore[arg-type]


def test_client_config_refuses_a_breaker_window_shorter_than_two_attempt_timeouts() -> None:
    breaker = BreakerConfig(
        failure_threshold=None, failure_rate_threshold=50.0, window=TimeWindow(duration=10.0, bucket=1.0)
    )

    with pytest.raises(ConfigError, match=r"lengthen the window or lower timeouts\.attempt"):
        ClientConfig(timeouts=TimeoutConfig(attempt=6.0, total=30.0), breaker=breaker)
    assert ClientConfig(timeouts=TimeoutConfig(attempt=5.0, total=30.0), breaker=breaker).breaker is breaker


def test_client_config_accepts_the_reference_settings() -> None:
    config = ClientConfig(
        timeouts=TimeoutConfig(attempt=2.0, total=10.0),
        retry=RetryPolicy(max_attempts=4, backoff=Backoff(initial=0.05, max_delay=1.0, jitter=Jitter.FULL)),
        breaker=BreakerConfig(failure_threshold=5, open_duration=1.0),
    )

    assert config == get_profile("reference").default
