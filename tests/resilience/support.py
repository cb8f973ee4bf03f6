"""Helpers for the resilience tests: the scripted HTTP app and polling with a deadline.

The app answers each path with scripted replies, in order (status, headers, JSON body, optionally a
gate that holds the answer until the test opens it), and records what arrived. Two stateful paths
imitate an OAuth upstream the way Daraja behaves: ``/oauth/token`` issues ``tok-1``, ``tok-2``, ...
and every new token revokes the previous one; ``/oauth/protected`` answers 200 only to the current
token and otherwise Daraja's expired-token error (a 404 with ``404.001.03``).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


@dataclass(frozen=True, kw_only=True)
class Reply:
    status: int = 200
    json: Any = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    gate: threading.Event | None = None
    """If set, the answer waits (in a worker thread) until the test sets it."""


@dataclass(frozen=True, kw_only=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """What the app answers and what it received; thread-safe (the app runs in uvicorn's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._replies: dict[str, deque[Reply]] = {}
        self._seen: list[Seen] = []
        self._tokens = itertools.count(1)
        self.current_token: str | None = None
        self.base_url = ""

    def reset(self) -> None:
        with self._lock:
            self._replies.clear()
            self._seen.clear()
            self._tokens = itertools.count(1)
            self.current_token = None

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._replies.setdefault(path, deque()).extend(replies)

    def seen(self, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self._seen if path is None or s.path == path]

    def revoke(self) -> None:
        with self._lock:
            self.current_token = None

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        with self._lock:
            self._seen.append(
                Seen(method=request.method, path=path, headers=dict(request.headers), body=body)
            )
            queue = self._replies.get(path)
            reply = queue.popleft() if queue else None
        if reply is not None and reply.gate is not None:
            await asyncio.to_thread(reply.gate.wait, 30)
        if path == "/oauth/token" and reply is None:
            with self._lock:
                self.current_token = f"tok-{next(self._tokens)}"
                token = self.current_token
            return JSONResponse({"access_token": token, "expires_in": "3599"})
        if path == "/oauth/protected" and reply is None:
            with self._lock:
                valid = self.current_token is not None and request.headers.get("authorization") == (
                    f"Bearer {self.current_token}"
                )
            if valid:
                return JSONResponse({"ok": True})
            return JSONResponse(
                {"requestId": "1-2-3", "errorCode": "404.001.03", "errorMessage": "Invalid Access Token"},
                status_code=404,
            )
        reply = reply or Reply()
        return JSONResponse(reply.json, status_code=reply.status, headers=reply.headers)


def wait_for(condition: Any, what: str, timeout: float = 10.0) -> None:
    """Poll ``condition()`` until true, failing after ``timeout`` real seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.001)


async def wait_for_async(condition: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.001)
