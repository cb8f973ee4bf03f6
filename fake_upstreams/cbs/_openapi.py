"""OpenAPI 3.0 document of the Fineract subset the fake serves, with ``ApiGlobalErrorResponse`` on
every JSON error. A missing tenant is a plain-text 400 (the servlet filter's ``sendError``), and a
request still running under the same Idempotency-Key is a 425 echoing the request JSON."""

from __future__ import annotations

from typing import Any

from fake_upstreams._openapi import document, json_body, ref, response

__all__ = ["OPENAPI"]

BASE = "/fineract-provider/api/v1"

_PARAM_ERROR = {
    "type": "object",
    "required": ["developerMessage", "defaultUserMessage", "userMessageGlobalisationCode"],
    "properties": {
        "developerMessage": {"type": "string"},
        "defaultUserMessage": {"type": "string"},
        "userMessageGlobalisationCode": {"type": "string"},
        "parameterName": {"type": "string"},
        "value": {},
        "args": {"type": "array", "items": {"type": "object"}},
    },
}
_ERROR = {
    "type": "object",
    "required": [
        "developerMessage",
        "httpStatusCode",
        "defaultUserMessage",
        "userMessageGlobalisationCode",
        "errors",
    ],
    "properties": {
        "developerMessage": {"type": "string"},
        "httpStatusCode": {"type": "string", "pattern": r"^\d{3}$"},
        "defaultUserMessage": {"type": "string"},
        "userMessageGlobalisationCode": {"type": "string"},
        "errors": {"type": "array", "items": ref("ParamError")},
    },
}
_PAGED = {
    "type": "object",
    "required": ["totalFilteredRecords", "pageItems"],
    "properties": {
        "totalFilteredRecords": {"type": "integer"},
        "pageItems": {"type": "array", "items": {"type": "object"}},
    },
}
_RESULT = {
    "type": "object",
    "properties": {
        "commandId": {"type": "integer"},
        "officeId": {"type": "integer"},
        "clientId": {"type": "integer"},
        "loanId": {"type": "integer"},
        "resourceId": {"type": "integer", "nullable": True},
        "resourceExternalId": {"type": "string"},
        "rollbackTransaction": {"type": "boolean"},
        "changes": {"type": "object"},
    },
}
_TENANT = {
    "name": "Fineract-Platform-TenantId",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "enum": ["default"]},
}
_KEY = {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}}
_TENANT_REFUSED = response(
    "No or unknown tenant (servlet sendError)", {"type": "string"}, media_type="text/plain"
)


def _errors(*statuses: int) -> dict[str, Any]:
    out = {str(s): response(f"ApiGlobalErrorResponse ({s})", ref("Error")) for s in statuses}
    if "400" in out:
        out["400"] = {
            "description": "Validation error, or no/unknown tenant (plain text)",
            "content": {
                "application/json": {"schema": ref("Error")},
                "text/plain": {"schema": {"type": "string"}},
            },
        }
    return out


_COMMON = (400, 401, 403, 404, 500, 503)


def _get(summary: str, ok: dict[str, Any], *params: dict[str, Any]) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": [_TENANT, *params],
        "responses": {"200": response("OK", ok), **_errors(*_COMMON)},
    }


def _command(summary: str, body: dict[str, Any], *params: dict[str, Any]) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": [_TENANT, _KEY, *params],
        "requestBody": json_body(body),
        "responses": {
            "200": response("Command result, or maker-checker acknowledgement", ref("CommandResult")),
            "425": response("Same Idempotency-Key still processing: the request JSON", {"type": "object"}),
            **_errors(*_COMMON, 409, 413),
        },
    }


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


_REPAYMENT = {
    "type": "object",
    "required": ["transactionDate", "transactionAmount", "locale", "dateFormat"],
    "properties": {
        "transactionDate": {"type": "string", "example": "15 March 2024"},
        "transactionAmount": {"oneOf": [{"type": "number"}, {"type": "string"}]},
        "locale": {"type": "string", "enum": ["en"]},
        "dateFormat": {"type": "string", "enum": ["dd MMMM yyyy", "yyyy-MM-dd"]},
        "externalId": {"type": "string", "maxLength": 100},
        "paymentTypeId": {"type": "integer"},
        "note": {"type": "string"},
    },
}
_CLIENT = {
    "type": "object",
    "required": ["officeId"],
    "properties": {
        "officeId": {"type": "integer"},
        "firstname": {"type": "string"},
        "lastname": {"type": "string"},
        "fullname": {"type": "string"},
        "externalId": {"type": "string", "maxLength": 100},
        "active": {"type": "boolean"},
        "activationDate": {"type": "string"},
        "dateFormat": {"type": "string"},
        "locale": {"type": "string"},
        "mobileNo": {"type": "string"},
    },
}
_COMMAND_QUERY = {
    "name": "command",
    "in": "query",
    "required": True,
    "schema": {"type": "string", "enum": ["repayment"]},
}
_PAGING = [
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    {
        "name": "orderBy",
        "in": "query",
        "schema": {"type": "string", "enum": ["id", "displayName", "accountNo", "externalId"]},
    },
    {"name": "sortOrder", "in": "query", "schema": {"type": "string", "enum": ["ASC", "DESC"]}},
    {"name": "externalId", "in": "query", "schema": {"type": "string"}},
]

OPENAPI = document(
    title="Apache Fineract API (fake subset)",
    description="Authentication, clients, loans, repayments and maker-checker as the fake serves them.",
    security=[{"basicAuth": []}],
    paths={
        f"{BASE}/authentication": {
            "post": {
                "summary": "Authenticate (returns base64(username:password))",
                "security": [],
                "parameters": [_TENANT],
                "requestBody": json_body(
                    {
                        "type": "object",
                        "required": ["username", "password"],
                        "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
                    }
                ),
                "responses": {
                    "200": response(
                        "Authenticated user",
                        {
                            "type": "object",
                            "required": [
                                "username",
                                "userId",
                                "base64EncodedAuthenticationKey",
                                "authenticated",
                            ],
                            "properties": {
                                "username": {"type": "string"},
                                "userId": {"type": "integer"},
                                "base64EncodedAuthenticationKey": {"type": "string"},
                                "authenticated": {"type": "boolean"},
                                "permissions": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    ),
                    **_errors(400, 401, 413, 500, 503),
                },
            }
        },
        f"{BASE}/clients": {
            "get": _get("List clients (paged)", _PAGED, *_PAGING),
            "post": _command("Create a client", _CLIENT),
        },
        f"{BASE}/clients/{{client_id}}": {
            "get": _get("Retrieve a client", {"type": "object"}, _path("client_id"))
        },
        f"{BASE}/loans": {"get": _get("List loans (paged)", _PAGED, *_PAGING[:2])},
        f"{BASE}/loans/{{loan_id}}": {
            "get": _get(
                "Retrieve a loan",
                {"type": "object", "required": ["id", "status", "summary"]},
                _path("loan_id"),
                {
                    "name": "associations",
                    "in": "query",
                    "schema": {"type": "string", "enum": ["transactions", "all"]},
                },
            )
        },
        f"{BASE}/loans/{{loan_id}}/transactions": {
            "post": _command("Make a repayment", _REPAYMENT, _path("loan_id"), _COMMAND_QUERY)
        },
        f"{BASE}/loans/external-id/{{loan_external_id}}/transactions": {
            "post": _command(
                "Make a repayment on a loan found by external id",
                _REPAYMENT,
                _path("loan_external_id"),
                _COMMAND_QUERY,
            )
        },
        f"{BASE}/loans/{{loan_id}}/transactions/{{tx_id}}": {
            "get": _get("Retrieve a loan transaction", {"type": "object"}, _path("loan_id"), _path("tx_id"))
        },
        f"{BASE}/loans/{{loan_id}}/transactions/external-id/{{external_id}}": {
            "get": _get(
                "Retrieve a loan transaction by its external id",
                {"type": "object"},
                _path("loan_id"),
                _path("external_id"),
            )
        },
        f"{BASE}/makercheckers": {
            "get": _get(
                "Commands awaiting approval",
                {"type": "array", "items": {"type": "object"}},
                {"name": "actionName", "in": "query", "schema": {"type": "string"}},
                {"name": "entityName", "in": "query", "schema": {"type": "string"}},
            )
        },
        f"{BASE}/makercheckers/{{audit_id}}": {
            "post": {
                "summary": "Approve or reject a command",
                "parameters": [
                    _TENANT,
                    _path("audit_id"),
                    {
                        "name": "command",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "enum": ["approve", "reject"]},
                    },
                ],
                "responses": {
                    "200": response("Decision result", ref("CommandResult")),
                    **_errors(*_COMMON, 409),
                },
            },
            "delete": _get("Delete a command awaiting approval", ref("CommandResult"), _path("audit_id")),
        },
    },
    components={
        "securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}},
        "schemas": {"Error": _ERROR, "ParamError": _PARAM_ERROR, "CommandResult": _RESULT},
        "responses": {"TenantRefused": _TENANT_REFUSED},
    },
)
