"""Retry any callable, sync or async, with a :class:`~harness.resilience.RetryPolicy`.

The equivalent of tenacity's ``Retrying`` or stamina's ``RetryingCaller``, but on the injected clock
and random source, with the policy's deadline (no overshoot), ``Retry-After`` and
``Stripe-Should-Retry`` read from :class:`httpx.HTTPStatusError`, and an optional retry budget.

The success path is one call and two checks: nothing is allocated until a call fails. After a
failure, a small generator (the *plan*) makes every decision and yields the delays to sleep; the
sync and async faces only call, sleep and feed the outcome back, so the decisions are written once.

What is retried (``on``): exception types, or a predicate; by default httpx errors that the policy
deems retryable (:func:`~harness.resilience.classify_response` for status errors,
:func:`~harness.resilience.classify_exception` for transport errors) and nothing else. A result can
be retried too (``retry_on_result``); when the attempts run out on a bad result, the last result is
returned (resilience4j's default), on an exception the last exception is raised unchanged.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Generator
from typing import Any, ParamSpec, TypeVar

import httpx

from harness.resilience._budget import RetryBudget
from harness.resilience._clock import Clock, SystemClock, wall_time
from harness.resilience._errors import classify_exception, classify_response
from harness.resilience._retry import RetryPolicy, RetryRun
from harness.resilience._signals import RetrySignals

__all__ = ["Retrier"]

T = TypeVar("T")
P = ParamSpec("P")

On = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
# (exception, result) of one attempt; exactly one of them is meaningful.
_Outcome = tuple[Exception | None, Any]


class Retrier:
    """Calls a function until it succeeds or the policy says stop; reusable and thread-safe."""

    __slots__ = ("_budget", "_clock", "_on", "_retry_on_result", "_rng", "_timed", "policy")

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        on: On | None = None,
        retry_on_result: Callable[[Any], bool] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        budget: RetryBudget | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._on = on
        self._retry_on_result = retry_on_result
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._budget = budget
        self._timed = self.policy.max_elapsed is not None

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        started = self._clock.now() if self._timed else 0.0
        if self._budget is not None:
            self._budget.deposit()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            return self._again(self._plan((exc, None), started), fn, args, kwargs)
        if self._retry_on_result is None or not self._retry_on_result(result):
            return result
        return self._again(self._plan((None, result), started), fn, args, kwargs)

    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        started = self._clock.now() if self._timed else 0.0
        if self._budget is not None:
            self._budget.deposit()
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            return await self._again_async(self._plan((exc, None), started), fn, args, kwargs)
        if self._retry_on_result is None or not self._retry_on_result(result):
            return result
        return await self._again_async(self._plan((None, result), started), fn, args, kwargs)

    # -- the shared decisions --------------------------------------------------------------------

    def _plan(self, outcome: _Outcome, started: float) -> Generator[float, _Outcome, Any]:
        """Yield each delay to sleep; receive the next attempt's outcome; return or raise the last."""
        run = RetryRun(self.policy, clock=self._clock, rng=self._rng, started=started, budget=self._budget)
        while True:
            error, result = outcome
            if error is None:
                decision = run.after_failure(retryable=True)
            else:
                retryable, signals = self._judge(error)
                decision = run.after_failure(retryable=retryable, signals=signals)
            if decision.delay is None:
                if error is not None:
                    raise error
                return result
            outcome = yield decision.delay
            error, result = outcome
            if error is None and (self._retry_on_result is None or not self._retry_on_result(result)):
                return result

    def _judge(self, error: Exception) -> tuple[bool, RetrySignals | None]:
        response = error.response if isinstance(error, httpx.HTTPStatusError) else None
        if response is not None:
            signals: RetrySignals | None = RetrySignals.from_response(
                response, now_wall=wall_time(self._clock)
            )
        else:
            retry_after = getattr(error, "retry_after", None)
            signals = RetrySignals(retry_after=retry_after) if isinstance(retry_after, int | float) else None
        on = self._on
        if on is None:
            if response is not None:
                error_class = classify_response(response)
                return error_class is not None and self.policy.should_retry(error_class), signals
            if isinstance(error, httpx.TransportError):
                return self.policy.should_retry(classify_exception(error)), signals
            return False, signals
        if isinstance(on, type | tuple):
            return isinstance(error, on), signals
        return on(error), signals

    # -- the two faces: call, sleep, feed back -------------------------------------------------

    def _again(
        self, plan: Generator[float, _Outcome, Any], fn: Callable[..., T], args: Any, kwargs: Any
    ) -> T:
        try:
            delay = next(plan)
            while True:
                self._clock.sleep(delay)
                try:
                    outcome: _Outcome = (None, fn(*args, **kwargs))
                except Exception as exc:
                    outcome = (exc, None)
                delay = plan.send(outcome)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _again_async(
        self,
        plan: Generator[float, _Outcome, Any],
        fn: Callable[..., Awaitable[T]],
        args: Any,
        kwargs: Any,
    ) -> T:
        try:
            delay = next(plan)
            while True:
                await self._clock.sleep_async(delay)
                try:
                    outcome: _Outcome = (None, await fn(*args, **kwargs))
                except Exception as exc:
                    outcome = (exc, None)
                delay = plan.send(outcome)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"Retrier({self.policy!r})"
