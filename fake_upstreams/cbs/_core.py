"""Fineract's request pipeline: tenant, Basic auth, JSON bodies, and the command pipeline with its
Idempotency-Key store (1.9+ semantics) and maker-checker.

Command pipeline, as ``SynchronousCommandProcessingService`` and ``CommandSourceService`` behave:

* the key's scope is (actionName, entityName, key), e.g. ("REPAYMENT", "LOAN", key); without a key
  the server generates one, so nothing is de-duplicated;
* a stored result (success *or* error: validation 400s, domain-rule 403s, 404s) is replayed with
  ``x-served-from-cache: true``; there is no payload fingerprint, so the same key with another body
  replays the first answer;
* a key still being processed gets **425** (409 before FINERACT-2000, setting ``in_flight_status``)
  with the request JSON as body and ``x-served-from-cache: true``;
* what happens before the pipeline stores nothing: a bad tenant (plain 400), bad credentials (401),
  a loan locked by close-of-business (409), an unknown ``?command`` (400);
* in maker-checker mode (global flag and per-task permission), a maker's command is validated, not
  applied, and answered with 200 ``{"commandId", "resourceId", "rollbackTransaction": true}``; it waits
  in ``/makercheckers`` until a checker approves it, which applies it and answers the normal result.

The effect of a command and the completion of its idempotency record share one SQLite transaction.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from sqlite3 import Connection
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fake_upstreams._base import FakeUpstream
from fake_upstreams.cbs._errors import FineractError, TenantError, unauthenticated

__all__ = ["MAX_BODY", "Command", "FineractCore", "User"]

MAX_BODY = 64 * 1024
TENANT_HEADER = "fineract-platform-tenantid"
IN_FLIGHT = "in_progress"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    checker: bool
    """Holds CHECKER_SUPER_USER: commands skip the maker-checker queue, and may approve others'."""


@dataclass(kw_only=True)
class Command:
    action: str
    entity: str
    resource_id: int | None
    body: dict[str, Any]
    raw: bytes
    execute: Callable[[Connection], dict[str, Any]]
    """Validates (raising FineractError) and applies the command inside the transaction."""
    check: Callable[[], object] = field(default=lambda: None)
    """Validation without effects, for a maker's command that will wait for approval."""

    @property
    def task(self) -> str:
        return f"{self.action}_{self.entity}"


class FineractCore:
    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self.tenant_id = fake.credentials["tenant"]
        self.users = {
            fake.credentials["username"]: (
                fake.credentials["password"],
                User(1, fake.credentials["username"], False),
            ),
            fake.credentials["checker_username"]: (
                fake.credentials["checker_password"],
                User(2, fake.credentials["checker_username"], True),
            ),
        }
        self.builders: dict[str, Callable[[int | None, dict[str, Any], bytes], Command]] = {}

    # -- gates ----------------------------------------------------------------------------------

    def tenant(self, request: Request) -> None:
        tenant = request.headers.get(TENANT_HEADER) or request.query_params.get("tenantIdentifier")
        if not tenant:
            raise TenantError(
                "No tenant identifier found: Add request header of 'Fineract-Platform-TenantId' or add the"
                " parameter 'tenantIdentifier' to query string of request URL."
            )
        if tenant != self.tenant_id:
            raise TenantError(f"The tenant identifier: {tenant} is not valid.")

    def login(self, username: Any, password: Any) -> User | None:
        entry = self.users.get(username) if isinstance(username, str) else None
        if entry is None or entry[0] != password:
            return None
        return entry[1]

    def authenticate(self, request: Request) -> User:
        """Tenant first (the servlet filter), then Basic auth: every request authenticates again."""
        self.tenant(request)
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            raise unauthenticated()
        try:
            username, _, password = (
                base64.b64decode(credential.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            raise unauthenticated() from None
        user = self.login(username, password)
        if user is None:
            raise unauthenticated()
        return user

    async def json_body(self, request: Request) -> tuple[dict[str, Any], bytes]:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise FineractError(
                413,
                "error.msg.request.body.too.large",
                "The request body is larger than the server accepts.",
                "The request body is too large.",
            )
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            raise FineractError(
                400,
                "error.msg.invalid.json",
                "The request was invalid. This typically will happen due to validation errors which are"
                " provided.",
                "The provided JSON is invalid.",
            )
        return body, raw

    # -- ids ------------------------------------------------------------------------------------

    def next_id(self, db: Connection, kind: str) -> int:
        row = db.execute("SELECT body FROM objects WHERE kind = 'counter' AND id = 'ids'").fetchone()
        counters = json.loads(row["body"]) if row is not None else {}
        counters[kind] = int(counters.get(kind, 0)) + 1
        db.execute(
            "INSERT OR REPLACE INTO objects (kind, id, body) VALUES ('counter', 'ids', ?)",
            (json.dumps(counters),),
        )
        return int(counters[kind])

    # -- the command pipeline -------------------------------------------------------------------

    def _maker_checked(self, command: Command, user: User) -> bool:
        settings = self.fake.settings
        return (
            bool(settings["maker_checker_enabled"])
            and command.task in settings["maker_checker_tasks"]
            and not user.checker
        )

    async def run(self, request: Request, user: User, command: Command) -> Response:
        store, settings = self.fake.store, self.fake.settings
        raw_key = request.headers.get("idempotency-key")
        key = None
        if raw_key and settings["idempotency_enabled"]:
            key = raw_key[1:-1] if len(raw_key) >= 2 and raw_key[0] == raw_key[-1] == '"' else raw_key
        scope = f"{command.action}:{command.entity}"
        if key is not None and not store.begin_idempotent(scope, key, ""):
            record = store.get_idempotency(scope, key)
            if record is None or record.state == IN_FLIGHT or record.status is None or record.body is None:
                return Response(
                    command.raw,
                    status_code=int(settings["in_flight_status"]),
                    headers={"x-served-from-cache": "true"},
                    media_type="application/json",
                )
            return Response(
                record.body,
                status_code=record.status,
                headers={"x-served-from-cache": "true"},
                media_type="application/json",
            )
        try:
            delay = float(settings["processing_delay"])
            if delay > 0:
                await self.fake.clock.sleep(delay)
            status, body = self._process(user, command, scope, key)
        except BaseException:
            if key is not None:
                store.release_idempotent(scope, key)
            raise
        return JSONResponse(body, status_code=status)

    def _process(
        self, user: User, command: Command, scope: str, key: str | None
    ) -> tuple[int, dict[str, Any]]:
        store = self.fake.store
        try:
            if self._maker_checked(command, user):
                command.check()
                with store.transaction() as db:
                    body = self._queue(db, user, command, key)
                    self._complete(db, scope, key, 200, body)
            else:
                with store.transaction() as db:
                    body = command.execute(db)
                    self._complete(db, scope, key, 200, body)
        except FineractError as exc:
            with store.transaction() as db:
                self._complete(db, scope, key, exc.status, exc.body)
            return exc.status, exc.body
        return 200, body

    def _complete(
        self, db: Connection, scope: str, key: str | None, status: int, body: dict[str, Any]
    ) -> None:
        if key is not None:
            self.fake.store.complete_idempotent(
                db, scope=scope, key=key, status=status, headers={}, body=json.dumps(body).encode()
            )

    def _queue(self, db: Connection, user: User, command: Command, key: str | None) -> dict[str, Any]:
        command_id = self.next_id(db, "command")
        entry = {
            "id": command_id,
            "actionName": command.action,
            "entityName": command.entity,
            "resourceId": command.resource_id,
            "maker": user.username,
            "makerId": user.id,
            "madeOnDate": int(self.fake.clock.api_time() * 1000),
            "processingResult": "awaiting.approval",
            "commandAsJson": command.raw.decode("utf-8", "replace"),
            "idempotencyKey": key,
            "idempotencyScope": f"{command.action}:{command.entity}",
        }
        self.fake.store.put_object(db, "command", str(command_id), entry)
        return {"commandId": command_id, "resourceId": command.resource_id, "rollbackTransaction": True}

    def approve(self, db: Connection, entry: dict[str, Any], checker: User) -> dict[str, Any]:
        builder = self.builders[f"{entry['actionName']}_{entry['entityName']}"]
        raw = str(entry["commandAsJson"]).encode()
        command = builder(entry["resourceId"], json.loads(raw), raw)
        result = {"commandId": entry["id"], **command.execute(db)}
        entry.update(processingResult="approved", checker=checker.username, checkerId=checker.id)
        self.fake.store.put_object(db, "command", str(entry["id"]), entry)
        key = entry.get("idempotencyKey")
        if key:
            # Approval continues the maker's command: a retry under its key now replays the result.
            self._complete(db, str(entry["idempotencyScope"]), str(key), 200, result)
        return result
