"""A thin, typed client for the Toxiproxy HTTP API, sync and async.

Written here rather than taken from ``toxiproxy-python`` (unmaintained since 2019), which has no
timeouts, swallows 500 and 503, returns ``None`` from ``add_toxic``, keeps host and port as class
globals and cannot update a toxic. This one:

* puts a timeout on every call, shorter than the server's own 25 s handler limit, and raises
  :class:`ToxiproxyWedged` for a 503, which means the server's collection lock is stuck (#558), not a
  blip worth retrying quickly;
* maps every error status to its own exception, keyed on the resource (proxy vs toxic);
* creates a proxy disabled, adds its toxics, then enables it, so that no connection slips through
  un-poisoned (#148);
* sends a non-browser ``User-Agent`` (the server refuses ``Mozilla/...`` with 403);
* uses PATCH, falling back to POST for servers older than 2.6;
* reads ``/version`` in all three of its historical formats.

Each operation is written once, as a generator that yields requests and receives responses
(sans-IO); :class:`Toxiproxy` and :class:`AsyncToxiproxy` only differ in how they send them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Generator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from harness.toxiproxy._toxics import Toxic, ToxicSpec

__all__ = [
    "AsyncToxiproxy",
    "Proxy",
    "ProxyExists",
    "ProxyNotFound",
    "ToxicExists",
    "ToxicNotFound",
    "Toxiproxy",
    "ToxiproxyBadRequest",
    "ToxiproxyError",
    "ToxiproxyRefused",
    "ToxiproxyServerError",
    "ToxiproxyWedged",
    "parse_version",
]

DEFAULT_URL = "http://127.0.0.1:8474"
DEFAULT_TIMEOUT = 10.0
USER_AGENT = "resilience-harness-toxiproxy/0.1 (+httpx)"

T = TypeVar("T")


class ToxiproxyError(Exception):
    """Any error answer from the Toxiproxy API."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"toxiproxy answered {status}: {message}")
        self.status = status
        self.message = message


class ToxiproxyBadRequest(ToxiproxyError):
    """400: a missing field, an unknown toxic type, an invalid stream."""


class ToxiproxyRefused(ToxiproxyError):
    """403: the server took the client for a browser (``User-Agent: Mozilla/...``)."""


class ProxyNotFound(ToxiproxyError):
    """404 for a proxy."""


class ToxicNotFound(ToxiproxyError):
    """404 for a toxic."""


class ProxyExists(ToxiproxyError):
    """409 for a proxy name already taken."""


class ToxicExists(ToxiproxyError):
    """409 for a toxic name already taken on that proxy."""


class ToxiproxyServerError(ToxiproxyError):
    """500: e.g. the listen address is already in use."""


class ToxiproxyWedged(ToxiproxyError):
    """503: a handler ran past the server's 25 s limit; its proxy collection lock may be stuck."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Proxy:
    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: tuple[Toxic, ...] = ()

    @property
    def listen_port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Proxy:
        return cls(
            name=data["name"],
            listen=data["listen"],
            upstream=data["upstream"],
            enabled=bool(data.get("enabled", True)),
            toxics=tuple(Toxic.from_json(t) for t in data.get("toxics") or ()),
        )


def parse_version(body: str) -> str:
    """The server version from any of ``2.5.0``, 2.6.0's broken JSON, ``{"version": ..}``, ``git``."""
    text = body.strip()
    try:
        data = json.loads(text)
    except ValueError:
        match = re.search(r'"version"\s*:\s*"([^"]*)"', text)
        return match.group(1) if match else text
    if isinstance(data, dict) and isinstance(data.get("version"), str):
        return str(data["version"])
    return text


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    path: str
    body: Any = None


# A plan yields calls, receives their responses, and returns a result.
Plan = Generator[_Call, httpx.Response, T]


def _error_for(response: httpx.Response, resource: str) -> ToxiproxyError:
    status = response.status_code
    try:
        message = str(response.json().get("error", response.text))
    except ValueError:
        message = response.text.strip() or response.reason_phrase
    if status == 400:
        return ToxiproxyBadRequest(status, message)
    if status == 403:
        return ToxiproxyRefused(status, message)
    if status == 404:
        is_toxic = resource == "toxic" and "proxy not found" not in message
        return (ToxicNotFound if is_toxic else ProxyNotFound)(status, message)
    if status == 409:
        return (ToxicExists if resource == "toxic" else ProxyExists)(status, message)
    if status == 503:
        return ToxiproxyWedged(status, message or "handler timed out")
    if status >= 500:
        return ToxiproxyServerError(status, message)
    return ToxiproxyError(status, message)


def _checked(response: httpx.Response, resource: str) -> httpx.Response:
    if response.status_code >= 400:
        raise _error_for(response, resource)
    return response


def _update(path: str, body: Mapping[str, Any], resource: str) -> Plan[Any]:
    response = yield _Call("PATCH", path, dict(body))
    if response.status_code == 405:  # servers before 2.6 know only POST
        response = yield _Call("POST", path, dict(body))
    return _checked(response, resource).json()


def _version() -> Plan[str]:
    response = yield _Call("GET", "/version")
    return parse_version(_checked(response, "server").text)


def _proxies() -> Plan[dict[str, Proxy]]:
    response = yield _Call("GET", "/proxies")
    data = _checked(response, "proxy").json()
    return {name: Proxy.from_json(value) for name, value in data.items()}


def _get_proxy(name: str) -> Plan[Proxy]:
    response = yield _Call("GET", f"/proxies/{name}")
    return Proxy.from_json(_checked(response, "proxy").json())


def _create_proxy(
    name: str, upstream: str, listen: str, enabled: bool, toxics: Sequence[ToxicSpec]
) -> Plan[Proxy]:
    start_enabled = enabled and not toxics
    response = yield _Call(
        "POST",
        "/proxies",
        {"name": name, "upstream": upstream, "listen": listen, "enabled": start_enabled},
    )
    proxy = Proxy.from_json(_checked(response, "proxy").json())
    if not toxics:
        return proxy
    try:
        for spec in toxics:
            yield from _add_toxic(name, spec)
    except ToxiproxyError:
        # Leave nothing half-built behind: a proxy without the toxics it was asked for.
        yield from _delete_proxy(name, missing_ok=True)
        raise
    if enabled:
        yield from _update(f"/proxies/{name}", {"enabled": True}, "proxy")
    return (yield from _get_proxy(name))


def _set_enabled(name: str, enabled: bool) -> Plan[Proxy]:
    return Proxy.from_json((yield from _update(f"/proxies/{name}", {"enabled": enabled}, "proxy")))


def _delete_proxy(name: str, missing_ok: bool) -> Plan[None]:
    response = yield _Call("DELETE", f"/proxies/{name}")
    if response.status_code == 404 and missing_ok:
        return
    _checked(response, "proxy")


def _populate(proxies: Sequence[Mapping[str, Any]]) -> Plan[list[Proxy]]:
    response = yield _Call("POST", "/populate", [dict(p) for p in proxies])
    data = _checked(response, "proxy").json()
    return [Proxy.from_json(p) for p in data.get("proxies", [])]


def _toxics(proxy: str) -> Plan[list[Toxic]]:
    response = yield _Call("GET", f"/proxies/{proxy}/toxics")
    return [Toxic.from_json(t) for t in _checked(response, "toxic").json()]


def _add_toxic(proxy: str, spec: ToxicSpec) -> Plan[Toxic]:
    response = yield _Call("POST", f"/proxies/{proxy}/toxics", spec.to_json())
    return Toxic.from_json(_checked(response, "toxic").json())


def _update_toxic(
    proxy: str, name: str, attributes: Mapping[str, Any] | None, toxicity: float | None
) -> Plan[Toxic]:
    body: dict[str, Any] = {}
    if attributes is not None:
        body["attributes"] = dict(attributes)
    if toxicity is not None:
        body["toxicity"] = toxicity
    return Toxic.from_json((yield from _update(f"/proxies/{proxy}/toxics/{name}", body, "toxic")))


def _remove_toxic(proxy: str, name: str, missing_ok: bool) -> Plan[None]:
    response = yield _Call("DELETE", f"/proxies/{proxy}/toxics/{name}")
    if response.status_code == 404 and missing_ok:
        return
    _checked(response, "toxic")


def _reset() -> Plan[None]:
    response = yield _Call("POST", "/reset")
    _checked(response, "server")


def _base_url(base_url: str | None) -> str:
    return (base_url or os.environ.get("TOXIPROXY_URL") or DEFAULT_URL).rstrip("/")


def _http_options(base_url: str, timeout: float) -> dict[str, Any]:
    return {
        "base_url": base_url,
        "timeout": timeout,
        "headers": {"User-Agent": USER_AGENT},
        # The control API is ours; a proxy configured in the environment must never intercept it.
        "trust_env": False,
    }


def _request(call: _Call) -> dict[str, Any]:
    return {"method": call.method, "url": call.path, "json": call.body}


class Toxiproxy:
    """Blocking client. ``base_url`` defaults to ``$TOXIPROXY_URL``, then ``http://127.0.0.1:8474``."""

    def __init__(self, base_url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.base_url = _base_url(base_url)
        self._http = httpx.Client(**_http_options(self.base_url, timeout))

    def _run(self, plan: Plan[T]) -> T:
        try:
            call = next(plan)
            while True:
                call = plan.send(self._http.request(**_request(call)))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Toxiproxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def version(self) -> str:
        return self._run(_version())

    def proxies(self) -> dict[str, Proxy]:
        return self._run(_proxies())

    def get_proxy(self, name: str) -> Proxy:
        return self._run(_get_proxy(name))

    def create_proxy(
        self,
        name: str,
        *,
        upstream: str,
        listen: str = "127.0.0.1:0",
        enabled: bool = True,
        toxics: Sequence[ToxicSpec] = (),
    ) -> Proxy:
        """Create a proxy; with ``toxics``, they are in place before the first connection."""
        return self._run(_create_proxy(name, upstream, listen, enabled, toxics))

    def enable(self, name: str) -> Proxy:
        return self._run(_set_enabled(name, True))

    def disable(self, name: str) -> Proxy:
        """Take a proxy down: new connections are refused and open ones are closed."""
        return self._run(_set_enabled(name, False))

    def delete_proxy(self, name: str, *, missing_ok: bool = False) -> None:
        self._run(_delete_proxy(name, missing_ok))

    def populate(self, proxies: Sequence[Mapping[str, Any]]) -> list[Proxy]:
        return self._run(_populate(proxies))

    def toxics(self, proxy: str) -> list[Toxic]:
        return self._run(_toxics(proxy))

    def add_toxic(self, proxy: str, spec: ToxicSpec) -> Toxic:
        return self._run(_add_toxic(proxy, spec))

    def update_toxic(
        self,
        proxy: str,
        name: str,
        *,
        attributes: Mapping[str, Any] | None = None,
        toxicity: float | None = None,
    ) -> Toxic:
        return self._run(_update_toxic(proxy, name, attributes, toxicity))

    def remove_toxic(self, proxy: str, name: str, *, missing_ok: bool = False) -> None:
        self._run(_remove_toxic(proxy, name, missing_ok))

    def reset(self) -> None:
        """Enable every proxy and remove every toxic (closing connections a ``timeout`` toxic held)."""
        self._run(_reset())

    @contextmanager
    def toxic(self, proxy: str, spec: ToxicSpec) -> Iterator[Toxic]:
        """Add a toxic for the duration of a ``with`` block."""
        added = self.add_toxic(proxy, spec)
        try:
            yield added
        finally:
            self.remove_toxic(proxy, added.name, missing_ok=True)

    @contextmanager
    def down(self, proxy: str) -> Iterator[Proxy]:
        """Take a proxy down for the duration of a ``with`` block."""
        disabled = self.disable(proxy)
        try:
            yield disabled
        finally:
            self.enable(proxy)


class AsyncToxiproxy:
    """The same API as :class:`Toxiproxy`, for asyncio."""

    def __init__(self, base_url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.base_url = _base_url(base_url)
        self._http = httpx.AsyncClient(**_http_options(self.base_url, timeout))

    async def _run(self, plan: Plan[T]) -> T:
        try:
            call = next(plan)
            while True:
                call = plan.send(await self._http.request(**_request(call)))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncToxiproxy:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def version(self) -> str:
        return await self._run(_version())

    async def proxies(self) -> dict[str, Proxy]:
        return await self._run(_proxies())

    async def get_proxy(self, name: str) -> Proxy:
        return await self._run(_get_proxy(name))

    async def create_proxy(
        self,
        name: str,
        *,
        upstream: str,
        listen: str = "127.0.0.1:0",
        enabled: bool = True,
        toxics: Sequence[ToxicSpec] = (),
    ) -> Proxy:
        return await self._run(_create_proxy(name, upstream, listen, enabled, toxics))

    async def enable(self, name: str) -> Proxy:
        return await self._run(_set_enabled(name, True))

    async def disable(self, name: str) -> Proxy:
        return await self._run(_set_enabled(name, False))

    async def delete_proxy(self, name: str, *, missing_ok: bool = False) -> None:
        await self._run(_delete_proxy(name, missing_ok))

    async def populate(self, proxies: Sequence[Mapping[str, Any]]) -> list[Proxy]:
        return await self._run(_populate(proxies))

    async def toxics(self, proxy: str) -> list[Toxic]:
        return await self._run(_toxics(proxy))

    async def add_toxic(self, proxy: str, spec: ToxicSpec) -> Toxic:
        return await self._run(_add_toxic(proxy, spec))

    async def update_toxic(
        self,
        proxy: str,
        name: str,
        *,
        attributes: Mapping[str, Any] | None = None,
        toxicity: float | None = None,
    ) -> Toxic:
        return await self._run(_update_toxic(proxy, name, attributes, toxicity))

    async def remove_toxic(self, proxy: str, name: str, *, missing_ok: bool = False) -> None:
        await self._run(_remove_toxic(proxy, name, missing_ok))

    async def reset(self) -> None:
        await self._run(_reset())

    @asynccontextmanager
    async def toxic(self, proxy: str, spec: ToxicSpec) -> AsyncIterator[Toxic]:
        added = await self.add_toxic(proxy, spec)
        try:
            yield added
        finally:
            await self.remove_toxic(proxy, added.name, missing_ok=True)

    @asynccontextmanager
    async def down(self, proxy: str) -> AsyncIterator[Proxy]:
        disabled = await self.disable(proxy)
        try:
            yield disabled
        finally:
            await self.enable(proxy)
