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


def _mpesa_app(fake: FakeUpstream) -> Starlette:
    from fake_upstreams.mpesa import create_app

    return create_app(fake)


def _cbs_app(fake: FakeUpstream) -> Starlette:
    from fake_upstreams.cbs import create_app

    return create_app(fake)


def _mpesa_credentials(rng: random.Random) -> Mapping[str, str]:
    return {
        "consumer_key": _token(rng, 48),
        "consumer_secret": _token(rng, 64),
        "shortcode": "174379",
        "passkey": "".join(rng.choice("0123456789abcdef") for _ in range(64)),
        "initiator_name": "testapi",
        "security_credential": _token(rng, 344),
    }


def _cbs_credentials(rng: random.Random) -> Mapping[str, str]:
    # Fineract's demo tenant and user; the checker is this fake's second user.
    return {
        "username": "mifos",
        "password": "password",
        "tenant": "default",
        "checker_username": "checker",
        "checker_password": "checker-" + _token(rng, 12),
    }


FAKES: dict[str, FakeSpec] = {
    "stripe": FakeSpec(
        name="stripe",
        create_app=_stripe_app,
        credentials=lambda rng: {"secret_key": "sk_test_" + _token(rng, 24)},
    ),
    "mpesa": FakeSpec(name="mpesa", create_app=_mpesa_app, credentials=_mpesa_credentials),
    "cbs": FakeSpec(name="cbs", create_app=_cbs_app, credentials=_cbs_credentials),
}
