"""Fixtures for the store tests: a real Redis server, every backend in turn, and forked children.

Redis is the real ``redis-server`` (never fakeredis), started once per session on a free loopback
port through :class:`harness.stores.RedisServer` (a :class:`~harness.stack.ChildProcess`) and
stopped at the end. It runs without persistence (``--save ''``, no AOF): the contract tests need
Redis's semantics, not its disk; the crash test starts its own durable server. Without
``redis-server`` the fixture fails (never skips) and says to run ``make redis``.

Children for the crash and race tests are forked from the test process rather than started as new
interpreters: importing :mod:`harness` costs about two seconds, and the crash test restarts its
child fifty times per backend. A forked child opens its own connections (the SQLite backend refuses
to use a parent's) and reports over a pipe, one line per acknowledged write.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import signal
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.resilience import VirtualClock
from harness.stores import (
    MemoryBackend,
    RedisBackend,
    RedisServer,
    RedisServerNotFound,
    SQLiteBackend,
    StoreBackend,
)

ALL_BACKENDS = ("memory", "sqlite", "redis")
SHARED_BACKENDS = ("sqlite", "redis")
"""Backends whose state several processes can share (memory is per process by design)."""


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    try:
        server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    except RedisServerNotFound as exc:
        pytest.fail(f"the store tests need a real Redis: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=1_000_000.0)


class BackendFactory:
    """Opens backends of one kind over the same state (one SQLite file, one Redis namespace).

    Calling it twice gives two independent backends over the same data, as two processes would have.
    """

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self._request = request
        self.tmp_path = tmp_path
        self.namespace = "t-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
        self.opened: list[StoreBackend] = []
        self._memory: MemoryBackend | None = None

    def location(self, kind: str) -> str:
        """What a child process needs to open the same store: a file path or a Redis URL."""
        if kind == "sqlite":
            return str(self.tmp_path / "stores.sqlite3")
        if kind == "redis":
            server: RedisServer = self._request.getfixturevalue("redis_server")
            return server.url
        raise ValueError(f"{kind} backends cannot be shared")

    def child_opener(self, kind: str) -> Callable[[], StoreBackend]:
        """A function a forked child calls to open its own backend over the same state."""
        location, namespace = self.location(kind), self.namespace
        return lambda: open_shared(kind, location, namespace)

    def __call__(self, kind: str) -> StoreBackend:
        backend: StoreBackend
        if kind == "memory":
            self._memory = self._memory or MemoryBackend()
            return self._memory
        if kind == "sqlite":
            backend = SQLiteBackend(self.location("sqlite"))
        elif kind == "redis":
            backend = RedisBackend.from_url(self.location("redis"), namespace=self.namespace)
        else:
            raise ValueError(f"unknown backend kind {kind!r}")
        self.opened.append(backend)
        return backend

    def close(self) -> None:
        for backend in self.opened:
            backend.close()


@pytest.fixture
def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BackendFactory]:
    factory = BackendFactory(request, tmp_path)
    yield factory
    factory.close()


@pytest.fixture(params=ALL_BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(backend_kind: str, open_backend: BackendFactory) -> StoreBackend:
    return open_backend(backend_kind)


def open_shared(kind: str, location: str, namespace: str) -> StoreBackend:
    """Open a shared backend from inside a child process."""
    if kind == "sqlite":
        return SQLiteBackend(location)
    return RedisBackend.from_url(location, namespace=namespace)


# -- forked children -----------------------------------------------------------------------------


class Child:
    """A forked child that reports lines over a pipe; the parent polls them with a deadline."""

    def __init__(self, pid: int, read_fd: int) -> None:
        self.pid = pid
        self._fd: int | None = read_fd
        self._buffer = b""
        self.lines: list[str] = []
        self.exit_status: int | None = None

    def _take(self, data: bytes) -> None:
        *complete, self._buffer = (self._buffer + data).split(b"\n")
        self.lines.extend(line.decode() for line in complete)

    def _pump(self, timeout: float) -> None:
        assert self._fd is not None
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if ready:
            self._take(os.read(self._fd, 1 << 16))

    def _drain_and_close(self) -> None:
        """Read to end of file (the child is gone, so its end of the pipe is closed)."""
        if self._fd is None:
            return
        while data := os.read(self._fd, 1 << 16):
            self._take(data)
        os.close(self._fd)
        self._fd = None

    def alive(self) -> bool:
        if self.exit_status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.exit_status = status
        return self.exit_status is None

    def _fail_on_error(self) -> None:
        errors = [line for line in self.lines if line.startswith("ERROR")]
        if errors:
            pytest.fail("child failed:\n" + "\n".join(e.replace(" | ", "\n") for e in errors))

    def poll(self, timeout: float = 0.0) -> None:
        """Take in whatever the child has reported (waiting up to ``timeout``); fail on its errors."""
        if self._fd is not None:
            if self.alive():
                self._pump(timeout)
            else:
                self._drain_and_close()
        self._fail_on_error()

    def wait_for_lines(self, count: int, *, timeout: float = 30.0) -> None:
        """Poll until the child has reported ``count`` lines; fail with its last words if it died."""
        deadline = time.monotonic() + timeout
        while len(self.lines) < count:
            self._fail_on_error()
            if not self.alive():
                self._drain_and_close()
                self._fail_on_error()
                if len(self.lines) >= count:
                    return
                pytest.fail(
                    f"child exited ({self.exit_status}) after {len(self.lines)} lines: {self.lines[-3:]!r}"
                )
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"child reported {len(self.lines)} of {count} lines within {timeout}s")
            self._pump(0.05)

    def kill(self) -> None:
        """SIGKILL, as a crash would, and reap it."""
        if self.exit_status is None:
            os.kill(self.pid, signal.SIGKILL)
            _, self.exit_status = os.waitpid(self.pid, 0)
        self._drain_and_close()

    def join(self, *, timeout: float = 30.0) -> int:
        """Wait for a normal exit; returns the exit code (fails the test if the child reported an error)."""
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"child {self.pid} did not exit within {timeout}s")
            self._pump(0.05)
        self._drain_and_close()
        self._fail_on_error()
        assert self.exit_status is not None
        return os.waitstatus_to_exitcode(self.exit_status)


Report = Callable[[str], None]


def fork_child(target: Callable[..., None], *args: Any) -> Child:
    """Run ``target(report, *args)`` in a forked child; ``report(line)`` sends one line to the parent.

    The child ends with ``os._exit``, so none of pytest's exit handlers run twice. Python 3.12+
    warns about fork() in a threaded process; the child here touches no lock another thread could
    hold (it opens its own connections and starts its own threads), so the warning is silenced.
    """
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_fd)
        code = 0

        def report(line: str) -> None:
            os.write(write_fd, (line + "\n").encode())

        try:
            target(report, *args)
        except BaseException:
            code = 1
            with contextlib.suppress(OSError):  # the parent may be gone
                report("ERROR " + traceback.format_exc().replace("\n", " | "))
        finally:
            os._exit(code)
    os.close(write_fd)
    return Child(pid, read_fd)


@pytest.fixture
def fork() -> Iterator[Callable[..., Child]]:
    """:func:`fork_child`, killing any child the test left running."""
    children: list[Child] = []

    def start(target: Callable[..., None], *args: Any) -> Child:
        child = fork_child(target, *args)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.exit_status is None:
            child.kill()
