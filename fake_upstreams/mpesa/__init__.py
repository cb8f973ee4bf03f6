"""Fake M-Pesa Daraja: OAuth tokens, STK push and query with asynchronous callbacks, B2C with
OriginatorConversationID de-duplication, and a ground-truth ledger of prompts and payments."""

from fake_upstreams.mpesa._app import SETTINGS, DarajaDialect, create_app

__all__ = ["SETTINGS", "DarajaDialect", "create_app"]
