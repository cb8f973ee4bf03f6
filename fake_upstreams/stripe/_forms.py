"""Stripe's form encoding: ``metadata[order_id]=1&payment_method_types[]=card`` into nested values.

Written by hand because no maintained library decodes Stripe's bracket notation (it is Rack's
convention); ``urllib.parse.parse_qsl`` does the percent-decoding, this module only nests.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["FormError", "parse_form"]

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """A body that is not valid Stripe form encoding; ``param`` names the offending key."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def parse_form(body: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    try:
        pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body))
    except ValueError as exc:
        raise FormError(f"Invalid request body: {exc}") from exc
    for raw_key, value in pairs:
        match = _KEY.match(raw_key)
        if match is None:
            raise FormError(f"Invalid parameter name: {raw_key}", raw_key)
        parts = [match.group(1), *_PART.findall(match.group(2))]
        _insert(result, parts, value, raw_key)
    return _listify(result)  # type: ignore[no-any-return]


def _insert(target: dict[str, Any], parts: list[str], value: str, raw_key: str) -> None:
    node: Any = target
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "":
            if not last or not isinstance(node, dict):
                raise FormError(f"Invalid array parameter: {raw_key}", raw_key)
            node.setdefault("", []).append(value)
            return
        if not isinstance(node, dict):
            raise FormError(f"Invalid parameter nesting: {raw_key}", raw_key)
        if last:
            if isinstance(node.get(part), dict):
                raise FormError(f"Invalid parameter nesting: {raw_key}", raw_key)
            node[part] = value
        else:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise FormError(f"Invalid parameter nesting: {raw_key}", raw_key)
            node = child


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if set(node) == {""}:
        return list(node[""])
    if node and all(key.isdigit() for key in node):
        return [_listify(node[key]) for key in sorted(node, key=int)]
    return {key: _listify(value) for key, value in node.items()}
