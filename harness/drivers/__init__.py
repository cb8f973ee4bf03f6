"""Drivers: the reference client, and factories to load by import path.

``harness certify --driver harness.drivers:reference`` is the default;
``harness.drivers:reference_without_idempotency`` is the same client with idempotency keys switched
off, the control that shows what the scenarios catch.

Other controls, each with the one defect a scenario exists to catch: ``leaky_breaker`` (its breaker
opens but calls go through), ``sticky_breaker`` (never recovers within a scenario),
``retries_declines`` (retries card declines), ``parks_and_forgets`` (dead-letters and never replays),
``ignores_retry_after`` (retries throttled calls at once); for Fineract ``repays_without_external_id``,
``gives_up_on_locked_loans``, ``trusts_pending_commands``; for M-Pesa ``stk_repush_after_lost_answer``,
``stk_callbacks_only``, ``token_every_call``, ``token_refresh_loop``.

``reference`` reads three options from :attr:`DriverSetup.options`:

* ``profile``: a name from :data:`harness.resilience.PROFILES` (default ``reference``), e.g.
  ``haven`` or ``quantforge-database`` to certify a seed system's settings;
* ``idempotency_keys``: ``True`` (default) or ``False``;
* ``time_scale``: a factor for every duration of the profile (default 1; e.g. 0.01 to run a seed's
  real 30 s timeouts and 2 min breakers on loopback).
"""

from harness.drivers._cbs import CbsIntegration, classify_fineract
from harness.drivers._cbs_controls import (
    gives_up_on_locked_loans,
    repays_without_external_id,
    trusts_pending_commands,
)
from harness.drivers._controls import (
    ignores_retry_after,
    leaky_breaker,
    parks_and_forgets,
    retries_declines,
    sticky_breaker,
)
from harness.drivers._integration import (
    SETTLING_ERRORS,
    Integration,
    IntegrationSetup,
    honest_outcome,
    idempotency_key,
)
from harness.drivers._mpesa import MpesaIntegration, MpesaOptions
from harness.drivers._mpesa_controls import (
    stk_callbacks_only,
    stk_repush_after_lost_answer,
    token_every_call,
    token_refresh_loop,
)
from harness.drivers._reference import (
    INTEGRATIONS,
    ReferenceConfig,
    ReferenceDriver,
    reference,
    reference_with,
    reference_without_idempotency,
)
from harness.drivers._stripe import StripeIntegration, classify_stripe

__all__ = [
    "INTEGRATIONS",
    "SETTLING_ERRORS",
    "CbsIntegration",
    "Integration",
    "IntegrationSetup",
    "MpesaIntegration",
    "MpesaOptions",
    "ReferenceConfig",
    "ReferenceDriver",
    "StripeIntegration",
    "classify_fineract",
    "classify_stripe",
    "gives_up_on_locked_loans",
    "honest_outcome",
    "idempotency_key",
    "ignores_retry_after",
    "leaky_breaker",
    "parks_and_forgets",
    "reference",
    "reference_with",
    "reference_without_idempotency",
    "repays_without_external_id",
    "retries_declines",
    "sticky_breaker",
    "stk_callbacks_only",
    "stk_repush_after_lost_answer",
    "token_every_call",
    "token_refresh_loop",
    "trusts_pending_commands",
]
