"""Fake Stripe: PaymentIntents with Stripe's idempotency rules and a ground-truth ledger."""

from fake_upstreams.stripe._app import StripeFake, create_app

__all__ = ["StripeFake", "create_app"]
