"""Stripe's list envelope and cursor pagination (``limit``, ``starting_after``, ``ending_before``)."""

from __future__ import annotations

from typing import Any

from fake_upstreams.stripe._errors import StripeError

__all__ = ["LIST_PARAMS", "paginate"]

LIST_PARAMS = frozenset({"limit", "starting_after", "ending_before"})


def paginate(newest_first: list[dict[str, Any]], params: dict[str, Any], url: str) -> dict[str, Any]:
    raw_limit = params.get("limit", "10")
    try:
        limit = int(raw_limit)
    except (TypeError, ValueError):
        raise StripeError(
            400, "invalid_request_error", f"Invalid integer: {raw_limit}", param="limit"
        ) from None
    if not 1 <= limit <= 100:
        raise StripeError(
            400,
            "invalid_request_error",
            "This value must be greater than or equal to 1 and less than or equal to 100.",
            param="limit",
        )
    items = newest_first
    ids = [item["id"] for item in items]
    after, before = params.get("starting_after"), params.get("ending_before")
    for name, cursor in (("starting_after", after), ("ending_before", before)):
        if cursor is not None and cursor not in ids:
            raise StripeError(
                400,
                "invalid_request_error",
                f"No such object: '{cursor}'",
                code="resource_missing",
                param=name,
            )
    if after is not None:
        items = items[ids.index(after) + 1 :]
        page = items[:limit]
        has_more = len(items) > limit
    elif before is not None:
        items = items[: ids.index(before)]
        page = items[-limit:]
        has_more = len(items) > limit
    else:
        page = items[:limit]
        has_more = len(items) > limit
    return {"object": "list", "data": page, "has_more": has_more, "url": url}
