"""The curated public namespaces export exactly their public names, sorted (httpx's habit)."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "harness",
    "harness.chaos",
    "harness.drivers",
    "harness.plots",
    "harness.report",
    "harness.resilience",
    "harness.scenario",
    "harness.stack",
    "harness.webhooks",
    "harness.stores",
    "harness.toxiproxy",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_every_public_name_once(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_") and not isinstance(value, type(importlib)) and attr != "annotations"
    }

    assert sorted(module.__all__) == sorted(public)
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_resolves(name: str) -> None:
    module = importlib.import_module(name)

    for attr in module.__all__:
        assert getattr(module, attr) is not None
