"""A fake of Apache Fineract (Mifos X core banking) under ``/fineract-provider/api/v1``.

The demo tenant (``default``) holds a dozen clients and ten active loans (:mod:`._demo`); users are
``mifos`` (a maker once maker-checker is on) and ``checker`` (holds CHECKER_SUPER_USER). See
:mod:`._core` for the command pipeline (idempotency, maker-checker) and :mod:`._resources` for the
endpoints and where a client's operation id travels.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Scope

from fake_upstreams._base import FakeUpstream, build_app
from fake_upstreams._faults import FaultRule
from fake_upstreams._settings import Setting, SettingsError, boolean, number, string_list
from fake_upstreams.cbs._core import FineractCore
from fake_upstreams.cbs._demo import seed_demo
from fake_upstreams.cbs._errors import (
    FineractError,
    TenantError,
    fineract_error,
    tenant_error,
    unauthenticated,
)
from fake_upstreams.cbs._openapi import OPENAPI
from fake_upstreams.cbs._resources import MAKER_CHECKER_TASKS, Resources

__all__ = ["BASE", "SETTINGS", "FineractDialect", "create_app"]

BASE = "/fineract-provider/api/v1"


def _in_flight_status(value: Any) -> int:
    if value not in (425, 409):
        raise SettingsError(f"must be 425 (Fineract 1.9+) or 409 (before FINERACT-2000), got {value!r}")
    return int(value)


def _tasks(value: Any) -> list[str]:
    tasks = string_list(value)
    unknown = sorted(set(tasks) - set(MAKER_CHECKER_TASKS))
    if unknown:
        raise SettingsError(f"has unknown tasks {unknown}; known: {list(MAKER_CHECKER_TASKS)}")
    return tasks


SETTINGS = {
    "idempotency_enabled": Setting(True, boolean, "honour Idempotency-Key (Fineract 1.9+; false: 1.8.x)"),
    "in_flight_status": Setting(425, _in_flight_status, "status for a key still being processed"),
    "processing_delay": Setting(0.0, number(0, 60), "seconds each command takes (opens the 425 window)"),
    "maker_checker_enabled": Setting(False, boolean, "global maker-checker switch (configuration)"),
    "maker_checker_tasks": Setting([], _tasks, "tasks that need a checker, e.g. REPAYMENT_LOAN"),
    "locked_loans": Setting([], string_list, "loan ids locked by the close-of-business job (409)"),
}


def _conflict_type(path: str) -> str:
    for segment, name in (("/loans", "loan"), ("/clients", "client"), ("/makercheckers", "commandsource")):
        if segment in path:
            return name
    return "command"


class FineractDialect:
    """Injected faults in Fineract's words. 409 is an optimistic-lock conflict; 429 can only come from
    a gateway in front of Fineract (which never sends it), so it is the gateway's HTML page."""

    error_statuses = frozenset({409, 500, 502, 503, 504})
    throttle_variants = frozenset({"gateway"})
    throttle_default = "gateway"

    def fault_response(self, rule: FaultRule, scope: Scope) -> Response:
        if rule.kind == "throttle":
            return HTMLResponse(
                "<html><head><title>429 Too Many Requests</title></head><body><center>"
                "<h1>429 Too Many Requests</h1></center><hr><center>nginx</center></body></html>",
                status_code=429,
                headers={"Retry-After": f"{rule.params['retry_after']:g}"},
            )
        if rule.kind == "token_revocation":
            return fineract_error(unauthenticated())
        return self.error_response(rule.params["status"], scope)

    def error_response(self, status: int, scope: Scope) -> Response:
        if status == 409:
            kind = _conflict_type(scope["path"])
            message = (
                "The server is currently unable to handle the request due to concurrent modification of the"
                f" {kind}, please try again"
            )
            error = FineractError(409, f"error.msg.platform.service.{kind}.conflict", message, message)
        elif status == 500:
            error = FineractError(
                500,
                "error.msg.platform.server.side.error",
                "An unexpected error occured on the platform server.",
                "An unexpected error occured on the platform server.",
            )
        else:
            message = "The server is currently unable to handle the request , please try after some time."
            error = FineractError(status, "error.msg.platform.service.unavailable", message, message)
        return fineract_error(error)


def create_app(fake: FakeUpstream) -> Starlette:
    fake.declare_settings(SETTINGS)
    core = FineractCore(fake)
    fake.dialect = FineractDialect()
    fake.openapi = OPENAPI
    resources = Resources(core)
    seed_demo(fake.store)
    fake.reset_hooks.append(lambda: seed_demo(fake.store))

    async def on_fineract_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FineractError)
        return fineract_error(exc)

    async def on_tenant_error(request: Request, exc: Exception) -> Response:
        return tenant_error(str(exc))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if not request.url.path.startswith(BASE + "/"):
            return PlainTextResponse("Not Found", status_code=404)
        try:
            core.authenticate(request)
        except TenantError as tenant:
            return tenant_error(str(tenant))
        except FineractError as error:
            return fineract_error(error)
        if exc.status_code == 405:
            return fineract_error(
                FineractError(
                    405, "error.msg.method.not.allowed", "HTTP 405 Method Not Allowed", "Method not allowed."
                )
            )
        return fineract_error(
            FineractError(
                404,
                "error.msg.resource.not.found",
                "The requested resource is not available.",
                "The requested resource is not available.",
            )
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        return fineract_error(
            FineractError(
                500,
                "error.msg.platform.server.side.error",
                "An unexpected error occured on the platform server.",
                "An unexpected error occured on the platform server.",
            )
        )

    r = resources
    routes = [
        Route(f"{BASE}/authentication", r.authentication, methods=["POST"]),
        Route(f"{BASE}/clients", r.list_clients, methods=["GET"]),
        Route(f"{BASE}/clients", r.create_client, methods=["POST"]),
        Route(f"{BASE}/clients/{{client_id}}", r.get_client, methods=["GET"]),
        Route(f"{BASE}/loans", r.list_loans, methods=["GET"]),
        Route(
            f"{BASE}/loans/external-id/{{loan_external_id}}/transactions",
            r.loan_transaction_by_external_id,
            methods=["POST"],
        ),
        Route(f"{BASE}/loans/{{loan_id}}", r.get_loan, methods=["GET"]),
        Route(f"{BASE}/loans/{{loan_id}}/transactions", r.loan_transaction, methods=["POST"]),
        Route(
            f"{BASE}/loans/{{loan_id}}/transactions/external-id/{{external_id}}",
            r.get_transaction_by_external_id,
            methods=["GET"],
        ),
        Route(f"{BASE}/loans/{{loan_id}}/transactions/{{tx_id}}", r.get_transaction, methods=["GET"]),
        Route(f"{BASE}/makercheckers", r.list_makercheckers, methods=["GET"]),
        Route(f"{BASE}/makercheckers/{{audit_id}}", r.decide, methods=["POST"]),
        Route(f"{BASE}/makercheckers/{{audit_id}}", r.delete_makerchecker, methods=["DELETE"]),
        Route(f"{BASE}/configurations/name/{{name}}", r.get_configuration, methods=["GET"]),
        Route(f"{BASE}/configurations/{{config_id}}", r.put_configuration, methods=["PUT"]),
        Route(f"{BASE}/permissions", r.get_permissions, methods=["GET"]),
        Route(f"{BASE}/permissions", r.put_permissions, methods=["PUT"]),
    ]
    handlers: dict[Any, Any] = {
        FineractError: on_fineract_error,
        TenantError: on_tenant_error,
        HTTPException: on_http_error,
        Exception: on_unexpected,
    }
    app = build_app(fake, routes, exception_handlers=handlers)
    app.state.fineract = core
    return app
