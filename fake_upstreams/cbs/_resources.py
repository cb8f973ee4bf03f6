"""Fineract resources: authentication, clients, loans, repayments, maker-checker, configuration.

Repayment (``POST /loans/{id}/transactions?command=repayment``) is the money-moving command: its
``externalId`` is unique across loan transactions (a second use is a 400 on ``externalId``) and can be
looked up afterwards (``GET /loans/{id}/transactions/external-id/{externalId}``), which is how a client
reconciles a repayment whose answer it never saw. The client's operation id should therefore be the
transaction ``externalId``: each ``repayment`` effect in the ledger carries it as ``operation_id``
(amount in minor units, i.e. ``transactionAmount`` times 100). ``client_created`` effects carry the
client's ``externalId``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, date, datetime
from sqlite3 import Connection
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fake_upstreams.cbs._core import Command, FineractCore
from fake_upstreams.cbs._demo import CURRENCY, DISBURSED_ON, OFFICE, loan_status
from fake_upstreams.cbs._errors import FineractError, domain_rule, not_found, param_error, validation
from fake_upstreams.cbs._params import amount, page, parse_date, unsupported

__all__ = ["Resources"]

REPAYMENT_PARAMS = frozenset(
    {
        "transactionDate",
        "transactionAmount",
        "externalId",
        "note",
        "locale",
        "dateFormat",
        "paymentTypeId",
        "accountNumber",
        "checkNumber",
        "routingCode",
        "receiptNumber",
        "bankNumber",
    }
)
CLIENT_PARAMS = frozenset(
    {
        "officeId",
        "firstname",
        "lastname",
        "middlename",
        "fullname",
        "externalId",
        "active",
        "activationDate",
        "submittedOnDate",
        "dateFormat",
        "locale",
        "mobileNo",
        "legalFormId",
        "genderId",
        "staffId",
    }
)
MAKER_CHECKER_TASKS = ("REPAYMENT_LOAN", "CREATE_CLIENT")


def _as_int(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 18 else None


def _today(api_time: float) -> date:
    return datetime.fromtimestamp(api_time, UTC).date()


def _external_id(body: dict[str, Any]) -> str | None:
    value = body.get("externalId")
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool) or not 1 <= len(str(value)) <= 100:
        raise validation(
            param_error(
                "validation.msg.externalId.exceeds.max.length",
                "The parameter `externalId` must be a string of at most 100 characters.",
                "externalId",
                value,
            )
        )
    return str(value)


def _unknown_command(command: str | None) -> FineractError:
    return validation(
        param_error(
            "validation.msg.unrecognized.query.param",
            f"Unrecognized query param command: {command}",
            "command",
            command,
        )
    )


class Resources:
    def __init__(self, core: FineractCore) -> None:
        self.core = core
        self.fake = core.fake
        core.builders["REPAYMENT_LOAN"] = self._repayment_command
        core.builders["CREATE_CLIENT"] = self._client_command

    # -- authentication -------------------------------------------------------------------------

    async def authentication(self, request: Request) -> Response:
        self.core.tenant(request)
        body, _ = await self.core.json_body(request)
        username, password = body.get("username"), body.get("password")
        errors = [
            param_error(
                f"validation.msg.authentication.{name}.cannot.be.blank",
                f"The parameter `{name}` is mandatory.",
                name,
            )
            for name, value in (("username", username), ("password", password))
            if not isinstance(value, str) or not value
        ]
        if errors:
            raise validation(*errors)
        user = self.core.login(username, password)
        if user is None:
            raise FineractError(
                401,
                "error.msg.not.authenticated",
                "Invalid authentication details were passed in api request.",
                "Unauthenticated. Please login.",
            )
        key = base64.b64encode(f"{username}:{password}".encode()).decode()
        return JSONResponse(
            {
                "username": user.username,
                "userId": user.id,
                "base64EncodedAuthenticationKey": key,
                "authenticated": True,
                "officeId": OFFICE["id"],
                "officeName": OFFICE["name"],
                "staffId": None,
                "staffDisplayName": None,
                "organisationalRole": None,
                "roles": [
                    {
                        "id": 1,
                        "name": "Super user",
                        "description": "This role provides all application permissions.",
                    }
                ],
                "permissions": ["ALL_FUNCTIONS"] + (["CHECKER_SUPER_USER"] if user.checker else []),
                "shouldRenewPassword": False,
                "isTwoFactorAuthenticationRequired": False,
            }
        )

    # -- clients --------------------------------------------------------------------------------

    def _client(self, client_id: str) -> dict[str, Any]:
        client = self.fake.store.get_object("client", client_id)
        if client is None:
            raise not_found(
                "error.msg.client.id.invalid", f"Client with identifier {client_id} does not exist", client_id
            )
        return client

    async def list_clients(self, request: Request) -> Response:
        self.core.authenticate(request)
        query = dict(request.query_params)
        query.pop("tenantIdentifier", None)
        offset, limit, order_by, descending = page(
            query, frozenset({"id", "displayName", "accountNo", "externalId"})
        )
        clients = self.fake.store.objects("client")
        if "externalId" in query:
            clients = [c for c in clients if c.get("externalId") == query["externalId"]]
        if "displayName" in query:
            needle = query["displayName"].lower()
            clients = [c for c in clients if needle in c["displayName"].lower()]
        clients.sort(
            key=lambda c: str(c.get(order_by) or "") if order_by and order_by != "id" else c["id"],
            reverse=descending,
        )
        return JSONResponse(
            {"totalFilteredRecords": len(clients), "pageItems": clients[offset : offset + limit]}
        )

    async def get_client(self, request: Request) -> Response:
        self.core.authenticate(request)
        return JSONResponse(self._client(request.path_params["client_id"]))

    def _client_command(self, resource_id: int | None, body: dict[str, Any], raw: bytes) -> Command:
        store = self.fake.store

        def check() -> tuple[str, str, str | None, bool, date | None]:
            unsupported(body, CLIENT_PARAMS, "client")
            if body.get("officeId") in (None, ""):
                raise validation(
                    param_error(
                        "validation.msg.client.officeId.cannot.be.blank",
                        "The parameter `officeId` is mandatory.",
                        "officeId",
                    )
                )
            if str(body["officeId"]) != str(OFFICE["id"]):
                raise not_found(
                    "error.msg.office.id.invalid",
                    f"Office with identifier {body['officeId']} does not exist",
                    body["officeId"],
                )
            fullname = body.get("fullname")
            first, last = body.get("firstname"), body.get("lastname")
            if isinstance(fullname, str) and fullname.strip():
                first, last = fullname.strip(), ""
            elif not (isinstance(first, str) and first.strip() and isinstance(last, str) and last.strip()):
                raise validation(
                    param_error(
                        "validation.msg.client.firstname.cannot.be.blank",
                        "The parameter `firstname` is mandatory.",
                        "firstname",
                    ),
                    param_error(
                        "validation.msg.client.lastname.cannot.be.blank",
                        "The parameter `lastname` is mandatory.",
                        "lastname",
                    ),
                )
            external_id = _external_id(body)
            active = body.get("active", False)
            if not isinstance(active, bool):
                raise validation(
                    param_error(
                        "validation.msg.client.active.is.not.one.of.expected.enumerations",
                        "The parameter `active` must be true or false.",
                        "active",
                        active,
                    )
                )
            activation = parse_date(body, "activationDate", "client") if active else None
            if external_id is not None and any(
                c.get("externalId") == external_id for c in store.objects("client")
            ):
                raise domain_rule(
                    "error.msg.client.duplicate.externalId",
                    f"Client with externalId `{external_id}` already exists",
                    external_id,
                )
            return str(first).strip(), str(last).strip(), external_id, active, activation

        def execute(db: Connection) -> dict[str, Any]:
            first, last, external_id, active, activation = check()
            client_id = self.core.next_id(db, "client")
            client = {
                "id": client_id,
                "accountNo": f"{client_id:09d}",
                "externalId": external_id,
                "status": {"id": 300, "code": "clientStatusType.active", "value": "Active"}
                if active
                else {"id": 100, "code": "clientStatusType.pending", "value": "Pending"},
                "active": active,
                "activationDate": None
                if activation is None
                else [activation.year, activation.month, activation.day],
                "firstname": first,
                "lastname": last,
                "displayName": f"{first} {last}".strip(),
                "mobileNo": body.get("mobileNo"),
                "officeId": OFFICE["id"],
                "officeName": OFFICE["name"],
            }
            store.put_object(db, "client", str(client_id), client)
            store.add_effect(
                db,
                kind="client_created",
                object_id=str(client_id),
                operation_id=external_id,
                idempotency_key=None,
                amount=None,
                currency=None,
                detail={"displayName": client["displayName"]},
            )
            result: dict[str, Any] = {
                "officeId": OFFICE["id"],
                "clientId": client_id,
                "resourceId": client_id,
            }
            if external_id is not None:
                result["resourceExternalId"] = external_id
            return result

        return Command(
            action="CREATE",
            entity="CLIENT",
            resource_id=resource_id,
            body=body,
            raw=raw,
            execute=execute,
            check=check,
        )

    async def create_client(self, request: Request) -> Response:
        user = self.core.authenticate(request)
        body, raw = await self.core.json_body(request)
        return await self.core.run(request, user, self._client_command(None, body, raw))

    # -- loans ----------------------------------------------------------------------------------

    def _loan(self, raw_id: str) -> dict[str, Any]:
        loan = self.fake.store.get_object("loan", raw_id) if _as_int(raw_id) is not None else None
        if loan is None:
            raise not_found(
                "error.msg.loan.id.invalid", f"Loan with identifier {raw_id} does not exist", raw_id
            )
        return loan

    def _loan_by_external_id(self, external_id: str) -> dict[str, Any]:
        for loan in self.fake.store.objects("loan"):
            if loan.get("externalId") == external_id:
                return loan
        raise not_found(
            "error.msg.loan.external.id.invalid",
            f"Loan with external identifier {external_id} does not exist",
            external_id,
        )

    def _transactions(self, loan_id: int) -> list[dict[str, Any]]:
        return [tx for tx in self.fake.store.objects("loan_transaction") if tx["loanId"] == loan_id]

    async def list_loans(self, request: Request) -> Response:
        self.core.authenticate(request)
        query = dict(request.query_params)
        query.pop("tenantIdentifier", None)
        offset, limit, order_by, descending = page(
            query, frozenset({"id", "accountNo", "externalId", "clientId"})
        )
        loans = self.fake.store.objects("loan")
        if "externalId" in query:
            loans = [loan for loan in loans if loan.get("externalId") == query["externalId"]]
        loans.sort(
            key=lambda loan: str(loan.get(order_by) or "") if order_by and order_by != "id" else loan["id"],
            reverse=descending,
        )
        return JSONResponse({"totalFilteredRecords": len(loans), "pageItems": loans[offset : offset + limit]})

    async def get_loan(self, request: Request) -> Response:
        self.core.authenticate(request)
        loan = self._loan(request.path_params["loan_id"])
        associations = request.query_params.get("associations", "")
        if "transactions" in associations.split(",") or associations == "all":
            loan = {**loan, "transactions": self._transactions(loan["id"])}
        return JSONResponse(loan)

    def _check_cob_lock(self, loan_id: int) -> None:
        if loan_id in [int(i) for i in self.fake.settings["locked_loans"] if str(i).isdigit()]:
            raise FineractError(
                409,
                "error.msg.loan.locked",
                f"Loan is locked by the COB job. Loan ID: {loan_id}",
                f"Loan is locked by the COB job. Loan ID: {loan_id}",
                [
                    param_error(
                        "error.msg.loan.locked",
                        f"Loan is locked by the COB job. Loan ID: {loan_id}",
                        "loanId",
                        loan_id,
                    )
                ],
            )

    def _repayment_command(self, resource_id: int | None, body: dict[str, Any], raw: bytes) -> Command:
        store, clock = self.fake.store, self.fake.clock

        def check() -> tuple[dict[str, Any], date, float, str | None]:
            loan = self._loan(str(resource_id))
            unsupported(body, REPAYMENT_PARAMS, "loan.transaction")
            when = parse_date(body, "transactionDate", "loan.transaction")
            paid = amount(body, "transactionAmount", "loan.transaction")
            external_id = _external_id(body)
            if not loan["status"]["active"]:
                raise validation(
                    param_error(
                        "error.msg.loan.repayment.or.waiver.account.is.not.active",
                        "Loan Repayment or Waiver is not allowed. Loan Account is not active.",
                        "loanId",
                        loan["id"],
                    )
                )
            if when > _today(clock.api_time()):
                raise domain_rule(
                    "error.msg.loan.transaction.cannot.be.a.future.date",
                    "The transaction date cannot be in the future.",
                    str(when),
                )
            if when < date(*DISBURSED_ON):
                raise domain_rule(
                    "error.msg.loan.transaction.cannot.be.before.disbursement.date",
                    "The transaction date cannot be before the loan disbursement date.",
                    str(when),
                )
            if external_id is not None and store.get_object("tx_external", external_id) is not None:
                raise validation(
                    param_error(
                        "validation.msg.loan.transaction.externalId.value.must.be.unique",
                        f"Value `{external_id}` must be unique.",
                        "externalId",
                        external_id,
                    )
                )
            return loan, when, paid, external_id

        def execute(db: Connection) -> dict[str, Any]:
            loan, when, paid, external_id = check()
            tx_id = self.core.next_id(db, "transaction")
            summary = dict(loan["summary"])
            summary["totalRepayment"] = round(summary["totalRepayment"] + paid, 2)
            summary["totalOutstanding"] = round(summary["totalOutstanding"] - paid, 2)
            status = (
                300 if summary["totalOutstanding"] > 0 else (600 if summary["totalOutstanding"] == 0 else 700)
            )
            loan = {**loan, "summary": summary, "status": loan_status(status)}
            today = _today(clock.api_time())
            tx = {
                "id": tx_id,
                "loanId": loan["id"],
                "officeId": OFFICE["id"],
                "officeName": OFFICE["name"],
                "type": {
                    "id": 2,
                    "code": "loanTransactionType.repayment",
                    "value": "Repayment",
                    "repayment": True,
                },
                "date": [when.year, when.month, when.day],
                "submittedOnDate": [today.year, today.month, today.day],
                "currency": CURRENCY,
                "amount": paid,
                "outstandingLoanBalance": max(summary["totalOutstanding"], 0.0),
                "externalId": external_id,
                "manuallyReversed": False,
            }
            if body.get("note") is not None:
                tx["note"] = body["note"]
            store.put_object(db, "loan", str(loan["id"]), loan)
            store.put_object(db, "loan_transaction", str(tx_id), tx)
            if external_id is not None:
                store.put_object(db, "tx_external", external_id, {"id": tx_id, "loanId": loan["id"]})
            store.add_effect(
                db,
                kind="repayment",
                object_id=str(tx_id),
                operation_id=external_id,
                idempotency_key=None,
                amount=round(paid * 100),
                currency=CURRENCY["code"],
                detail={"loanId": loan["id"], "transactionAmount": paid},
            )
            changes = {
                k: body[k]
                for k in (
                    "transactionDate",
                    "transactionAmount",
                    "locale",
                    "dateFormat",
                    "paymentTypeId",
                    "externalId",
                    "note",
                )
                if k in body
            }
            result: dict[str, Any] = {
                "officeId": OFFICE["id"],
                "clientId": loan["clientId"],
                "loanId": loan["id"],
                "resourceId": tx_id,
                "changes": changes,
            }
            if external_id is not None:
                result["resourceExternalId"] = external_id
            return result

        return Command(
            action="REPAYMENT",
            entity="LOAN",
            resource_id=resource_id,
            body=body,
            raw=raw,
            execute=execute,
            check=check,
        )

    async def _transaction_command(self, request: Request, loan_id: int) -> Response:
        user = self.core.authenticate(request)
        command = request.query_params.get("command")
        if command != "repayment":
            raise _unknown_command(command)
        self._check_cob_lock(loan_id)
        body, raw = await self.core.json_body(request)
        return await self.core.run(request, user, self._repayment_command(loan_id, body, raw))

    async def loan_transaction(self, request: Request) -> Response:
        raw_id = request.path_params["loan_id"]
        loan_id = _as_int(raw_id)
        if loan_id is None:
            self.core.authenticate(request)
            raise not_found(
                "error.msg.loan.id.invalid", f"Loan with identifier {raw_id} does not exist", raw_id
            )
        return await self._transaction_command(request, loan_id)

    async def loan_transaction_by_external_id(self, request: Request) -> Response:
        self.core.authenticate(request)
        loan = self._loan_by_external_id(request.path_params["loan_external_id"])
        return await self._transaction_command(request, int(loan["id"]))

    async def get_transaction(self, request: Request) -> Response:
        self.core.authenticate(request)
        loan = self._loan(request.path_params["loan_id"])
        tx_id = request.path_params["tx_id"]
        tx = self.fake.store.get_object("loan_transaction", tx_id) if _as_int(tx_id) is not None else None
        if tx is None or tx["loanId"] != loan["id"]:
            raise not_found(
                "error.msg.loan.transaction.id.invalid",
                f"Transaction with identifier {tx_id} does not exist",
                tx_id,
            )
        return JSONResponse(tx)

    async def get_transaction_by_external_id(self, request: Request) -> Response:
        self.core.authenticate(request)
        loan = self._loan(request.path_params["loan_id"])
        external_id = request.path_params["external_id"]
        index = self.fake.store.get_object("tx_external", external_id)
        tx = None if index is None else self.fake.store.get_object("loan_transaction", str(index["id"]))
        if tx is None or tx["loanId"] != loan["id"]:
            raise not_found(
                "error.msg.loan.transaction.external.id.invalid",
                f"Transaction with external identifier {external_id} does not exist",
                external_id,
            )
        return JSONResponse(tx)

    # -- maker-checker --------------------------------------------------------------------------

    def _entry(self, raw_id: str) -> dict[str, Any]:
        entry = self.fake.store.get_object("command", raw_id) if _as_int(raw_id) is not None else None
        if entry is None or entry["processingResult"] != "awaiting.approval":
            raise not_found(
                "error.msg.commandsource.id.invalid", f"Audit with identifier {raw_id} does not exist", raw_id
            )
        return entry

    async def list_makercheckers(self, request: Request) -> Response:
        self.core.authenticate(request)
        filters: dict[str, Callable[[dict[str, Any], str], bool]] = {
            "actionName": lambda e, v: e["actionName"] == v,
            "entityName": lambda e, v: e["entityName"] == v,
            "resourceId": lambda e, v: str(e["resourceId"]) == v,
            "makerId": lambda e, v: str(e["makerId"]) == v,
        }
        entries = [
            e for e in self.fake.store.objects("command") if e["processingResult"] == "awaiting.approval"
        ]
        for name, keep in filters.items():
            value = request.query_params.get(name)
            if value:
                entries = [e for e in entries if keep(e, value)]
        return JSONResponse(entries)

    async def decide(self, request: Request) -> Response:
        user = self.core.authenticate(request)
        command = request.query_params.get("command")
        if command not in ("approve", "reject"):
            raise _unknown_command(command)
        entry = self._entry(request.path_params["audit_id"])
        if not user.checker:
            raise FineractError(
                403,
                "error.msg.not.authorized",
                "The user associated with credentials passed on this request does not have sufficient"
                " privileges to perform this action.",
                "Insufficient privileges to perform this action.",
            )
        if entry["makerId"] == user.id:
            raise validation(
                param_error(
                    "error.msg.maker.checker.same.user",
                    "The maker of a command cannot approve or reject it.",
                    "makerId",
                    user.id,
                )
            )
        store = self.fake.store
        with store.transaction() as db:
            if command == "approve":
                result = self.core.approve(db, entry, user)
            else:
                entry.update(processingResult="rejected", checker=user.username, checkerId=user.id)
                store.put_object(db, "command", str(entry["id"]), entry)
                result = {"commandId": entry["id"], "resourceId": entry["resourceId"]}
        return JSONResponse(result)

    async def delete_makerchecker(self, request: Request) -> Response:
        self.core.authenticate(request)
        entry = self._entry(request.path_params["audit_id"])
        with self.fake.store.transaction() as db:
            self.fake.store.delete_object(db, "command", str(entry["id"]))
        return JSONResponse({"commandId": entry["id"]})

    # -- configuration and permissions (how maker-checker is switched on) ----------------------

    async def get_configuration(self, request: Request) -> Response:
        self.core.authenticate(request)
        name = request.path_params["name"]
        if name != "maker-checker":
            raise not_found(
                "error.msg.configuration.name.invalid", f"Configuration with name {name} does not exist", name
            )
        return JSONResponse(
            {
                "id": 1,
                "name": "maker-checker",
                "enabled": bool(self.fake.settings["maker_checker_enabled"]),
                "value": 0,
                "trapDoor": False,
                "description": "Maker-checker: commands of selected tasks wait for a checker's approval.",
            }
        )

    async def put_configuration(self, request: Request) -> Response:
        self.core.authenticate(request)
        config_id = request.path_params["config_id"]
        if config_id != "1":
            raise not_found(
                "error.msg.configuration.id.invalid",
                f"Configuration with identifier {config_id} does not exist",
                config_id,
            )
        body, _ = await self.core.json_body(request)
        unsupported(body, frozenset({"enabled", "value"}), "globalConfiguration")
        enabled = body.get("enabled")
        if not isinstance(enabled, bool):
            raise validation(
                param_error(
                    "validation.msg.globalConfiguration.enabled.is.not.one.of.expected.enumerations",
                    "The parameter `enabled` must be true or false.",
                    "enabled",
                    enabled,
                )
            )
        self.fake.settings.update({"maker_checker_enabled": enabled})
        return JSONResponse({"resourceId": 1, "changes": {"enabled": enabled}})

    async def get_permissions(self, request: Request) -> Response:
        self.core.authenticate(request)
        tasks = self.fake.settings["maker_checker_tasks"]
        return JSONResponse(
            [
                {
                    "grouping": "portfolio",
                    "code": code,
                    "entityName": code.split("_", 1)[1],
                    "actionName": code.split("_", 1)[0],
                    "selected": code in tasks,
                }
                for code in MAKER_CHECKER_TASKS
            ]
        )

    async def put_permissions(self, request: Request) -> Response:
        self.core.authenticate(request)
        body, _ = await self.core.json_body(request)
        unsupported(body, frozenset({"permissions"}), "permission")
        permissions = body.get("permissions")
        if not isinstance(permissions, dict) or not all(
            code in MAKER_CHECKER_TASKS and isinstance(flag, bool) for code, flag in permissions.items()
        ):
            raise validation(
                param_error(
                    "validation.msg.permission.permissions.invalid",
                    f"permissions must map codes among {list(MAKER_CHECKER_TASKS)} to true or false.",
                    "permissions",
                )
            )
        tasks = set(self.fake.settings["maker_checker_tasks"])
        tasks |= {code for code, flag in permissions.items() if flag}
        tasks -= {code for code, flag in permissions.items() if not flag}
        self.fake.settings.update({"maker_checker_tasks": sorted(tasks)})
        return JSONResponse({"changes": {"permissions": permissions}})
