"""Keys and payloads: derivation, validation and fingerprints (pure functions, no backend)."""

from __future__ import annotations

import pytest

from harness.stores import (
    MAX_KEY_LENGTH,
    InvalidKeyError,
    PayloadTooLargeError,
    derive_key,
    fingerprint,
    validate_key,
)

BODY = {"amount": 1500, "currency": "usd", "customer": "cus_1"}


def test_a_derived_key_is_deterministic_and_readable() -> None:
    first = derive_key(operation="charge", provider="stripe", tenant="t1", payload=BODY)
    again = derive_key(
        operation="charge", provider="stripe", tenant="t1", payload=dict(reversed(BODY.items()))
    )

    assert first == again
    assert first.startswith("stripe:charge:t1:")
    assert validate_key(first) == first


@pytest.mark.parametrize(
    "change",
    [
        {"operation": "refund"},
        {"provider": "mpesa"},
        {"tenant": "t2"},
        {"payload": {**BODY, "amount": 1501}},
    ],
)
def test_a_derived_key_changes_with_each_of_its_parts(change: dict[str, object]) -> None:
    base: dict[str, object] = {"operation": "charge", "provider": "stripe", "tenant": "t1", "payload": BODY}

    assert derive_key(**{**base, **change}) != derive_key(**base)  # type: ignore[arg-type]


def test_a_derived_key_stays_within_the_limit_with_long_parts() -> None:
    key = derive_key(operation="o" * 200, provider="p" * 200, tenant="t" * 200, payload=None)
    other = derive_key(operation="o" * 200, provider="p" * 200, tenant="u" * 200, payload=None)

    assert len(key) <= MAX_KEY_LENGTH
    assert key.startswith("derived:")
    assert key != other


def test_deriving_a_key_refuses_empty_parts_and_oversized_payloads() -> None:
    with pytest.raises(InvalidKeyError, match="tenant must be a non-empty str"):
        derive_key(operation="charge", provider="stripe", tenant="", payload=BODY)
    with pytest.raises(PayloadTooLargeError):
        derive_key(
            operation="charge", provider="stripe", tenant="t1", payload="x" * 100, max_payload_bytes=64
        )


def test_fingerprints_ignore_key_order_but_not_values_or_types() -> None:
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    assert fingerprint({"a": 1}) != fingerprint({"a": "1"})
    assert fingerprint([1, 2]) == fingerprint((1, 2))
    assert len(fingerprint(None)) == 64


def test_unicode_keys_are_valid_but_control_characters_are_not() -> None:
    assert validate_key("commande-éàü-注文") == "commande-éàü-注文"
    with pytest.raises(InvalidKeyError, match="position 3"):
        validate_key("abc\tdef")
