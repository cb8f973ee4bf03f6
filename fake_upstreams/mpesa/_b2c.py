"""B2C payments: ``OriginatorConversationID`` de-duplication and results to ``ResultURL`` /
``QueueTimeOutURL``.

Daraja has no idempotency header; the merchant-chosen ``OriginatorConversationID`` is its nearest
thing ("to avoid double disbursement"): a reused one is refused with ``500.002.1001`` "Duplicate
OriginatorConversationID." whatever the rest of the body says. So the client's operation id should
*be* the OriginatorConversationID, and each ``b2c_payment`` effect carries it as ``operation_id``.

The outcome is drawn at acceptance (seeded, ``b2c_results`` weights over 0, 1, 2001, 2040, 8006 and
``timeout``); a wrong ``SecurityCredential`` or ``InitiatorName`` always ends in 2001, as on the real
API, asynchronously. ``b2c_delay`` seconds later a success writes the effect and POSTs the Result to
``ResultURL``; ``timeout`` sends a notice to ``QueueTimeOutURL`` instead and moves no money.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fake_upstreams._scheduler import DELIVER
from fake_upstreams._store import Job
from fake_upstreams.mpesa import _fields as fields
from fake_upstreams.mpesa._core import DarajaCore
from fake_upstreams.mpesa._errors import DarajaError, invalid

__all__ = ["B2C_RESULT_CODES", "B2CPayments"]

RESOLVE = "b2c_resolve"
COMMAND_IDS = frozenset({"BusinessPayment", "SalaryPayment", "PromotionPayment"})
B2C_RESULT_CODES = frozenset({"0", "1", "2001", "2040", "8006", "timeout"})
RESULT_DESCRIPTIONS = {
    "0": "The service request is processed successfully.",
    "1": "The balance is insufficient for the transaction.",
    "2001": "The initiator information is invalid.",
    "2040": (
        "Credit Party customer type (Unregistered or Registered Customer) can't be supported by the service."
    ),
    "8006": "The security credential is locked.",
}
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class B2CPayments:
    def __init__(self, core: DarajaCore) -> None:
        self.core = core
        self.fake = core.fake
        self.fake.scheduler.register(RESOLVE, self._resolve_job)

    async def pay(self, request: Request) -> Response:
        body = await self.core.json_body(request)
        v3 = "/v3/" in request.url.path
        ocid = body.get("OriginatorConversationID")
        if v3 or ocid is not None:
            if not isinstance(ocid, str) or not 1 <= len(ocid) <= 100:
                raise invalid("OriginatorConversationID")
        else:
            ocid = f"{self.fake.rng.randrange(10**4, 10**5)}-{self.fake.rng.randrange(10**7, 10**8)}-1"
        initiator = fields.text(body, "InitiatorName", max_len=100)
        credential = fields.text(body, "SecurityCredential", max_len=4096)
        command = body.get("CommandID")
        if command not in COMMAND_IDS:
            raise invalid("CommandID")
        amount = fields.amount(body, "Amount", 10, 250_000)
        party_a = fields.shortcode(body, "PartyA")
        party_b = fields.msisdn(body, "PartyB")
        fields.text(body, "Remarks", max_len=100, min_len=2)
        timeout_url = fields.url(body, "QueueTimeOutURL")
        result_url = fields.url(body, "ResultURL")
        occasion = fields.text(body, "Occassion", max_len=100, min_len=0, required=False)
        store, clock, settings = self.fake.store, self.fake.clock, self.fake.settings
        if store.get_object("b2c", ocid) is not None:
            raise DarajaError("500.002.1001", "Duplicate OriginatorConversationID.")
        authentic = (
            initiator == self.core.credentials["initiator_name"]
            and credential == self.core.credentials["security_credential"]
        )
        codes = sorted(settings["b2c_results"])
        drawn = self.fake.rng.choices(codes, weights=[settings["b2c_results"][c] for c in codes])[0]
        conversation_id = f"AG_{self.core.nairobi_now():%Y%m%d}_{self.core.token_string(20, _ALNUM)}"
        payment = {
            "OriginatorConversationID": ocid,
            "ConversationID": conversation_id,
            "command": command,
            "amount": amount,
            "party_a": party_a,
            "party_b": party_b,
            "occasion": occasion,
            "result_url": result_url,
            "timeout_url": timeout_url,
            "state": "pending",
            "drawn": drawn if authentic else "2001",
            "accepted_at": clock.api_time(),
        }
        with store.transaction() as db:
            store.put_object(db, "b2c", ocid, payment)
            store.add_job(
                db, due=clock.api_time() + float(settings["b2c_delay"]), kind=RESOLVE, payload={"id": ocid}
            )
        self.fake.scheduler.wake()
        return JSONResponse(
            {
                "ConversationID": conversation_id,
                "OriginatorConversationID": ocid,
                "ResponseCode": "0",
                "ResponseDescription": "Accept the service request successfully.",
            }
        )

    async def _resolve_job(self, job: Job) -> None:
        store = self.fake.store
        ocid = str(job.payload["id"])
        with store.transaction() as db:
            payment = store.get_object("b2c", ocid)
            if payment is not None and payment["state"] == "pending":
                url, body = self._result(payment)
                if payment["ResultCode"] == "0":
                    store.add_effect(
                        db,
                        kind="b2c_payment",
                        object_id=payment["ConversationID"],
                        operation_id=ocid,
                        idempotency_key=None,
                        amount=int(payment["amount"]),
                        currency="KES",
                        detail={"party_b": payment["party_b"], "receipt": payment["receipt"]},
                    )
                store.put_object(db, "b2c", ocid, payment)
                store.add_job(
                    db,
                    due=self.fake.clock.api_time(),
                    kind=DELIVER,
                    payload={
                        "url": url,
                        "body": json.dumps(body),
                        "kind": "b2c_result" if url == payment["result_url"] else "b2c_timeout",
                        "ref": ocid,
                        "attempt": 1,
                        "retry_delays": list(self.fake.settings["callback_retry_delays"]),
                    },
                )
            store.finish_job(db, job.id)
        self.fake.scheduler.wake()

    def _result(self, payment: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Complete ``payment`` in place; returns where to send what."""
        code = str(payment["drawn"])
        now = self.core.nairobi_now()
        payment["state"] = "completed"
        if code == "timeout":
            payment["ResultCode"] = "timeout"
            notice = {
                "Result": {
                    "ResultType": 1,
                    "ResultCode": 1,
                    "ResultDesc": "The request was not processed: it timed out in the queue.",
                    "OriginatorConversationID": payment["OriginatorConversationID"],
                    "ConversationID": payment["ConversationID"],
                    "TransactionID": None,
                }
            }
            return payment["timeout_url"], notice
        payment["ResultCode"] = code
        receipt = "".join(self.fake.rng.choice(_ALNUM) for _ in range(10))
        payment["receipt"] = receipt
        result: dict[str, Any] = {
            "ResultType": 0,
            "ResultCode": int(code),
            "ResultDesc": RESULT_DESCRIPTIONS[code],
            "OriginatorConversationID": payment["OriginatorConversationID"],
            "ConversationID": payment["ConversationID"],
            "TransactionID": receipt,
            "ReferenceData": {"ReferenceItem": {"Key": "QueueTimeoutURL", "Value": payment["timeout_url"]}},
        }
        if code == "0":
            result["ResultParameters"] = {
                "ResultParameter": [
                    {"Key": "TransactionAmount", "Value": payment["amount"]},
                    {"Key": "TransactionReceipt", "Value": receipt},
                    {"Key": "B2CRecipientIsRegisteredCustomer", "Value": "Y"},
                    {"Key": "B2CChargesPaidAccountAvailableFunds", "Value": 0.0},
                    {"Key": "ReceiverPartyPublicName", "Value": f"{payment['party_b']} - Test Customer"},
                    {"Key": "TransactionCompletedDateTime", "Value": f"{now:%d.%m.%Y %H:%M:%S}"},
                    {"Key": "B2CUtilityAccountAvailableFunds", "Value": 100000.0},
                    {"Key": "B2CWorkingAccountAvailableFunds", "Value": 900000.0},
                ]
            }
        return payment["result_url"], {"Result": result}
