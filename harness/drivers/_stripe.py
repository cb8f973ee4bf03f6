"""The reference client's Stripe integration: a confirmed PaymentIntent per charge.

The operation id travels as ``metadata[operation_id]``; the idempotency key is derived from it, so
every retry and every replay of one charge is the same charge to Stripe, which replays its stored
answer rather than charging again.
"""

from __future__ import annotations

from typing import ClassVar

import httpx

from harness._driver import Operation, Outcome
from harness.drivers._integration import (
    Integration,
    IntegrationSetup,
    honest_outcome,
    idempotency_key,
    resilient_client,
)
from harness.resilience import CircuitBreaker, ErrorClass, classify_response

__all__ = ["StripeIntegration", "classify_stripe"]


def classify_stripe(response: httpx.Response) -> ErrorClass | None:
    """Stripe's statuses, except that a 400 without Stripe's error body is not Stripe's answer.

    A proxy or a broken connection can produce a 400 that Stripe never sent; calling it VALIDATION
    would let it settle an operation that may have been applied.
    """
    error = classify_response(response)
    if error is ErrorClass.VALIDATION and response.status_code == 400:
        try:
            body = response.json()
        except ValueError:
            return ErrorClass.PROTOCOL
        if not isinstance(body, dict) or "error" not in body:
            return ErrorClass.PROTOCOL
    return error


def _payment_intent_id(body: object) -> str:
    return str(body.get("id", "")) if isinstance(body, dict) else ""


class StripeIntegration(Integration):
    UPSTREAM: ClassVar[str] = "stripe"
    ACTIONS: ClassVar[frozenset[str]] = frozenset({"charge"})

    def __init__(self, setup: IntegrationSetup) -> None:
        super().__init__(setup)
        self.client = resilient_client(
            setup,
            self.UPSTREAM,
            classify=classify_stripe,
            headers={"Authorization": f"Bearer {setup.endpoint.credentials['secret_key']}"},
        )

    def perform(self, operation: Operation, *, replay: bool = False) -> tuple[Outcome, int]:
        data = {
            "amount": str(operation.amount),
            "currency": operation.currency,
            "payment_method": operation.params.get("payment_method", "pm_card_visa"),
            "confirm": "true",
            "metadata[operation_id]": operation.operation_id,
        }
        result = self.client.request(
            "POST",
            "/v1/payment_intents",
            data=data,
            operation=operation.action,
            operation_id=operation.operation_id,
            idempotency_key=idempotency_key(operation) if self.setup.idempotency_keys else None,
        )
        return honest_outcome(result, _payment_intent_id, replay=replay), result.attempts

    def breaker(self) -> CircuitBreaker | None:
        return self.client.breaker

    def close(self) -> None:
        self.client.close()
