"""How the end of a protected call is judged: success, failure (counts against the upstream), or ignored.

Built on the shared taxonomy (:class:`~harness.resilience.ErrorClass`): only classes with
``is_upstream_failure`` count against a breaker, so a card decline or a validation error never trips
it however often it happens, and a breaker's own rejection (REJECTED) never trips an outer breaker.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import httpx

from harness.resilience._errors import ErrorClass, classify_exception, classify_response

__all__ = [
    "CallOutcome",
    "ExceptionClassifier",
    "ResultClassifier",
    "default_exception_outcome",
    "default_result_outcome",
    "error_class_of",
    "outcome_for",
]


class CallOutcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    """Counts against the upstream's health."""
    IGNORED = "ignored"
    """Says nothing either way; a half-open probe that ends like this gives its permit back."""


ExceptionClassifier = Callable[[BaseException], CallOutcome]
ResultClassifier = Callable[[Any], CallOutcome]

_UPSTREAM_FAILURE = CallOutcome.FAILURE
_NOT_UPSTREAM = CallOutcome.IGNORED


def outcome_for(error: ErrorClass | None) -> CallOutcome:
    """The breaker outcome of an attempt that ended with ``error`` (``None``: it succeeded)."""
    if error is None:
        return CallOutcome.SUCCESS
    return _UPSTREAM_FAILURE if error.is_upstream_failure else _NOT_UPSTREAM


def error_class_of(exc: BaseException) -> ErrorClass | None:
    """The taxonomy class of an exception, if it has one.

    An exception may carry its class in an ``error_class`` attribute (how a client reports a decline
    or a validation error it parsed from a response); httpx errors are classified as the reference
    client classifies them, an ``HTTPStatusError`` by its status.
    """
    carried = getattr(exc, "error_class", None)
    if isinstance(carried, ErrorClass):
        return carried
    if isinstance(exc, httpx.HTTPStatusError):
        return classify_response(exc.response)
    if isinstance(exc, httpx.HTTPError):
        return classify_exception(exc)
    return None


def default_exception_outcome(exc: BaseException) -> CallOutcome:
    """Classified exceptions by their class; other exceptions are failures; cancellation is ignored.

    An unclassified ``Exception`` counts as a failure (resilience4j and Polly record every exception
    by default). ``BaseException``s that are not ``Exception``s (task cancellation, KeyboardInterrupt,
    SystemExit) say nothing about the upstream, so they only give the permit back.
    """
    if not isinstance(exc, Exception):
        return CallOutcome.IGNORED
    error = error_class_of(exc)
    if error is None:
        return CallOutcome.FAILURE
    return outcome_for(error)


def default_result_outcome(result: object) -> CallOutcome:
    """An ``httpx.Response`` is judged as the reference client judges it (:func:`classify_response`:
    a 503 fails, a 402 decline is ignored); anything else succeeded."""
    if isinstance(result, httpx.Response):
        return outcome_for(classify_response(result))
    return CallOutcome.SUCCESS
