"""A fake of Stripe's v1 PaymentIntents API with Stripe's idempotency rules.

What makes it a fake worth certifying against, where stripe-mock is stateless:

* an ``Idempotency-Key`` is claimed before execution; a retry while the first request runs gets 409
  ``idempotency_key_in_use``; a completed key replays the stored status and body, errors included,
  with ``Idempotent-Replayed: true``; the same key with other parameters gets 400
  ``idempotency_error``; 401s and requests rejected by validation store nothing; keys expire after
  24 hours;
* every charge it applies is written to the ledger in the same transaction as the idempotency record,
  with the ``metadata[operation_id]`` the client sent, so checkers can count effects per operation.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import string
import time
from collections.abc import Callable
from sqlite3 import Connection
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fake_upstreams._base import FakeUpstream, build_app
from fake_upstreams.stripe._errors import StripeError, stripe_error
from fake_upstreams.stripe._forms import FormError, parse_form

__all__ = ["StripeFake", "create_app"]

IDEMPOTENCY_KEY_MAX = 255
IDEMPOTENCY_RETENTION = 24 * 3600.0
_ALPHABET = string.ascii_letters + string.digits

# Test PaymentMethods and what confirming with them does: None succeeds, else (code, decline_code).
TEST_PAYMENT_METHODS: dict[str, tuple[str, str] | None] = {
    "pm_card_visa": None,
    "pm_card_mastercard": None,
    "pm_card_chargeDeclined": ("card_declined", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": ("card_declined", "insufficient_funds"),
    "pm_card_chargeDeclinedProcessingError": ("processing_error", "processing_error"),
}
CURRENCIES = frozenset({"usd", "eur", "gbp", "kes", "cad", "aud", "jpy", "chf", "sek", "nok", "dkk"})
MINIMUM_AMOUNT = {
    "usd": 50,
    "eur": 50,
    "gbp": 30,
    "cad": 50,
    "aud": 50,
    "chf": 50,
    "kes": 100,
    "jpy": 50,
}
MAXIMUM_AMOUNT = 99_999_999
CREATE_PARAMS = frozenset(
    {
        "amount",
        "currency",
        "payment_method",
        "confirm",
        "capture_method",
        "confirmation_method",
        "customer",
        "description",
        "metadata",
        "payment_method_types",
        "automatic_payment_methods",
        "off_session",
        "return_url",
        "receipt_email",
        "statement_descriptor",
    }
)

Executor = Callable[[Connection], tuple[int, dict[str, Any]]]


class StripeFake:
    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self.secret_key = fake.credentials["secret_key"]
        self.processing_delay = 0.0

    # -- plumbing -------------------------------------------------------------------------------

    def _id(self, prefix: str, length: int = 24) -> str:
        return prefix + "".join(self.fake.rng.choice(_ALPHABET) for _ in range(length))

    def _headers(self, request: Request) -> dict[str, str]:
        headers = {"Request-Id": self._id("req_", 14)}
        key = request.headers.get("idempotency-key")
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                credential = base64.b64decode(credential, validate=True).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                credential = ""
        elif scheme.lower() != "bearer":
            credential = ""
        if not credential:
            raise StripeError(
                401,
                "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the"
                " Authorization header, using Bearer auth (e.g. 'Authorization: Bearer"
                " YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details,"
                " or we can help at https://support.stripe.com/.",
            )
        if credential != self.secret_key:
            masked = credential[:8] + "*" * max(len(credential) - 12, 0) + credential[-4:]
            raise StripeError(401, "invalid_request_error", f"Invalid API Key provided: {masked}")
        return credential

    async def _form(self, request: Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "application/x-www-form-urlencoded")
        body = await request.body()
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return {}
        try:
            return parse_form(body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise StripeError(400, "invalid_request_error", "Invalid request body: not UTF-8") from exc
        except FormError as exc:
            raise StripeError(400, "invalid_request_error", str(exc), param=exc.param) from exc

    async def _idempotent(
        self, request: Request, api_key: str, params: dict[str, Any], execute: Executor
    ) -> Response:
        """Run ``execute`` at most once per idempotency key, replaying its stored answer after."""
        headers = self._headers(request)
        raw_key = request.headers.get("idempotency-key")
        if raw_key is None:
            with self.fake.store.transaction() as db:
                status, body = execute(db)
            return JSONResponse(body, status_code=status, headers=headers)
        key = raw_key[1:-1] if len(raw_key) >= 2 and raw_key[0] == raw_key[-1] == '"' else raw_key
        if not key or len(key) > IDEMPOTENCY_KEY_MAX:
            raise StripeError(
                400,
                "invalid_request_error",
                f"Idempotency-Key must be between 1 and {IDEMPOTENCY_KEY_MAX} characters long.",
                headers=headers,
            )
        fingerprint = hashlib.sha256(
            json.dumps([request.method, request.url.path, params], sort_keys=True).encode()
        ).hexdigest()
        store = self.fake.store
        record = store.get_idempotency(api_key, key)
        if record is not None and time.time() - record.created_wall > IDEMPOTENCY_RETENTION:
            store.expire_idempotent(api_key, key)
            record = None
        if record is None and not store.begin_idempotent(api_key, key, fingerprint):
            record = store.get_idempotency(api_key, key)
        if record is not None:
            if record.fingerprint != fingerprint:
                raise StripeError(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters they"
                    f" were first used with. Try using a key other than '{key}' if you meant to"
                    " execute a different request.",
                    headers=headers,
                )
            if record.state != "completed" or record.status is None or record.body is None:
                raise StripeError(
                    409,
                    "idempotency_error",
                    "There is currently another in-progress request using this Idempotent Key"
                    " (that probably means you submitted twice, and the other request is still"
                    " going through): " + key + ". Please try again later.",
                    code="idempotency_key_in_use",
                    headers={**headers, "Stripe-Should-Retry": "true"},
                )
            replay_headers = {**record.headers, **headers, "Idempotent-Replayed": "true"}
            return Response(
                record.body,
                status_code=record.status,
                headers=replay_headers,
                media_type="application/json",
            )
        try:
            if self.processing_delay > 0:
                await asyncio.sleep(self.processing_delay)
            with store.transaction() as db:
                status, body = execute(db)
                raw = json.dumps(body).encode()
                store.complete_idempotent(db, scope=api_key, key=key, status=status, headers={}, body=raw)
        except BaseException:
            # Execution never committed: free the key so that a retry executes afresh.
            store.release_idempotent(api_key, key)
            raise
        return Response(raw, status_code=status, headers=headers, media_type="application/json")

    # -- PaymentIntents -------------------------------------------------------------------------

    def _validate_create(self, params: dict[str, Any]) -> tuple[int, str]:
        for name in params:
            if name not in CREATE_PARAMS:
                raise StripeError(
                    400, "invalid_request_error", f"Received unknown parameter: {name}", param=name
                )
        for name in ("amount", "currency"):
            if name not in params or params[name] == "":
                raise StripeError(
                    400,
                    "invalid_request_error",
                    f"Missing required param: {name}.",
                    code="parameter_missing",
                    param=name,
                )
        currency = params["currency"]
        if not isinstance(currency, str) or currency.lower() not in CURRENCIES:
            raise StripeError(
                400, "invalid_request_error", f"Invalid currency: {currency}.", param="currency"
            )
        try:
            amount = int(params["amount"])
        except (TypeError, ValueError):
            raise StripeError(
                400,
                "invalid_request_error",
                "Invalid integer: " + str(params["amount"]),
                param="amount",
            ) from None
        currency = currency.lower()
        if amount < MINIMUM_AMOUNT.get(currency, 1):
            raise StripeError(
                400,
                "invalid_request_error",
                f"Amount must be at least {MINIMUM_AMOUNT.get(currency, 1)} {currency}",
                code="amount_too_small",
                param="amount",
            )
        if amount > MAXIMUM_AMOUNT:
            raise StripeError(
                400,
                "invalid_request_error",
                f"Amount must be no more than {MAXIMUM_AMOUNT}",
                code="amount_too_large",
                param="amount",
            )
        metadata = params.get("metadata", {})
        if not isinstance(metadata, dict):
            raise StripeError(400, "invalid_request_error", "Invalid object", param="metadata")
        capture = params.get("capture_method", "automatic")
        if capture not in ("automatic", "automatic_async", "manual"):
            raise StripeError(
                400,
                "invalid_request_error",
                f"Invalid capture_method: {capture}",
                param="capture_method",
            )
        pm = params.get("payment_method")
        if pm is not None and pm not in TEST_PAYMENT_METHODS:
            raise StripeError(
                400,
                "invalid_request_error",
                f"No such PaymentMethod: '{pm}'",
                code="resource_missing",
                param="payment_method",
            )
        return amount, currency

    async def create_payment_intent(self, request: Request) -> Response:
        api_key = self._authenticate(request)
        params = await self._form(request)
        amount, currency = self._validate_create(params)
        confirm = str(params.get("confirm", "false")).lower() == "true"
        idempotency_key = request.headers.get("idempotency-key")

        def execute(db: Connection) -> tuple[int, dict[str, Any]]:
            pi_id = self._id("pi_")
            pi: dict[str, Any] = {
                "id": pi_id,
                "object": "payment_intent",
                "amount": amount,
                "amount_capturable": 0,
                "amount_received": 0,
                "currency": currency,
                "capture_method": params.get("capture_method", "automatic"),
                "confirmation_method": params.get("confirmation_method", "automatic"),
                "client_secret": f"{pi_id}_secret_{self._id('', 25)}",
                "created": int(time.time()),
                "customer": params.get("customer"),
                "description": params.get("description"),
                "last_payment_error": None,
                "latest_charge": None,
                "livemode": False,
                "metadata": params.get("metadata", {}),
                "next_action": None,
                "payment_method": params.get("payment_method"),
                "payment_method_types": params.get("payment_method_types", ["card"]),
                "status": "requires_payment_method",
            }
            if pi["payment_method"] is not None:
                pi["status"] = "requires_confirmation"
            if confirm:
                return self._confirm(db, pi, idempotency_key)
            self.fake.store.put_object(db, "payment_intent", pi_id, pi)
            return 200, pi

        return await self._idempotent(request, api_key, params, execute)

    def _confirm(
        self, db: Connection, pi: dict[str, Any], idempotency_key: str | None
    ) -> tuple[int, dict[str, Any]]:
        pm = pi["payment_method"]
        if pm is None:
            raise StripeError(
                400,
                "invalid_request_error",
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        decline = TEST_PAYMENT_METHODS[pm]
        if decline is not None:
            code, decline_code = decline
            error = {
                "type": "card_error",
                "code": code,
                "decline_code": decline_code,
                "message": "Your card was declined."
                if code == "card_declined"
                else "An error occurred while processing your card. Try again in a little bit.",
                "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
            }
            pi = {**pi, "status": "requires_payment_method", "last_payment_error": error}
            self.fake.store.put_object(db, "payment_intent", pi["id"], pi)
            return 402, {"error": {**error, "payment_intent": pi}}
        charge_id = self._id("ch_")
        if pi["capture_method"] == "manual":
            pi = {**pi, "status": "requires_capture", "amount_capturable": pi["amount"]}
        else:
            pi = {**pi, "status": "succeeded", "amount_received": pi["amount"]}
            self.fake.store.add_effect(
                db,
                kind="charge",
                object_id=pi["id"],
                operation_id=pi["metadata"].get("operation_id"),
                idempotency_key=idempotency_key,
                amount=pi["amount"],
                currency=pi["currency"],
                detail={"charge": charge_id, "payment_method": pm},
            )
        pi["latest_charge"] = charge_id
        self.fake.store.put_object(db, "payment_intent", pi["id"], pi)
        return 200, pi

    async def retrieve_payment_intent(self, request: Request) -> Response:
        self._authenticate(request)
        pi_id = request.path_params["pi_id"]
        pi = self.fake.store.get_object("payment_intent", pi_id)
        if pi is None:
            raise StripeError(
                404,
                "invalid_request_error",
                f"No such payment_intent: '{pi_id}'",
                code="resource_missing",
                param="id",
            )
        return JSONResponse(pi, headers=self._headers(request))


def create_app(fake: FakeUpstream) -> Starlette:
    stripe = StripeFake(fake)

    async def on_stripe_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StripeError)
        response = stripe_error(exc)
        response.headers.setdefault("Request-Id", stripe._id("req_", 14))
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
                500,
                "api_error",
                "An unknown error occurred.",
                headers={"Stripe-Should-Retry": "false"},
            )
        )

    app = build_app(
        fake,
        [
            Route("/v1/payment_intents", stripe.create_payment_intent, methods=["POST"]),
            Route("/v1/payment_intents/{pi_id}", stripe.retrieve_payment_intent, methods=["GET"]),
        ],
        exception_handlers={
            StripeError: on_stripe_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
    )
    app.state.stripe = stripe
    return app
