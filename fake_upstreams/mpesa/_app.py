"""A fake of Safaricom's M-Pesa Daraja API: OAuth, STK push and query, B2C, with their callbacks.

Errors come in Daraja's envelope with the HTTP status taken from the error code (so no 429, ever:
throttling is ``500.003.02``). Routes that do not exist answer ``404.001.01``, wrong methods
``405.001``. See :mod:`._stk` and :mod:`._b2c` for how outcomes and callbacks are produced and where
a client's operation id travels.
"""

from __future__ import annotations

from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from fake_upstreams._base import FakeUpstream, build_app
from fake_upstreams._faults import FaultRule
from fake_upstreams._settings import Setting, boolean, delays, number, weights
from fake_upstreams.mpesa._b2c import B2C_RESULT_CODES, B2CPayments
from fake_upstreams.mpesa._core import DarajaCore
from fake_upstreams.mpesa._errors import DarajaError, daraja_error
from fake_upstreams.mpesa._openapi import OPENAPI
from fake_upstreams.mpesa._stk import STK_RESULT_CODES, StkPush

__all__ = ["SETTINGS", "DarajaDialect", "create_app"]

SETTINGS = {
    "token_lifetime": Setting(3599.0, number(1, 86_400), "seconds an access token lives (expires_in)"),
    "single_token": Setting(True, boolean, "a new token revokes the previous ones (Daraja FAQ 3)"),
    "stk_delay": Setting(1.0, number(0, 3600), "seconds until the customer answers a prompt"),
    "stk_results": Setting(
        {"0": 1.0}, weights(STK_RESULT_CODES), "weights of STK result codes, drawn per push (seeded)"
    ),
    "lock_subscriber": Setting(True, boolean, "refuse a second push while a prompt is live on the phone"),
    "duplicate_window": Setting(120.0, number(0, 86_400), "seconds in which the same amount/phone gives 17"),
    "b2c_delay": Setting(1.0, number(0, 3600), "seconds until a B2C payment's result"),
    "b2c_results": Setting(
        {"0": 1.0}, weights(B2C_RESULT_CODES), "weights of B2C outcomes ('timeout': queue)"
    ),
    "callback_retry_delays": Setting([], delays(), "retries of a failed callback (Daraja documents none)"),
}


class DarajaDialect:
    """Injected faults in Daraja's words (errorCode prefix = HTTP status; 502-504 codes are the fake's
    own, following that rule, since Daraja documents none)."""

    error_statuses = frozenset({500, 502, 503, 504})
    throttle_variants = frozenset({"spike_arrest", "quota", "system_busy"})
    throttle_default = "spike_arrest"
    _ERRORS: ClassVar[dict[int, tuple[str, str]]] = {
        500: ("500.003.1001", "Internal Server Error"),
        502: ("502.003.01", "Bad Gateway"),
        503: ("503.003.01", "Service Unavailable"),
        504: ("504.003.01", "Gateway Timeout"),
    }
    _THROTTLES: ClassVar[dict[str, tuple[str, str]]] = {
        "spike_arrest": ("500.003.02", "Error Occurred: Spike Arrest Violation"),
        "quota": ("500.003.03", "Quota Violation"),
        "system_busy": ("500.003.02", "System is busy. Please try again in few minutes."),
    }

    def __init__(self, core: DarajaCore) -> None:
        self.core = core

    def fault_response(self, rule: FaultRule, scope: Scope) -> Response:
        rng = self.core.fake.rng
        if rule.kind == "throttle":
            code, message = self._THROTTLES[rule.params["variant"]]
            return daraja_error(DarajaError(code, message), rng)
        if rule.kind == "token_revocation":
            self.core.revoke_tokens()
            return daraja_error(DarajaError("404.001.03", "Invalid Access Token"), rng)
        return self.error_response(rule.params["status"], scope)

    def error_response(self, status: int, scope: Scope) -> Response:
        code, message = self._ERRORS[status]
        return daraja_error(DarajaError(code, message), self.core.fake.rng)


def create_app(fake: FakeUpstream) -> Starlette:
    fake.declare_settings(SETTINGS)
    core = DarajaCore(fake)
    fake.dialect = DarajaDialect(core)
    fake.openapi = OPENAPI
    stk = StkPush(core)
    b2c = B2CPayments(core)

    async def on_daraja_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DarajaError)
        return daraja_error(exc, fake.rng)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405 and request.url.path.startswith("/oauth/"):
            error = DarajaError("404.001.04", "Invalid Authentication Header")
        elif exc.status_code == 405:
            error = DarajaError("405.001", "Method Not Allowed")
        else:
            error = DarajaError("404.001.01", "Resource not found")
        return daraja_error(error, fake.rng)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        return daraja_error(DarajaError("500.003.1001", "Internal Server Error"), fake.rng)

    routes = [
        Route("/oauth/v1/generate", core.generate_token, methods=["GET"]),
        Route("/mpesa/stkpush/v1/processrequest", stk.push, methods=["POST"]),
        Route("/mpesa/stkpushquery/v1/query", stk.query, methods=["POST"]),
        Route("/mpesa/b2c/v3/paymentrequest", b2c.pay, methods=["POST"]),
        Route("/mpesa/b2c/v1/paymentrequest", b2c.pay, methods=["POST"]),
    ]
    handlers: dict[Any, Any] = {
        DarajaError: on_daraja_error,
        HTTPException: on_http_error,
        Exception: on_unexpected,
    }
    app = build_app(fake, routes, exception_handlers=handlers)
    app.state.daraja = core
    return app
