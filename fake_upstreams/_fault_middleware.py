"""Realises request fault rules around the fake's application (see :mod:`fake_upstreams._faults`).

A plain ASGI middleware, inside the request log (which therefore records what the client really got,
the rule that fired and, for faults applied after the handler, the status the handler produced).
Pre-execution faults answer without calling the application, so no effect is applied; the others run
the application to completion (its effects are committed) and then spoil the answer.

Dropping a connection needs the transport, which ASGI does not expose: the fakes' HTTP protocol
(:mod:`fake_upstreams._protocol`, uvicorn's httptools one) offers an ``abort`` callable in
``scope["extensions"]``. Under a server without it (uvicorn's h11 protocol) a drop degrades to
headers followed by a connection closed mid-body, which a client sees as the same protocol error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fake_upstreams._faults import PRE_EXECUTION_KINDS, FaultRule

if TYPE_CHECKING:
    from fake_upstreams._base import FakeUpstream

__all__ = ["ABORT_EXTENSION", "FaultMiddleware"]

ABORT_EXTENSION = "fake_upstreams.abort"
ADMIN_PREFIX = "/__admin"

Headers = list[tuple[bytes, bytes]]


class _Captured:
    __slots__ = ("body", "headers", "status")

    def __init__(self) -> None:
        self.status = 500
        self.headers: Headers = []
        self.body = b""


def _with_header(headers: Headers, name: bytes, value: bytes) -> Headers:
    return [(k, v) for k, v in headers if k.lower() != name] + [(name, value)]


class FaultMiddleware:
    def __init__(self, app: ASGIApp, fake: FakeUpstream) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.fake.faults.active or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        rule = self.fake.faults.pick(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["fault"] = rule.kind
        state["fault_rule"] = rule.id
        if rule.kind in PRE_EXECUTION_KINDS:
            response = self.fake.dialect.fault_response(rule, scope)
            await response(scope, receive, send)
            return
        if rule.kind == "delay" and rule.params["phase"] == "before":
            await self.fake.clock.sleep(rule.params["ms"] / 1000)
            await self.app(scope, receive, send)
            return
        captured = await self._capture(scope, receive)
        state["app_status"] = captured.status
        await self._spoil(rule, captured, scope, receive, send)

    async def _capture(self, scope: Scope, receive: Receive) -> _Captured:
        captured = _Captured()
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured.status = message["status"]
                captured.headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        captured.body = b"".join(chunks)
        return captured

    async def _spoil(
        self, rule: FaultRule, captured: _Captured, scope: Scope, receive: Receive, send: Send
    ) -> None:
        params = rule.params
        match rule.kind:
            case "delay":
                await self.fake.clock.sleep(params["ms"] / 1000)
                await _send(send, captured.status, captured.headers, captured.body)
            case "commit_then_fail" if params["mode"] == "error":
                response = self.fake.dialect.error_response(params["status"], scope)
                await response(scope, receive, send)
            case "commit_then_fail":
                await _drop(scope, send, captured)
            case "malformed_body" if params["mode"] == "garbage":
                body = captured.body[: max(len(captured.body) // 2, 1)] if captured.body else b"{"
                headers = _with_header(captured.headers, b"content-length", str(len(body)).encode())
                await _send(send, captured.status, headers, body)
            case "malformed_body":
                await _truncate(scope, send, captured)
            case "wrong_content_type":
                headers = _with_header(captured.headers, b"content-type", params["content_type"].encode())
                await _send(send, captured.status, headers, captured.body)
            case _:  # pragma: no cover - parse_rule admits no other kind
                raise AssertionError(f"unrealised fault kind {rule.kind!r}")


async def _send(send: Send, status: int, headers: Headers, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _truncate(scope: Scope, send: Send, captured: _Captured) -> None:
    """Headers promising the whole body, half of it, then the connection closes."""
    body = captured.body or b"{}"
    headers = _with_header(captured.headers, b"content-length", str(len(body)).encode())
    await send({"type": "http.response.start", "status": captured.status, "headers": headers})
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    abort: Callable[[], Any] | None = scope.get("extensions", {}).get(ABORT_EXTENSION)
    if abort is not None:
        abort()
    # Without the extension, returning with the response unfinished makes the server close it.


async def _drop(scope: Scope, send: Send, captured: _Captured) -> None:
    abort: Callable[[], Any] | None = scope.get("extensions", {}).get(ABORT_EXTENSION)
    if abort is not None:
        abort()
        return
    await _truncate(scope, send, captured)
