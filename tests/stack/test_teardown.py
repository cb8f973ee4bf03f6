"""No process started by the stack outlives it, whatever way the stack ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.stack import ProcessStartError, Stack, StackConfig, ToxiproxyNotFound
from harness.stack._process import _live

STACK_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    from pathlib import Path
    from harness.stack import Stack, StackConfig

    with Stack(StackConfig(state_dir=Path(sys.argv[1]))) as stack:
        print(json.dumps([p.pid for p in stack.processes()]), flush=True)
        threading.Event().wait()
    """
)


def _running(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _all_gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_running(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def stack_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    """A separate harness process running a stack; yields it and its children's pids."""
    with subprocess.Popen(
        [sys.executable, "-c", STACK_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as harness:
        assert harness.stdout is not None
        line = harness.stdout.readline()
        assert line, f"the stack process ended before starting (exit {harness.wait()})"
        pids = json.loads(line)
        assert len(pids) == 2
        assert all(_running(pid) for pid in pids)
        try:
            yield harness, pids
        finally:
            harness.kill()


def test_normal_exit_stops_every_child(tmp_path: Path) -> None:
    with Stack(StackConfig(state_dir=tmp_path)) as stack:
        pids = [p.pid for p in stack.processes() if p.pid is not None]
        assert len(pids) == 2

    assert not any(_running(pid) for pid in pids)


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_exception_inside_the_block_stops_every_child(tmp_path: Path, error: BaseException) -> None:
    pids: list[int] = []

    def run_until_error() -> None:
        with Stack(StackConfig(state_dir=tmp_path)) as stack:
            pids.extend(p.pid for p in stack.processes() if p.pid is not None)
            raise error

    with pytest.raises(type(error)):
        run_until_error()

    assert len(pids) == 2
    assert not any(_running(pid) for pid in pids)


def test_ctrl_c_to_the_harness_stops_every_child(
    stack_process: tuple[subprocess.Popen[str], list[int]],
) -> None:
    harness, pids = stack_process

    harness.send_signal(signal.SIGINT)

    assert harness.wait(timeout=30) != 0
    assert _all_gone(pids)


def test_children_die_when_the_harness_is_killed_outright(
    stack_process: tuple[subprocess.Popen[str], list[int]],
) -> None:
    """SIGKILL runs no cleanup code; the kernel's parent-death signal must take the children down."""
    harness, pids = stack_process

    os.kill(harness.pid, signal.SIGKILL)
    harness.wait(timeout=30)

    assert _all_gone(pids)


def test_a_stack_that_fails_to_start_leaves_nothing_running(tmp_path: Path) -> None:
    """`false` exits at once, as a toxiproxy-server that cannot bind would."""
    config = StackConfig(state_dir=tmp_path, toxiproxy_server="/bin/false", startup_timeout=5)

    with pytest.raises(ProcessStartError, match="toxiproxy"):
        Stack(config).start()

    mine = [child for child in _live if tmp_path in child.log_path.parents]
    assert mine == []
    assert (tmp_path / "logs" / "toxiproxy.log").exists()


def test_a_missing_toxiproxy_binary_names_the_ways_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOXIPROXY_SERVER", "/nonexistent/toxiproxy-server")

    with pytest.raises(ToxiproxyNotFound, match="TOXIPROXY_SERVER"):
        Stack().start()


def test_stack_config_rejects_unknown_upstreams() -> None:
    with pytest.raises(ValueError, match="upstreams"):
        StackConfig(upstreams=("paypal",))
