"""What every fake upstream shares: its store, its credentials, the admin API and the request log.

Each fake is a Starlette application served by uvicorn. Starlette rather than FastAPI because the
fakes must answer malformed input with the *real* API's error shape (Stripe's ``{"error": {...}}``,
Daraja's ``{requestId, errorCode, errorMessage}``), which FastAPI's automatic validation would
pre-empt with its own 422 body, and because a thin stack keeps each fake far from being the
bottleneck of a scenario.

The admin API lives on the same port under ``/__admin/`` and is never logged as upstream traffic: the
harness reaches it directly, not through Toxiproxy.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fake_upstreams._store import UpstreamStore

__all__ = ["ADMIN_PREFIX", "FakeUpstream", "RequestLogMiddleware", "build_app"]

ADMIN_PREFIX = "/__admin"
CORRELATION_HEADERS = (b"x-correlation-id", b"x-request-id")


@dataclass(kw_only=True)
class FakeUpstream:
    """The state of one running fake."""

    name: str
    store: UpstreamStore
    credentials: Mapping[str, str]
    rng: random.Random

    @classmethod
    def open(cls, name: str, state_dir: Path, seed: int, credentials: Mapping[str, str]) -> FakeUpstream:
        return cls(
            name=name,
            store=UpstreamStore(state_dir / f"{name}.sqlite3"),
            credentials=credentials,
            rng=random.Random(seed),
        )


class RequestLogMiddleware:
    """Writes one row per upstream request: what arrived and what the fake answered.

    A plain ASGI middleware (not ``BaseHTTPMiddleware``) so that it sees the status the application
    sent even when the client has already gone, e.g. when Toxiproxy cut the response off.
    """

    def __init__(self, app: ASGIApp, fake: FakeUpstream) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        t_mono, t_wall = time.monotonic(), time.time()
        headers = dict(scope["headers"])
        status = 500
        response_headers: dict[bytes, bytes] = {}

        async def send_and_watch(message: Message) -> None:
            nonlocal status, response_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers = dict(message.get("headers", []))
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            correlation = next((headers[h] for h in CORRELATION_HEADERS if h in headers), None)
            key = headers.get(b"idempotency-key")
            replayed = (
                response_headers.get(b"idempotent-replayed") == b"true"
                or response_headers.get(b"x-served-from-cache") == b"true"
            )
            fault = scope.get("state", {}).get("fault")
            self.fake.store.log_request(
                t_mono=t_mono,
                t_wall=t_wall,
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration=time.monotonic() - t_mono,
                idempotency_key=key.decode("latin-1") if key else None,
                correlation_id=correlation.decode("latin-1") if correlation else None,
                replayed=replayed,
                fault=fault,
            )


def _since(request: Request) -> int:
    try:
        return max(int(request.query_params.get("since", "0")), 0)
    except ValueError:
        return 0


def admin_routes(fake: FakeUpstream) -> list[BaseRoute]:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "upstream": fake.name, "pid": os.getpid()})

    async def credentials(request: Request) -> Response:
        return JSONResponse(dict(fake.credentials))

    async def ledger(request: Request) -> Response:
        return JSONResponse({"upstream": fake.name, "effects": fake.store.effects(_since(request))})

    async def requests(request: Request) -> Response:
        return JSONResponse({"upstream": fake.name, "requests": fake.store.requests(_since(request))})

    async def reset(request: Request) -> Response:
        fake.store.reset()
        return Response(status_code=204)

    return [
        Route(f"{ADMIN_PREFIX}/health", health, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/credentials", credentials, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/ledger", ledger, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/requests", requests, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/reset", reset, methods=["POST"]),
    ]


def build_app(
    fake: FakeUpstream,
    routes: Sequence[BaseRoute],
    *,
    exception_handlers: Mapping[Any, Any] | None = None,
) -> Starlette:
    app = Starlette(
        routes=[*admin_routes(fake), *routes],
        exception_handlers=dict(exception_handlers or {}),
    )
    app.state.fake = fake
    app.add_middleware(RequestLogMiddleware, fake=fake)
    return app
