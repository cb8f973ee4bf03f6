"""The real stack: Toxiproxy and the fake upstreams as child processes on loopback.

    with Stack(StackConfig(upstreams=("stripe",))) as stack:
        endpoint = stack.endpoints()["stripe"]      # proxied base URL + test credentials
        stack.toxiproxy.add_toxic("stripe", LimitData(bytes=0))
        stack.admin("stripe").ledger()              # ground truth, read directly

Ports are never guessed for the fakes: the harness binds a socket on port 0 and hands the bound
socket to the child, so two stacks (or two CI jobs) can never race for a port. Toxiproxy has no such
option, so its control port is picked free and the start is retried if it was taken meanwhile; its
proxies listen on port 0 and report the port the kernel gave them.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from harness._driver import Endpoint
from harness.stack._admin import UpstreamAdmin
from harness.stack._process import ChildProcess, ProcessStartError, wait_until
from harness.toxiproxy import Toxiproxy, ToxiproxyError

__all__ = ["KNOWN_UPSTREAMS", "Stack", "StackConfig", "ToxiproxyNotFound", "find_toxiproxy_server"]

KNOWN_UPSTREAMS = ("stripe", "mpesa", "cbs")
_TOXIPROXY_START_ATTEMPTS = 3


class ToxiproxyNotFound(RuntimeError):
    """No ``toxiproxy-server`` binary could be found."""


def find_toxiproxy_server() -> str:
    """``$TOXIPROXY_SERVER``, then ``.tools/bin`` of this project or the working folder's, then PATH."""
    explicit = os.environ.get("TOXIPROXY_SERVER")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise ToxiproxyNotFound(f"TOXIPROXY_SERVER={explicit!r} is not an executable file")
        return explicit
    roots = [
        Path(__file__).resolve().parents[2],
        *Path.cwd().resolve().parents,
        Path.cwd().resolve(),
    ]
    for root in roots:
        candidate = root / ".tools" / "bin" / "toxiproxy-server"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("toxiproxy-server")
    if found:
        return found
    raise ToxiproxyNotFound(
        "toxiproxy-server not found. Run 'make toxiproxy' in the project folder (it builds"
        " v2.12.0 with Go into .tools/bin), install a release package or"
        " 'brew install shopify/shopify/toxiproxy', or set TOXIPROXY_SERVER=/path/to/toxiproxy-server"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """What to start. ``state_dir`` holds ledgers and logs (default: a new temporary folder)."""

    upstreams: tuple[str, ...] = ("stripe",)
    state_dir: Path | None = None
    seed: int = 0
    toxiproxy_server: str | None = None
    startup_timeout: float = 30.0

    def __post_init__(self) -> None:
        unknown = [name for name in self.upstreams if name not in KNOWN_UPSTREAMS]
        if unknown or not self.upstreams:
            raise ValueError(
                f"StackConfig.upstreams must name one or more of {KNOWN_UPSTREAMS}, got {self.upstreams!r}"
            )
        if len(set(self.upstreams)) != len(self.upstreams):
            raise ValueError(f"StackConfig.upstreams lists an upstream twice: {self.upstreams!r}")
        if not self.startup_timeout > 0:
            raise ValueError(f"StackConfig.startup_timeout must be > 0, got {self.startup_timeout!r}")


@dataclass(kw_only=True)
class RunningUpstream:
    name: str
    process: ChildProcess
    direct_url: str
    proxied_url: str
    admin: UpstreamAdmin
    credentials: dict[str, str] = field(repr=False)


class Stack:
    """Starts on ``__enter__`` (or :meth:`start`), stops everything on every exit path."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.state_dir = self.config.state_dir or Path(tempfile.mkdtemp(prefix="harness-stack-"))
        self._toxiproxy_process: ChildProcess | None = None
        self._toxiproxy: Toxiproxy | None = None
        self.upstreams: dict[str, RunningUpstream] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> Stack:
        try:
            self._start_toxiproxy()
            for name in self.config.upstreams:
                self._start_upstream(name)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for upstream in self.upstreams.values():
            upstream.admin.close()
            upstream.process.stop()
        self.upstreams.clear()
        if self._toxiproxy is not None:
            self._toxiproxy.close()
            self._toxiproxy = None
        if self._toxiproxy_process is not None:
            self._toxiproxy_process.stop()
            self._toxiproxy_process = None

    def processes(self) -> list[ChildProcess]:
        children = [u.process for u in self.upstreams.values()]
        if self._toxiproxy_process is not None:
            children.append(self._toxiproxy_process)
        return children

    # -- what users touch -----------------------------------------------------------------------

    @property
    def toxiproxy(self) -> Toxiproxy:
        if self._toxiproxy is None:
            raise RuntimeError("the stack is not running; use 'with Stack(...) as stack:'")
        return self._toxiproxy

    def endpoints(self) -> dict[str, Endpoint]:
        """Proxied base URLs and credentials, as a driver factory receives them."""
        return {
            name: Endpoint(
                upstream=name,
                base_url=u.proxied_url,
                credentials=MappingProxyType(dict(u.credentials)),
            )
            for name, u in self.upstreams.items()
        }

    def admin(self, upstream: str) -> UpstreamAdmin:
        return self.upstreams[upstream].admin

    # -- internals ------------------------------------------------------------------------------

    def _start_toxiproxy(self) -> None:
        binary = self.config.toxiproxy_server or find_toxiproxy_server()
        last_error: Exception | None = None
        for _ in range(_TOXIPROXY_START_ATTEMPTS):
            port = _free_port()
            process = ChildProcess(
                "toxiproxy",
                [binary, "-host", "127.0.0.1", "-port", str(port)],
                log_path=self.state_dir / "logs" / "toxiproxy.log",
                env={**os.environ, "LOG_LEVEL": "warn"},
            )
            process.start()
            client = Toxiproxy(f"http://127.0.0.1:{port}", timeout=5.0)

            def answers(client: Toxiproxy = client) -> bool:
                try:
                    client.version()
                except (ToxiproxyError, OSError, Exception):
                    return False
                return True

            try:
                wait_until(answers, timeout=self.config.startup_timeout, child=process, what="toxiproxy")
            except ProcessStartError as exc:  # most likely the port was taken meanwhile
                client.close()
                process.stop()
                last_error = exc
                continue
            self._toxiproxy_process, self._toxiproxy = process, client
            return
        raise ProcessStartError(f"toxiproxy did not start: {last_error}")

    def _start_upstream(self, name: str) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        sock.set_inheritable(True)
        port = int(sock.getsockname()[1])
        process = ChildProcess(
            name,
            [
                sys.executable,
                "-m",
                "fake_upstreams",
                name,
                "--fd",
                str(sock.fileno()),
                "--state-dir",
                str(self.state_dir / name),
                "--seed",
                str(self.config.seed),
            ],
            log_path=self.state_dir / "logs" / f"{name}.log",
            pass_fds=(sock.fileno(),),
        )
        try:
            process.start()
        finally:
            sock.close()  # the child has its own copy
        direct_url = f"http://127.0.0.1:{port}"
        admin = UpstreamAdmin(direct_url)
        upstream = RunningUpstream(
            name=name,
            process=process,
            direct_url=direct_url,
            proxied_url="",
            admin=admin,
            credentials={},
        )
        self.upstreams[name] = upstream
        wait_until(admin.healthy, timeout=self.config.startup_timeout, child=process, what=f"fake {name}")
        upstream.credentials = admin.credentials()
        proxy = self.toxiproxy.create_proxy(name, upstream=f"127.0.0.1:{port}", listen="127.0.0.1:0")
        upstream.proxied_url = f"http://127.0.0.1:{proxy.listen_port}"

    def __repr__(self) -> str:
        return f"Stack(upstreams={list(self.upstreams)}, state_dir={str(self.state_dir)!r})"
