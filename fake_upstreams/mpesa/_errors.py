"""Daraja's synchronous error envelope: ``{"requestId", "errorCode", "errorMessage"}``.

The HTTP status is the first three digits of ``errorCode`` in every documented row (so a pending STK
query, a wrong password and "Unable to lock subscriber" are all HTTP 500), and Daraja never sends 429:
throttling is a 500 with ``500.003.02`` or ``500.003.03``.
"""

from __future__ import annotations

import random

from starlette.responses import JSONResponse

__all__ = ["DarajaError", "daraja_error", "invalid", "request_id"]


def request_id(rng: random.Random) -> str:
    """The newer requestId form, e.g. ``1c5b-4ba8-815c-ac45c57a3db01495926``."""
    hexes = "0123456789abcdef"

    def part(n: int) -> str:
        return "".join(rng.choices(hexes, k=n))

    return f"{part(4)}-{part(4)}-{part(4)}-{part(13)}{rng.randrange(10**6, 10**7)}"


class DarajaError(Exception):
    def __init__(self, code: str, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id

    @property
    def status(self) -> int:
        return int(self.code[:3])


def invalid(field: str) -> DarajaError:
    return DarajaError("400.002.02", f"Bad Request - Invalid {field}")


def daraja_error(exc: DarajaError, rng: random.Random) -> JSONResponse:
    body = {
        "requestId": exc.request_id or request_id(rng),
        "errorCode": exc.code,
        "errorMessage": exc.message,
    }
    return JSONResponse(body, status_code=exc.status)
