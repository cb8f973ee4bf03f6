"""The fakes this package serves, by name, and their test credentials."""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.applications import Starlette

from fake_upstreams._base import FakeUpstream

__all__ = ["FAKES", "FakeSpec"]


@dataclass(frozen=True, kw_only=True)
class FakeSpec:
    name: str
    create_app: Callable[[FakeUpstream], Starlette]
    credentials: Callable[[random.Random], Mapping[str, str]]


def _token(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


def _stripe_app(fake: FakeUpstream) -> Starlette:
    from fake_upstreams.stripe import create_app

    return create_app(fake)


FAKES: dict[str, FakeSpec] = {
    "stripe": FakeSpec(
        name="stripe",
        create_app=_stripe_app,
        credentials=lambda rng: {"secret_key": "sk_test_" + _token(rng, 24)},
    ),
}
