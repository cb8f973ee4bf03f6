"""OpenAPI 3.0 document of the Stripe v1 subset the fake serves (PaymentIntents, webhook endpoints,
events), with Stripe's error envelope on every error status."""

from __future__ import annotations

from typing import Any

from fake_upstreams._openapi import document, ref, response

__all__ = ["OPENAPI"]

_FORM = "application/x-www-form-urlencoded"
_STATUSES = [
    "requires_payment_method",
    "requires_confirmation",
    "requires_action",
    "processing",
    "requires_capture",
    "canceled",
    "succeeded",
]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {
                    "type": "string",
                    "enum": ["api_error", "card_error", "idempotency_error", "invalid_request_error"],
                },
                "code": {"type": "string"},
                "decline_code": {"type": "string", "nullable": True},
                "message": {"type": "string"},
                "param": {"type": "string"},
                "doc_url": {"type": "string"},
                "charge": {"type": "string"},
                "payment_intent": ref("PaymentIntent"),
                "payment_method": {"type": "object"},
            },
        }
    },
}

_PAYMENT_INTENT = {
    "type": "object",
    "required": [
        "id",
        "object",
        "amount",
        "amount_capturable",
        "amount_received",
        "currency",
        "status",
        "capture_method",
        "client_secret",
        "created",
        "livemode",
        "metadata",
    ],
    "properties": {
        "id": {"type": "string", "pattern": "^pi_"},
        "object": {"type": "string", "enum": ["payment_intent"]},
        "amount": {"type": "integer"},
        "amount_capturable": {"type": "integer"},
        "amount_received": {"type": "integer"},
        "canceled_at": {"type": "integer", "nullable": True},
        "cancellation_reason": {"type": "string", "nullable": True},
        "capture_method": {"type": "string", "enum": ["automatic", "automatic_async", "manual"]},
        "client_secret": {"type": "string"},
        "confirmation_method": {"type": "string"},
        "created": {"type": "integer"},
        "currency": {"type": "string"},
        "customer": {"type": "string", "nullable": True},
        "description": {"type": "string", "nullable": True},
        "last_payment_error": {"type": "object", "nullable": True},
        "latest_charge": {"type": "string", "nullable": True},
        "livemode": {"type": "boolean"},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "next_action": {"type": "object", "nullable": True},
        "payment_method": {"type": "string", "nullable": True},
        "payment_method_types": {"type": "array", "items": {"type": "string"}},
        "status": {"type": "string", "enum": _STATUSES},
    },
}

_WEBHOOK_ENDPOINT = {
    "type": "object",
    "required": ["id", "object", "url", "enabled_events", "status"],
    "properties": {
        "id": {"type": "string", "pattern": "^we_"},
        "object": {"type": "string", "enum": ["webhook_endpoint"]},
        "url": {"type": "string"},
        "enabled_events": {"type": "array", "items": {"type": "string"}},
        "status": {"type": "string", "enum": ["enabled", "disabled"]},
        "secret": {"type": "string", "pattern": "^whsec_"},
        "api_version": {"type": "string", "nullable": True},
        "created": {"type": "integer"},
        "description": {"type": "string", "nullable": True},
        "livemode": {"type": "boolean"},
        "metadata": {"type": "object"},
    },
}

_EVENT = {
    "type": "object",
    "required": ["id", "object", "type", "data", "created"],
    "properties": {
        "id": {"type": "string", "pattern": "^evt_"},
        "object": {"type": "string", "enum": ["event"]},
        "api_version": {"type": "string"},
        "created": {"type": "integer"},
        "type": {"type": "string"},
        "data": {"type": "object", "required": ["object"], "properties": {"object": {"type": "object"}}},
        "livemode": {"type": "boolean"},
        "pending_webhooks": {"type": "integer"},
        "request": {"type": "object"},
    },
}


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["object", "data", "has_more", "url"],
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {"type": "array", "items": item},
            "has_more": {"type": "boolean"},
            "url": {"type": "string"},
        },
    }


_HEADERS = {
    "Request-Id": {"schema": {"type": "string"}},
    "Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}},
    "Stripe-Should-Retry": {"schema": {"type": "string", "enum": ["true", "false"]}},
}


def _errors(*statuses: int) -> dict[str, Any]:
    descriptions = {
        400: "Bad request: validation, idempotency_error, unexpected state",
        401: "No valid API key",
        402: "Card declined (card_error)",
        404: "No such object",
        409: "Idempotency key in use by a request still running",
        429: "Rate limited or lock_timeout",
        500: "api_error",
        502: "api_error from the edge",
        503: "api_error: temporarily unavailable",
        504: "api_error: timed out",
    }
    return {str(s): response(descriptions[s], ref("Error"), headers=_HEADERS) for s in statuses}


_WRITE_ERRORS = (400, 401, 402, 404, 409, 429, 500, 502, 503, 504)
_READ_ERRORS = (400, 401, 404, 429, 500, 502, 503, 504)


def _form(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {
        "required": bool(required),
        "content": {
            _FORM: {
                "schema": schema,
                "encoding": {
                    name: {"style": "deepObject", "explode": True}
                    for name, prop in properties.items()
                    if prop.get("type") == "object"
                },
            }
        },
    }


_METADATA = {
    "type": "object",
    "additionalProperties": {"type": "string", "maxLength": 500},
    "maxProperties": 50,
}
_CARD_DATA = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["card"]},
        "card": {"type": "object", "properties": {"number": {"type": "string"}}},
    },
}
_KEY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_PI_ID = {"name": "pi_id", "in": "path", "required": True, "schema": {"type": "string"}}
_LIST_QUERY = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    {"name": "starting_after", "in": "query", "schema": {"type": "string"}},
    {"name": "ending_before", "in": "query", "schema": {"type": "string"}},
]


def _write(summary: str, body: dict[str, Any], ok: dict[str, Any], *params: dict[str, Any]) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": [_KEY_HEADER, *params],
        "requestBody": body,
        "responses": {"200": response("OK", ok, headers=_HEADERS), **_errors(*_WRITE_ERRORS)},
    }


def _read(summary: str, ok: dict[str, Any], *params: dict[str, Any]) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": list(params),
        "responses": {"200": response("OK", ok, headers=_HEADERS), **_errors(*_READ_ERRORS)},
    }


_CREATE = _form(
    {
        "amount": {"type": "integer", "minimum": 1},
        "currency": {"type": "string", "enum": ["usd", "eur", "gbp", "kes"]},
        "payment_method": {"type": "string", "enum": ["pm_card_visa", "pm_card_chargeDeclined"]},
        "payment_method_data": _CARD_DATA,
        "confirm": {"type": "boolean"},
        "capture_method": {"type": "string", "enum": ["automatic", "manual"]},
        "description": {"type": "string"},
        "metadata": _METADATA,
    },
    ["amount", "currency"],
)

OPENAPI = document(
    title="Stripe API v1 (fake subset)",
    description=(
        "PaymentIntents, webhook endpoints and events as the fake Stripe serves them: form-encoded"
        " requests, Stripe's idempotency rules and error envelope."
    ),
    security=[{"bearerAuth": []}, {"basicAuth": []}],
    paths={
        "/v1/payment_intents": {
            "post": _write("Create a PaymentIntent", _CREATE, ref("PaymentIntent")),
            "get": _read(
                "List PaymentIntents",
                _list_of(ref("PaymentIntent")),
                *_LIST_QUERY,
                {"name": "customer", "in": "query", "schema": {"type": "string"}},
            ),
        },
        "/v1/payment_intents/{pi_id}": {
            "get": _read("Retrieve a PaymentIntent", ref("PaymentIntent"), _PI_ID),
            "post": _write(
                "Update a PaymentIntent",
                _form(
                    {"amount": {"type": "integer"}, "description": {"type": "string"}, "metadata": _METADATA}
                ),
                ref("PaymentIntent"),
                _PI_ID,
            ),
        },
        "/v1/payment_intents/{pi_id}/confirm": {
            "post": _write(
                "Confirm a PaymentIntent",
                _form({"payment_method": {"type": "string"}, "payment_method_data": _CARD_DATA}),
                ref("PaymentIntent"),
                _PI_ID,
            )
        },
        "/v1/payment_intents/{pi_id}/capture": {
            "post": _write(
                "Capture a PaymentIntent",
                _form({"amount_to_capture": {"type": "integer", "minimum": 1}}),
                ref("PaymentIntent"),
                _PI_ID,
            )
        },
        "/v1/payment_intents/{pi_id}/cancel": {
            "post": _write(
                "Cancel a PaymentIntent",
                _form(
                    {
                        "cancellation_reason": {
                            "type": "string",
                            "enum": ["duplicate", "fraudulent", "requested_by_customer", "abandoned"],
                        }
                    }
                ),
                ref("PaymentIntent"),
                _PI_ID,
            )
        },
        "/v1/webhook_endpoints": {
            "post": _write(
                "Create a webhook endpoint",
                _form(
                    {
                        "url": {"type": "string"},
                        "enabled_events": {"type": "array", "items": {"type": "string"}},
                        "description": {"type": "string"},
                    },
                    ["url", "enabled_events"],
                ),
                ref("WebhookEndpoint"),
            ),
            "get": _read("List webhook endpoints", _list_of(ref("WebhookEndpoint")), *_LIST_QUERY),
        },
        "/v1/webhook_endpoints/{endpoint_id}": {
            "get": _read(
                "Retrieve a webhook endpoint",
                ref("WebhookEndpoint"),
                {"name": "endpoint_id", "in": "path", "required": True, "schema": {"type": "string"}},
            ),
            "delete": _read(
                "Delete a webhook endpoint",
                {
                    "type": "object",
                    "required": ["id", "object", "deleted"],
                    "properties": {
                        "id": {"type": "string"},
                        "object": {"type": "string"},
                        "deleted": {"type": "boolean"},
                    },
                },
                {"name": "endpoint_id", "in": "path", "required": True, "schema": {"type": "string"}},
            ),
        },
        "/v1/events": {
            "get": _read(
                "List events",
                _list_of(ref("Event")),
                *_LIST_QUERY,
                {"name": "type", "in": "query", "schema": {"type": "string"}},
            )
        },
        "/v1/events/{event_id}": {
            "get": _read(
                "Retrieve an event",
                ref("Event"),
                {"name": "event_id", "in": "path", "required": True, "schema": {"type": "string"}},
            )
        },
    },
    components={
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer"},
            "basicAuth": {"type": "http", "scheme": "basic"},
        },
        "schemas": {
            "Error": _ERROR,
            "PaymentIntent": _PAYMENT_INTENT,
            "WebhookEndpoint": _WEBHOOK_ENDPOINT,
            "Event": _EVENT,
        },
    },
)
