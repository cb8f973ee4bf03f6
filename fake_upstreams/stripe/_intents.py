"""PaymentIntents: create, retrieve, list, update, confirm, capture and cancel, with Stripe's state
machine and test-card outcomes.

``requires_payment_method`` → (payment method attached) ``requires_confirmation`` → confirm →
``succeeded`` (automatic capture), ``requires_capture`` (manual capture, then capture → ``succeeded``),
``requires_action`` (3-D Secure card), or back to ``requires_payment_method`` with
``last_payment_error`` and a 402 ``card_error`` on a decline. Cancel is allowed from every state but
``succeeded`` and ``canceled``.

Ledger effects, each with the client's ``metadata[operation_id]``: ``charge`` when money moves
(automatic confirm or capture), ``authorization`` when funds are held (manual confirm), ``release``
when a held authorization is cancelled. Checkers count effects per operation *and kind*.
"""

from __future__ import annotations

from sqlite3 import Connection
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fake_upstreams.stripe._cards import TEST_CARDS, TEST_PAYMENT_METHODS, CardOutcome, luhn_valid
from fake_upstreams.stripe._core import StripeCore
from fake_upstreams.stripe._errors import StripeError
from fake_upstreams.stripe._lists import LIST_PARAMS, paginate
from fake_upstreams.stripe._webhooks import Webhooks

__all__ = ["CURRENCIES", "PaymentIntents"]

CURRENCIES = frozenset({"usd", "eur", "gbp", "kes", "cad", "aud", "jpy", "chf", "sek", "nok", "dkk"})
MINIMUM_AMOUNT = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "chf": 50, "kes": 100, "jpy": 50}
MAXIMUM_AMOUNT = 99_999_999
CREATE_PARAMS = frozenset(
    {
        "amount",
        "currency",
        "payment_method",
        "payment_method_data",
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
UPDATE_PARAMS = frozenset(
    {
        "amount",
        "currency",
        "payment_method",
        "payment_method_data",
        "description",
        "metadata",
        "receipt_email",
    }
)
CONFIRM_PARAMS = frozenset(
    {"payment_method", "payment_method_data", "return_url", "off_session", "capture_method"}
)
CAPTURE_PARAMS = frozenset({"amount_to_capture", "metadata"})
CANCEL_PARAMS = frozenset({"cancellation_reason"})
CANCELLATION_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer", "abandoned"})
CANCELLABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
UPDATABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
METADATA_KEYS_MAX = 50
_PARTICIPLES = {"cancel": "canceled", "capture": "captured", "confirm": "confirmed", "update": "updated"}


def _bad(message: str, *, param: str | None = None, code: str | None = None) -> StripeError:
    return StripeError(400, "invalid_request_error", message, param=param, code=code)


def _unknown(params: dict[str, Any], allowed: frozenset[str]) -> None:
    for name in params:
        if name not in allowed:
            raise _bad(f"Received unknown parameter: {name}", param=name)


def _integer(params: dict[str, Any], name: str) -> int:
    value = params[name]
    if not isinstance(value, str) or not value.lstrip("-").isdigit():
        raise _bad(f"Invalid integer: {value}", param=name)
    return int(value)


def _boolean(params: dict[str, Any], name: str, default: bool = False) -> bool:
    value = params.get(name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise _bad(f"Invalid boolean: {value}", param=name)
    return bool(value == "true")


def _metadata(params: dict[str, Any]) -> dict[str, str] | None:
    if "metadata" not in params:
        return None
    metadata = params["metadata"]
    if metadata == "":
        return {}
    if not isinstance(metadata, dict):
        raise _bad("Invalid object", param="metadata")
    if len(metadata) > METADATA_KEYS_MAX:
        raise _bad(f"You can specify up to {METADATA_KEYS_MAX} metadata keys.", param="metadata")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise _bad(f"Invalid string: {value!r}", param=f"metadata[{key}]")
        if len(key) > 40:
            raise _bad("Metadata keys can be at most 40 characters long.", param=f"metadata[{key}]")
        if len(value) > 500:
            raise _bad("Metadata values can be at most 500 characters long.", param=f"metadata[{key}]")
    return dict(metadata)


def _amount(params: dict[str, Any], currency: str) -> int:
    amount = _integer(params, "amount")
    minimum = MINIMUM_AMOUNT.get(currency, 1)
    if amount < minimum:
        raise _bad(f"Amount must be at least {minimum} {currency}", param="amount", code="amount_too_small")
    if amount > MAXIMUM_AMOUNT:
        raise _bad(f"Amount must be no more than {MAXIMUM_AMOUNT}", param="amount", code="amount_too_large")
    return amount


def _currency(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in CURRENCIES:
        raise _bad(f"Invalid currency: {value}.", param="currency")
    return value.lower()


def _missing(name: str) -> StripeError:
    return _bad(f"Missing required param: {name}.", param=name, code="parameter_missing")


def _no_such_intent(pi_id: str) -> StripeError:
    return StripeError(
        404,
        "invalid_request_error",
        f"No such payment_intent: '{pi_id}'",
        code="resource_missing",
        param="intent",
    )


def _unexpected_state(action: str, pi: dict[str, Any], allowed: tuple[str, ...]) -> StripeError:
    return StripeError(
        400,
        "invalid_request_error",
        f"You cannot {action} this PaymentIntent because it has a status of {pi['status']}. Only a"
        f" PaymentIntent with one of the following statuses may be {_PARTICIPLES[action]}:"
        f" {', '.join(allowed)}.",
        code="payment_intent_unexpected_state",
        extra={"payment_intent": pi},
    )


class PaymentIntents:
    def __init__(self, core: StripeCore, webhooks: Webhooks) -> None:
        self.core = core
        self.webhooks = webhooks
        self.fake = core.fake

    # -- payment methods ------------------------------------------------------------------------

    def _check_payment_method(self, params: dict[str, Any]) -> str | dict[str, Any] | None:
        """The test PaymentMethod id or validated card data to attach; None if neither was sent."""
        pm = params.get("payment_method")
        data = params.get("payment_method_data")
        if pm is not None and data is not None:
            raise _bad("You cannot pass both payment_method and payment_method_data.", param="payment_method")
        if pm is not None:
            if not isinstance(pm, str) or (
                pm not in TEST_PAYMENT_METHODS and self.fake.store.get_object("payment_method", pm) is None
            ):
                raise _bad(f"No such PaymentMethod: '{pm}'", param="payment_method", code="resource_missing")
            return pm
        if data is None:
            return None
        if not isinstance(data, dict) or data.get("type") != "card":
            raise _bad("Invalid payment_method_data[type]: must be card", param="payment_method_data[type]")
        card = data.get("card")
        number = card.get("number") if isinstance(card, dict) else None
        if not isinstance(number, str) or not number:
            raise _missing("payment_method_data[card][number]")
        number = number.replace(" ", "")
        if not luhn_valid(number):
            raise StripeError(
                402,
                "card_error",
                "Your card number is incorrect.",
                code="incorrect_number",
                param="payment_method_data[card][number]",
            )
        return {"number": number}

    def _attach(self, db: Connection, choice: str | dict[str, Any]) -> str:
        if isinstance(choice, str):
            return choice
        number = str(choice["number"])
        outcome = TEST_CARDS.get(number, CardOutcome())
        pm_id = self.core.id("pm_")
        pm = {
            "id": pm_id,
            "object": "payment_method",
            "type": "card",
            "card": {"brand": outcome.brand, "last4": number[-4:]},
            "number": number,
        }
        self.fake.store.put_object(db, "payment_method", pm_id, pm)
        return pm_id

    def _outcome(self, pm_id: str) -> CardOutcome:
        if pm_id in TEST_PAYMENT_METHODS:
            return TEST_PAYMENT_METHODS[pm_id]
        pm = self.fake.store.get_object("payment_method", pm_id) or {}
        return TEST_CARDS.get(str(pm.get("number", "")), CardOutcome())

    # -- helpers --------------------------------------------------------------------------------

    def _get(self, pi_id: str) -> dict[str, Any]:
        pi = self.fake.store.get_object("payment_intent", pi_id)
        if pi is None:
            raise _no_such_intent(pi_id)
        return pi

    def _save(self, db: Connection, pi: dict[str, Any]) -> None:
        self.fake.store.put_object(db, "payment_intent", pi["id"], pi)

    def _emit(self, db: Connection, request: Request, event_type: str, pi: dict[str, Any]) -> None:
        key = request.headers.get("idempotency-key")
        self.webhooks.emit(
            db,
            event_type,
            pi,
            request_id=getattr(request.state, "stripe_request_id", None),
            idempotency_key=key,
        )

    def _effect(self, db: Connection, request: Request, kind: str, pi: dict[str, Any], amount: int) -> None:
        self.fake.store.add_effect(
            db,
            kind=kind,
            object_id=pi["id"],
            operation_id=pi["metadata"].get("operation_id"),
            idempotency_key=request.headers.get("idempotency-key"),
            amount=amount,
            currency=pi["currency"],
            detail={"charge": pi.get("latest_charge"), "payment_method": pi.get("payment_method")},
        )

    def _confirm(self, db: Connection, request: Request, pi: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        pm = pi["payment_method"]
        if pm is None:
            raise _bad(
                "You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the"
                " PaymentIntent with a payment method, pass payment_method or payment_method_data.",
                code="payment_intent_unexpected_state",
            )
        outcome = self._outcome(pm)
        if outcome.requires_action:
            pi = {
                **pi,
                "status": "requires_action",
                "next_action": {
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": {"type": "three_d_secure_redirect"},
                },
            }
            self._save(db, pi)
            self._emit(db, request, "payment_intent.requires_action", pi)
            return 200, pi
        if outcome.code is not None:
            error = {
                "type": "card_error",
                "code": outcome.code,
                "decline_code": outcome.decline_code,
                "message": outcome.message,
                "doc_url": f"https://stripe.com/docs/error-codes/{outcome.code.replace('_', '-')}",
                "charge": self.core.id("ch_"),
                "payment_method": {"id": pm, "object": "payment_method", "type": "card"},
            }
            pi = {**pi, "status": "requires_payment_method", "last_payment_error": error, "next_action": None}
            pi["latest_charge"] = error["charge"]
            self._save(db, pi)
            self._emit(db, request, "payment_intent.payment_failed", pi)
            return 402, {"error": {**error, "payment_intent": pi}}
        pi = {**pi, "latest_charge": self.core.id("ch_"), "last_payment_error": None, "next_action": None}
        if pi["capture_method"] == "manual":
            pi.update(status="requires_capture", amount_capturable=pi["amount"])
            self._effect(db, request, "authorization", pi, pi["amount"])
            self._save(db, pi)
            self._emit(db, request, "payment_intent.amount_capturable_updated", pi)
        else:
            pi.update(status="succeeded", amount_received=pi["amount"])
            self._effect(db, request, "charge", pi, pi["amount"])
            self._save(db, pi)
            self._emit(db, request, "payment_intent.succeeded", pi)
        return 200, pi

    # -- endpoints ------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        api_key = await self.core.gate(request)
        params = await self.core.form(request)
        _unknown(params, CREATE_PARAMS)
        for name in ("amount", "currency"):
            if params.get(name, "") == "":
                raise _missing(name)
        currency = _currency(params["currency"])
        amount = _amount(params, currency)
        metadata = _metadata(params) or {}
        capture = params.get("capture_method", "automatic")
        if capture not in ("automatic", "automatic_async", "manual"):
            raise _bad(f"Invalid capture_method: {capture}", param="capture_method")
        confirm = _boolean(params, "confirm")
        choice = self._check_payment_method(params)

        def execute(db: Connection) -> tuple[int, dict[str, Any]]:
            pi_id = self.core.id("pi_")
            pm = None if choice is None else self._attach(db, choice)
            pi: dict[str, Any] = {
                "id": pi_id,
                "object": "payment_intent",
                "amount": amount,
                "amount_capturable": 0,
                "amount_received": 0,
                "canceled_at": None,
                "cancellation_reason": None,
                "capture_method": capture,
                "confirmation_method": params.get("confirmation_method", "automatic"),
                "client_secret": f"{pi_id}_secret_{self.core.id('', 25)}",
                "created": int(self.fake.clock.api_time()),
                "currency": currency,
                "customer": params.get("customer"),
                "description": params.get("description"),
                "last_payment_error": None,
                "latest_charge": None,
                "livemode": False,
                "metadata": metadata,
                "next_action": None,
                "payment_method": pm,
                "payment_method_types": params.get("payment_method_types", ["card"]),
                "status": "requires_payment_method" if pm is None else "requires_confirmation",
            }
            self._save(db, pi)
            self._emit(db, request, "payment_intent.created", pi)
            if confirm:
                return self._confirm(db, request, pi)
            return 200, pi

        return await self.core.idempotent(request, api_key, params, execute)

    async def retrieve(self, request: Request) -> Response:
        await self.core.gate(request)
        if request.query_params:
            name = next(iter(request.query_params))
            if name not in ("client_secret", "expand[]"):
                raise _bad(f"Received unknown parameter: {name}", param=name)
        pi = self._get(request.path_params["pi_id"])
        return JSONResponse(pi, headers=self.core.headers(request))

    async def list(self, request: Request) -> Response:
        await self.core.gate(request)
        params = dict(request.query_params)
        _unknown(params, LIST_PARAMS | {"customer"})
        items = list(reversed(self.fake.store.objects("payment_intent")))
        if "customer" in params:
            items = [pi for pi in items if pi.get("customer") == params["customer"]]
        return JSONResponse(
            paginate(items, params, "/v1/payment_intents"), headers=self.core.headers(request)
        )

    async def update(self, request: Request) -> Response:
        api_key = await self.core.gate(request)
        params = await self.core.form(request)
        _unknown(params, UPDATE_PARAMS)
        pi_id = request.path_params["pi_id"]
        metadata = _metadata(params)
        choice = self._check_payment_method(params)
        currency = _currency(params["currency"]) if "currency" in params else None

        def execute(db: Connection) -> tuple[int, dict[str, Any]]:
            pi = self._get(pi_id)
            if pi["status"] not in UPDATABLE:
                raise _unexpected_state("update", pi, UPDATABLE)
            pi = dict(pi)
            if currency is not None:
                pi["currency"] = currency
            if "amount" in params:
                pi["amount"] = _amount(params, pi["currency"])
            if metadata is not None:
                pi["metadata"] = {**pi["metadata"], **metadata}
            if "description" in params:
                pi["description"] = params["description"]
            if choice is not None:
                pi["payment_method"] = self._attach(db, choice)
                pi["status"] = "requires_confirmation"
            self._save(db, pi)
            return 200, pi

        return await self.core.idempotent(request, api_key, params, execute, lock=pi_id)

    async def confirm(self, request: Request) -> Response:
        api_key = await self.core.gate(request)
        params = await self.core.form(request)
        _unknown(params, CONFIRM_PARAMS)
        pi_id = request.path_params["pi_id"]
        choice = self._check_payment_method(params)

        def execute(db: Connection) -> tuple[int, dict[str, Any]]:
            pi = self._get(pi_id)
            if pi["status"] not in CONFIRMABLE:
                raise _unexpected_state("confirm", pi, CONFIRMABLE)
            if choice is not None:
                pi = {**pi, "payment_method": self._attach(db, choice)}
            if "capture_method" in params:
                pi = {**pi, "capture_method": params["capture_method"]}
            return self._confirm(db, request, pi)

        return await self.core.idempotent(request, api_key, params, execute, lock=pi_id)

    async def capture(self, request: Request) -> Response:
        api_key = await self.core.gate(request)
        params = await self.core.form(request)
        _unknown(params, CAPTURE_PARAMS)
        pi_id = request.path_params["pi_id"]
        to_capture = _integer(params, "amount_to_capture") if "amount_to_capture" in params else None

        def execute(db: Connection) -> tuple[int, dict[str, Any]]:
            pi = self._get(pi_id)
            if pi["status"] != "requires_capture":
                raise _unexpected_state("capture", pi, ("requires_capture",))
            amount = pi["amount_capturable"] if to_capture is None else to_capture
            if not 1 <= amount <= pi["amount_capturable"]:
                raise _bad(
                    "The amount_to_capture must be less than or equal to the amount_capturable.",
                    param="amount_to_capture",
                    code="amount_too_large",
                )
            pi = {**pi, "status": "succeeded", "amount_received": amount, "amount_capturable": 0}
            self._effect(db, request, "charge", pi, amount)
            self._save(db, pi)
            self._emit(db, request, "payment_intent.succeeded", pi)
            return 200, pi

        return await self.core.idempotent(request, api_key, params, execute, lock=pi_id)

    async def cancel(self, request: Request) -> Response:
        api_key = await self.core.gate(request)
        params = await self.core.form(request)
        _unknown(params, CANCEL_PARAMS)
        reason = params.get("cancellation_reason")
        if reason is not None and reason not in CANCELLATION_REASONS:
            raise _bad(f"Invalid cancellation_reason: {reason}", param="cancellation_reason")
        pi_id = request.path_params["pi_id"]

        def execute(db: Connection) -> tuple[int, dict[str, Any]]:
            pi = self._get(pi_id)
            if pi["status"] not in CANCELLABLE:
                raise _unexpected_state("cancel", pi, CANCELLABLE)
            held = pi["status"] == "requires_capture"
            pi = {
                **pi,
                "status": "canceled",
                "canceled_at": int(self.fake.clock.api_time()),
                "cancellation_reason": reason,
                "amount_capturable": 0,
                "next_action": None,
            }
            if held:
                self._effect(db, request, "release", pi, pi["amount"])
            self._save(db, pi)
            self._emit(db, request, "payment_intent.canceled", pi)
            return 200, pi

        return await self.core.idempotent(request, api_key, params, execute, lock=pi_id)
