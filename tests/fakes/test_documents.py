"""The fakes' OpenAPI documents are valid OpenAPI 3.0 and document errors for every operation.

Pure document checks, no HTTP: the schemathesis tests fetch the same documents from the running
fakes and hold every real answer against them.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import schemathesis

from fake_upstreams._base import FakeUpstream
from fake_upstreams._registry import FAKES


@pytest.mark.parametrize("name", sorted(FAKES))
def test_each_fake_declares_a_valid_openapi_document_of_its_api(name: str, tmp_path: Path) -> None:
    spec = FAKES[name]
    fake = FakeUpstream.open(name, tmp_path, 0, spec.credentials(random.Random(0)))
    spec.create_app(fake)
    fake.store.close()

    schemathesis.openapi.from_dict(fake.openapi).validate()
    paths = fake.openapi["paths"]
    assert paths
    assert not any(path.startswith("/__admin") for path in paths)
    for operations in paths.values():
        for operation in operations.values():
            errors = [status for status in operation["responses"] if status.startswith(("4", "5"))]
            assert errors, f"{name}: an operation documents no error answer"
