"""Small builders for the fakes' hand-written OpenAPI 3.0 documents.

The documents describe each fake's *upstream* API (not the admin API) as the real service behaves:
every status the real API can answer with, in its own error shape. They are served at
``/__admin/openapi.json`` and are what the schemathesis tests generate requests from and check
answers against. Written as Python data rather than generated from the routes because the point is
to state the real API's contract independently of the fake's code.
"""

from __future__ import annotations

from typing import Any

__all__ = ["document", "json_body", "ref", "response"]


def ref(name: str, section: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{section}/{name}"}


def response(
    description: str,
    schema: dict[str, Any] | None = None,
    *,
    media_type: str = "application/json",
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {media_type: {"schema": schema}}
    if headers:
        out["headers"] = headers
    return out


def json_body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def document(
    *,
    title: str,
    description: str,
    paths: dict[str, Any],
    components: dict[str, Any],
    security: list[dict[str, list[str]]] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": title, "version": "1.0.0", "description": description},
        "paths": paths,
        "components": components,
    }
    if security is not None:
        doc["security"] = security
    return doc
