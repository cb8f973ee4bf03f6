"""Named profiles of the reference client: the resilience settings of real systems, from the seeds.

Each seed document describes one system's settings; each becomes a :class:`Profile` so that the
harness can run those very settings under the same faults and show what they do. ``sources`` says
where every number came from: the seed (with its own name for the setting), or, where the seed is
silent, which reference we took the value from and why. Where a seed's settings cannot work as
written, the profile says so and what was changed (QuantForge's half-open probe counts).

``reference`` is the default: the loopback-scaled settings that scenarios run with (operations take
milliseconds and a scenario a few seconds). The seed profiles keep their real durations (30 s
timeouts, 2 min open breakers); :meth:`Profile.scaled` shrinks every duration by a factor to replay a
real system's settings on loopback (counts, thresholds and limits per period stay).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from harness.resilience._breaker_config import BreakerConfig
from harness.resilience._budget import BudgetConfig
from harness.resilience._bulkhead import BulkheadConfig
from harness.resilience._client import ClientConfig
from harness.resilience._errors import ConfigError, ErrorClass
from harness.resilience._ratelimit import RateLimitConfig
from harness.resilience._retry import Backoff, BackoffKind, Jitter, RetryPolicy, RetryPresets
from harness.resilience._timeouts import TimeoutConfig

__all__ = ["DEFAULT_PROFILE", "PROFILES", "Profile", "get_profile"]

DEFAULT_PROFILE = "reference"

V = TypeVar("V")


def _frozen(mapping: Mapping[str, V]) -> Mapping[str, V]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, kw_only=True, slots=True)
class Profile:
    """A named set of client settings: one :class:`ClientConfig` per upstream, and a default."""

    name: str
    seed: str
    """The seed document the settings come from (``""`` for the harness's own)."""
    summary: str
    default: ClientConfig
    upstreams: Mapping[str, ClientConfig] = field(default_factory=lambda: MappingProxyType({}))
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Setting → where its value came from."""
    token_lifetime: float | None = None
    """How long the system's tokens live (seconds), for a token cache in front of its upstream."""
    credentials: tuple[str, ...] = ()
    """Separate credentials the system keeps (each its own token-cache entry)."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("Profile.name must not be empty; it is how the profile is looked up")

    def config_for(self, upstream: str) -> ClientConfig:
        return self.upstreams.get(upstream, self.default)

    def scaled(self, factor: float) -> Profile:
        """The same profile with every duration multiplied by ``factor`` (e.g. 0.01 for loopback)."""
        return Profile(
            name=f"{self.name}@x{factor:g}",
            seed=self.seed,
            summary=f"{self.summary} (durations x{factor:g})",
            default=self.default.scaled(factor),
            upstreams=_frozen({name: config.scaled(factor) for name, config in self.upstreams.items()}),
            sources=self.sources,
            token_lifetime=None if self.token_lifetime is None else self.token_lifetime * factor,
            credentials=self.credentials,
        )


def _reference() -> Profile:
    return Profile(
        name="reference",
        seed="",
        summary="The harness's reference client, scaled for loopback runs of a few seconds",
        default=ClientConfig(
            timeouts=TimeoutConfig(attempt=2.0, total=10.0),
            retry=RetryPolicy(
                max_attempts=4,
                backoff=Backoff(initial=0.05, multiplier=2.0, max_delay=1.0, jitter=Jitter.FULL),
            ),
            breaker=BreakerConfig(failure_threshold=5, open_duration=1.0),
            budget=BudgetConfig(),
        ),
        sources=_frozen(
            {
                "timeouts.attempt": "2 s: loopback answers take milliseconds; catches a stuck connection",
                "timeouts.total": "10 s: bounds an operation well inside a scenario of a few seconds",
                "retry": "4 attempts, 50 ms x2 capped at 1 s, full jitter: retries fit a 1 s fault window",
                "breaker": "5 consecutive failures, open 1 s: opens and re-probes within one scenario",
                "budget": "Finagle's defaults: 20 % of requests + 10 retries/s over 10 s (resilience.md §1b)",
            }
        ),
    )


def _mifos() -> Profile:
    return Profile(
        name="mifos",
        seed="000 (Enhanced MIFOS Integration Guide)",
        summary=(
            "MIFOS CBS client: 30 s timeout, 5/60 s breaker, 100 req/min, 5 concurrent, maker/checker tokens"
        ),
        default=ClientConfig(
            timeouts=TimeoutConfig(attempt=30.0, total=None),
            retry=RetryPolicy(
                max_attempts=3,
                backoff=Backoff(initial=1.0, multiplier=2.0, max_delay=2.0, jitter=Jitter.NONE),
            ),
            breaker=BreakerConfig(failure_threshold=5, open_duration=60.0),
            budget=None,
            bulkhead=BulkheadConfig(max_concurrent=5, max_queue=50, max_wait=30.0),
            rate_limit=RateLimitConfig(limit=100, period=60.0, max_wait=30.0),
        ),
        sources=_frozen(
            {
                "timeouts.attempt": "CBS_TIMEOUT=30000 ('default 30s')",
                "timeouts.total": "not set by the seed",
                "retry": (
                    "the seed says 'exponential backoff' without numbers; Fineract's own command retry"
                    " (resilience4j executeCommand: 3 attempts, 1 s, x2, upstreams.md §2.4); no jitter, which"
                    " the seed lists as a future enhancement"
                ),
                "breaker.failure_threshold": "MIFOS_CIRCUIT_BREAKER_THRESHOLD=5",
                "breaker.open_duration": "MIFOS_CIRCUIT_BREAKER_TIMEOUT=60000",
                "bulkhead.max_concurrent": "MIFOS_MAX_CONCURRENT_REQUESTS=5",
                "bulkhead.max_queue": "the seed's alert threshold 'queue depth > 50 requests'",
                "bulkhead.max_wait": "not in the seed: CBS_TIMEOUT (30 s), so no call queues longer than one",
                "rate_limit": "MIFOS_REQUEST_RATE_LIMIT=100 (per minute); max_wait 30 s as for the bulkhead",
                "token_lifetime": "MIFOS_TOKEN_EXPIRY_HOURS=12",
                "credentials": "'Dual Credentials: separate maker/checker authentication'",
            }
        ),
        token_lifetime=12 * 3600.0,
        credentials=("maker", "checker"),
    )


def _haven_service(
    threshold: int, timeout: float, reset: float, *, attempt: float | None = None
) -> ClientConfig:
    return ClientConfig(
        timeouts=TimeoutConfig(attempt=attempt or timeout, total=timeout),
        retry=RetryPolicy(max_attempts=1),
        breaker=BreakerConfig(failure_threshold=threshold, open_duration=reset),
        budget=None,
    )


def _haven() -> Profile:
    payments = _haven_service(3, 30.0, 120.0)
    return Profile(
        name="haven",
        seed="001 (Haven Property Management: Circuit Breaker Implementation)",
        summary="Haven's per-service breakers: payments 3 failures/30 s/120 s, messaging 5/10-15 s/60 s",
        default=payments,
        upstreams=_frozen(
            {
                "mpesa": _haven_service(3, 30.0, 120.0, attempt=25.0),
                "stripe": payments,
                "cbs": _haven_service(3, 30.0, 120.0),
                "pesapal": payments,
                "kcb": _haven_service(3, 30.0, 120.0),
                "email": _haven_service(5, 15.0, 60.0),
                "sms": _haven_service(5, 10.0, 60.0),
                "whatsapp": _haven_service(5, 15.0, 60.0),
            }
        ),
        sources=_frozen(
            {
                "mpesa": "{ failureThreshold: 3, timeout: 30000, resetTimeout: 120000 }; axios timeout 25000",
                "stripe": "pesapal's settings (Haven's card-payment service): 3 / 30 s / 120 s",
                "cbs": "kcb's settings (Haven's banking service): 3 / 30 s / 120 s",
                "email/sms/whatsapp": "5 / 15 s / 60 s, 5 / 10 s / 60 s, 5 / 15 s / 60 s",
                "timeouts": (
                    "the breaker's 'timeout' bounds the whole call (total); the attempt timeout is the same"
                    " except for mpesa, whose example sets axios to 25 s 'within the breaker's 30s limit'"
                ),
                "retry": "none in the seed: one attempt",
                "half_open": "not in the seed: one probe closes the breaker",
            }
        ),
    )


def _stripe_integration() -> Profile:
    return Profile(
        name="stripe-integration",
        seed="002 (Integration Service: Phase 3 & 4 Completion Summary)",
        summary="The Stripe integration service: STANDARD retries in a 5/60 s breaker that 2 probes close",
        default=ClientConfig(
            timeouts=TimeoutConfig(attempt=80.0, total=None),
            retry=RetryPresets.STANDARD,
            breaker=BreakerConfig(
                failure_threshold=5, success_threshold=2, half_open_permits=2, open_duration=60.0
            ),
            budget=None,
        ),
        sources=_frozen(
            {
                "retry": "RetryPresets.STANDARD (5 attempts, 1 s to 30 s), as in the composition example",
                "breaker": "getBreaker('stripe', {failureThreshold: 5, successThreshold: 2, timeout: 60000})",
                "breaker.half_open_permits": "2, the least that lets successThreshold 2 close the breaker",
                "breaker.monitoringPeriod": (
                    "120000 has no counterpart in a consecutive-failure rule and is not used"
                ),
                "timeouts.attempt": "not in the seed: Stripe's SDK default of 80 s (upstreams.md §3.5)",
                "timeouts.total": "not in the seed",
            }
        ),
    )


# QuantForge retries on its TIMEOUT, NETWORK and SERVER_ERROR categories, not on RATE_LIMIT.
_QUANTFORGE_RETRYABLE = frozenset(
    {ErrorClass.TIMEOUT, ErrorClass.CONNECT, ErrorClass.RESET, ErrorClass.PROTOCOL, ErrorClass.SERVER_ERROR}
)


def _quantforge(
    kind: str,
    *,
    connect: float,
    read: float,
    write: float,
    overall: float,
    retries: int,
    multiplier: float,
    jitter: bool,
    failures: int,
    successes: int,
) -> Profile:
    backoff = (
        Backoff(
            initial=0.5, max_delay=10.0, multiplier=multiplier, jitter=Jitter.FULL if jitter else Jitter.NONE
        )
        if multiplier > 1
        else Backoff(initial=0.5, max_delay=10.0, kind=BackoffKind.CONSTANT, jitter=Jitter.NONE)
    )
    slug = kind.replace("_", "-")
    return Profile(
        name=f"quantforge-{slug}",
        seed="003 (QuantForge AI: Integration Hardening & Resilience System)",
        summary=f"QuantForge's {kind} integration settings",
        default=ClientConfig(
            timeouts=TimeoutConfig(
                attempt=max(connect, read, write), connect=connect, read=read, write=write, total=overall
            ),
            retry=RetryPolicy(max_attempts=retries + 1, backoff=backoff, retry_on=_QUANTFORGE_RETRYABLE),
            breaker=BreakerConfig(
                failure_threshold=failures,
                success_threshold=successes,
                half_open_permits=max(3, successes),
                open_duration=60.0,
            ),
            budget=None,
        ),
        sources=_frozen(
            {
                "timeouts": (
                    f"{kind}: {connect:g} s connect, {read:g} s read, {write:g} s write,"
                    f" {overall:g} s overall; the attempt bound is the longest phase"
                ),
                "retry": (
                    f"{retries} retries (maxRetries, so {retries + 1} attempts), x{multiplier:g}"
                    f"{', jitter' if jitter else ', no jitter'};"
                    " retryableErrors TIMEOUT, NETWORK, SERVER_ERROR"
                ),
                "retry.delays": (
                    "initialDelay 500 ms and maxDelay 10 s from the seed's DATABASE example (the only full"
                    " config); 'jitter: true' read as full jitter"
                ),
                "breaker": f"{failures} failures to open, {successes} successes to close",
                "breaker.open_duration": "resetTimeout 60000 from the seed's DATABASE example",
                "breaker.half_open_permits": (
                    "halfOpenMaxCalls 3 from the DATABASE example, raised to successThreshold where that is"
                    " larger: with 3 probes a breaker needing 5 or 10 successes could never close"
                    if successes > 3
                    else "halfOpenMaxCalls 3 from the DATABASE example"
                ),
            }
        ),
    )


def _milokhelo() -> Profile:
    return Profile(
        name="milokhelo",
        seed="004 (Milokhelo: Infrastructure Upgrade)",
        summary="Milokhelo's event-bus retries: 3 retries after 1 s, 2 s, 4 s, then the dead-letter queue",
        default=ClientConfig(
            timeouts=TimeoutConfig(attempt=5.0, total=None),
            retry=RetryPolicy(
                max_attempts=4,
                backoff=Backoff(initial=1.0, multiplier=2.0, max_delay=4.0, jitter=Jitter.NONE),
            ),
            breaker=None,
            budget=None,
        ),
        sources=_frozen(
            {
                "retry": "'Automatic 3 retries with exponential backoff (1s, 2s, 4s)'",
                "breaker": "none in the seed",
                "timeouts.attempt": "not in the seed: httpx's default of 5 s",
            }
        ),
    )


def _registry() -> Mapping[str, Profile]:
    profiles = [
        _reference(),
        _mifos(),
        _haven(),
        _stripe_integration(),
        _quantforge(
            "database",
            connect=5,
            read=10,
            write=15,
            overall=30,
            retries=3,
            multiplier=2.0,
            jitter=True,
            failures=5,
            successes=2,
        ),
        _quantforge(
            "ai_service",
            connect=5,
            read=30,
            write=10,
            overall=60,
            retries=3,
            multiplier=1.5,
            jitter=True,
            failures=3,
            successes=2,
        ),
        _quantforge(
            "market_data",
            connect=2,
            read=5,
            write=2,
            overall=10,
            retries=2,
            multiplier=1.5,
            jitter=True,
            failures=10,
            successes=5,
        ),
        _quantforge(
            "cache",
            connect=1,
            read=2,
            write=2,
            overall=5,
            retries=1,
            multiplier=1.0,
            jitter=False,
            failures=20,
            successes=10,
        ),
        _milokhelo(),
    ]
    return MappingProxyType({profile.name: profile for profile in profiles})


PROFILES: Mapping[str, Profile] = _registry()


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"no client profile named {name!r}; choose one of {', '.join(PROFILES)}") from None
