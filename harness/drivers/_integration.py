"""How the reference client talks to one upstream.

The reference driver is generic: profiles, the dead-letter queue and the settle phase are the same
for every upstream. What differs (which operations exist, how to authenticate, how to read an
error body, how to find out what happened to an operation whose answer was lost) lives in one
:class:`Integration` per upstream, registered in :data:`INTEGRATIONS`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from harness._driver import Endpoint, EventSink, Operation, Outcome, OutcomeKind
from harness.resilience import (
    CallResult,
    CircuitBreaker,
    ClientConfig,
    ClientMetrics,
    Clock,
    ErrorClass,
    ResilientClient,
    classify_response,
)
from harness.resilience._client import Classifier

__all__ = [
    "SETTLING_ERRORS",
    "Integration",
    "IntegrationSetup",
    "honest_outcome",
    "idempotency_key",
    "resilient_client",
]

_KEY_NAMESPACE = uuid.UUID("6f1c7a52-8d0e-4b8e-9a57-2a1f3d4c5b6e")

SETTLING_ERRORS = frozenset({ErrorClass.DECLINE, ErrorClass.VALIDATION, ErrorClass.NOT_FOUND})
"""Errors that, answered for an idempotency key, settle every attempt made with that key."""


def idempotency_key(operation: Operation) -> str:
    """The same key for every attempt at one logical operation, across client restarts."""
    name = f"{operation.upstream}:{operation.action}:{operation.operation_id}"
    return str(uuid.uuid5(_KEY_NAMESPACE, name))


def honest_outcome(
    result: CallResult, reference: Callable[[object], str], *, replay: bool = False
) -> Outcome:
    """The outcome a client may honestly report after ``result``.

    ``replay`` says the operation was attempted before (it was parked after an ambiguous failure),
    so it may already have been applied whatever this call saw.

    SUCCEEDED only on a 2xx (``reference`` reads the upstream's id from the JSON body). FAILED only
    when nothing can have been applied: the last error is not ambiguous, and either no attempt was
    ambiguous or the last attempt got a *settling* answer for the operation's idempotency key (one
    the upstream stores and replays for the key, so it speaks for every earlier attempt). UNKNOWN
    otherwise: answers given in front of the idempotency layer (429, 409 "key in use", 401) and
    refusals on the client's side (breaker open) settle nothing after an ambiguous attempt.
    """
    if result.error is None:
        assert result.response is not None
        try:
            body = result.response.json()
        except ValueError:
            return Outcome.unknown(ErrorClass.PROTOCOL, "a 2xx whose body is not JSON")
        return Outcome.succeeded(reference(body))
    error = result.error
    settled = result.idempotency_key is not None and result.answered and error in SETTLING_ERRORS
    definite = not error.ambiguous and (settled or not (result.ambiguous or replay))
    kind = OutcomeKind.FAILED if definite else OutcomeKind.UNKNOWN
    return Outcome(kind=kind, error=error, detail=result.detail)


@dataclass(frozen=True, kw_only=True)
class IntegrationSetup:
    endpoint: Endpoint
    config: ClientConfig
    clock: Clock
    rng: random.Random
    events: EventSink
    metrics: ClientMetrics
    idempotency_keys: bool


def resilient_client(
    setup: IntegrationSetup,
    upstream: str,
    *,
    classify: Classifier = classify_response,
    config: ClientConfig | None = None,
    **more: Any,
) -> ResilientClient:
    """A resilient client for one upstream of a run, reporting to the run's event sink.

    It never trusts proxy settings from the environment: a run's upstreams are the harness's own
    Toxiproxy listeners on 127.0.0.1, and a user's ``HTTP_PROXY`` must not divert that traffic.
    """
    return ResilientClient(
        upstream=upstream,
        base_url=setup.endpoint.base_url,
        config=config or setup.config,
        clock=setup.clock,
        rng=setup.rng,
        events=setup.events,
        metrics=setup.metrics,
        classify=classify,
        trust_env=False,
        **more,
    )


class Integration:
    """One upstream, as the reference client speaks to it. Subclasses set ``ACTIONS`` and implement
    :meth:`perform`; the defaults suit upstreams with an idempotency mechanism."""

    UPSTREAM: ClassVar[str] = ""
    ACTIONS: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, setup: IntegrationSetup) -> None:
        self.setup = setup

    def perform(self, operation: Operation, *, replay: bool = False) -> tuple[Outcome, int]:
        """Carry out ``operation``; return its honest outcome and the attempts it took.

        ``replay`` is true when the operation was attempted before and may already have been
        applied (see :func:`honest_outcome`).
        """
        raise NotImplementedError

    def can_replay(self, operation: Operation, outcome: Outcome) -> bool:
        """Whether an operation that ended ``outcome`` may be parked and replayed later without
        applying it twice (true when the upstream deduplicates it, e.g. by idempotency key)."""
        return self.setup.idempotency_keys and outcome.kind is OutcomeKind.UNKNOWN

    def reconcile(self, operation: Operation) -> tuple[Outcome, int]:
        """Learn the final outcome of a parked operation; by default, repeat it under the same key."""
        return self.perform(operation, replay=True)

    def breaker(self) -> CircuitBreaker | None:
        """The breaker guarding this upstream's calls, if it has one."""
        return None

    def retry_after(self) -> float | None:
        """Seconds until this integration would send again (its breaker is open), else ``None``."""
        breaker = self.breaker()
        if breaker is None:
            return None
        wait = breaker.snapshot().retry_after
        return wait if wait > 0 else None

    def close(self) -> None:
        return None
