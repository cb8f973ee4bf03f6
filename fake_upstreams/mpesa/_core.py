"""What every Daraja endpoint shares: OAuth tokens, bearer checks, JSON bodies, Nairobi timestamps.

Tokens (``GET /oauth/v1/generate``, Basic auth with the consumer key and secret) are opaque 28-char
strings with ``expires_in`` sent as the string ``"3599"``, as real responses and most SDK samples
carry it. Each new token revokes the previous ones (Daraja FAQ 3; setting ``single_token``). They are
kept in the store, so a restarted fake still honours a token it issued. A missing or non-Bearer
``Authorization`` header is ``404.001.04``; an unknown, revoked or expired token ``404.001.03``
(HTTP 404, not 401).
"""

from __future__ import annotations

import base64
import binascii
import json
import string
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fake_upstreams._base import FakeUpstream
from fake_upstreams.mpesa._errors import DarajaError

__all__ = ["MAX_BODY", "NAIROBI", "DarajaCore"]

MAX_BODY = 64 * 1024
NAIROBI = timedelta(hours=3)
_TOKEN_ALPHABET = string.ascii_letters + string.digits


class DarajaCore:
    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self.credentials = fake.credentials

    # -- ids and clocks -------------------------------------------------------------------------

    def token_string(self, length: int, alphabet: str = _TOKEN_ALPHABET) -> str:
        return "".join(self.fake.rng.choices(alphabet, k=length))

    def nairobi_now(self) -> datetime:
        return datetime.fromtimestamp(self.fake.clock.api_time(), UTC) + NAIROBI

    def password(self, timestamp: str) -> str:
        raw = self.credentials["shortcode"] + self.credentials["passkey"] + timestamp
        return base64.b64encode(raw.encode()).decode()

    # -- OAuth ----------------------------------------------------------------------------------

    async def generate_token(self, request: Request) -> Response:
        if request.query_params.get("grant_type") != "client_credentials":
            raise DarajaError("400.008.02", "Invalid grant type passed")
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            raise DarajaError("400.008.01", "Invalid authentication type passed")
        try:
            key, _, secret = base64.b64decode(credential.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise DarajaError("400.008.01", "Invalid Authentication passed") from None
        if key != self.credentials["consumer_key"] or secret != self.credentials["consumer_secret"]:
            raise DarajaError("400.008.01", "Invalid Authentication passed")
        settings, store = self.fake.settings, self.fake.store
        token = self.token_string(28)
        lifetime = float(settings["token_lifetime"])
        with store.transaction() as db:
            if settings["single_token"]:
                db.execute("DELETE FROM objects WHERE kind = 'token'")
            store.put_object(db, "token", token, {"expires_at": self.fake.clock.api_time() + lifetime + 1})
        expires = str(int(lifetime))
        return JSONResponse({"access_token": token, "expires_in": expires})

    def revoke_tokens(self) -> None:
        with self.fake.store.transaction() as db:
            db.execute("DELETE FROM objects WHERE kind = 'token'")

    def authorize(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise DarajaError("404.001.04", "Invalid Authentication Header")
        record = self.fake.store.get_object("token", token.strip())
        if record is None or self.fake.clock.api_time() >= float(record["expires_at"]):
            raise DarajaError("404.001.03", "Invalid Access Token")

    # -- bodies ---------------------------------------------------------------------------------

    async def json_body(self, request: Request) -> dict[str, Any]:
        """Bearer check, then the JSON object body (Daraja checks the token first)."""
        self.authorize(request)
        content_type = request.headers.get("content-type", "")
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise DarajaError("400.002.05", "Invalid Request Payload")
        if not content_type.lower().startswith("application/json"):
            # Daraja's STK FAQ 9: a wrong content type surfaces as an invalid shortcode.
            raise DarajaError("400.002.02", "Bad Request - Invalid BusinessShortCode")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise DarajaError("400.002.05", "Invalid Request Payload") from None
        if not isinstance(body, dict):
            raise DarajaError("400.002.05", "Invalid Request Payload")
        return body
