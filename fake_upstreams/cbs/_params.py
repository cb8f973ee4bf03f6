"""Fineract's parameter conventions: ``locale`` + ``dateFormat`` dates, amounts, paging, sorting.

Dates in write bodies are strings in the request's own ``dateFormat`` (a Java pattern such as
``dd MMMM yyyy``) and ``locale``; this module reads the patterns Fineract's clients use. Paged lists
take ``offset``/``limit`` (capped at 200, Fineract's default maximum) and ``orderBy``/``sortOrder``.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any

from fake_upstreams.cbs._errors import param_error, validation

__all__ = ["amount", "page", "parse_date", "unsupported"]

MAX_LIMIT = 200
_JAVA_TOKENS = [("yyyy", "%Y"), ("MMMM", "%B"), ("MMM", "%b"), ("MM", "%m"), ("dd", "%d"), ("yy", "%y")]
_PATTERN = re.compile(r"^[yMd\s\-/.,]+$")


def unsupported(body: dict[str, Any], allowed: frozenset[str], resource: str) -> None:
    errors = [
        param_error("error.msg.parameter.unsupported", f"The parameter {name} is not supported.", name, name)
        for name in body
        if name not in allowed
    ]
    if errors:
        raise validation(*errors)


def _strftime_pattern(java: str) -> str | None:
    if not _PATTERN.match(java):
        return None
    out = java
    for token, directive in _JAVA_TOKENS:
        out = out.replace(token, directive)
    return out if "%" in out else None


def parse_date(body: dict[str, Any], name: str, resource: str) -> date:
    value = body.get(name)
    if value is None or value == "":
        raise validation(
            param_error(
                f"validation.msg.{resource}.{name}.cannot.be.blank",
                f"The parameter `{name}` is mandatory.",
                name,
            )
        )
    date_format, locale = body.get("dateFormat"), body.get("locale")
    if not isinstance(date_format, str) or not date_format:
        raise validation(
            param_error(
                "validation.msg.dateFormat.cannot.be.blank",
                "The parameter `dateFormat` is mandatory.",
                "dateFormat",
            )
        )
    if not isinstance(locale, str) or not locale:
        raise validation(
            param_error(
                "validation.msg.locale.cannot.be.blank", "The parameter `locale` is mandatory.", "locale"
            )
        )
    pattern = _strftime_pattern(date_format)
    if not isinstance(value, str) or pattern is None:
        raise validation(
            param_error(
                "validation.msg.invalid.date.pattern",
                f"The parameter `{name}` is invalid based on the dateFormat: `{date_format}` and locale:"
                f" `{locale}` provided:",
                name,
                value,
            )
        )
    try:
        return datetime.strptime(value, pattern).date()
    except ValueError:
        raise validation(
            param_error(
                "validation.msg.invalid.date.pattern",
                f"The parameter `{name}` is invalid based on the dateFormat: `{date_format}` and locale:"
                f" `{locale}` provided:",
                name,
                value,
            )
        ) from None


def amount(body: dict[str, Any], name: str, resource: str) -> float:
    value = body.get(name)
    if value is None or value == "":
        raise validation(
            param_error(
                f"validation.msg.{resource}.{name}.cannot.be.blank",
                f"The parameter `{name}` is mandatory.",
                name,
            )
        )
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number):
        raise validation(
            param_error(
                "validation.msg.invalid.decimal.format",
                f"The parameter `{name}` has value: {value} which is invalid decimal value for provided"
                " locale.",
                name,
                value,
            )
        )
    if number <= 0:
        raise validation(
            param_error(
                f"validation.msg.{resource}.{name}.not.greater.than.zero",
                f"The parameter `{name}` must be greater than 0.",
                name,
                value,
            )
        )
    return round(number, 2)


def page(query: dict[str, str], order_columns: frozenset[str]) -> tuple[int, int, str | None, bool]:
    """(offset, limit, order_by, descending) from the query string; 400 for values that do not parse."""
    errors = []
    numbers: dict[str, int] = {}
    for name, default in (("offset", 0), ("limit", MAX_LIMIT)):
        raw = query.get(name)
        if raw is None or raw == "":
            numbers[name] = default
        elif raw.isdigit():
            numbers[name] = int(raw)
        else:
            errors.append(
                param_error(
                    "validation.msg.invalid.integer.format",
                    f"The parameter `{name}` must be an integer.",
                    name,
                    raw,
                )
            )
    order_by = query.get("orderBy")
    if order_by is not None and order_by not in order_columns:
        errors.append(
            param_error(
                "validation.msg.orderBy.invalid",
                f"The orderBy value {order_by} is not supported.",
                "orderBy",
                order_by,
            )
        )
    sort_order = (query.get("sortOrder") or "ASC").upper()
    if sort_order not in ("ASC", "DESC"):
        errors.append(
            param_error(
                "validation.msg.sortOrder.invalid",
                "The sortOrder must be ASC or DESC.",
                "sortOrder",
                sort_order,
            )
        )
    if errors:
        raise validation(*errors)
    limit = min(numbers["limit"], MAX_LIMIT) or MAX_LIMIT
    return numbers["offset"], limit, order_by, sort_order == "DESC"
