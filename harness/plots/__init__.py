"""Figures shared by the reports and the notebooks."""

from harness.plots._timeline import ATTEMPT_COLOURS, BREAKER_COLOURS, timeline
from harness.plots._tradeoff import tradeoff

__all__ = ["ATTEMPT_COLOURS", "BREAKER_COLOURS", "timeline", "tradeoff"]
