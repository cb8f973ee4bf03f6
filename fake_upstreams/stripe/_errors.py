"""Stripe's error envelope: ``{"error": {"type", "code", "message", "param", ...}}``."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

__all__ = ["StripeError", "stripe_error"]


class StripeError(Exception):
    """Raised inside a handler; rendered as Stripe renders errors."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": type_, "message": message}
        if code is not None:
            self.body["code"] = code
            self.body["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param is not None:
            self.body["param"] = param
        self.body.update(extra or {})
        self.headers = headers or {}


def stripe_error(exc: StripeError) -> JSONResponse:
    return JSONResponse({"error": exc.body}, status_code=exc.status, headers=exc.headers)
