"""Client for the fake upstreams' admin API, reached directly, never through Toxiproxy."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["UpstreamAdmin"]


class UpstreamAdmin:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url + "/__admin", timeout=timeout, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def healthy(self) -> bool:
        try:
            return self._http.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def credentials(self) -> dict[str, str]:
        return dict(self._get("/credentials"))

    def ledger(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self._get("/ledger", since=since)["effects"])

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self._get("/requests", since=since)["requests"])

    def reset(self) -> None:
        self._http.post("/reset").raise_for_status()

    def _get(self, path: str, **params: Any) -> Any:
        response = self._http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def __repr__(self) -> str:
        return f"UpstreamAdmin({self.base_url!r})"
