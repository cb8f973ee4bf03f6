"""Retry policy as a pure decision: given what happened, how long to wait before the next attempt.

The policy never sleeps and never reads a clock; the caller passes the elapsed time and a seeded
``random.Random`` and does the sleeping itself. That keeps delays exactly reproducible and lets the
policy refuse a sleep that would end past the deadline (the overshoot tenacity needed
``stop_before_delay`` for). :class:`RetryRun` is the per-operation state (attempt count, previous
delay, deadline, budget) that the client and :class:`~harness.resilience.Retrier` share.

Delays are computed without overflow at any attempt number: the exponential ceiling is compared in
log space, so attempt 1025 (Polly #2163, stamina 26.1.0) or 10**9 simply returns the cap.

:class:`RetryPresets` are the four presets of the Stripe integration service (seed 002).
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from harness.resilience._clock import Clock
from harness.resilience._errors import ConfigError, ErrorClass
from harness.resilience._signals import RetrySignals

if TYPE_CHECKING:
    from harness.resilience._budget import RetryBudget

__all__ = [
    "Backoff",
    "BackoffKind",
    "Jitter",
    "RetryDecision",
    "RetryPolicy",
    "RetryPresets",
    "RetryRun",
    "StopReason",
]


class Jitter(enum.StrEnum):
    """How randomness spreads the delays of many clients retrying at once."""

    NONE = "none"
    FULL = "full"
    """uniform(0, d): the AWS "full jitter"; best at breaking up herds."""
    EQUAL = "equal"
    """d/2 + uniform(0, d/2): never shorter than half the computed delay."""
    DECORRELATED = "decorrelated"
    """min(cap, uniform(initial, 3 * previous)): grows from the previous delay, not the attempt."""


class BackoffKind(enum.StrEnum):
    """How the un-jittered delay grows with the retry number ``n`` (0 for the first retry)."""

    CONSTANT = "constant"
    """``initial`` every time."""
    LINEAR = "linear"
    """``initial * (n + 1)``, as Polly's linear backoff."""
    EXPONENTIAL = "exponential"
    """``initial * multiplier ** n``."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Backoff:
    """A delay that grows with the retry number, capped at ``max_delay``, then jittered.

    ``retry`` counts from 0 for the first retry. ``multiplier`` only applies to
    :attr:`BackoffKind.EXPONENTIAL`, where ``multiplier=1`` also gives a constant delay.
    """

    initial: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 5.0
    jitter: Jitter = Jitter.FULL
    kind: BackoffKind = BackoffKind.EXPONENTIAL

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial) and self.initial >= 0):
            raise ConfigError(f"Backoff.initial must be a finite number >= 0 seconds, got {self.initial!r}")
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1):
            raise ConfigError(
                f"Backoff.multiplier must be >= 1 (1 means constant delays), got {self.multiplier!r}"
            )
        if not (math.isfinite(self.max_delay) and self.max_delay >= self.initial):
            raise ConfigError(
                f"Backoff.max_delay ({self.max_delay!r}) must be finite and >= initial ({self.initial!r});"
                " raise max_delay or lower initial"
            )
        if self.jitter is Jitter.DECORRELATED and self.initial == 0:
            raise ConfigError(
                "Backoff.initial must be > 0 with decorrelated jitter, which grows from it"
                " (uniform(initial, 3 * previous)); set initial > 0 or pick another jitter"
            )

    def ceiling(self, retry: int) -> float:
        """The un-jittered delay before retry number ``retry`` (0-based), capped."""
        if retry < 0:
            raise ValueError(f"retry numbers start at 0, got {retry!r}")
        if self.initial == 0:
            return 0.0
        match self.kind:
            case BackoffKind.CONSTANT:
                return self.initial
            case BackoffKind.LINEAR:
                return min(self.max_delay, self.initial * (retry + 1))
            case BackoffKind.EXPONENTIAL:
                # Compare in log space so that retry 10_000 neither overflows nor loses the cap.
                if self.multiplier > 1 and retry * math.log(self.multiplier) > math.log(
                    self.max_delay / self.initial
                ):
                    return self.max_delay
                return min(self.max_delay, self.initial * self.multiplier**retry)

    def delay(self, retry: int, rng: random.Random, previous: float | None = None) -> float:
        """The jittered delay before retry number ``retry``; ``previous`` feeds decorrelated jitter."""
        ceiling = self.ceiling(retry)
        match self.jitter:
            case Jitter.NONE:
                return ceiling
            case Jitter.FULL:
                return rng.uniform(0.0, ceiling)
            case Jitter.EQUAL:
                return ceiling / 2 + rng.uniform(0.0, ceiling / 2)
            case Jitter.DECORRELATED:
                base = self.initial if previous is None else previous
                return min(self.max_delay, rng.uniform(self.initial, max(self.initial, 3 * base)))

    def total_ceiling(self, retries: int) -> float:
        """The sum of the un-jittered delays of the first ``retries`` retries (closed form, any size)."""
        if retries <= 0 or self.initial == 0:
            return 0.0
        cap, initial = self.max_delay, self.initial
        if self.kind is BackoffKind.CONSTANT or (
            self.kind is BackoffKind.EXPONENTIAL and self.multiplier == 1
        ):
            return initial * retries
        if self.kind is BackoffKind.LINEAR:
            below = min(retries, max(math.ceil(cap / initial) - 1, 0))  # retries before the cap
            return initial * below * (below + 1) / 2 + cap * (retries - below)
        m = self.multiplier
        below = min(retries, max(math.ceil(math.log(cap / initial) / math.log(m)), 0))
        try:
            return initial * (m**below - 1) / (m - 1) + cap * (retries - below)
        except OverflowError:  # only for caps hundreds of orders of magnitude above initial
            return math.inf


class StopReason(enum.StrEnum):
    """Why a retry loop stopped instead of trying again."""

    NOT_RETRYABLE = "not_retryable"
    SERVER_SAID_NO = "server_said_no"
    """``Stripe-Should-Retry: false``."""
    MAX_ATTEMPTS = "max_attempts"
    RETRY_AFTER_TOO_LONG = "retry_after_too_long"
    """The upstream asked for a longer wait than ``max_retry_after``."""
    DEADLINE = "deadline"
    """The next sleep would end at or past the deadline."""
    BUDGET = "budget"
    """The retry budget is spent: too many retries for the traffic (a retry storm)."""
    REJECTED = "rejected"
    """Refused on the client side before sending: breaker open, bulkhead full, rate limit, deadline."""


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Retry after ``delay`` seconds, or stop for ``reason``."""

    delay: float | None
    reason: StopReason | None = None

    @property
    def retry(self) -> bool:
        return self.delay is not None


def _default_retry_on(error: ErrorClass) -> bool:
    return error.retryable


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """When to try again, and after how long.

    ``max_attempts`` counts the first call (3 means one call and two retries). ``max_elapsed`` bounds
    the whole operation: no sleep is begun that would end at or past it (an attempt needs time too).
    ``Retry-After`` from the upstream raises the delay, never lowers it, and a ``Retry-After`` beyond
    ``max_retry_after`` ends the retries. ``Stripe-Should-Retry`` overrides the error class when
    ``honour_should_retry`` is on, as in Stripe's SDKs.
    """

    max_attempts: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    max_elapsed: float | None = None
    retry_on: frozenset[ErrorClass] | None = None
    max_retry_after: float = 60.0
    honour_should_retry: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(
                f"RetryPolicy.max_attempts counts the first call and must be >= 1, got {self.max_attempts!r}"
            )
        if self.max_elapsed is not None and not (math.isfinite(self.max_elapsed) and self.max_elapsed > 0):
            raise ConfigError(
                "RetryPolicy.max_elapsed must be a finite number > 0 seconds or None,"
                f" got {self.max_elapsed!r}"
            )
        if not self.max_retry_after >= 0:
            raise ConfigError(f"RetryPolicy.max_retry_after must be >= 0, got {self.max_retry_after!r}")
        if self.max_elapsed is not None:
            check_delays_fit(self, self.max_elapsed, "RetryPolicy.max_elapsed")

    @property
    def retries(self) -> int:
        return self.max_attempts - 1

    def should_retry(self, error: ErrorClass) -> bool:
        if self.retry_on is None:
            return _default_retry_on(error)
        return error in self.retry_on

    def decide(
        self,
        *,
        attempt: int,
        retryable: bool,
        elapsed: float,
        rng: random.Random,
        signals: RetrySignals | None = None,
        previous_delay: float | None = None,
        remaining: float | None = None,
    ) -> RetryDecision:
        """Retry after how long, or why not, once attempt number ``attempt`` (1-based) failed.

        ``remaining`` is an outer deadline's time left (e.g. the client's overall timeout), checked
        like ``max_elapsed``. ``retryable`` is the caller's verdict on the failure; the upstream's
        ``Stripe-Should-Retry`` overrides it.
        """
        if signals is not None and self.honour_should_retry and signals.should_retry is not None:
            if not signals.should_retry:
                return RetryDecision(None, StopReason.SERVER_SAID_NO)
            retryable = True
        if not retryable:
            return RetryDecision(None, StopReason.NOT_RETRYABLE)
        if attempt >= self.max_attempts:
            return RetryDecision(None, StopReason.MAX_ATTEMPTS)
        delay = self.backoff.delay(attempt - 1, rng, previous_delay)
        retry_after = None if signals is None else signals.retry_after
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return RetryDecision(None, StopReason.RETRY_AFTER_TOO_LONG)
            delay = max(delay, retry_after)
        if self.max_elapsed is not None and elapsed + delay >= self.max_elapsed:
            return RetryDecision(None, StopReason.DEADLINE)
        if remaining is not None and delay >= remaining:
            return RetryDecision(None, StopReason.DEADLINE)
        return RetryDecision(delay)

    def next_delay(
        self,
        *,
        attempt: int,
        error: ErrorClass,
        elapsed: float,
        rng: random.Random,
        retry_after: float | None = None,
        previous_delay: float | None = None,
    ) -> float | None:
        """The wait before attempt ``attempt + 1``, or ``None`` to stop retrying.

        ``attempt`` is the number of the attempt that just failed (1 for the first call).
        """
        signals = None if retry_after is None else RetrySignals(retry_after=retry_after)
        return self.decide(
            attempt=attempt,
            retryable=self.should_retry(error),
            elapsed=elapsed,
            rng=rng,
            signals=signals,
            previous_delay=previous_delay,
        ).delay


def check_delays_fit(policy: RetryPolicy, limit: float, name: str) -> None:
    """Refuse a policy whose un-jittered retry delays alone use up ``limit`` (Microsoft's rule).

    Such a policy's last retries could never run; the message says how many attempts do fit.
    """
    total = policy.backoff.total_ceiling(policy.retries)
    if total < limit:
        return
    fitting, too_many = 0, policy.retries  # total_ceiling(fitting) < limit <= total_ceiling(too_many)
    while too_many - fitting > 1:
        middle = (fitting + too_many) // 2
        if policy.backoff.total_ceiling(middle) < limit:
            fitting = middle
        else:
            too_many = middle
    raise ConfigError(
        f"the {policy.retries} retries of this policy wait {total:g} s in total before jitter, which"
        f" does not fit in {name} ({limit:g} s), so the last retries could never run; lower"
        f" max_attempts to {fitting + 1} (or lower backoff.initial/max_delay), or raise {name}"
    )


class RetryRun:
    """The retry state of one logical operation; not shared between threads.

    Built after the first attempt failed: ``attempt`` is the number of attempts made so far.
    ``deadline`` is an absolute time on ``clock``; with the policy's ``max_elapsed`` the earlier one
    wins. A retry that passes every other check is then paid for from ``budget``.
    """

    __slots__ = ("attempt", "budget", "clock", "deadline", "policy", "previous_delay", "rng", "started")

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        clock: Clock,
        rng: random.Random,
        started: float,
        budget: RetryBudget | None = None,
        deadline: float | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.rng = rng
        self.budget = budget
        self.started = started
        self.deadline = deadline
        self.attempt = 1
        self.previous_delay: float | None = None

    def after_failure(self, *, retryable: bool, signals: RetrySignals | None = None) -> RetryDecision:
        """Decide on a retry after attempt ``self.attempt`` failed; counts the retry if taken."""
        now = self.clock.now()
        decision = self.policy.decide(
            attempt=self.attempt,
            retryable=retryable,
            elapsed=now - self.started,
            rng=self.rng,
            signals=signals,
            previous_delay=self.previous_delay,
            remaining=None if self.deadline is None else self.deadline - now,
        )
        if decision.delay is None:
            return decision
        if self.budget is not None and not self.budget.try_withdraw():
            return RetryDecision(None, StopReason.BUDGET)
        self.previous_delay = decision.delay
        self.attempt += 1
        return decision


# The statuses seed 002 lists as retryable (408, 429, 500, 502, 503, 504) plus network errors, in the
# taxonomy: 408 is TIMEOUT, 429 THROTTLED, 5xx SERVER_ERROR. 409/425 (CONFLICT) are not in its list.
_SEED_002_RETRYABLE: Final = frozenset(
    {ErrorClass.TIMEOUT, ErrorClass.CONNECT, ErrorClass.RESET, ErrorClass.SERVER_ERROR, ErrorClass.THROTTLED}
)


def _preset(attempts: int, initial: float, cap: float, max_retry_after: float = 60.0) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=attempts,
        backoff=Backoff(initial=initial, multiplier=2.0, max_delay=cap, jitter=Jitter.FULL),
        retry_on=_SEED_002_RETRYABLE,
        max_retry_after=max_retry_after,
    )


class RetryPresets:
    """The retry presets of the Stripe integration service (seed 002, "4.2 Retry Utility").

    The seed gives attempts and the delay range ("QUICK: 3 attempts, 500ms-5s delays"); the range is
    read as initial delay and cap. It says "exponential backoff" and "jitter to prevent thundering
    herd" without numbers, so the multiplier is 2 (Polly, Failsafe, stamina and Stripe's own SDKs) and
    the jitter is full jitter (the AWS recommendation). Attempts count the first call. QUICK happens
    to equal stripe-python's own backoff (0.5 s x 2, capped at 5 s, upstreams.md §3.5).
    ``max_retry_after`` is 60 s (stripe-python's limit) except for RATE_LIMITED, whose cap of 120 s is
    the longest wait it was designed for.
    """

    QUICK: Final = _preset(3, 0.5, 5.0)
    STANDARD: Final = _preset(5, 1.0, 30.0)
    AGGRESSIVE: Final = _preset(10, 2.0, 60.0)
    RATE_LIMITED: Final = _preset(5, 5.0, 120.0, max_retry_after=120.0)

    @classmethod
    def all(cls) -> dict[str, RetryPolicy]:
        return {
            "QUICK": cls.QUICK,
            "STANDARD": cls.STANDARD,
            "AGGRESSIVE": cls.AGGRESSIVE,
            "RATE_LIMITED": cls.RATE_LIMITED,
        }
