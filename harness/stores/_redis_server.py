"""A throwaway real ``redis-server`` on a free loopback port, for tests, benchmarks and local runs.

Redis has no "listen on a port the kernel picks" option (``--port 0`` means *no* TCP at all), so a
free port is found by binding one and releasing it, and the start is retried on another port if
something took it in between (the same dance :mod:`harness.stack` does for Toxiproxy). The server
runs as a :class:`~harness.stack.ChildProcess`, so it dies with the harness even on SIGKILL.

``durable=True`` turns on the append-only file with ``appendfsync always``: every acknowledged write
is fsync'ed before the reply, so it survives the *server* being killed as well as its clients.
Otherwise nothing is saved (``--save ''``, no AOF), which is what unit tests want.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from types import TracebackType

from harness.stack import ChildProcess, ProcessStartError, wait_until

__all__ = ["RedisServer", "RedisServerNotFound", "find_redis_server"]

_START_ATTEMPTS = 4


class RedisServerNotFound(RuntimeError):
    """No ``redis-server`` binary could be found."""


def find_redis_server() -> str:
    """``$REDIS_SERVER``, then ``redis-server`` on PATH, then Debian's location."""
    explicit = os.environ.get("REDIS_SERVER")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RedisServerNotFound(f"REDIS_SERVER={explicit!r} is not an executable file")
        return explicit
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    raise RedisServerNotFound(
        "redis-server not found: run 'make redis' in the project folder (it installs Debian's"
        " redis-server package), or set REDIS_SERVER=/path/to/redis-server"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int) -> bool:
    """True once the server accepts commands (not while it is still loading its append-only file)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    def __init__(
        self,
        state_dir: Path,
        *,
        durable: bool = False,
        executable: str | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.durable = durable
        self.executable = executable
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self._process: ChildProcess | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the Redis server is not running; call start() first")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def process(self) -> ChildProcess | None:
        return self._process

    def _argv(self, binary: str, port: int) -> list[str]:
        argv = [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--dir",
            str(self.state_dir),
            "--logfile",
            "",
            "--loglevel",
            "warning",
            "--save",
            "",
        ]
        if self.durable:
            argv += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            argv += ["--appendonly", "no"]
        return argv

    def start(self) -> RedisServer:
        binary = self.executable or find_redis_server()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        last_error: Exception | None = None
        for _ in range(_START_ATTEMPTS):
            port = _free_port()
            process = ChildProcess("redis", self._argv(binary, port), log_path=self.state_dir / "redis.log")
            process.start()

            def ready(port: int = port) -> bool:
                return _answers_ping(port)

            try:
                wait_until(
                    ready,
                    timeout=self.startup_timeout,
                    child=process,
                    what=f"redis-server on port {port}",
                )
            except ProcessStartError as exc:  # most likely the port was taken meanwhile
                process.stop()
                last_error = exc
                continue
            self._process, self.port = process, port
            return self
        raise ProcessStartError(f"redis-server did not start: {last_error}")

    def stop(self) -> None:
        """SIGTERM (Redis flushes its append-only file), then SIGKILL after a grace period."""
        if self._process is not None:
            self._process.stop()
        self._process, self.port = None, None

    def kill(self) -> None:
        """SIGKILL, as a crash would; the state directory is kept for a restart."""
        if self._process is not None:
            self._process.kill()
            self._process.stop()  # reaps it and forgets it
        self._process, self.port = None, None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RedisServer(port={self.port}, durable={self.durable}, state_dir={str(self.state_dir)!r})"
