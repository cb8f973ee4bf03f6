"""OpenAPI 3.0 document of the Daraja subset the fake serves, with Daraja's error envelope.

Daraja answers several client-side conditions with HTTP 500 by its prefix rule (``500.001.1001``:
wrong password, unknown merchant, "Unable to lock subscriber", and "The transaction is being
processed" for a pending query; ``500.002.1001``: duplicate OriginatorConversationID), so 500 is a
documented answer of these operations, in the same envelope as every other error.
"""

from __future__ import annotations

from typing import Any

from fake_upstreams._openapi import document, json_body, ref, response

__all__ = ["OPENAPI"]

_ERROR = {
    "type": "object",
    "required": ["requestId", "errorCode", "errorMessage"],
    "properties": {
        "requestId": {"type": "string"},
        "errorCode": {"type": "string", "pattern": r"^\d{3}\.\d{3}(\.\d+)?$"},
        "errorMessage": {"type": "string"},
    },
}
_NUMBER_OR_STRING = {"oneOf": [{"type": "integer"}, {"type": "string"}]}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): response(f"Daraja error ({s}.xxx.xx)", ref("Error")) for s in statuses}


_API_ERRORS = (400, 404, 405, 500, 502, 503, 504)

_STK_PUSH = {
    "type": "object",
    "required": [
        "BusinessShortCode",
        "Password",
        "Timestamp",
        "TransactionType",
        "Amount",
        "PartyA",
        "PartyB",
        "PhoneNumber",
        "CallBackURL",
        "AccountReference",
    ],
    "properties": {
        "BusinessShortCode": _NUMBER_OR_STRING,
        "Password": {"type": "string"},
        "Timestamp": {"type": "string", "pattern": r"^\d{14}$"},
        "TransactionType": {"type": "string", "enum": ["CustomerPayBillOnline", "CustomerBuyGoodsOnline"]},
        "Amount": _NUMBER_OR_STRING,
        "PartyA": _NUMBER_OR_STRING,
        "PartyB": _NUMBER_OR_STRING,
        "PhoneNumber": _NUMBER_OR_STRING,
        "CallBackURL": {"type": "string"},
        "AccountReference": {"type": "string", "maxLength": 12},
        "TransactionDesc": {"type": "string", "maxLength": 13},
    },
}
_STK_ACCEPTED = {
    "type": "object",
    "required": [
        "MerchantRequestID",
        "CheckoutRequestID",
        "ResponseCode",
        "ResponseDescription",
        "CustomerMessage",
    ],
    "properties": {
        "MerchantRequestID": {"type": "string"},
        "CheckoutRequestID": {"type": "string", "pattern": "^ws_CO_"},
        "ResponseCode": {"type": "string", "enum": ["0"]},
        "ResponseDescription": {"type": "string"},
        "CustomerMessage": {"type": "string"},
    },
}
_STK_QUERY = {
    "type": "object",
    "required": ["BusinessShortCode", "Password", "Timestamp", "CheckoutRequestID"],
    "properties": {
        "BusinessShortCode": _NUMBER_OR_STRING,
        "Password": {"type": "string"},
        "Timestamp": {"type": "string", "pattern": r"^\d{14}$"},
        "CheckoutRequestID": {"type": "string"},
    },
}
_STK_STATUS = {
    "type": "object",
    "required": [
        "ResponseCode",
        "ResponseDescription",
        "MerchantRequestID",
        "CheckoutRequestID",
        "ResultCode",
    ],
    "properties": {
        "ResponseCode": {"type": "string"},
        "ResponseDescription": {"type": "string"},
        "MerchantRequestID": {"type": "string"},
        "CheckoutRequestID": {"type": "string"},
        "ResultCode": {"type": "string"},
        "ResultDesc": {"type": "string"},
    },
}
_B2C = {
    "type": "object",
    "required": [
        "OriginatorConversationID",
        "InitiatorName",
        "SecurityCredential",
        "CommandID",
        "Amount",
        "PartyA",
        "PartyB",
        "Remarks",
        "QueueTimeOutURL",
        "ResultURL",
    ],
    "properties": {
        "OriginatorConversationID": {"type": "string"},
        "InitiatorName": {"type": "string"},
        "SecurityCredential": {"type": "string"},
        "CommandID": {"type": "string", "enum": ["BusinessPayment", "SalaryPayment", "PromotionPayment"]},
        "Amount": _NUMBER_OR_STRING,
        "PartyA": _NUMBER_OR_STRING,
        "PartyB": _NUMBER_OR_STRING,
        "Remarks": {"type": "string", "minLength": 2, "maxLength": 100},
        "QueueTimeOutURL": {"type": "string"},
        "ResultURL": {"type": "string"},
        "Occassion": {"type": "string"},
    },
}
_B2C_ACCEPTED = {
    "type": "object",
    "required": ["ConversationID", "OriginatorConversationID", "ResponseCode", "ResponseDescription"],
    "properties": {
        "ConversationID": {"type": "string"},
        "OriginatorConversationID": {"type": "string"},
        "ResponseCode": {"type": "string", "enum": ["0"]},
        "ResponseDescription": {"type": "string"},
    },
}


def _post(summary: str, body: dict[str, Any], ok: dict[str, Any]) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": [{"bearerAuth": []}],
        "requestBody": json_body(body),
        "responses": {"200": response("Accepted", ok), **_errors(*_API_ERRORS)},
    }


_B2C_OPERATION = _post("B2C payment request", _B2C, _B2C_ACCEPTED)

OPENAPI = document(
    title="M-Pesa Daraja API (fake subset)",
    description="OAuth, M-Pesa Express (STK push and query) and B2C as the fake Daraja serves them.",
    paths={
        "/oauth/v1/generate": {
            "get": {
                "summary": "Generate an access token",
                "security": [{"basicAuth": []}],
                "parameters": [
                    {
                        "name": "grant_type",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "enum": ["client_credentials"]},
                    }
                ],
                "responses": {
                    "200": response(
                        "Token",
                        {
                            "type": "object",
                            "required": ["access_token", "expires_in"],
                            "properties": {
                                "access_token": {"type": "string"},
                                "expires_in": {"type": "string"},
                            },
                        },
                    ),
                    **_errors(400, 404, 500, 502, 503, 504),
                },
            }
        },
        "/mpesa/stkpush/v1/processrequest": {"post": _post("STK push", _STK_PUSH, _STK_ACCEPTED)},
        "/mpesa/stkpushquery/v1/query": {"post": _post("STK push query", _STK_QUERY, _STK_STATUS)},
        "/mpesa/b2c/v3/paymentrequest": {"post": _B2C_OPERATION},
    },
    components={
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer"},
            "basicAuth": {"type": "http", "scheme": "basic"},
        },
        "schemas": {"Error": _ERROR},
    },
)
