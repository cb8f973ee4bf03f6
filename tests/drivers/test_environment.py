"""The harness's own traffic stays on loopback whatever proxy the user's environment names."""

from __future__ import annotations

import random

import pytest

from harness import DriverSetup, Operation, OutcomeKind
from harness.drivers import reference
from harness.resilience import SystemClock
from harness.stack import Stack, UpstreamAdmin

DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture
def proxy_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, DEAD_PROXY)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("proxy_everything")
def test_the_reference_client_ignores_proxy_settings_from_the_environment(harness_stack: Stack) -> None:
    driver = reference(
        DriverSetup(endpoints=harness_stack.endpoints(), clock=SystemClock(), rng=random.Random(0))
    )
    try:
        outcome = driver.perform(
            Operation(operation_id="env-proxy-1", upstream="stripe", action="charge", amount=1000)
        )
    finally:
        driver.close()

    assert outcome.kind is OutcomeKind.SUCCEEDED


@pytest.mark.usefixtures("proxy_everything")
def test_the_admin_client_ignores_proxy_settings_from_the_environment(harness_stack: Stack) -> None:
    admin = UpstreamAdmin(harness_stack.upstreams["stripe"].direct_url)
    try:
        assert admin.healthy()
    finally:
        admin.close()
