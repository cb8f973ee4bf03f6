"""Runtime checks for values that arrive from callers' code, typed or not.

Parameters are annotated, but stores are fed from drivers, JSON files and notebooks, where a ``None``
or a ``"3"`` slips through; these take ``object`` so that the checks stay meaningful to mypy too.
"""

from __future__ import annotations

import math

__all__ = ["is_finite_number", "is_int_at_least", "is_nonempty_str"]


def is_nonempty_str(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_int_at_least(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
