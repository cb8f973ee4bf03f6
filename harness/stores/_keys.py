"""Idempotency keys: validated when supplied, derived deterministically when not.

Stripe and the IETF draft both cap keys at 255 characters, and the draft asks servers to validate
the key's format. Control characters are refused too: a key ends up in logs, Redis key names and
report tables, where a newline or NUL would split or truncate it.

A derived key covers the operation, the provider, the tenant and the payload's fingerprint, so the
same request from the same tenant always maps to the same key, and two tenants can never share one
(the draft's advice to scope keys by client). The readable prefix is for people reading logs; the
digest alone decides identity.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata

from harness.stores._checks import is_nonempty_str
from harness.stores._errors import InvalidKeyError
from harness.stores._json import DEFAULT_MAX_PAYLOAD_BYTES, fingerprint

__all__ = ["MAX_KEY_LENGTH", "derive_key", "validate_key"]

MAX_KEY_LENGTH = 255


def validate_key(key: object, *, what: str = "idempotency key") -> str:
    """Return ``key`` if it is usable; otherwise raise :class:`InvalidKeyError` saying why."""
    if not isinstance(key, str):
        raise InvalidKeyError(f"{what} must be a str, not {type(key).__name__}")
    if not key.strip():
        raise InvalidKeyError(f"{what} is empty; pass a non-empty key (a UUID is a good choice)")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(
            f"{what} is {len(key)} characters; the limit is {MAX_KEY_LENGTH} (Stripe's and the IETF"
            " draft's): use a shorter key or derive_key()"
        )
    for position, char in enumerate(key):
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise InvalidKeyError(
                f"{what} has a control character ({char!r}) at position {position}; keys must be printable"
            )
    return key


def derive_key(
    *,
    operation: str,
    provider: str,
    tenant: str,
    payload: object,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> str:
    """A deterministic key for ``payload`` sent as ``operation`` to ``provider`` for ``tenant``."""
    parts = {"operation": operation, "provider": provider, "tenant": tenant}
    for name, value in parts.items():
        if not is_nonempty_str(value):
            raise InvalidKeyError(f"derive_key: {name} must be a non-empty str, got {value!r}")
    digest = hashlib.sha256(
        json.dumps(
            {**parts, "payload": fingerprint(payload, limit=max_payload_bytes)},
            sort_keys=True,
            separators=(",", ":"),
        ).encode("utf-8")
    ).hexdigest()
    readable = f"{provider}:{operation}:{tenant}:{digest}"
    key = readable if len(readable) <= MAX_KEY_LENGTH else f"derived:{digest}"
    return validate_key(key, what="derived key")
