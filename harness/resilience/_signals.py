"""What an upstream says about retrying: ``Retry-After`` and Stripe's ``Stripe-Should-Retry``.

``Retry-After`` comes in two forms (RFC 9110 §10.2.3): delay-seconds and an HTTP date. A date is
measured against the response's own ``Date`` header when it has one, so that the answer does not
depend on how far the client's calendar clock is from the server's; only without ``Date`` is the
client's wall clock used (from the injected clock, see :func:`~harness.resilience.wall_time`).

``Stripe-Should-Retry: true|false`` overrides the status-based decision in Stripe's own SDKs
(upstreams.md §3.5): ``false`` on most 500s, whose replay would only return the stored 500, and
``true`` on lock timeouts.

Hand-written: :func:`email.utils.parsedate_to_datetime` does the date parsing; what is left is the
choice of reference time and the rejection of nonsense values (negative, NaN, infinite).
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

__all__ = ["RetrySignals", "retry_after_seconds", "should_retry_header"]


def _http_date(value: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive parse means an obsolete form
        return None
    return when.timestamp()


def retry_after_seconds(headers: Mapping[str, str], *, now_wall: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now, from either form; ``None`` when absent or unusable.

    ``now_wall`` (seconds since the epoch) is only used for the HTTP-date form when the response has
    no usable ``Date`` header; without either, a date cannot be turned into a delay and is ignored.
    """
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    when = _http_date(value)
    if when is None:
        return None
    date = headers.get("date")
    reference = _http_date(date) if date is not None else None
    if reference is None:
        reference = now_wall
    if reference is None:
        return None
    return max(when - reference, 0.0)


def should_retry_header(headers: Mapping[str, str]) -> bool | None:
    """Stripe's ``Stripe-Should-Retry`` verdict; ``None`` when absent or not ``true``/``false``."""
    value = headers.get("stripe-should-retry")
    if value is None:
        return None
    value = value.strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class RetrySignals:
    """The retry advice carried by one response."""

    retry_after: float | None = None
    should_retry: bool | None = None

    @classmethod
    def from_response(cls, response: httpx.Response | None, *, now_wall: float | None = None) -> RetrySignals:
        if response is None:
            return _NONE
        headers = response.headers
        if "retry-after" not in headers and "stripe-should-retry" not in headers:
            return _NONE
        return cls(
            retry_after=retry_after_seconds(headers, now_wall=now_wall),
            should_retry=should_retry_header(headers),
        )


_NONE = RetrySignals()
