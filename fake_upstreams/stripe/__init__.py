"""Fake Stripe: PaymentIntents with Stripe's idempotency rules, limits, webhooks and a ground-truth
ledger; and the webhook signature scheme (signer and verifier) a client uses to check deliveries."""

from fake_upstreams.stripe._app import SETTINGS, StripeDialect, StripeFake, create_app
from fake_upstreams.stripe._signature import (
    DEFAULT_TOLERANCE,
    SignatureVerificationError,
    sign_payload,
    verify_signature,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "SETTINGS",
    "SignatureVerificationError",
    "StripeDialect",
    "StripeFake",
    "create_app",
    "sign_payload",
    "verify_signature",
]
