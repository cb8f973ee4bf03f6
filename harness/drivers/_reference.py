"""The reference client: what a careful payment integration looks like, and the default driver.

Each upstream is spoken to by an :class:`~harness.drivers.Integration` (Stripe's in
:mod:`harness.drivers._stripe`), built on :class:`~harness.resilience.ResilientClient` with the
settings of a named profile (:data:`~harness.resilience.PROFILES`; ``reference`` by default, scaled
for loopback). The client does the resilience work (deadline, retries with a budget, breaker,
bulkhead, rate limit, ``Retry-After``, one correlation id per operation) and reports every attempt
and breaker transition to the run's event sink; the integration adds what only a payment
integration knows (the request, the idempotency key, how to report an outcome honestly: see
:func:`~harness.drivers.honest_outcome`).

An operation whose outcome the client cannot know is not left UNKNOWN when the upstream can
deduplicate it: it is parked in a dead-letter queue (SQLite under the run's ``state_dir``) and
reported PARKED, and the settle phase reconciles it once the upstream has recovered (for Stripe, by
repeating it under the *original* key, so a charge that had in fact been applied is replayed, not
repeated). Without idempotency keys a replay could charge twice, so nothing is parked and the
outcome stays UNKNOWN.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from harness._driver import DriverFactory, DriverSetup, Operation, Outcome, OutcomeKind
from harness.drivers._cbs import CbsIntegration
from harness.drivers._integration import Integration, IntegrationSetup
from harness.drivers._mpesa import MpesaIntegration
from harness.drivers._stripe import StripeIntegration
from harness.resilience import (
    DEFAULT_PROFILE,
    CircuitBreaker,
    ClientConfig,
    ClientMetrics,
    ConfigError,
    ErrorClass,
    Profile,
    get_profile,
)
from harness.stores import (
    DeadLetter,
    DeadLetterQueue,
    ErrorInfo,
    MemoryBackend,
    SQLiteBackend,
    StoreBackend,
    WorkItem,
)

__all__ = [
    "INTEGRATIONS",
    "ReferenceConfig",
    "ReferenceDriver",
    "reference",
    "reference_with",
    "reference_without_idempotency",
]

INTEGRATIONS: dict[str, type[Integration]] = {
    "cbs": CbsIntegration,
    "mpesa": MpesaIntegration,
    "stripe": StripeIntegration,
}
"""The upstreams the reference client speaks to, by name."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ReferenceConfig:
    """Settings of the reference driver.

    ``profile`` names the client settings (default ``reference``, which suits loopback runs of a few
    seconds); ``time_scale`` multiplies every duration of the profile (e.g. 0.01 to run a seed's real
    settings on loopback); ``client``, if given, replaces the profile's settings for every upstream.
    """

    idempotency_keys: bool = True
    profile: str = DEFAULT_PROFILE
    time_scale: float = 1.0
    client: ClientConfig | None = None
    settle_timeout: float = 10.0
    """How long the settle phase may wait for open breakers before giving up on a replay."""

    def __post_init__(self) -> None:
        get_profile(self.profile)  # an unknown name fails here, with the list of known ones
        if not (math.isfinite(self.settle_timeout) and self.settle_timeout >= 0):
            raise ConfigError(
                "ReferenceConfig.settle_timeout must be a finite number >= 0 seconds,"
                f" got {self.settle_timeout!r}"
            )
        if not (math.isfinite(self.time_scale) and self.time_scale > 0):
            raise ConfigError(
                f"ReferenceConfig.time_scale must be a finite number > 0, got {self.time_scale!r}"
            )

    def resolved_profile(self) -> Profile:
        profile = get_profile(self.profile)
        return profile if self.time_scale == 1.0 else profile.scaled(self.time_scale)

    def client_config(self, upstream: str) -> ClientConfig:
        config = self.client or self.resolved_profile().config_for(upstream)
        return dataclasses.replace(config, idempotency_keys=self.idempotency_keys)


class ReplayUnsettled(Exception):
    """A dead-letter replay that still could not learn the outcome; the entry stays parked."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(f"still {outcome.kind}: {outcome.error} {outcome.detail}".strip())
        self.outcome = outcome


class ReferenceDriver:
    def __init__(self, setup: DriverSetup, config: ReferenceConfig | None = None) -> None:
        self.config = config or ReferenceConfig()
        self.profile = self.config.resolved_profile()
        self.metrics = ClientMetrics(clock=setup.clock)
        self._clock = setup.clock
        self._store: StoreBackend = (
            SQLiteBackend.in_folder(setup.state_dir) if setup.state_dir is not None else MemoryBackend()
        )
        self.dead_letters = DeadLetterQueue(self._store, clock=setup.clock)
        self._integrations: dict[str, Integration] = {}
        for name, endpoint in setup.endpoints.items():
            integration = INTEGRATIONS.get(name)
            if integration is None:
                continue
            self._integrations[name] = integration(
                IntegrationSetup(
                    endpoint=endpoint,
                    config=self.config.client_config(name),
                    clock=setup.clock,
                    rng=setup.rng,
                    events=setup.events,
                    metrics=self.metrics,
                    idempotency_keys=self.config.idempotency_keys,
                )
            )

    def integration(self, upstream: str) -> Integration:
        return self._integrations[upstream]

    def breaker(self, upstream: str) -> CircuitBreaker:
        breaker = self._integrations[upstream].breaker()
        if breaker is None:
            raise LookupError(f"profile {self.profile.name!r} runs {upstream!r} without a circuit breaker")
        return breaker

    def close(self) -> None:
        for integration in self._integrations.values():
            integration.close()
        self._store.close()

    def perform(self, operation: Operation) -> Outcome:
        integration = self._integrations.get(operation.upstream)
        if integration is None:
            raise ValueError(
                f"the reference driver has no endpoint for {operation.upstream!r}; it speaks to"
                f" {sorted(INTEGRATIONS)} and the stack started {sorted(self._integrations)}"
            )
        if operation.action not in integration.ACTIONS:
            raise ValueError(
                f"the reference driver cannot {operation.action!r} on {operation.upstream!r};"
                f" it can {sorted(integration.ACTIONS)}"
            )
        started = self._clock.now()
        outcome, attempts = integration.perform(operation)
        if integration.can_replay(operation, outcome):
            return self._park(operation, outcome, attempts, started)
        return outcome

    def settle(self) -> dict[str, Outcome]:
        """Replay every parked operation once its upstream will take calls again.

        A replay refused because a breaker is still open is tried again when the breaker's wait is
        over, for at most ``settle_timeout`` seconds: a dead-letter replay belongs after recovery.
        """
        settled: dict[str, Outcome] = {}

        def replay(entry: DeadLetter) -> None:
            operation = _operation_from(entry)
            outcome, _ = self._integrations[operation.upstream].reconcile(operation)
            if outcome.kind is OutcomeKind.UNKNOWN:
                raise ReplayUnsettled(outcome)
            settled[operation.operation_id] = outcome

        deadline = self._clock.now() + self.config.settle_timeout
        while True:
            report = self.dead_letters.requeue_many(replay)
            waits = [w for i in self._integrations.values() if (w := i.retry_after()) is not None]
            if not report.failed or not waits or self._clock.now() + max(waits) > deadline:
                break
            self._clock.sleep(max(waits))
        for entry_id in report.failed:
            entry = self.dead_letters.get(entry_id)
            settled[entry.operation_id] = Outcome(
                kind=OutcomeKind.PARKED,
                dead_letter_id=entry.id,
                error=_error_class(entry.error.error_class),
                detail=f"replay failed: {entry.error.message}",
            )
        return settled

    def _park(self, operation: Operation, outcome: Outcome, attempts: int, started: float) -> Outcome:
        error = outcome.error or ErrorClass.PROTOCOL
        entry = self.dead_letters.park(
            WorkItem(
                operation_id=operation.operation_id,
                operation=operation.action,
                provider=operation.upstream,
                payload={
                    "amount": operation.amount,
                    "currency": operation.currency,
                    "params": dict(operation.params),
                },
            ),
            error=ErrorInfo(error_class=str(error), message=outcome.detail[:500]),
            attempts=attempts,
            first_attempt_at=started,
        )
        return Outcome.parked(entry.id, error, outcome.detail)


def _operation_from(entry: DeadLetter) -> Operation:
    payload = entry.payload
    assert isinstance(payload, dict), "the reference driver parks a JSON object"
    return Operation(
        operation_id=entry.operation_id,
        upstream=entry.provider,
        action=entry.operation,
        amount=int(payload["amount"]),
        currency=str(payload["currency"]),
        params={str(k): str(v) for k, v in dict(payload["params"]).items()},
    )


def _error_class(value: str) -> ErrorClass | None:
    try:
        return ErrorClass(value)
    except ValueError:
        return None


def _option_bool(setup: DriverSetup, name: str, default: bool) -> bool:
    value = setup.options.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ConfigError(f"driver option {name!r} must be true or false, got {value!r}")


def reference(setup: DriverSetup) -> ReferenceDriver:
    """The reference client with the profile and switches named in ``setup.options``."""
    profile = setup.options.get("profile", DEFAULT_PROFILE)
    if not isinstance(profile, str):
        raise ConfigError(f"driver option 'profile' must be a profile name, got {profile!r}")
    scale = setup.options.get("time_scale", 1.0)
    try:
        time_scale = float(scale)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"driver option 'time_scale' must be a number, got {scale!r}") from None
    config = ReferenceConfig(
        idempotency_keys=_option_bool(setup, "idempotency_keys", True), profile=profile, time_scale=time_scale
    )
    return ReferenceDriver(setup, config)


def reference_with(client: ClientConfig, *, idempotency_keys: bool = True) -> DriverFactory:
    """A factory for the reference client with explicit settings, e.g. one point of a sweep."""

    def factory(setup: DriverSetup) -> ReferenceDriver:
        return ReferenceDriver(setup, ReferenceConfig(client=client, idempotency_keys=idempotency_keys))

    return factory


def reference_without_idempotency(setup: DriverSetup) -> ReferenceDriver:
    """The reference client without idempotency keys: double-charges when a response is lost."""
    profile = setup.options.get("profile", DEFAULT_PROFILE)
    if not isinstance(profile, str):
        raise ConfigError(f"driver option 'profile' must be a profile name, got {profile!r}")
    return ReferenceDriver(setup, ReferenceConfig(idempotency_keys=False, profile=profile))
