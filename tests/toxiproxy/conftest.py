from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator

import pytest

from harness.stack import Stack
from harness.toxiproxy import Toxiproxy

_names = itertools.count()


@pytest.fixture
def proxy_name(toxiproxy: Toxiproxy) -> Iterator[str]:
    """A fresh proxy name, deleted after the test."""
    name = f"test_proxy_{next(_names)}"
    yield name
    toxiproxy.delete_proxy(name, missing_ok=True)


@pytest.fixture(scope="session")
def upstream_address(harness_stack: Stack) -> str:
    """A real HTTP server to proxy to: the fake Stripe, reached directly."""
    return harness_stack.upstreams["stripe"].direct_url.removeprefix("http://")


@pytest.fixture
def occupied_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])
