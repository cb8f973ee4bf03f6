"""Drivers: the reference client, and factories to load by import path.

``harness certify --driver harness.drivers:reference`` is the default;
``harness.drivers:reference_without_idempotency`` is the same client with idempotency keys switched
off, the control that shows what the scenarios catch.
"""

from harness._driver import DriverSetup
from harness.drivers._reference import ReferenceConfig, ReferenceDriver, idempotency_key

__all__ = [
    "ReferenceConfig",
    "ReferenceDriver",
    "idempotency_key",
    "reference",
    "reference_without_idempotency",
]


def reference(setup: DriverSetup) -> ReferenceDriver:
    """The reference client with its default settings (``setup.options`` may turn keys off)."""
    keys = setup.options.get("idempotency_keys", True)
    return ReferenceDriver(setup, ReferenceConfig(idempotency_keys=bool(keys)))


def reference_without_idempotency(setup: DriverSetup) -> ReferenceDriver:
    """The reference client without idempotency keys: double-charges when a response is lost."""
    return ReferenceDriver(setup, ReferenceConfig(idempotency_keys=False))
