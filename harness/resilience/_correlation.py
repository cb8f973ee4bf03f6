"""Correlation ids: one per logical operation, sent on every attempt, drawn from the injected random.

Every seed asks for them (MIFOS "correlation ID tracking", the Stripe integration service's
``X-Request-ID``/``X-Correlation-ID`` middleware, Milokhelo's trace ids). One id per *operation*, not
per attempt, is what lets a reader join a client's retries with what the upstream logged for each of
them; the fakes record ``X-Correlation-ID`` in their request log. The id is a version-4 UUID built
from ``rng`` so that a seeded run sends the same ids again.
"""

from __future__ import annotations

import random
import uuid

__all__ = ["CORRELATION_HEADER", "new_correlation_id"]

CORRELATION_HEADER = "X-Correlation-ID"


def new_correlation_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
