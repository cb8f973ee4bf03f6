"""Fineract's error answers: the ``ApiGlobalErrorResponse`` envelope, and the two that are not it.

Envelope: ``{"developerMessage", "httpStatusCode": "400" (a string), "defaultUserMessage",
"userMessageGlobalisationCode", "errors": [{"developerMessage", "defaultUserMessage",
"userMessageGlobalisationCode", "parameterName", "value", "args": [{"value"}]}]}``.

Not the envelope: a missing or unknown tenant is refused by the servlet filter with a plain-text 400
(``sendError``) and ``WWW-Authenticate: Basic realm="Fineract Platform API"``; and a request still
running under the same Idempotency-Key gets 425 with the original request JSON as its body.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, PlainTextResponse

__all__ = [
    "REALM",
    "FineractError",
    "TenantError",
    "domain_rule",
    "fineract_error",
    "not_found",
    "param_error",
    "tenant_error",
    "unauthenticated",
    "validation",
]

REALM = 'Basic realm="Fineract Platform API"'


class FineractError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        developer_message: str,
        user_message: str,
        errors: list[dict[str, Any]] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(developer_message)
        self.status = status
        self.body: dict[str, Any] = {
            "developerMessage": developer_message,
            "httpStatusCode": str(status),
            "defaultUserMessage": user_message,
            "userMessageGlobalisationCode": code,
            "errors": errors or [],
        }
        self.headers = headers or {}


class TenantError(Exception):
    """Refused before the API layer: plain text, no envelope."""


def param_error(code: str, message: str, parameter: str | None = None, value: Any = None) -> dict[str, Any]:
    return {
        "developerMessage": message,
        "defaultUserMessage": message,
        "userMessageGlobalisationCode": code,
        "parameterName": parameter or "id",
        "value": value,
        "args": [] if value is None else [{"value": value}],
    }


def validation(*errors: dict[str, Any]) -> FineractError:
    return FineractError(
        400,
        "validation.msg.validation.errors.exist",
        "The request was invalid. This typically will happen due to validation errors which are provided.",
        "Validation errors exist.",
        list(errors),
    )


def domain_rule(code: str, message: str, value: Any = None) -> FineractError:
    return FineractError(
        403,
        "validation.msg.domain.rule.violation",
        "Request was understood but caused a domain rule violation.",
        "Errors contain reason for domain rule violation.",
        [param_error(code, message, value=value)],
    )


def not_found(code: str, message: str, value: Any) -> FineractError:
    return FineractError(
        404,
        "error.msg.resource.not.found",
        "The requested resource is not available.",
        "The requested resource is not available.",
        [param_error(code, message, value=value)],
    )


def unauthenticated() -> FineractError:
    return FineractError(
        401,
        "error.msg.not.authenticated",
        "Invalid authentication details were passed in api request.",
        "Unauthenticated. Please login.",
        headers={"WWW-Authenticate": REALM},
    )


def fineract_error(exc: FineractError) -> JSONResponse:
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)


def tenant_error(message: str) -> PlainTextResponse:
    return PlainTextResponse(message, status_code=400, headers={"WWW-Authenticate": REALM})
