"""Field checks for Daraja request bodies, each failing as Daraja does: ``400.002.02`` "Bad Request -
Invalid <Field>".

Types are loose in practice (Safaricom's own samples send ``BusinessShortCode`` as a number and
``Amount`` as a string, and both pass), so numbers are accepted as JSON numbers or digit strings.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fake_upstreams._scheduler import is_loopback_url
from fake_upstreams.mpesa._errors import invalid

__all__ = ["amount", "digits", "msisdn", "shortcode", "text", "timestamp", "url"]

_SHORTCODE = re.compile(r"^\d{5,7}$")
_MSISDN = re.compile(r"^254[17]\d{8}$")


def _scalar(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise invalid(name)
    return str(value).strip()


def digits(body: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = _scalar(body, name)
    if not pattern.match(value):
        raise invalid(name)
    return value


def shortcode(body: dict[str, Any], name: str = "BusinessShortCode") -> str:
    return digits(body, name, _SHORTCODE)


def msisdn(body: dict[str, Any], name: str) -> str:
    return digits(body, name, _MSISDN)


def amount(body: dict[str, Any], name: str, low: int, high: int) -> int:
    value = body.get(name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise invalid(name)
    text_value = str(value).strip()
    if not text_value.isdigit() or not low <= int(text_value) <= high:
        raise invalid(name)
    return int(text_value)


def text(
    body: dict[str, Any], name: str, *, max_len: int, min_len: int = 1, required: bool = True
) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not min_len <= len(value.strip()) <= max_len:
        raise invalid(name)
    return value.strip()


def timestamp(body: dict[str, Any]) -> str:
    value = _scalar(body, "Timestamp")
    if len(value) != 14 or not value.isdigit():
        raise invalid("Timestamp")
    try:
        datetime.strptime(value, "%Y%m%d%H%M%S")
    except ValueError:
        raise invalid("Timestamp") from None
    return value


def url(body: dict[str, Any], name: str) -> str:
    """A callback URL; this fake only calls back to 127.0.0.1, so anything else is refused up front."""
    value = body.get(name)
    if not isinstance(value, str) or not is_loopback_url(value.strip()):
        raise invalid(name)
    return value.strip()
