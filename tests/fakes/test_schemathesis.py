"""Property-based conformance of each fake to its own OpenAPI document, with schemathesis 4.

Schemathesis generates valid and deliberately invalid requests for every operation of the document
the fake serves at ``/__admin/openapi.json``; each request goes over real HTTP to the fake in its
child process, with real credentials, and each answer must be documented (status, content type,
body schema: so every error is in the real API's shape) and never a 5xx, except the 500s Daraja
itself answers for client-side conditions (``500.001.1001``/``500.002.1001``, see the document).

The run is bounded: a few examples per operation and mode, derandomized, no example database.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

EXAMPLES = 12
CHECKS = [
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
DARAJA_CLIENT_SIDE_500 = frozenset({"500.001.1001", "500.002.1001"})


def _no_server_error(name: str, response: requests.Response) -> None:
    if response.status_code < 500:
        return
    if name == "mpesa" and response.json().get("errorCode") in DARAJA_CLIENT_SIDE_500:
        return
    raise AssertionError(
        f"{response.status_code} from {response.request.method} {response.url}: {response.text}"
    )


def _stripe_headers(fake: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {fake.credentials()['secret_key']}"}


def _mpesa_headers(fake: Any) -> dict[str, str]:
    creds = fake.credentials()
    token = requests.get(
        fake.url + "/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=(creds["consumer_key"], creds["consumer_secret"]),
        timeout=10,
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _cbs_headers(fake: Any) -> dict[str, str]:
    creds = fake.credentials()
    basic = base64.b64encode(f"{creds['username']}:{creds['password']}".encode()).decode()
    return {"Authorization": f"Basic {basic}", "Fineract-Platform-TenantId": creds["tenant"]}


HEADERS: dict[str, Callable[[Any], dict[str, str]]] = {
    "stripe": _stripe_headers,
    "mpesa": _mpesa_headers,
    "cbs": _cbs_headers,
}


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_every_answer_conforms_to_the_fakes_openapi_document(
    name: str, request: pytest.FixtureRequest
) -> None:
    fake = request.getfixturevalue(f"{name}_fake")
    headers = HEADERS[name](fake)
    schema = schemathesis.openapi.from_url(fake.url + "/__admin/openapi.json")
    schema.validate()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the document declares no operation"
    calls = 0
    with requests.Session() as session:
        for operation in operations:
            strategy = st.one_of(
                operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
            )

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def conforms(case: schemathesis.Case) -> None:
                nonlocal calls
                response = case.call(base_url=fake.url, session=session, headers=headers, timeout=10)
                calls += 1
                _no_server_error(name, response)
                case.validate_response(response, checks=CHECKS)

            conforms()
    assert calls >= len(operations)
