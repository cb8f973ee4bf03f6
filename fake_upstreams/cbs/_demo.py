"""The demo tenant: one office, a dozen clients and active loans, as Fineract's own demo data has.

Written into the store on first start and again on every admin reset, so each run starts from the
same book. Loans are active with a flat-interest total to repay; repayments reduce ``totalOutstanding``
and close the loan (``closed.obligations.met``) or mark it ``overpaid`` as Fineract does.
"""

from __future__ import annotations

from sqlite3 import Connection
from typing import Any

from fake_upstreams._store import UpstreamStore

__all__ = ["CURRENCY", "OFFICE", "loan_status", "seed_demo"]

OFFICE = {"id": 1, "name": "Head Office"}
CURRENCY: dict[str, Any] = {
    "code": "USD",
    "name": "US Dollar",
    "decimalPlaces": 2,
    "inMultiplesOf": 0,
    "displaySymbol": "$",
    "nameCode": "currency.USD",
    "displayLabel": "US Dollar ($)",
}
_NAMES = [
    ("Anna", "Wanjiru"),
    ("Brian", "Otieno"),
    ("Cynthia", "Achieng"),
    ("David", "Kamau"),
    ("Esther", "Njeri"),
    ("Felix", "Mwangi"),
    ("Grace", "Atieno"),
    ("Hassan", "Abdi"),
    ("Irene", "Chebet"),
    ("James", "Kiprop"),
    ("Lucy", "Nyambura"),
    ("Moses", "Odhiambo"),
]
_STATUSES = {
    300: ("loanStatusType.active", "Active"),
    600: ("loanStatusType.closed.obligations.met", "Closed (obligations met)"),
    700: ("loanStatusType.overpaid", "Overpaid"),
}
DISBURSED_ON = [2024, 1, 15]


def loan_status(status_id: int) -> dict[str, Any]:
    code, value = _STATUSES[status_id]
    return {
        "id": status_id,
        "code": code,
        "value": value,
        "active": status_id == 300,
        "closedObligationsMet": status_id == 600,
        "overpaid": status_id == 700,
        "closed": status_id == 600,
    }


def _client(client_id: int, first: str, last: str) -> dict[str, Any]:
    return {
        "id": client_id,
        "accountNo": f"{client_id:09d}",
        "externalId": f"CLIENT-{client_id:04d}",
        "status": {"id": 300, "code": "clientStatusType.active", "value": "Active"},
        "active": True,
        "activationDate": [2023, 6, 1],
        "firstname": first,
        "lastname": last,
        "displayName": f"{first} {last}",
        "mobileNo": f"0712{client_id:06d}",
        "officeId": OFFICE["id"],
        "officeName": OFFICE["name"],
    }


def _loan(loan_id: int, client: dict[str, Any], principal: float) -> dict[str, Any]:
    interest = round(principal * 0.10, 2)
    return {
        "id": loan_id,
        "accountNo": f"{loan_id:09d}",
        "externalId": f"LOAN-{loan_id:04d}",
        "clientId": client["id"],
        "clientName": client["displayName"],
        "clientAccountNo": client["accountNo"],
        "loanProductId": 1,
        "loanProductName": "Personal Loan",
        "loanType": {"id": 1, "code": "accountType.individual", "value": "Individual"},
        "status": loan_status(300),
        "currency": CURRENCY,
        "principal": principal,
        "approvedPrincipal": principal,
        "timeline": {
            "submittedOnDate": [2024, 1, 10],
            "approvedOnDate": [2024, 1, 12],
            "actualDisbursementDate": DISBURSED_ON,
        },
        "summary": {
            "currency": CURRENCY,
            "principalDisbursed": principal,
            "interestCharged": interest,
            "totalExpectedRepayment": round(principal + interest, 2),
            "totalRepayment": 0.0,
            "totalOutstanding": round(principal + interest, 2),
        },
        "officeId": OFFICE["id"],
    }


def seed_demo(store: UpstreamStore) -> None:
    """Write the demo book unless the store already holds one (a restarted fake keeps its state)."""
    if store.get_object("client", "1") is not None:
        return
    with store.transaction() as db:
        _write(store, db)


def _write(store: UpstreamStore, db: Connection) -> None:
    clients = [_client(i + 1, first, last) for i, (first, last) in enumerate(_NAMES)]
    for client in clients:
        store.put_object(db, "client", str(client["id"]), client)
    for loan_id in range(1, 11):
        client = clients[(loan_id - 1) % len(clients)]
        store.put_object(db, "loan", str(loan_id), _loan(loan_id, client, 5000.0 + 1000.0 * loan_id))
    db.execute(
        "INSERT OR REPLACE INTO objects (kind, id, body) VALUES ('counter', 'ids', ?)",
        ('{"client": 12, "loan": 10, "transaction": 0, "command": 0}',),
    )
