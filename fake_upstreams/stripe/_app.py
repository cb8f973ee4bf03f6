"""A fake of Stripe's v1 PaymentIntents API with Stripe's idempotency, limits, errors and webhooks.

What makes it a fake worth certifying against, where stripe-mock is stateless:

* PaymentIntents create/retrieve/list/update/confirm/capture/cancel with the real status flow and the
  documented test cards (:mod:`._intents`, :mod:`._cards`);
* Stripe's ``Idempotency-Key`` rules in full (:mod:`._core`): stored answers replayed with
  ``Idempotent-Replayed: true`` (errors included), 400 ``idempotency_error`` for other parameters,
  409 ``idempotency_key_in_use`` in flight, nothing stored for 401, 429 or validation failures, keys
  of at most 255 characters kept 24 hours;
* the rate limiter (25 requests a second as in test mode, ``429 rate_limit``; switched on with the
  ``rate_limit_enabled`` setting) and per-object
  ``lock_timeout`` 429s with ``Stripe-Should-Retry: true`` (:mod:`._limits`);
* signed webhooks, delivered at least once, unordered, with retries (:mod:`._webhooks`);
* every charge written to the ledger in the same transaction as the idempotency record, with the
  ``metadata[operation_id]`` the client sent, so checkers can count effects per operation.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from fake_upstreams._base import FakeUpstream, build_app
from fake_upstreams._faults import FaultRule
from fake_upstreams._settings import Setting, boolean, choice, delays, number
from fake_upstreams.stripe._core import (
    StripeCore,
    credential_of,
    lock_timeout_error,
    masked,
    rate_limit_error,
)
from fake_upstreams.stripe._errors import StripeError, stripe_error
from fake_upstreams.stripe._intents import PaymentIntents
from fake_upstreams.stripe._openapi import OPENAPI
from fake_upstreams.stripe._webhooks import Webhooks

__all__ = ["SETTINGS", "StripeDialect", "StripeFake", "create_app"]

SETTINGS = {
    # Off by default so that scenarios about other faults are not shaped by 429s they did not ask
    # for; a scenario about limits switches it on (Stripe's test mode enforces 25 requests a second).
    "rate_limit_enabled": Setting(False, boolean, "enforce the request rate limit (real test mode: on)"),
    "rate_limit_per_second": Setting(25.0, number(1, 100_000), "requests a second per API key (test: 25)"),
    "lock_timeout": Setting(2.0, number(0, 60), "seconds a request waits for a busy PaymentIntent"),
    "processing_delay": Setting(
        0.0, number(0, 60), "seconds every write takes inside its idempotency window"
    ),
    "in_flight_error_type": Setting(
        "idempotency_error",
        choice("idempotency_error", "invalid_request_error"),
        "error.type of the 409 idempotency_key_in_use (not pinned down by Stripe's public pages)",
    ),
    "webhook_delay": Setting(0.0, number(0, 3600), "seconds before an event's first delivery"),
    "webhook_jitter": Setting(0.05, number(0, 60), "extra random seconds per delivery (so order varies)"),
    "webhook_retry_delays": Setting(
        [0.5, 1.0, 2.0], delays(), "seconds before each retry of a failed delivery (sandbox: 3 retries)"
    ),
}


class StripeDialect:
    """Injected faults in Stripe's words.

    ``error`` with status 500 is Stripe's own ``api_error`` from inside execution: it carries
    ``Stripe-Should-Retry: false`` and is stored under the request's idempotency key, so a retry with
    the same key replays it (the trap the header warns about). 502/503/504 come from in front of the
    API: not stored, no header, and the SDKs retry them.
    """

    error_statuses = frozenset({500, 502, 503, 504})
    throttle_variants = frozenset({"rate_limit", "lock_timeout"})
    throttle_default = "rate_limit"

    def __init__(self, core: StripeCore) -> None:
        self.core = core

    def _render(self, error: StripeError) -> Response:
        response = stripe_error(error)
        response.headers.setdefault("Request-Id", self.core.id("req_", 14))
        return response

    def fault_response(self, rule: FaultRule, scope: Scope) -> Response:
        request = Request(scope)
        if rule.kind == "throttle":
            if rule.params["variant"] == "lock_timeout":
                return self._render(lock_timeout_error())
            return self._render(rate_limit_error(rule.params["retry_after"]))
        if rule.kind == "token_revocation":
            key = credential_of(request.headers.get("authorization", "")) or self.core.secret_key
            return self._render(
                StripeError(401, "invalid_request_error", f"Expired API Key provided: {masked(key)}")
            )
        status = rule.params["status"]
        if status == 500:
            error = StripeError(
                500, "api_error", "An unknown error occurred.", headers={"Stripe-Should-Retry": "false"}
            )
            self.core.store_injected_failure(request, 500, {"error": error.body}, error.headers)
            return self._render(error)
        return self.error_response(status, scope)

    def error_response(self, status: int, scope: Scope) -> Response:
        messages = {
            500: "An unknown error occurred.",
            502: "Bad gateway: Stripe could not complete the request.",
            503: "Stripe is temporarily unavailable. Please try again later.",
            504: "The request timed out before Stripe could answer.",
        }
        return self._render(
            StripeError(status, "api_error", messages.get(status, "An unknown error occurred."))
        )


class StripeFake(StripeCore):
    """The fake's state and endpoints (``app.state.stripe``)."""

    def __init__(self, fake: FakeUpstream) -> None:
        super().__init__(fake)
        self.webhooks = Webhooks(self)
        self.intents = PaymentIntents(self, self.webhooks)


def create_app(fake: FakeUpstream) -> Starlette:
    fake.declare_settings(SETTINGS)
    stripe = StripeFake(fake)
    fake.dialect = StripeDialect(stripe)
    fake.openapi = OPENAPI

    async def on_stripe_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StripeError)
        response = stripe_error(exc)
        response.headers.setdefault("Request-Id", stripe.id("req_", 14))
        return response

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return stripe_error(
            StripeError(
                404,
                "invalid_request_error",
                f"Unrecognized request URL ({request.method}: {request.url.path}). Please see"
                " https://stripe.com/docs or we can help at https://support.stripe.com/.",
            )
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        return stripe_error(
            StripeError(
                500, "api_error", "An unknown error occurred.", headers={"Stripe-Should-Retry": "false"}
            )
        )

    intents, hooks = stripe.intents, stripe.webhooks
    routes = [
        Route("/v1/payment_intents", intents.create, methods=["POST"]),
        Route("/v1/payment_intents", intents.list, methods=["GET"]),
        Route("/v1/payment_intents/{pi_id}", intents.retrieve, methods=["GET"]),
        Route("/v1/payment_intents/{pi_id}", intents.update, methods=["POST"]),
        Route("/v1/payment_intents/{pi_id}/confirm", intents.confirm, methods=["POST"]),
        Route("/v1/payment_intents/{pi_id}/capture", intents.capture, methods=["POST"]),
        Route("/v1/payment_intents/{pi_id}/cancel", intents.cancel, methods=["POST"]),
        Route("/v1/webhook_endpoints", hooks.create_endpoint, methods=["POST"]),
        Route("/v1/webhook_endpoints", hooks.list_endpoints, methods=["GET"]),
        Route("/v1/webhook_endpoints/{endpoint_id}", hooks.retrieve_endpoint, methods=["GET"]),
        Route("/v1/webhook_endpoints/{endpoint_id}", hooks.delete_endpoint, methods=["DELETE"]),
        Route("/v1/events", hooks.list_events, methods=["GET"]),
        Route("/v1/events/{event_id}", hooks.retrieve_event, methods=["GET"]),
    ]
    handlers: dict[Any, Any] = {
        StripeError: on_stripe_error,
        HTTPException: on_http_error,
        Exception: on_unexpected,
    }
    app = build_app(fake, routes, exception_handlers=handlers)
    app.state.stripe = stripe
    return app
