"""Faithful fakes of M-Pesa Daraja (``mpesa``), Apache Fineract (``cbs``) and Stripe (``stripe``).

Run one with ``python -m fake_upstreams NAME --port P`` (or ``--fd N`` for a pre-bound socket,
``--state-dir``, ``--seed``). Each serves its API's paths, fields, statuses, error shapes and
idempotency rules, keeps the ground truth in SQLite (a ledger of effects, a log of every request,
every callback delivery), and offers an admin API under ``/__admin/`` for the harness: credentials,
ledger, requests, deliveries, settings, HTTP fault rules, the API clock, reset, OpenAPI document.

How a driver passes its operation id, so that checkers can join each ledger effect to the operation
that caused it (the effect's ``operation_id`` column):

=========  ===================================================  =====================================
upstream   carry the operation id in                            effects (``kind``) that carry it
=========  ===================================================  =====================================
stripe     ``metadata[operation_id]`` of the PaymentIntent      ``charge``, ``authorization``,
                                                                ``release``
mpesa      STK push ``AccountReference`` (at most 12            ``stk_prompt`` (prompt sent),
           characters, so keep operation ids that short);        ``stk_payment`` (money moved)
           B2C ``OriginatorConversationID`` (Daraja's own        ``b2c_payment``
           de-duplication key)
cbs        the repayment transaction's ``externalId``           ``repayment`` (amount in cents);
           (unique; looked up by ``GET /loans/{id}/transactions  ``client_created`` for a client's
           /external-id/{externalId}``)                          ``externalId``
=========  ===================================================  =====================================

One operation may legitimately leave several effects of different kinds (a prompt and then a
payment; an authorization and then a charge): count effects per operation *and kind*.
"""

from fake_upstreams._base import FakeUpstream
from fake_upstreams._clock import SystemUpstreamClock, UpstreamClock
from fake_upstreams._registry import FAKES, FakeSpec
from fake_upstreams._store import UpstreamStore

__all__ = ["FAKES", "FakeSpec", "FakeUpstream", "SystemUpstreamClock", "UpstreamClock", "UpstreamStore"]
