"""Stripe webhook signatures: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``.

The signed payload is ``<t>.<raw body>``; each ``v1`` is the hex HMAC-SHA256 of it keyed with the
endpoint secret (``whsec_...``). A receiver must compare in constant time against every ``v1`` (there
are several while a secret is being rolled), ignore other schemes (``v0`` is a test-mode legacy), and
refuse a timestamp older than its tolerance (300 s by default), which is what stops a captured
delivery from being replayed later. This follows ``stripe/_webhook.py`` of stripe-python, written
here so that neither the fake nor a client under test needs the Stripe SDK.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["DEFAULT_TOLERANCE", "SignatureVerificationError", "sign_payload", "verify_signature"]

DEFAULT_TOLERANCE = 300
SCHEME = "v1"


class SignatureVerificationError(ValueError):
    """The delivery is not provably from the holder of the endpoint secret; drop it with a 400."""


def _hmac(secret: str, timestamp: int, payload: bytes) -> str:
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign_payload(payload: bytes, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value for ``payload`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},{SCHEME}={_hmac(secret, timestamp, payload)}"


def verify_signature(
    payload: bytes,
    header: str | None,
    secret: str,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> int:
    """Check a delivery; returns its timestamp or raises :class:`SignatureVerificationError`.

    ``payload`` must be the raw request body exactly as received (not re-serialised JSON); ``now`` is
    the receiver's wall clock in unix seconds, passed in so that tests can pin it.
    """
    if not header:
        raise SignatureVerificationError("no Stripe-Signature header")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureVerificationError("the Stripe-Signature timestamp is not an integer") from None
        elif name == SCHEME:
            signatures.append(value)
    if timestamp is None:
        raise SignatureVerificationError("no timestamp in the Stripe-Signature header")
    if not signatures:
        raise SignatureVerificationError(f"no {SCHEME} signature in the Stripe-Signature header")
    expected = _hmac(secret, timestamp, payload)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureVerificationError("no signature matches the expected signature for the payload")
    if tolerance > 0 and timestamp < now - tolerance:
        raise SignatureVerificationError(f"the timestamp is older than the {tolerance:g} s tolerance")
    return timestamp
