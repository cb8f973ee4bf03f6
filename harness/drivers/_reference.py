"""The reference client: what a careful Stripe integration looks like, and the default driver.

Per attempt: breaker permit → HTTP call with a per-attempt timeout → classification → breaker
settlement → event. Between attempts: the retry policy's delay, raised by ``Retry-After``. One
idempotency key per logical operation, derived from the operation id, so that a restarted client
re-derives the same key and every retry of one charge is the same charge to Stripe.

The outcome it reports is only as strong as what it knows: after an ambiguous failure (a timeout, a
reset, a 5xx) without an idempotency key it says UNKNOWN, never FAILED.
"""

from __future__ import annotations

import email.utils
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from harness._driver import AttemptEvent, DriverSetup, Operation, Outcome, OutcomeKind
from harness.resilience import (
    Backoff,
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    ErrorClass,
    Jitter,
    RetryPolicy,
    classify_exception,
    classify_status,
)

__all__ = ["ReferenceConfig", "ReferenceDriver"]

_KEY_NAMESPACE = uuid.UUID("6f1c7a52-8d0e-4b8e-9a57-2a1f3d4c5b6e")
SUPPORTED = frozenset({("stripe", "charge")})


@dataclass(frozen=True, kw_only=True, slots=True)
class ReferenceConfig:
    """Settings of the reference client. The defaults suit loopback runs of a few seconds."""

    idempotency_keys: bool = True
    attempt_timeout: float = 2.0
    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(
            max_attempts=4,
            backoff=Backoff(initial=0.05, multiplier=2.0, max_delay=1.0, jitter=Jitter.FULL),
        )
    )
    breaker: BreakerConfig = field(
        default_factory=lambda: BreakerConfig(failure_threshold=5, open_duration=1.0)
    )

    def __post_init__(self) -> None:
        if not self.attempt_timeout > 0:
            raise ValueError(
                f"ReferenceConfig.attempt_timeout must be > 0 seconds, got {self.attempt_timeout!r}"
            )


def idempotency_key(operation: Operation) -> str:
    """The same key for every attempt at one logical operation, across client restarts."""
    name = f"{operation.upstream}:{operation.action}:{operation.operation_id}"
    return str(uuid.uuid5(_KEY_NAMESPACE, name))


def retry_after_seconds(headers: Mapping[str, str], now_wall: float | None = None) -> float | None:
    """``Retry-After`` as seconds, from either of its forms (delta-seconds or an HTTP date)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now_wall is None else now_wall
    return max(when.timestamp() - now, 0.0)


class ReferenceDriver:
    def __init__(self, setup: DriverSetup, config: ReferenceConfig | None = None) -> None:
        self.config = config or ReferenceConfig()
        self._clock = setup.clock
        self._rng = setup.rng
        self._events = setup.events
        self._endpoints = dict(setup.endpoints)
        self._breakers = {
            name: CircuitBreaker(
                name,
                self.config.breaker,
                clock=self._clock,
                listeners=(self._events.breaker_transition,),
            )
            for name in self._endpoints
        }
        self._http: dict[str, httpx.Client] = {}
        for name, endpoint in self._endpoints.items():
            headers = {}
            if name == "stripe":
                headers["Authorization"] = f"Bearer {endpoint.credentials['secret_key']}"
            self._http[name] = httpx.Client(
                base_url=endpoint.base_url, headers=headers, timeout=self.config.attempt_timeout
            )

    def breaker(self, upstream: str) -> CircuitBreaker:
        return self._breakers[upstream]

    def close(self) -> None:
        for client in self._http.values():
            client.close()

    def perform(self, operation: Operation) -> Outcome:
        if (operation.upstream, operation.action) not in SUPPORTED:
            raise ValueError(
                f"the reference driver cannot {operation.action!r} on {operation.upstream!r};"
                f" it supports {sorted(SUPPORTED)}"
            )
        if operation.upstream not in self._http:
            raise ValueError(f"no endpoint for {operation.upstream!r}; the stack was started without it")
        return self._stripe_charge(operation)

    def _stripe_charge(self, operation: Operation) -> Outcome:
        data = {
            "amount": str(operation.amount),
            "currency": operation.currency,
            "payment_method": operation.params.get("payment_method", "pm_card_visa"),
            "confirm": "true",
            "metadata[operation_id]": operation.operation_id,
        }
        key = idempotency_key(operation) if self.config.idempotency_keys else None
        correlation = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        headers = {"X-Correlation-ID": correlation}
        if key is not None:
            headers["Idempotency-Key"] = key
        request = self._http["stripe"].build_request(
            "POST", "/v1/payment_intents", data=data, headers=headers
        )
        return self._execute(operation, request, key, correlation)

    def _execute(
        self, operation: Operation, request: httpx.Request, key: str | None, correlation: str
    ) -> Outcome:
        client = self._http[operation.upstream]
        breaker = self._breakers[operation.upstream]
        policy = self.config.retry
        started = self._clock.now()
        ambiguous = False
        previous_delay: float | None = None
        attempt = 0
        while True:
            attempt += 1
            t0 = self._clock.now()
            try:
                permit = breaker.acquire()
            except CircuitOpenError as exc:
                self._emit(
                    operation,
                    attempt=attempt,
                    started_at=t0,
                    outcome="rejected",
                    error=ErrorClass.REJECTED,
                    status=None,
                    correlation=correlation,
                    key=key,
                    breaker_state=exc.state,
                )
                return self._give_up(ErrorClass.REJECTED, ambiguous, answered=False, detail=str(exc))
            response: httpx.Response | None = None
            try:
                response = client.send(request)
                error = self._classify(response)
            except httpx.HTTPError as exc:
                error = classify_exception(exc)
            if error is None:
                permit.success()
            elif error.is_upstream_failure:
                permit.failure()
            else:
                permit.ignore()
            status = None if response is None else response.status_code
            self._emit(
                operation,
                attempt=attempt,
                started_at=t0,
                outcome="ok" if error is None else "error",
                error=error,
                status=status,
                correlation=correlation,
                key=key,
                breaker_state=permit.state,
            )
            if error is None:
                assert response is not None
                return Outcome.succeeded(str(response.json().get("id", "")))
            ambiguous = ambiguous or error.ambiguous
            retry_after = None if response is None else retry_after_seconds(response.headers)
            delay = policy.next_delay(
                attempt=attempt,
                error=error,
                elapsed=self._clock.now() - started,
                rng=self._rng,
                retry_after=retry_after,
                previous_delay=previous_delay,
            )
            if response is not None and response.headers.get("stripe-should-retry") == "false":
                delay = None
            if delay is None:
                return self._give_up(
                    error,
                    ambiguous,
                    answered=key is not None and response is not None,
                    detail="" if response is None else response.text[:200],
                )
            self._clock.sleep(delay)
            previous_delay = delay

    @staticmethod
    def _classify(response: httpx.Response) -> ErrorClass | None:
        error = classify_status(response.status_code)
        if error is ErrorClass.VALIDATION and response.status_code == 400:
            try:
                body = response.json()
            except ValueError:
                return ErrorClass.PROTOCOL
            if not isinstance(body, dict) or "error" not in body:
                return ErrorClass.PROTOCOL
        return error

    @staticmethod
    def _give_up(error: ErrorClass, ambiguous: bool, *, answered: bool, detail: str) -> Outcome:
        """FAILED only when nothing can have been applied.

        ``answered`` means the last attempt got a definite answer from the upstream for this
        idempotency key, which settles the one execution the key stands for; a refusal on the
        client's side (breaker open) settles nothing if an earlier attempt may have been applied.
        """
        definite = not error.ambiguous and (answered or not ambiguous)
        kind = OutcomeKind.FAILED if definite else OutcomeKind.UNKNOWN
        return Outcome(kind=kind, error=error, detail=detail)

    def _emit(
        self,
        operation: Operation,
        *,
        attempt: int,
        started_at: float,
        outcome: str,
        error: ErrorClass | None,
        status: int | None,
        correlation: str,
        key: str | None,
        breaker_state: str,
    ) -> None:
        self._events.attempt(
            AttemptEvent(
                operation_id=operation.operation_id,
                upstream=operation.upstream,
                action=operation.action,
                attempt=attempt,
                started_at=started_at,
                latency=self._clock.now() - started_at,
                outcome=outcome,
                error=error,
                status_code=status,
                correlation_id=correlation,
                idempotency_key=key,
                breaker_state=str(breaker_state),
            )
        )
