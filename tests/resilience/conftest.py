"""Fixtures for the resilience tests: a real HTTP server with scripted answers, and virtual time.

The server is the scripted Starlette app of :mod:`tests.resilience.support`, served by uvicorn on a
free loopback port in a thread of the test process, started once per session (httpx's own test suite
does the same). Each test starts from an empty script.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from harness.resilience import VirtualClock
from tests.resilience.support import ScriptedServer


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def scripted_server_session() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    app = Starlette(
        routes=[
            Route("/{path:path}", scripted.handle, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ]
    )
    port = _free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        ws="none",
        http="h11",
        date_header=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="scripted-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the scripted uvicorn server did not start within 10 s", pytrace=False)
        time.sleep(0.01)
    scripted.base_url = f"http://127.0.0.1:{port}"
    try:
        yield scripted
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def server(scripted_server_session: ScriptedServer) -> ScriptedServer:
    scripted_server_session.reset()
    return scripted_server_session


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=1000.0)
