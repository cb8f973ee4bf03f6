"""Shared by breaker tests: an upstream error to raise, and a differential runner that drives several
breakers (e.g. over different stores) through the same actions and asserts they agree throughout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.resilience import (
    BreakerTransition,
    CircuitBreaker,
    CircuitOpenError,
    ErrorClass,
    IllegalTransitionError,
    VirtualClock,
)


class UpstreamError(Exception):
    def __init__(self, error_class: ErrorClass = ErrorClass.SERVER_ERROR, message: str = "") -> None:
        super().__init__(message or str(error_class))
        self.error_class = error_class


def failing(error_class: ErrorClass = ErrorClass.SERVER_ERROR, message: str = "") -> None:
    raise UpstreamError(error_class, message)


def assert_breakers_agree(
    breakers: Sequence[CircuitBreaker], clock: VirtualClock, actions: Sequence[tuple[str, Any]]
) -> None:
    """Apply each action (``advance``, ``call`` with an error class or None, ``move``, ``reset``) to
    every breaker; after each, their results and snapshots must match, and so must all transitions."""
    logs: list[list[BreakerTransition]] = [[] for _ in breakers]
    for subject, log in zip(breakers, logs, strict=True):
        subject.subscribe(log.append)
    for action, argument in actions:
        if action == "advance":
            clock.advance(argument)
            continue
        results = []
        for subject in breakers:
            try:
                if action == "call" and argument is not None:
                    subject.call(failing, argument)
                elif action == "call":
                    subject.call(lambda: None)
                elif action == "move":
                    subject.transition_to(argument)
                else:
                    subject.reset()
                results.append("ok")
            except (UpstreamError, CircuitOpenError, IllegalTransitionError) as error:
                results.append(type(error).__name__)
        assert len(set(results)) == 1, f"{action}({argument!r}) gave {results}"
        snapshots = [subject.snapshot() for subject in breakers]
        assert all(s == snapshots[0] for s in snapshots), f"{action}({argument!r}) left {snapshots}"
    assert all(log == logs[0] for log in logs)
