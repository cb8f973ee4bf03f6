"""Webhook endpoints, events, and their signed, at-least-once, unordered delivery.

Registering an endpoint (``POST /v1/webhook_endpoints``) returns its ``whsec_`` secret once, as
Stripe does. Every state change of a PaymentIntent creates an ``event`` object and, in the same
transaction, one delivery job per enabled endpoint that subscribes to the event's type, so an event
committed before a crash is still delivered after the restart. Each first delivery is due after
``webhook_delay`` plus a seeded random jitter of up to ``webhook_jitter`` seconds, so two events can
arrive in either order; a non-2xx answer or a timeout is retried after each of
``webhook_retry_delays`` in turn (Stripe's sandbox retries three times over a few hours; the default
schedule compresses that into seconds). The signature is computed at each attempt with the real wall
clock, as a receiver's tolerance check expects.
"""

from __future__ import annotations

import json
from sqlite3 import Connection
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fake_upstreams._scheduler import DELIVER, is_loopback_url
from fake_upstreams.stripe._core import StripeCore
from fake_upstreams.stripe._errors import StripeError
from fake_upstreams.stripe._lists import LIST_PARAMS, paginate
from fake_upstreams.stripe._signature import sign_payload

__all__ = ["API_VERSION", "EVENT_TYPES", "Webhooks"]

API_VERSION = "2024-06-20"
EVENT_TYPES = frozenset(
    {
        "payment_intent.created",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.amount_capturable_updated",
        "payment_intent.requires_action",
    }
)
ENDPOINT_PARAMS = frozenset({"url", "enabled_events", "description", "metadata", "api_version"})
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def _unknown(params: dict[str, Any], allowed: frozenset[str]) -> None:
    for name in params:
        if name not in allowed:
            raise StripeError(400, "invalid_request_error", f"Received unknown parameter: {name}", param=name)


class Webhooks:
    def __init__(self, core: StripeCore) -> None:
        self.core = core
        self.fake = core.fake
        self.fake.scheduler.signers["webhook"] = self._sign

    # -- delivery -------------------------------------------------------------------------------

    def emit(
        self,
        db: Connection,
        event_type: str,
        obj: dict[str, Any],
        *,
        request_id: str | None,
        idempotency_key: str | None,
        previous: dict[str, Any] | None = None,
    ) -> None:
        """Create the event and schedule its deliveries, inside the caller's transaction."""
        store, settings, clock = self.fake.store, self.fake.settings, self.fake.clock
        endpoints = [
            e
            for e in store.objects("webhook_endpoint")
            if e["status"] == "enabled" and ("*" in e["enabled_events"] or event_type in e["enabled_events"])
        ]
        data: dict[str, Any] = {"object": obj}
        if previous:
            data["previous_attributes"] = previous
        event_id = self.core.id("evt_")
        event: dict[str, Any] = {
            "id": event_id,
            "object": "event",
            "api_version": API_VERSION,
            "created": int(clock.api_time()),
            "type": event_type,
            "data": data,
            "livemode": False,
            "pending_webhooks": len(endpoints),
            "request": {"id": request_id, "idempotency_key": idempotency_key},
        }
        store.put_object(db, "event", event["id"], event)
        body = json.dumps(event)
        for endpoint in endpoints:
            jitter = self.fake.rng.uniform(0.0, float(settings["webhook_jitter"]))
            store.add_job(
                db,
                due=clock.api_time() + float(settings["webhook_delay"]) + jitter,
                kind=DELIVER,
                payload={
                    "url": endpoint["url"],
                    "body": body,
                    "kind": "webhook",
                    "ref": event["id"],
                    "endpoint": endpoint["id"],
                    "attempt": 1,
                    "retry_delays": list(settings["webhook_retry_delays"]),
                    "headers": {"User-Agent": USER_AGENT, "Content-Type": "application/json; charset=utf-8"},
                },
            )
        self.fake.scheduler.wake()

    def _sign(self, raw: bytes, payload: dict[str, Any]) -> dict[str, str]:
        endpoint = self.fake.store.get_object("webhook_endpoint", str(payload.get("endpoint")))
        if endpoint is None:
            return {}
        return {"Stripe-Signature": sign_payload(raw, endpoint["secret"], int(self.fake.clock.time()))}

    # -- webhook endpoints ----------------------------------------------------------------------

    def _public(self, endpoint: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in endpoint.items() if k != "secret"}

    async def create_endpoint(self, request: Request) -> Response:
        api_key = await self.core.gate(request)
        params = await self.core.form(request)
        _unknown(params, ENDPOINT_PARAMS)
        url = params.get("url")
        if not isinstance(url, str) or not url:
            raise StripeError(
                400,
                "invalid_request_error",
                "Missing required param: url.",
                code="parameter_missing",
                param="url",
            )
        if not is_loopback_url(url):
            raise StripeError(
                400,
                "invalid_request_error",
                "Invalid URL: this fake only delivers webhooks to http(s)://127.0.0.1:<port>/...",
                code="url_invalid",
                param="url",
            )
        events = params.get("enabled_events")
        if isinstance(events, str):
            events = [events]
        if not isinstance(events, list) or not events:
            raise StripeError(
                400,
                "invalid_request_error",
                "Missing required param: enabled_events.",
                code="parameter_missing",
                param="enabled_events",
            )
        for index, name in enumerate(events):
            if name != "*" and name not in EVENT_TYPES:
                raise StripeError(
                    400,
                    "invalid_request_error",
                    f"Invalid enabled_events[{index}]: must be one of"
                    f" {', '.join(sorted({'*', *EVENT_TYPES}))}",
                    param=f"enabled_events[{index}]",
                )
        metadata = params.get("metadata", {})
        if not isinstance(metadata, dict):
            raise StripeError(400, "invalid_request_error", "Invalid object", param="metadata")

        def execute(db: Connection) -> tuple[int, dict[str, Any]]:
            endpoint = {
                "id": self.core.id("we_"),
                "object": "webhook_endpoint",
                "api_version": params.get("api_version", API_VERSION),
                "application": None,
                "created": int(self.fake.clock.api_time()),
                "description": params.get("description"),
                "enabled_events": list(events),
                "livemode": False,
                "metadata": metadata,
                "secret": "whsec_" + self.core.id("", 32),
                "status": "enabled",
                "url": url,
            }
            self.fake.store.put_object(db, "webhook_endpoint", endpoint["id"], endpoint)
            return 200, endpoint

        return await self.core.idempotent(request, api_key, params, execute)

    def _endpoint(self, endpoint_id: str) -> dict[str, Any]:
        endpoint = self.fake.store.get_object("webhook_endpoint", endpoint_id)
        if endpoint is None:
            raise StripeError(
                404,
                "invalid_request_error",
                f"No such webhook endpoint: '{endpoint_id}'",
                code="resource_missing",
                param="id",
            )
        return endpoint

    async def retrieve_endpoint(self, request: Request) -> Response:
        await self.core.gate(request)
        endpoint = self._endpoint(request.path_params["endpoint_id"])
        return JSONResponse(self._public(endpoint), headers=self.core.headers(request))

    async def list_endpoints(self, request: Request) -> Response:
        await self.core.gate(request)
        params = dict(request.query_params)
        _unknown(params, LIST_PARAMS)
        items = [self._public(e) for e in reversed(self.fake.store.objects("webhook_endpoint"))]
        return JSONResponse(
            paginate(items, params, "/v1/webhook_endpoints"), headers=self.core.headers(request)
        )

    async def delete_endpoint(self, request: Request) -> Response:
        await self.core.gate(request)
        endpoint = self._endpoint(request.path_params["endpoint_id"])
        with self.fake.store.transaction() as db:
            self.fake.store.delete_object(db, "webhook_endpoint", endpoint["id"])
        body = {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}
        return JSONResponse(body, headers=self.core.headers(request))

    # -- events ---------------------------------------------------------------------------------

    async def retrieve_event(self, request: Request) -> Response:
        await self.core.gate(request)
        event_id = request.path_params["event_id"]
        event = self.fake.store.get_object("event", event_id)
        if event is None:
            raise StripeError(
                404,
                "invalid_request_error",
                f"No such event: '{event_id}'",
                code="resource_missing",
                param="id",
            )
        return JSONResponse(event, headers=self.core.headers(request))

    async def list_events(self, request: Request) -> Response:
        await self.core.gate(request)
        params = dict(request.query_params)
        _unknown(params, LIST_PARAMS | {"type"})
        events = list(reversed(self.fake.store.objects("event")))
        if "type" in params:
            events = [e for e in events if e["type"] == params["type"]]
        return JSONResponse(paginate(events, params, "/v1/events"), headers=self.core.headers(request))
