"""Child processes that cannot outlive the harness.

Each child runs in its own session, so a Ctrl-C in the terminal reaches only the harness, which then
stops its children in order (SIGTERM, a grace period, SIGKILL for the whole process group). On Linux
each child also asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), which
covers the one exit path no ``finally`` can: the harness itself being killed with SIGKILL.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["ChildProcess", "ProcessStartError", "wait_until"]

_PR_SET_PDEATHSIG = 1
_live: weakref.WeakSet[ChildProcess] = weakref.WeakSet()
_live_lock = threading.Lock()


class ProcessStartError(RuntimeError):
    """A child exited or never became healthy; the message carries the end of its log."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ChildProcess:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        pass_fds: Sequence[int] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.pass_fds = tuple(pass_fds)
        self.env = dict(env) if env is not None else None
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=self.pass_fds,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
            )
        with _live_lock:
            _live.add(self)

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def signal(self, signum: int) -> None:
        """Send a signal to the child's whole process group (e.g. SIGSTOP to pause it)."""
        if self.alive() and self._popen is not None:
            os.killpg(self._popen.pid, signum)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; always reaps the child."""
        popen = self._popen
        if popen is None:
            return
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGCONT)  # a paused child cannot handle SIGTERM
                os.killpg(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
        with _live_lock:
            _live.discard(self)

    def kill(self) -> None:
        """SIGKILL at once, as a crash would."""
        popen = self._popen
        if popen is not None and popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        return f"ChildProcess({self.name!r}, pid={self.pid})"


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    child: ChildProcess | None = None,
    what: str,
    interval: float = 0.05,
) -> None:
    """Poll ``condition`` until true; fail early, with the child's log, if the child exits."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if child is not None and not child.alive():
            raise ProcessStartError(
                f"{child.name} exited with code {child.returncode()} before {what};"
                f" last log lines:\n{child.log_tail()}"
            )
        if time.monotonic() > deadline:
            tail = f"; last log lines:\n{child.log_tail()}" if child is not None else ""
            raise ProcessStartError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
        time.sleep(interval)


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        children = list(_live)
    for child in children:
        child.stop(grace=2.0)
