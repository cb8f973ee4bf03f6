"""Payloads as canonical JSON: validated, size-limited and fingerprinted.

Everything a store keeps (payloads, stored responses, tags) is plain JSON so that any process, in any
language, can read it back, and so that a fingerprint means the same thing everywhere. ``json.dumps``
alone is not enough for that: it silently turns ``{1: "a"}`` into ``{"1": "a"}`` (so two different
payloads would share a fingerprint), accepts ``NaN`` only with a flag other parsers reject, and its
error for a stray ``datetime`` does not say *where* the value sits. :func:`encode_json` walks the
value first and names the exact path of anything that is not JSON, then encodes canonically (sorted
keys, no spaces, UTF-8) and checks the size against the limit.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import TypeAlias

from harness.stores._errors import PayloadNotSerializableError, PayloadTooLargeError

__all__ = ["DEFAULT_MAX_PAYLOAD_BYTES", "JSONValue", "decode_json", "encode_json", "fingerprint"]

JSONValue: TypeAlias = bool | int | float | str | Sequence["JSONValue"] | Mapping[str, "JSONValue"] | None
"""A JSON value. Sequences and mappings are the read-only ABCs so that ``dict[str, int]`` fits."""

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
_MAX_DEPTH = 100


def _check(value: object, path: str, depth: int, on_path: set[int]) -> None:
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PayloadNotSerializableError(
                f"{path} is {value!r}, which JSON cannot represent; use null or a string", path=path
            )
        return
    if depth >= _MAX_DEPTH:
        raise PayloadNotSerializableError(
            f"{path} is nested more than {_MAX_DEPTH} levels deep; flatten the payload", path=path
        )
    if isinstance(value, Mapping | list | tuple):
        if id(value) in on_path:
            raise PayloadNotSerializableError(f"{path} contains itself (a reference cycle)", path=path)
        on_path.add(id(value))
        try:
            if isinstance(value, Mapping):
                for k, v in value.items():
                    if not isinstance(k, str):
                        raise PayloadNotSerializableError(
                            f"{path} has a key of type {type(k).__name__} ({k!r}); JSON object keys must be"
                            " strings (convert it explicitly so that two payloads cannot collide)",
                            path=path,
                        )
                    _check(v, f"{path}[{k!r}]", depth + 1, on_path)
            else:
                for i, v in enumerate(value):
                    _check(v, f"{path}[{i}]", depth + 1, on_path)
        finally:
            on_path.discard(id(value))
        return
    raise PayloadNotSerializableError(
        f"{path} is a {type(value).__module__}.{type(value).__qualname__}, which is not JSON; convert it to"
        " a string, number, list or object first",
        path=path,
    )


def encode_json(value: object, *, what: str, limit: int) -> str:
    """The canonical JSON text of ``value``; raises naming ``what`` and the path, or the size and limit."""
    _check(value, what, 0, set())
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    size = len(text.encode("utf-8"))
    if size > limit:
        raise PayloadTooLargeError(
            f"{what} is {size:,} bytes as JSON; the limit is {limit:,} bytes (max_payload_bytes):"
            " store a reference to large data instead, or raise the limit",
            what=what,
            size=size,
            limit=limit,
        )
    return text


def decode_json(text: str) -> JSONValue:
    value: JSONValue = json.loads(text)
    return value


def fingerprint(value: object, *, limit: int = DEFAULT_MAX_PAYLOAD_BYTES, what: str = "payload") -> str:
    """SHA-256 of the canonical JSON: equal for equal payloads, whatever the key order."""
    return hashlib.sha256(encode_json(value, what=what, limit=limit).encode("utf-8")).hexdigest()
