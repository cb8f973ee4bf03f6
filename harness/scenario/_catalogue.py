"""The scenario catalogue: named failure scenarios with sensible default sizes, by upstream.

Each upstream's scenarios live in their own module (``_scenarios_<upstream>.py``) exporting
``SCENARIOS``, a mapping of name to a factory taking keyword arguments only; this module joins them.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.scenario import _scenarios_cbs, _scenarios_mpesa, _scenarios_stripe
from harness.scenario._runner import Scenario
from harness.scenario._scenarios_stripe import card_declines, response_lost_after_commit, upstream_outage

__all__ = ["CATALOGUE", "card_declines", "response_lost_after_commit", "upstream_outage"]


def _join(*modules: dict[str, Callable[..., Scenario]]) -> dict[str, Callable[..., Scenario]]:
    catalogue: dict[str, Callable[..., Scenario]] = {}
    for scenarios in modules:
        clash = set(catalogue) & set(scenarios)
        if clash:
            raise RuntimeError(f"two scenario modules define {sorted(clash)}")
        catalogue.update(scenarios)
    return dict(sorted(catalogue.items()))


CATALOGUE: dict[str, Callable[..., Scenario]] = _join(
    _scenarios_cbs.SCENARIOS, _scenarios_mpesa.SCENARIOS, _scenarios_stripe.SCENARIOS
)
