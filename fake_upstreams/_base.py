"""What every fake upstream shares: its store, credentials, clock, settings, fault rules, scheduler,
the admin API and the request log.

Each fake is a Starlette application served by uvicorn. Starlette rather than FastAPI because the
fakes must answer malformed input with the *real* API's error shape (Stripe's ``{"error": {...}}``,
Daraja's ``{requestId, errorCode, errorMessage}``, Fineract's ``ApiGlobalErrorResponse``), which
FastAPI's automatic validation would pre-empt with its own 422 body, and because a thin stack keeps
each fake far from being the bottleneck of a scenario.

The admin API lives on the same port under ``/__admin/`` and is never logged as upstream traffic: the
harness reaches it directly, not through Toxiproxy.

======================================  =====================================================
``GET /__admin/health``                 liveness, the fake's name and pid
``GET /__admin/credentials``            the test credentials (JSON object of strings)
``GET /__admin/ledger?since=N``         effects applied (money moved, prompts sent, ...)
``GET /__admin/requests?since=N``       every request received, with the fault that fired
``GET /__admin/deliveries?since=N``     every callback/webhook delivery attempt
``GET /__admin/jobs``                   scheduled work (pending resolutions and callbacks)
``GET|POST /__admin/config``            run-time settings (partial JSON object to change)
``GET|POST|DELETE /__admin/faults``     fault rules: list, add one, clear all
``DELETE /__admin/faults/{id}``         remove one rule
``GET|POST /__admin/clock``             the API clock; ``{"advance": seconds}`` moves it on
``POST /__admin/reset``                 clean slate: data, faults, settings, clock, seeds
``GET /__admin/openapi.json``           the OpenAPI document of the fake's upstream API
======================================  =====================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import math
import os
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fake_upstreams._clock import SystemUpstreamClock, UpstreamClock
from fake_upstreams._fault_middleware import ADMIN_PREFIX, FaultMiddleware
from fake_upstreams._faults import Dialect, FaultBook, FaultRule, FaultRuleError, parse_rule
from fake_upstreams._scheduler import Scheduler
from fake_upstreams._settings import Setting, Settings, SettingsError
from fake_upstreams._store import UpstreamStore

__all__ = ["ADMIN_PREFIX", "FakeUpstream", "PlainDialect", "RequestLogMiddleware", "build_app"]

CORRELATION_HEADERS = (b"x-correlation-id", b"x-request-id")
_LOG_FLUSH_INTERVAL = 0.1


class PlainDialect:
    """Faults in a neutral shape, for a fake that has not declared its own (never the case in use)."""

    error_statuses = frozenset({500, 502, 503, 504})
    throttle_variants = frozenset({"rate_limit"})
    throttle_default = "rate_limit"

    def fault_response(self, rule: FaultRule, scope: Scope) -> Response:
        if rule.kind == "throttle":
            return JSONResponse(
                {"error": "rate limited"},
                status_code=429,
                headers={"Retry-After": str(rule.params["retry_after"])},
            )
        if rule.kind == "token_revocation":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return self.error_response(rule.params["status"], scope)

    def error_response(self, status: int, scope: Scope) -> Response:
        return JSONResponse({"error": "injected"}, status_code=status)


@dataclass(kw_only=True)
class FakeUpstream:
    """The state of one running fake."""

    name: str
    store: UpstreamStore
    credentials: Mapping[str, str]
    rng: random.Random
    seed: int = 0
    clock: UpstreamClock = field(default_factory=SystemUpstreamClock)
    faults: FaultBook = field(default_factory=lambda: FaultBook(random.Random(0)))
    settings: Settings = field(default_factory=lambda: Settings({}))
    dialect: Dialect = field(default_factory=PlainDialect)
    openapi: dict[str, Any] = field(default_factory=dict)
    reset_hooks: list[Callable[[], None]] = field(default_factory=list)
    scheduler: Scheduler = field(init=False)

    def __post_init__(self) -> None:
        self.scheduler = Scheduler(self)

    @classmethod
    def open(
        cls,
        name: str,
        state_dir: Path,
        seed: int,
        credentials: Mapping[str, str],
        *,
        clock: UpstreamClock | None = None,
    ) -> FakeUpstream:
        clock = clock or SystemUpstreamClock()
        return cls(
            name=name,
            store=UpstreamStore(state_dir / f"{name}.sqlite3", clock=clock),
            credentials=credentials,
            rng=random.Random(f"{name}:{seed}:ids"),
            seed=seed,
            clock=clock,
            faults=FaultBook(random.Random(f"{name}:{seed}:faults")),
        )

    def declare_settings(self, spec: Mapping[str, Setting]) -> None:
        self.settings = Settings(spec)

    def reset(self) -> None:
        """A clean slate for the next run: same credentials, same seed, nothing else kept."""
        self.scheduler.cancel_running()
        self.store.reset()
        self.faults.clear()
        self.settings.reset()
        self.clock.reset()
        self.rng.seed(f"{self.name}:{self.seed}:ids")
        self.faults.rng.seed(f"{self.name}:{self.seed}:faults")
        for hook in self.reset_hooks:
            hook()
        self.scheduler.wake()


class RequestLogMiddleware:
    """Writes one row per upstream request: what arrived and what the fake answered.

    A plain ASGI middleware (not ``BaseHTTPMiddleware``) so that it sees the status the application
    sent even when the client has already gone, e.g. when Toxiproxy cut the response off. ``status``
    is what went on the wire: 0 when the connection was dropped without an answer, 500 when the
    application raised; ``app_status`` is what the handler produced when a fault replaced it.
    ``retry_after`` is the ``Retry-After`` the answer carried, in seconds (an HTTP date is measured
    from when the answer was finished), so that checkers can judge whether clients waited for it.
    """

    def __init__(self, app: ASGIApp, fake: FakeUpstream) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        clock = self.fake.clock
        t_mono, t_wall = clock.monotonic(), clock.time()
        status: int | None = None
        response_headers: list[tuple[bytes, bytes]] = []

        async def send_and_watch(message: Message) -> None:
            nonlocal status, response_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers = list(message.get("headers", []))
            await send(message)

        raised = True
        try:
            await self.app(scope, receive, send_and_watch)
            raised = False
        finally:
            headers = dict(scope["headers"])
            correlation = next((headers[h] for h in CORRELATION_HEADERS if h in headers), None)
            key = headers.get(b"idempotency-key")
            replayed = any(
                name in (b"idempotent-replayed", b"x-served-from-cache") and value == b"true"
                for name, value in response_headers
            )
            state = scope.get("state", {})
            self.fake.store.log_request(
                t_mono=t_mono,
                t_wall=t_wall,
                method=scope["method"],
                path=scope["path"],
                query=scope.get("query_string", b"").decode("latin-1") or None,
                status=status if status is not None else (500 if raised else 0),
                app_status=state.get("app_status"),
                duration=clock.monotonic() - t_mono,
                idempotency_key=key.decode("latin-1") if key else None,
                correlation_id=correlation.decode("latin-1") if correlation else None,
                replayed=replayed,
                fault=state.get("fault"),
                fault_rule=state.get("fault_rule"),
                retry_after=_retry_after(response_headers, now_wall=clock.time()),
            )


def _retry_after(headers: list[tuple[bytes, bytes]], *, now_wall: float) -> float | None:
    """``Retry-After`` in seconds from delay-seconds or an HTTP date (RFC 9110 §10.2.3); else ``None``."""
    raw = next((value for name, value in headers if name.lower() == b"retry-after"), None)
    if raw is None:
        return None
    value = raw.decode("latin-1").strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = max(when.timestamp() - now_wall, 0.0)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _since(request: Request) -> int:
    try:
        return max(int(request.query_params.get("since", "0")), 0)
    except ValueError:
        return 0


def _bad(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=400)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    return json.loads(raw)


def admin_routes(fake: FakeUpstream) -> list[BaseRoute]:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "upstream": fake.name, "pid": os.getpid()})

    async def credentials(request: Request) -> Response:
        return JSONResponse(dict(fake.credentials))

    async def ledger(request: Request) -> Response:
        return JSONResponse({"upstream": fake.name, "effects": fake.store.effects(_since(request))})

    async def requests(request: Request) -> Response:
        return JSONResponse({"upstream": fake.name, "requests": fake.store.requests(_since(request))})

    async def deliveries(request: Request) -> Response:
        return JSONResponse({"upstream": fake.name, "deliveries": fake.store.deliveries(_since(request))})

    async def jobs(request: Request) -> Response:
        return JSONResponse({"upstream": fake.name, "jobs": fake.store.jobs()})

    async def reset(request: Request) -> Response:
        fake.reset()
        return Response(status_code=204)

    async def config(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"settings": fake.settings.to_json(), "doc": fake.settings.describe()})
        try:
            settings = fake.settings.update(await _json_body(request))
        except (SettingsError, ValueError) as exc:
            return _bad(str(exc))
        fake.scheduler.wake()
        return JSONResponse({"settings": settings})

    async def faults(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"faults": [rule.to_json() for rule in fake.faults.rules()]})
        if request.method == "DELETE":
            fake.faults.clear()
            return Response(status_code=204)
        try:
            rule = parse_rule(await _json_body(request), dialect=fake.dialect)
        except (FaultRuleError, ValueError) as exc:
            return _bad(str(exc))
        return JSONResponse(fake.faults.add(rule).to_json(), status_code=201)

    async def fault(request: Request) -> Response:
        try:
            rule_id = int(request.path_params["rule_id"])
        except ValueError:
            return _bad("a fault rule id is an integer")
        if not fake.faults.remove(rule_id):
            return JSONResponse({"error": f"no fault rule {rule_id}"}, status_code=404)
        return Response(status_code=204)

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = await _json_body(request)
                advance = body.get("advance") if isinstance(body, dict) else None
                if isinstance(advance, bool) or not isinstance(advance, int | float):
                    return _bad('send {"advance": seconds} with seconds >= 0')
                fake.clock.advance(float(advance))
            except ValueError as exc:
                return _bad(str(exc))
            fake.scheduler.wake()
        return JSONResponse({"api_time": fake.clock.api_time(), "time": fake.clock.time()})

    async def openapi(request: Request) -> Response:
        return JSONResponse(fake.openapi)

    return [
        Route(f"{ADMIN_PREFIX}/health", health, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/credentials", credentials, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/ledger", ledger, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/requests", requests, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/deliveries", deliveries, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/jobs", jobs, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/reset", reset, methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/config", config, methods=["GET", "POST"]),
        Route(f"{ADMIN_PREFIX}/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route(f"{ADMIN_PREFIX}/faults/{{rule_id}}", fault, methods=["DELETE"]),
        Route(f"{ADMIN_PREFIX}/clock", clock, methods=["GET", "POST"]),
        Route(f"{ADMIN_PREFIX}/openapi.json", openapi, methods=["GET"]),
    ]


async def _flush_log_forever(fake: FakeUpstream) -> None:
    while True:
        await fake.clock.sleep(_LOG_FLUSH_INTERVAL)
        fake.store.flush_requests()


def build_app(
    fake: FakeUpstream,
    routes: Sequence[BaseRoute],
    *,
    exception_handlers: Mapping[Any, Any] | None = None,
) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        flusher = asyncio.get_running_loop().create_task(_flush_log_forever(fake))
        await fake.scheduler.start()
        try:
            yield
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await fake.scheduler.stop()
            fake.store.flush_requests()

    app = Starlette(
        # The API's routes first: Starlette tries routes in order, and the API is the hot path.
        routes=[*routes, *admin_routes(fake)],
        exception_handlers=dict(exception_handlers or {}),
        lifespan=lifespan,
    )
    app.state.fake = fake
    app.add_middleware(FaultMiddleware, fake=fake)
    app.add_middleware(RequestLogMiddleware, fake=fake)
    return app
