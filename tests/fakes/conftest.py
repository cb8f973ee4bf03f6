"""Fixtures for the fake upstreams' tests: real fakes in child processes, real HTTP, real callbacks.

Each fake runs as the stack runs it: ``python -m fake_upstreams NAME --fd N`` on a socket this process
bound (so a killed fake can be restarted on the same port), with its state folder under pytest's
``tmp_path``. The three fakes are started once per session and reset before every test that uses one.
Callbacks and webhooks are received by a real ``http.server`` on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.stack import ChildProcess, UpstreamAdmin
from harness.stack._process import wait_until


@dataclass
class RunningFake:
    """One fake in a child process, restartable on the same port and state folder."""

    name: str
    state_dir: Path
    seed: int = 0
    http: str = "httptools"
    sock: socket.socket = field(init=False)
    process: ChildProcess | None = field(init=False, default=None)
    admin: UpstreamAdmin = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.set_inheritable(True)
        self.admin = UpstreamAdmin(self.url)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def start(self) -> RunningFake:
        argv = [
            sys.executable,
            "-m",
            "fake_upstreams",
            self.name,
            "--fd",
            str(self.sock.fileno()),
            "--state-dir",
            str(self.state_dir),
            "--seed",
            str(self.seed),
            "--http",
            self.http,
        ]
        self.process = ChildProcess(
            self.name, argv, log_path=self.state_dir / f"{self.name}.log", pass_fds=(self.sock.fileno(),)
        )
        self.process.start()
        wait_until(self.admin.healthy, timeout=30, child=self.process, what=f"fake {self.name}")
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown hook runs."""
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        self.admin.close()
        self.sock.close()

    def credentials(self) -> dict[str, str]:
        return self.admin.credentials()


@pytest.fixture(scope="session")
def fake_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningFake]]:
    started: list[RunningFake] = []

    def start(name: str, **kwargs: Any) -> RunningFake:
        fake = RunningFake(name, tmp_path_factory.mktemp(f"fake-{name}"), **kwargs).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture(scope="session")
def _stripe_session(fake_factory: Callable[..., RunningFake]) -> RunningFake:
    return fake_factory("stripe")


@pytest.fixture(scope="session")
def _mpesa_session(fake_factory: Callable[..., RunningFake]) -> RunningFake:
    return fake_factory("mpesa")


@pytest.fixture(scope="session")
def _cbs_session(fake_factory: Callable[..., RunningFake]) -> RunningFake:
    return fake_factory("cbs")


@pytest.fixture
def stripe_fake(_stripe_session: RunningFake) -> RunningFake:
    _stripe_session.admin.reset()
    return _stripe_session


@pytest.fixture
def mpesa_fake(_mpesa_session: RunningFake) -> RunningFake:
    _mpesa_session.admin.reset()
    return _mpesa_session


@pytest.fixture
def cbs_fake(_cbs_session: RunningFake) -> RunningFake:
    _cbs_session.admin.reset()
    return _cbs_session


# -- a real callback receiver ---------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Records every POST; answers each with the next of ``statuses`` (then 200)."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    receiver.deliveries.append(
                        Delivery(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def url(self, path: str = "/callback") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def received(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def wait_for(self, count: int, *, timeout: float = 10.0, path: str | None = None) -> list[Delivery]:
        """Poll until at least ``count`` deliveries (to ``path``, if given) arrived; fail at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            got = [d for d in self.received() if path is None or d.path == path]
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} deliveries within {timeout}s, got {len(got)}: {got}")
            time.sleep(0.02)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _poll(condition: Callable[[], Any], *, timeout: float = 10.0, what: str) -> Any:
    """Return ``condition()``'s first truthy value, polling with a deadline (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def poll() -> Callable[..., Any]:
    """``poll(condition, timeout=..., what=...)``: wait for a condition with a deadline."""
    return _poll


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as client:
        yield client
