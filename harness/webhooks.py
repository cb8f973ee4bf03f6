"""Verify Stripe webhook deliveries the way a client under test must.

A receiver checks ``Stripe-Signature: t=<unix>,v1=<hex>...``: an HMAC-SHA256 of ``<t>.<raw body>``
keyed with the endpoint's ``whsec_`` secret, compared in constant time against every ``v1``, and a
timestamp within the tolerance (300 s), which stops a captured delivery from being replayed later.
Deliveries arrive at least once and unordered: deduplicate on the event ``id``.

The implementation is shared with the fake Stripe, which signs its deliveries with it, so that the
two can never disagree; it lives there because the fakes import nothing from the harness.
"""

from fake_upstreams.stripe._signature import (
    DEFAULT_TOLERANCE,
    SignatureVerificationError,
    sign_payload,
    verify_signature,
)

__all__ = ["DEFAULT_TOLERANCE", "SignatureVerificationError", "sign_payload", "verify_signature"]
