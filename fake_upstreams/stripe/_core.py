"""The plumbing every Stripe endpoint shares: authentication, the rate limiter, form bodies, ids, and
the idempotency layer.

Order of the gates, as Stripe documents it: authentication (a 401 stores nothing), then the rate
limiter (a 429 stores nothing, so the key may later succeed), then parameter validation (a 400 from
validation stores nothing), then the idempotency layer, then execution. Once execution has begun its
answer is stored under the key, success or failure, and replayed with ``Idempotent-Replayed: true``;
the same key with other parameters is a 400 ``idempotency_error``; the same key while the first
request still runs is a 409 ``idempotency_key_in_use``; keys are forgotten after 24 hours.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import string
from collections.abc import Callable
from sqlite3 import Connection
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fake_upstreams._base import FakeUpstream
from fake_upstreams.stripe._errors import StripeError
from fake_upstreams.stripe._forms import FormError, parse_form
from fake_upstreams.stripe._limits import LockTimeout, ObjectLocks, TokenBuckets

__all__ = [
    "IDEMPOTENCY_KEY_MAX",
    "IDEMPOTENCY_RETENTION",
    "MAX_BODY",
    "Executor",
    "StripeCore",
    "lock_timeout_error",
    "rate_limit_error",
]

IDEMPOTENCY_KEY_MAX = 255
IDEMPOTENCY_RETENTION = 24 * 3600.0
MAX_BODY = 64 * 1024
ANY_FINGERPRINT = "*"
_ALPHABET = string.ascii_letters + string.digits

Executor = Callable[[Connection], tuple[int, dict[str, Any]]]


def rate_limit_error(retry_after: float) -> StripeError:
    return StripeError(
        429,
        "invalid_request_error",
        "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
        code="rate_limit",
        headers={"Retry-After": f"{retry_after:g}"},
    )


def lock_timeout_error() -> StripeError:
    return StripeError(
        429,
        "invalid_request_error",
        "This object cannot be accessed right now because another API request or Stripe process is"
        " currently accessing it. If you see this error intermittently, retry the request. If you see"
        " this error frequently and are making multiple concurrent requests to a single object, make"
        " your requests serially or at a lower rate. See https://stripe.com/docs/rate-limits for more"
        " information.",
        code="lock_timeout",
        headers={"Stripe-Should-Retry": "true"},
    )


def bare_key(raw: str) -> str:
    """Accept the IETF draft's quoted sf-string form as well as Stripe's bare token."""
    return raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw


def credential_of(authorization: str) -> str:
    """The API key in a Bearer or Basic (key as user name) Authorization header; '' if none."""
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(credential.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return credential.strip() if scheme.lower() == "bearer" else ""


def masked(key: str) -> str:
    return key[:8] + "*" * max(len(key) - 12, 0) + key[-4:]


class StripeCore:
    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self.secret_key = fake.credentials["secret_key"]
        self.buckets = TokenBuckets(fake.clock.monotonic)
        self.locks = ObjectLocks()
        fake.reset_hooks.append(self.buckets.clear)

    @property
    def processing_delay(self) -> float:
        return float(self.fake.settings["processing_delay"])

    def id(self, prefix: str, length: int = 24) -> str:
        return prefix + "".join(self.fake.rng.choices(_ALPHABET, k=length))

    def headers(self, request: Request) -> dict[str, str]:
        """Request-Id (also kept on ``request.state.stripe_request_id`` for events) and the key echo."""
        request_id = self.id("req_", 14)
        request.state.stripe_request_id = request_id
        headers = {"Request-Id": request_id}
        key = request.headers.get("idempotency-key")
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    # -- the gates ------------------------------------------------------------------------------

    def authenticate(self, request: Request) -> str:
        credential = credential_of(request.headers.get("authorization", ""))
        if not credential:
            raise StripeError(
                401,
                "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the"
                " Authorization header, using Bearer auth (e.g. 'Authorization: Bearer"
                " YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details,"
                " or we can help at https://support.stripe.com/.",
            )
        if credential != self.secret_key:
            raise StripeError(401, "invalid_request_error", f"Invalid API Key provided: {masked(credential)}")
        return credential

    def rate_limit(self, api_key: str) -> None:
        settings = self.fake.settings
        if settings["rate_limit_enabled"] and not self.buckets.allow(
            api_key, settings["rate_limit_per_second"]
        ):
            raise rate_limit_error(1)

    async def gate(self, request: Request) -> str:
        """Authentication then the rate limiter; returns the API key."""
        api_key = self.authenticate(request)
        self.rate_limit(api_key)
        return api_key

    async def form(self, request: Request) -> dict[str, Any]:
        body = await request.body()
        if len(body) > MAX_BODY:
            raise StripeError(400, "invalid_request_error", "Your request body is too large.")
        content_type = request.headers.get("content-type", "application/x-www-form-urlencoded")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            if not body.strip():
                return {}
            raise StripeError(
                400,
                "invalid_request_error",
                "Invalid request (check that your POST content type is application/x-www-form-urlencoded)."
                " If you have any questions, we can help at https://support.stripe.com/.",
            )
        try:
            return parse_form(body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise StripeError(400, "invalid_request_error", "Invalid request body: not UTF-8") from exc
        except FormError as exc:
            raise StripeError(400, "invalid_request_error", str(exc), param=exc.param) from exc

    # -- idempotency ----------------------------------------------------------------------------

    async def idempotent(
        self,
        request: Request,
        api_key: str,
        params: dict[str, Any],
        execute: Executor,
        *,
        lock: str | None = None,
    ) -> Response:
        """Run ``execute`` at most once per idempotency key, replaying its stored answer after."""
        headers = self.headers(request)
        raw_key = request.headers.get("idempotency-key")
        if raw_key is None:
            status, body = await self._execute(execute, lock, None)
            return JSONResponse(body, status_code=status, headers=headers)
        key = bare_key(raw_key)
        if not key or len(key) > IDEMPOTENCY_KEY_MAX:
            raise StripeError(
                400,
                "invalid_request_error",
                f"Idempotency-Key must be between 1 and {IDEMPOTENCY_KEY_MAX} characters long.",
                headers=headers,
            )
        fingerprint = hashlib.sha256(
            json.dumps([request.method, request.url.path, params], sort_keys=True).encode()
        ).hexdigest()
        store = self.fake.store
        record = store.get_idempotency(api_key, key)
        if record is not None and self.fake.clock.api_time() - record.created_wall > IDEMPOTENCY_RETENTION:
            store.expire_idempotent(api_key, key)
            record = None
        if record is None and not store.begin_idempotent(api_key, key, fingerprint):
            record = store.get_idempotency(api_key, key)
        if record is not None:
            return self._replay(record.fingerprint, fingerprint, record, key, headers)
        try:
            status, body = await self._execute(execute, lock, (api_key, key))
        except StripeError as exc:
            if exc.status == 429:  # lock_timeout: the rate-limit family is never stored
                store.release_idempotent(api_key, key)
                raise
            raw = json.dumps({"error": exc.body}).encode()
            with store.transaction() as db:
                store.complete_idempotent(
                    db, scope=api_key, key=key, status=exc.status, headers=exc.headers, body=raw
                )
            exc.headers = {**exc.headers, **headers}
            raise
        except BaseException:
            # Execution never committed: free the key so that a retry executes afresh.
            store.release_idempotent(api_key, key)
            raise
        return JSONResponse(body, status_code=status, headers=headers)

    def _replay(
        self, stored: str, fingerprint: str, record: Any, key: str, headers: dict[str, str]
    ) -> Response:
        if stored not in (fingerprint, ANY_FINGERPRINT):
            raise StripeError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they"
                f" were first used with. Try using a key other than '{key}' if you meant to"
                " execute a different request.",
                headers=headers,
            )
        if record.state != "completed" or record.status is None or record.body is None:
            raise StripeError(
                409,
                str(self.fake.settings["in_flight_error_type"]),
                "There is currently another in-progress request using this Idempotent Key"
                " (that probably means you submitted twice, and the other request is still"
                " going through): " + key + ". Please try again later.",
                code="idempotency_key_in_use",
                headers={**headers, "Stripe-Should-Retry": "true"},
            )
        replay_headers = {**record.headers, **headers, "Idempotent-Replayed": "true"}
        return Response(
            record.body, status_code=record.status, headers=replay_headers, media_type="application/json"
        )

    async def _execute(
        self, execute: Executor, lock: str | None, scope_key: tuple[str, str] | None
    ) -> tuple[int, dict[str, Any]]:
        if lock is None:
            return await self._run(execute, scope_key)
        try:
            async with self.locks.hold(lock, float(self.fake.settings["lock_timeout"])):
                return await self._run(execute, scope_key)
        except LockTimeout:
            raise lock_timeout_error() from None

    async def _run(self, execute: Executor, scope_key: tuple[str, str] | None) -> tuple[int, dict[str, Any]]:
        if self.processing_delay > 0:
            await self.fake.clock.sleep(self.processing_delay)
        store = self.fake.store
        with store.transaction() as db:
            status, body = execute(db)
            if scope_key is not None:
                store.complete_idempotent(
                    db,
                    scope=scope_key[0],
                    key=scope_key[1],
                    status=status,
                    headers={},
                    body=json.dumps(body).encode(),
                )
        return status, body

    def store_injected_failure(
        self, request: Request, status: int, body: dict[str, Any], headers: dict[str, str]
    ) -> None:
        """Remember an injected 500 under the request's key, as Stripe stores a 500 from execution.

        The fault fires before the body is read, so the record matches any parameters.
        """
        raw_key = request.headers.get("idempotency-key")
        api_key = credential_of(request.headers.get("authorization", ""))
        if raw_key is None or api_key != self.secret_key:
            return
        key = bare_key(raw_key)
        if not key or len(key) > IDEMPOTENCY_KEY_MAX:
            return
        store = self.fake.store
        if store.begin_idempotent(api_key, key, ANY_FINGERPRINT):
            with store.transaction() as db:
                store.complete_idempotent(
                    db, scope=api_key, key=key, status=status, headers=headers, body=json.dumps(body).encode()
                )
