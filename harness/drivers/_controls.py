"""Deliberately broken clients: each has the bug one scenario exists to catch.

A scenario that no client can fail proves nothing. These controls are run by the scenario suite to
show that each check turns red on the defect it names. They are small and self-contained (httpx plus
the library's breaker), so that changes to the reference client cannot accidentally fix them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx

from harness._driver import AttemptEvent, DriverSetup, Operation, Outcome, OutcomeKind
from harness.resilience import (
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    ErrorClass,
    classify_exception,
    classify_status,
    retry_after_seconds,
)

__all__ = [
    "ControlDriver",
    "ControlFlaws",
    "ignores_retry_after",
    "leaky_breaker",
    "parks_and_forgets",
    "retries_declines",
    "sticky_breaker",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class ControlFlaws:
    leaky_breaker: bool = False
    """Publishes breaker transitions but calls the upstream even while open."""
    open_duration: float = 1.0
    """How long the breaker stays open; a long one never recovers within a scenario."""
    retry_declines: bool = False
    """Treats a card decline like a transient error and retries it."""
    parks_and_forgets: bool = False
    """Dead-letters operations it cannot finish, and never replays them."""
    ignore_retry_after: bool = False
    """Retries after its own short delay, however long ``Retry-After`` asked it to wait."""


class ControlDriver:
    """A plain Stripe client, then one flaw.

    Idempotency key per operation, 4 attempts 20 ms apart (or as long as ``Retry-After`` asks), a
    breaker, and a settle phase that repeats what it could not finish under the same key.
    """

    MAX_ATTEMPTS = 4
    DELAY = 0.02

    def __init__(self, setup: DriverSetup, flaws: ControlFlaws) -> None:
        self.flaws = flaws
        self._clock = setup.clock
        self._rng = setup.rng
        self._events = setup.events
        stripe = setup.endpoints["stripe"]
        self._http = httpx.Client(
            base_url=stripe.base_url,
            headers={"Authorization": f"Bearer {stripe.credentials['secret_key']}"},
            timeout=2.0,
            trust_env=False,
        )
        self._unsettled: dict[str, Operation] = {}
        self._breaker = CircuitBreaker(
            "stripe",
            BreakerConfig(failure_threshold=5, open_duration=flaws.open_duration),
            clock=self._clock,
            listeners=(self._events.breaker_transition,),
        )

    def close(self) -> None:
        self._http.close()

    def perform(self, operation: Operation) -> Outcome:
        outcome = self._charge(operation)
        if outcome.kind is OutcomeKind.UNKNOWN:
            if self.flaws.parks_and_forgets:
                return Outcome.parked(f"dl-{operation.operation_id}", outcome.error or ErrorClass.PROTOCOL)
            self._unsettled[operation.operation_id] = operation
        return outcome

    def settle(self) -> dict[str, Outcome]:
        """Repeat every operation it could not finish, under the same idempotency key."""
        return {op_id: self._charge(op) for op_id, op in self._unsettled.items()}

    def _charge(self, operation: Operation) -> Outcome:
        correlation = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        key = f"control-{operation.operation_id}"
        data = {
            "amount": str(operation.amount),
            "currency": operation.currency,
            "payment_method": operation.params.get("payment_method", "pm_card_visa"),
            "confirm": "true",
            "metadata[operation_id]": operation.operation_id,
        }
        error: ErrorClass = ErrorClass.REJECTED
        for attempt in range(1, self.MAX_ATTEMPTS + 1):
            started = self._clock.now()
            try:
                permit = self._breaker.acquire()
            except CircuitOpenError:
                if not self.flaws.leaky_breaker:
                    self._emit(
                        operation,
                        attempt=attempt,
                        started=started,
                        outcome="rejected",
                        error=ErrorClass.REJECTED,
                        status=None,
                        correlation=correlation,
                    )
                    return Outcome(kind=OutcomeKind.UNKNOWN, error=ErrorClass.REJECTED)
                permit = None
            status = None
            retry_after = None
            try:
                response = self._http.post(
                    "/v1/payment_intents",
                    data=data,
                    headers={"Idempotency-Key": key, "X-Correlation-ID": correlation},
                )
                status = response.status_code
                failure = classify_status(status)
                retry_after = retry_after_seconds(response.headers)
            except httpx.HTTPError as exc:
                failure = classify_exception(exc)
            if permit is not None:
                if failure is None:
                    permit.success()
                elif failure.is_upstream_failure:
                    permit.failure()
                else:
                    permit.ignore()
            self._emit(
                operation,
                attempt=attempt,
                started=started,
                outcome="ok" if failure is None else "error",
                error=failure,
                status=status,
                correlation=correlation,
            )
            if failure is None:
                return Outcome.succeeded(str(response.json()["id"]))
            error = failure
            retry = failure.retryable or (self.flaws.retry_declines and failure is ErrorClass.DECLINE)
            if not retry:
                break
            self._clock.sleep(max(self.DELAY, 0.0 if self.flaws.ignore_retry_after else retry_after or 0.0))
        if error in (ErrorClass.DECLINE, ErrorClass.VALIDATION):
            return Outcome.failed(error)
        return Outcome.unknown(error)

    def _emit(
        self,
        operation: Operation,
        *,
        attempt: int,
        started: float,
        outcome: str,
        error: ErrorClass | None,
        status: int | None,
        correlation: str,
    ) -> None:
        self._events.attempt(
            AttemptEvent(
                operation_id=operation.operation_id,
                upstream=operation.upstream,
                action=operation.action,
                attempt=attempt,
                started_at=started,
                latency=self._clock.now() - started,
                outcome=outcome,
                error=error,
                status_code=status,
                correlation_id=correlation,
                idempotency_key=f"control-{operation.operation_id}",
                breaker_state=str(self._breaker.state),
            )
        )


def leaky_breaker(setup: DriverSetup) -> ControlDriver:
    """Its breaker opens on paper, but calls go through anyway."""
    return ControlDriver(setup, ControlFlaws(leaky_breaker=True))


def sticky_breaker(setup: DriverSetup) -> ControlDriver:
    """Its breaker stays open for a minute: correct, but it never recovers within a scenario."""
    return ControlDriver(setup, ControlFlaws(open_duration=60.0))


def parks_and_forgets(setup: DriverSetup) -> ControlDriver:
    """Says it parked what it could not finish, and never replays it."""
    return ControlDriver(setup, ControlFlaws(parks_and_forgets=True))


def ignores_retry_after(setup: DriverSetup) -> ControlDriver:
    """Retries a throttled call 20 ms later, whatever ``Retry-After`` says."""
    return ControlDriver(setup, ControlFlaws(ignore_retry_after=True))


def retries_declines(setup: DriverSetup) -> ControlDriver:
    """Retries a card decline as if it were a transient error."""
    return ControlDriver(setup, ControlFlaws(retry_declines=True))
