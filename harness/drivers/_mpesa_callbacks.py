"""Where Daraja's asynchronous answers arrive: a small HTTP listener on 127.0.0.1 for one client.

Daraja tells a merchant the result of an STK push or a B2C payment by POSTing to a URL the merchant
chose in the request (``CallBackURL``, ``ResultURL``, ``QueueTimeOutURL``). The callback body names
the transaction (``CheckoutRequestID``, ``OriginatorConversationID``) but not the merchant's
``AccountReference``, so this listener hands out one URL per operation,
``/<secret>/<kind>/<operation id>``: a callback then names its operation even when the push's own
answer (and with it the ``CheckoutRequestID``) was lost. The random ``secret`` segment is the
unguessable part Safaricom's guidance relies on (callbacks carry no signature; upstreams.md §1.4).

The stdlib's ``ThreadingHTTPServer`` is enough here: a handful of small JSON POSTs per operation, on
loopback, answered 200 at once; nothing is processed in the handler beyond storing the body.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote

__all__ = ["Callback", "CallbackInbox"]

_MAX_BODY = 64 * 1024
KINDS = frozenset({"stk", "b2c-result", "b2c-timeout"})


@dataclass(frozen=True, slots=True)
class Callback:
    kind: str
    operation_id: str
    body: Mapping[str, Any]


class CallbackInbox:
    """Receives callbacks for one client; keeps every body, per kind and operation, in arrival order.

    ``secret`` must be unguessable (draw it from the client's random source); a request to any other
    path is answered 404 and kept nowhere.
    """

    def __init__(self, secret: str) -> None:
        if not secret or "/" in secret:
            raise ValueError("CallbackInbox.secret must be a non-empty path segment (no '/')")
        self._secret = secret
        self._lock = threading.Lock()
        self._received: dict[tuple[str, str], list[Callback]] = {}
        self._refused = 0
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                inbox._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return  # the fake's deliveries table is the log of record

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="mpesa-callbacks",
            daemon=True,
        )
        self._thread.start()

    def url(self, kind: str, operation_id: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"callback kind must be one of {sorted(KINDS)}, got {kind!r}")
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/{self._secret}/{kind}/{quote(operation_id, safe='')}"

    def received(self, kind: str, operation_id: str) -> list[Callback]:
        with self._lock:
            return list(self._received.get((kind, operation_id), ()))

    @property
    def refused(self) -> int:
        """Requests answered 404 or 400 (wrong secret, unknown kind, not a JSON object)."""
        with self._lock:
            return self._refused

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = request.path.split("?", 1)[0].split("/")
        status = 200
        if len(parts) != 4 or parts[1] != self._secret or parts[2] not in KINDS or not parts[3]:
            status = 404
        length = int(request.headers.get("content-length") or 0)
        raw = request.rfile.read(min(length, _MAX_BODY)) if length > 0 else b""
        body: Any = None
        if status == 200:
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                body = None
            if not isinstance(body, dict) or length > _MAX_BODY:
                status = 400
        with self._lock:
            if status == 200:
                callback = Callback(kind=parts[2], operation_id=unquote(parts[3]), body=body)
                self._received.setdefault((callback.kind, callback.operation_id), []).append(callback)
            else:
                self._refused += 1
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        payload = b'{"ResultCode": 0, "ResultDesc": "Accepted"}' if status == 200 else b"{}"
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def __repr__(self) -> str:
        return f"CallbackInbox(port={self._server.server_address[1]})"  # the secret stays out
