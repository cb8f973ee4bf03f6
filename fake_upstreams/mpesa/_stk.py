"""M-Pesa Express (STK push): the prompt, its asynchronous outcome, the callback and the query.

A valid push answers at once with ``ResponseCode "0"`` ("accepted", not "paid"), writes the ledger
effect ``stk_prompt`` (a prompt reached the customer's phone) and schedules the resolution
``stk_delay`` seconds later, all in one transaction. The outcome is drawn when the push is accepted
(seeded, from ``stk_results`` weights over 0, 1, 1032, 1037, 2001, 1019), so a restarted fake resolves
it the same way. At resolution a success becomes ``17`` ("Rule limited") when the same phone paid the
same amount within ``duplicate_window`` seconds (Daraja's de-facto duplicate guard); a success writes
the effect ``stk_payment`` (money moved). Then the callback is queued for ``CallBackURL``.

While a prompt is pending on a phone, a second push to it is refused with "Unable to lock
subscriber" (``500.001.1001``), and the STK query answers the pending transaction with the error
envelope "The transaction is being processed" (``500.001.1001``, HTTP 500): pending, not an outage.

The client's operation id travels in ``AccountReference`` (at most 12 characters): each effect's
``operation_id`` is the AccountReference of its push.
"""

from __future__ import annotations

import json
from sqlite3 import Connection
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fake_upstreams._scheduler import DELIVER
from fake_upstreams._store import Job
from fake_upstreams.mpesa import _fields as fields
from fake_upstreams.mpesa._core import DarajaCore
from fake_upstreams.mpesa._errors import DarajaError, invalid, request_id

__all__ = ["RESULT_DESCRIPTIONS", "STK_RESULT_CODES", "StkPush"]

RESOLVE = "stk_resolve"
TRANSACTION_TYPES = frozenset({"CustomerPayBillOnline", "CustomerBuyGoodsOnline"})
RESULT_DESCRIPTIONS = {
    "0": "The service request is processed successfully.",
    "1": "The balance is insufficient for the transaction.",
    "17": "Rule limited.",
    "1019": "Transaction has expired.",
    "1032": "Request cancelled by user",
    "1037": "DS timeout user cannot be reached",
    "2001": "The initiator information is invalid.",
}
STK_RESULT_CODES = frozenset({"0", "1", "1019", "1032", "1037", "2001"})
_RECEIPT_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class StkPush:
    def __init__(self, core: DarajaCore) -> None:
        self.core = core
        self.fake = core.fake
        self.fake.scheduler.register(RESOLVE, self._resolve_job)

    # -- push -----------------------------------------------------------------------------------

    def _credentials(self, body: dict[str, Any]) -> tuple[str, str]:
        shortcode = fields.shortcode(body)
        password = body.get("Password")
        if not isinstance(password, str) or not password:
            raise invalid("Password")
        timestamp = fields.timestamp(body)
        if shortcode != self.core.credentials["shortcode"]:
            raise DarajaError("500.001.1001", "Merchant does not exist")
        if password != self.core.password(timestamp):
            raise DarajaError("500.001.1001", "Wrong credentials")
        return shortcode, timestamp

    async def push(self, request: Request) -> Response:
        body = await self.core.json_body(request)
        shortcode = fields.shortcode(body)
        transaction_type = body.get("TransactionType")
        amount = fields.amount(body, "Amount", 1, 250_000)
        party_a = fields.msisdn(body, "PartyA")
        fields.shortcode(body, "PartyB")
        phone = fields.msisdn(body, "PhoneNumber")
        callback_url = fields.url(body, "CallBackURL")
        reference = fields.text(body, "AccountReference", max_len=12)
        description = fields.text(body, "TransactionDesc", max_len=13, required=False)
        if transaction_type not in TRANSACTION_TYPES:
            raise invalid("TransactionType")
        self._credentials(body)
        settings, store, clock = self.fake.settings, self.fake.store, self.fake.clock
        if settings["lock_subscriber"] and any(
            stk["phone"] == phone and stk["state"] == "pending" for stk in store.objects("stk")
        ):
            raise DarajaError(
                "500.001.1001",
                "Unable to lock subscriber, a transaction is already in process for the current subscriber",
            )
        now = self.core.nairobi_now()
        merchant_id = request_id(self.fake.rng)
        checkout_id = f"ws_CO_{now:%d%m%Y%H%M%S}{self.fake.rng.randrange(10**11, 10**12)}"
        drawn = self._draw(settings["stk_results"])
        stk: dict[str, Any] = {
            "CheckoutRequestID": checkout_id,
            "MerchantRequestID": merchant_id,
            "shortcode": shortcode,
            "phone": phone,
            "party_a": party_a,
            "amount": amount,
            "reference": reference,
            "description": description,
            "callback_url": callback_url,
            "state": "pending",
            "drawn": drawn,
            "accepted_at": clock.api_time(),
            "resolve_at": clock.api_time() + float(settings["stk_delay"]),
        }
        with store.transaction() as db:
            store.put_object(db, "stk", checkout_id, stk)
            store.add_effect(
                db,
                kind="stk_prompt",
                object_id=checkout_id,
                operation_id=reference,
                idempotency_key=None,
                amount=amount,
                currency="KES",
                detail={"phone": phone, "merchant_request_id": merchant_id},
            )
            store.add_job(db, due=stk["resolve_at"], kind=RESOLVE, payload={"id": checkout_id})
        self.fake.scheduler.wake()
        message = "Success. Request accepted for processing"
        return JSONResponse(
            {
                "MerchantRequestID": merchant_id,
                "CheckoutRequestID": checkout_id,
                "ResponseCode": "0",
                "ResponseDescription": message,
                "CustomerMessage": message,
            }
        )

    def _draw(self, weights: dict[str, float]) -> str:
        codes = sorted(weights)
        return self.fake.rng.choices(codes, weights=[weights[c] for c in codes])[0]

    # -- resolution -----------------------------------------------------------------------------

    async def _resolve_job(self, job: Job) -> None:
        with self.fake.store.transaction() as db:
            self._resolve(db, str(job.payload["id"]))
            self.fake.store.finish_job(db, job.id)
        self.fake.scheduler.wake()

    def _resolve(self, db: Connection, checkout_id: str) -> dict[str, Any] | None:
        store, clock = self.fake.store, self.fake.clock
        stk = store.get_object("stk", checkout_id)
        if stk is None or stk["state"] != "pending":
            return stk
        code = str(stk["drawn"])
        now = clock.api_time()
        window = float(self.fake.settings["duplicate_window"])
        if code == "0" and any(
            other["phone"] == stk["phone"]
            and other["amount"] == stk["amount"]
            and other.get("ResultCode") == "0"
            and now - float(other["completed_at"]) < window
            for other in store.objects("stk")
        ):
            code = "17"
        stk.update(state="completed", ResultCode=code, ResultDesc=RESULT_DESCRIPTIONS[code], completed_at=now)
        callback: dict[str, Any] = {
            "MerchantRequestID": stk["MerchantRequestID"],
            "CheckoutRequestID": checkout_id,
            "ResultCode": int(code),
            "ResultDesc": RESULT_DESCRIPTIONS[code],
        }
        if code == "0":
            receipt = "".join(self.fake.rng.choice(_RECEIPT_ALPHABET) for _ in range(10))
            stk["receipt"] = receipt
            when = int(self.core.nairobi_now().strftime("%Y%m%d%H%M%S"))
            callback["CallbackMetadata"] = {
                "Item": [
                    {"Name": "Amount", "Value": float(stk["amount"])},
                    {"Name": "MpesaReceiptNumber", "Value": receipt},
                    {"Name": "Balance"},
                    {"Name": "TransactionDate", "Value": when},
                    {"Name": "PhoneNumber", "Value": int(stk["phone"])},
                ]
            }
            store.add_effect(
                db,
                kind="stk_payment",
                object_id=checkout_id,
                operation_id=stk["reference"],
                idempotency_key=None,
                amount=int(stk["amount"]),
                currency="KES",
                detail={"phone": stk["phone"], "receipt": receipt},
            )
        store.put_object(db, "stk", checkout_id, stk)
        store.add_job(
            db,
            due=now,
            kind=DELIVER,
            payload={
                "url": stk["callback_url"],
                "body": json.dumps({"Body": {"stkCallback": callback}}),
                "kind": "stk_callback",
                "ref": checkout_id,
                "attempt": 1,
                "retry_delays": list(self.fake.settings["callback_retry_delays"]),
            },
        )
        return stk

    # -- query ----------------------------------------------------------------------------------

    async def query(self, request: Request) -> Response:
        body = await self.core.json_body(request)
        self._credentials(body)
        checkout_id = body.get("CheckoutRequestID")
        if not isinstance(checkout_id, str) or not checkout_id:
            raise invalid("CheckoutRequestID")
        stk = self.fake.store.get_object("stk", checkout_id)
        if stk is None:
            raise invalid("CheckoutRequestID")
        if stk["state"] == "pending" and self.fake.clock.api_time() >= float(stk["resolve_at"]):
            with self.fake.store.transaction() as db:
                stk = self._resolve(db, checkout_id) or stk
            self.fake.scheduler.wake()
        if stk["state"] == "pending":
            raise DarajaError("500.001.1001", "The transaction is being processed", request_id=checkout_id)
        return JSONResponse(
            {
                "ResponseCode": "0",
                "ResponseDescription": "The service request has been accepted successfully",
                "MerchantRequestID": stk["MerchantRequestID"],
                "CheckoutRequestID": checkout_id,
                "ResultCode": stk["ResultCode"],
                "ResultDesc": stk["ResultDesc"],
            }
        )
