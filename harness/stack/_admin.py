"""Client for the fake upstreams' admin API, reached directly, never through Toxiproxy.

Covers every admin endpoint a fake offers (see ``fake_upstreams._base``): ground truth (ledger,
request log, callback deliveries, scheduled jobs), run-time settings, HTTP fault rules, the API clock,
reset and the OpenAPI document. A request the fake refuses as bad input (a malformed fault rule, an
unknown setting) raises :class:`UpstreamAdminError` with the fake's own explanation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

__all__ = ["UpstreamAdmin", "UpstreamAdminError"]


class UpstreamAdminError(ValueError):
    """The fake refused an admin request; the message is the fake's, naming what to fix."""


class UpstreamAdmin:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        # The admin API is on loopback: a proxy from the environment must never intercept it.
        self._http = httpx.Client(base_url=self.base_url + "/__admin", timeout=timeout, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def healthy(self) -> bool:
        try:
            return self._http.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def health(self) -> dict[str, Any]:
        return dict(self._get("/health"))

    def credentials(self) -> dict[str, str]:
        return dict(self._get("/credentials"))

    # -- ground truth ---------------------------------------------------------------------------

    def ledger(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self._get("/ledger", since=since)["effects"])

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self._get("/requests", since=since)["requests"])

    def deliveries(self, since: int = 0) -> list[dict[str, Any]]:
        """Every callback or webhook delivery attempt the fake made (status None: no answer)."""
        return list(self._get("/deliveries", since=since)["deliveries"])

    def jobs(self) -> list[dict[str, Any]]:
        """Scheduled work: pending prompt resolutions, callbacks still to deliver, and done ones."""
        return list(self._get("/jobs")["jobs"])

    def reset(self) -> None:
        self._http.post("/reset").raise_for_status()

    # -- settings -------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return dict(self._get("/config")["settings"])

    def configure(self, settings: Mapping[str, Any] | None = None, /, **more: Any) -> dict[str, Any]:
        """Change run-time settings, all or none; returns every setting after the change."""
        return dict(self._post("/config", {**dict(settings or {}), **more})["settings"])

    # -- HTTP faults ----------------------------------------------------------------------------

    def add_fault(self, rule: Mapping[str, Any]) -> dict[str, Any]:
        """Switch a fault rule on; returns it with its ``id`` (for :meth:`remove_fault`)."""
        return dict(self._post("/faults", dict(rule)))

    def faults(self) -> list[dict[str, Any]]:
        """The rules in force, each with how often it ``matched`` and ``fired``."""
        return list(self._get("/faults")["faults"])

    def remove_fault(self, rule_id: int, *, missing_ok: bool = False) -> None:
        response = self._http.delete(f"/faults/{int(rule_id)}")
        if response.status_code == 404 and missing_ok:
            return
        self._check(response)

    def clear_faults(self) -> None:
        self._check(self._http.delete("/faults"))

    # -- the API clock --------------------------------------------------------------------------

    def clock(self) -> dict[str, float]:
        return {k: float(v) for k, v in self._get("/clock").items()}

    def advance_clock(self, seconds: float) -> dict[str, float]:
        """Move the fake's API clock on (token expiry, key retention, pending prompts); the ledger's
        timestamps stay real."""
        return {k: float(v) for k, v in self._post("/clock", {"advance": seconds}).items()}

    def openapi(self) -> dict[str, Any]:
        return dict(self._get("/openapi.json"))

    # -- plumbing -------------------------------------------------------------------------------

    def _check(self, response: httpx.Response) -> None:
        if response.status_code == 400:
            try:
                message = str(response.json().get("error", response.text))
            except ValueError:
                message = response.text
            raise UpstreamAdminError(f"{self.base_url}: {message}")
        response.raise_for_status()

    def _get(self, path: str, **params: Any) -> Any:
        response = self._http.get(path, params=params)
        self._check(response)
        return response.json()

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        response = self._http.post(path, json=dict(body))
        self._check(response)
        return response.json()

    def __repr__(self) -> str:
        return f"UpstreamAdmin({self.base_url!r})"
