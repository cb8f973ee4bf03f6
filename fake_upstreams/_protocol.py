"""uvicorn's httptools protocol, plus the one thing an ASGI app cannot do: drop the connection.

A fake realises "commit, then drop the connection" by aborting the TCP connection with no response
at all, which ASGI has no message for. This subclass offers ``transport.abort`` to the application
as the ``fake_upstreams.abort`` scope extension; everything else is uvicorn's and httptools'.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fake_upstreams._fault_middleware import ABORT_EXTENSION

__all__ = ["AbortableHttpToolsProtocol"]


class AbortableHttpToolsProtocol(HttpToolsProtocol):
    def on_message_begin(self) -> None:
        super().on_message_begin()
        # The ASGI typing of "extensions" allows only nested dicts; the callable is ours to offer.
        self.scope["extensions"] = {ABORT_EXTENSION: self.transport.abort}  # type: ignore[dict-item]
