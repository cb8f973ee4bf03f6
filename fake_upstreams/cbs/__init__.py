"""Fake Apache Fineract (Mifos X): tenant and Basic auth, clients, loans and repayments with unique
external ids, 1.9+ Idempotency-Key semantics, maker-checker, and a ledger of booked repayments."""

from fake_upstreams.cbs._app import BASE, SETTINGS, FineractDialect, create_app

__all__ = ["BASE", "SETTINGS", "FineractDialect", "create_app"]
