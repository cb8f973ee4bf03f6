"""Run-time settings of a fake (``GET``/``POST /__admin/config``): typed, validated, all-or-nothing.

Each fake declares its settings with a default and a checker; the admin API accepts a partial JSON
object, checks every value first and applies the patch only if all of them pass, so a bad patch
changes nothing and its error names the setting and says what to send.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Setting",
    "Settings",
    "SettingsError",
    "boolean",
    "choice",
    "delays",
    "number",
    "string_list",
    "weights",
]

Checker = Callable[[Any], Any]


class SettingsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Setting:
    default: Any
    check: Checker
    doc: str


def number(low: float, high: float) -> Checker:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise SettingsError(f"must be a number from {low} to {high}, got {value!r}")
        if not low <= value <= high:
            raise SettingsError(f"must be from {low} to {high}, got {value!r}")
        return float(value)

    return check


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"must be true or false, got {value!r}")
    return value


def choice(*allowed: str) -> Checker:
    def check(value: Any) -> str:
        if value not in allowed:
            raise SettingsError(f"must be one of {list(allowed)}, got {value!r}")
        return str(value)

    return check


def delays(max_items: int = 10, max_seconds: float = 3600.0) -> Checker:
    def check(value: Any) -> list[float]:
        if not isinstance(value, list) or len(value) > max_items:
            raise SettingsError(f"must be a list of at most {max_items} delays in seconds, got {value!r}")
        return [number(0.0, max_seconds)(item) for item in value]

    return check


def weights(allowed: Iterable[str]) -> Checker:
    allowed = frozenset(allowed)

    def check(value: Any) -> dict[str, float]:
        if not isinstance(value, dict) or not value:
            raise SettingsError(
                f'must be an object of weights such as {{"0": 0.9, "1032": 0.1}}, got {value!r}'
            )
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise SettingsError(f"has unknown outcomes {unknown}; known: {sorted(allowed)}")
        checked = {str(k): number(0.0, 1e9)(v) for k, v in value.items()}
        if sum(checked.values()) <= 0:
            raise SettingsError("needs at least one positive weight")
        return checked

    return check


def string_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str | int) for item in value):
        raise SettingsError(f"must be a list of strings, got {value!r}")
    return [str(item) for item in value]


class Settings:
    def __init__(self, spec: Mapping[str, Setting]) -> None:
        self.spec = dict(spec)
        self._values = {name: copy.deepcopy(setting.default) for name, setting in self.spec.items()}

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def update(self, patch: Any) -> dict[str, Any]:
        if not isinstance(patch, dict):
            raise SettingsError('settings are a JSON object such as {"callback_delay": 0.1}')
        checked: dict[str, Any] = {}
        for name, value in patch.items():
            setting = self.spec.get(name)
            if setting is None:
                raise SettingsError(f"unknown setting {name!r}; this fake has {sorted(self.spec)}")
            try:
                checked[name] = setting.check(value)
            except SettingsError as exc:
                raise SettingsError(f"setting {name!r} {exc}") from None
        self._values.update(checked)
        return self.to_json()

    def reset(self) -> None:
        self._values = {name: copy.deepcopy(setting.default) for name, setting in self.spec.items()}

    def to_json(self) -> dict[str, Any]:
        return dict(self._values)

    def describe(self) -> dict[str, str]:
        return {name: setting.doc for name, setting in self.spec.items()}
