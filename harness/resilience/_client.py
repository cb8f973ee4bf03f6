"""The resilient HTTP client: every policy of this package composed around httpx, sync and async.

Per logical operation, outer to inner:

    deadline → retry (with budget) → breaker → bulkhead / rate limit → idempotency key → attempt timeout

This is Microsoft's standard pipeline (resilience.md §2d) except for the rate limiter, which that
pipeline puts outermost: here every attempt takes a token, so retries are limited as well.

* one :class:`~harness.resilience.Deadline` for the operation; every wait and every attempt's
  timeout is cut down to the time it has left;
* the retry policy decides after each failed attempt (``Retry-After`` and ``Stripe-Should-Retry``
  honoured); each retry is paid for from the upstream's retry budget;
* each attempt takes a breaker permit, then a bulkhead slot, then a rate-limit token; a refusal at any
  of them ends the operation with :attr:`ErrorClass.REJECTED` (nothing was sent), after settling the
  permit as ``ignore`` so a refusal never counts against the upstream (a token that cannot be
  fetched refuses the attempt the same way);
* every attempt of one operation carries the same ``Idempotency-Key`` and the same
  ``X-Correlation-ID`` (both drawn from the injected random source unless the caller gives them);
* with a :class:`~harness.resilience.TokenAuth`, an AUTH failure with a cached token invalidates that
  token and tries once more at once (outside the retry policy); a second AUTH failure ends it;
* what counts as a failure is the ``classify`` function's answer (by default
  :func:`~harness.resilience.classify_response`): a 2xx classified as, say, CONFLICT ("still
  pending") is retried like any other failure, which is how the client retries on a result.

Every attempt is reported as an :class:`~harness.AttemptEvent` and every breaker transition to the
:class:`~harness.EventSink`, and recorded in :class:`~harness.resilience.ClientMetrics`.

**One core, two faces.** The whole operation is one generator, :meth:`_Core.plan` (sans-IO, as in
:mod:`harness.toxiproxy._client`): it yields the few things that block — send a request, sleep, wait
for a bulkhead slot, get a token — and receives their results; it never blocks and never awaits.
:class:`ResilientClient` runs a plan with blocking calls, :class:`AsyncResilientClient` with awaits.
So the two faces cannot drift apart: given the same clock, random source and answers they make the
same decisions, which a test checks by running one scenario through both. Everything that does not
block (breaker, token-bucket reservation, budget, classification, events) is called by the core
directly; all of it is thread-safe.

What a :class:`CallResult` says beyond the last response: whether *any* attempt may have been
applied without the client seeing the answer (``ambiguous``) and whether the *last* attempt got an
answer from the upstream (``answered``), which is what a caller needs to report an honest outcome.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from harness.resilience._breaker import CircuitBreaker, CircuitOpenError, Permit
from harness.resilience._breaker_config import BreakerConfig, TimeWindow
from harness.resilience._budget import BudgetConfig, RetryBudget
from harness.resilience._bulkhead import Bulkhead, BulkheadConfig, Slot
from harness.resilience._clock import Clock, SystemClock, wall_time
from harness.resilience._correlation import CORRELATION_HEADER, new_correlation_id
from harness.resilience._errors import (
    BulkheadFullError,
    ConfigError,
    DeadlineExceededError,
    ErrorClass,
    RateLimitedError,
    classify_exception,
    classify_response,
)
from harness.resilience._metrics import ClientMetrics
from harness.resilience._ratelimit import RateLimitConfig, TokenBucket
from harness.resilience._retry import Backoff, RetryPolicy, RetryRun, StopReason, check_delays_fit
from harness.resilience._signals import RetrySignals
from harness.resilience._timeouts import Deadline, TimeoutConfig
from harness.resilience._tokens import Token, TokenAuth

if TYPE_CHECKING:
    from harness._driver import EventSink

__all__ = ["AsyncResilientClient", "CallResult", "ClientConfig", "ResilientClient"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
Classifier = Callable[[httpx.Response], ErrorClass | None]


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientConfig:
    """Everything the resilient client does for one upstream; ``None`` switches a layer off.

    Cross-checked on construction, after Microsoft's standard pipeline validator (resilience.md
    §1c): the attempt timeout must fit in the total, the retries' delays must fit in the total, and
    no queue may wait longer than the total, and a breaker judging rates over a time window needs a
    window at least twice the attempt timeout.
    """

    timeouts: TimeoutConfig = field(default_factory=TimeoutConfig)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    budget: BudgetConfig | None = field(default_factory=BudgetConfig)
    breaker: BreakerConfig | None = field(default_factory=BreakerConfig)
    bulkhead: BulkheadConfig | None = None
    rate_limit: RateLimitConfig | None = None
    idempotency_keys: bool = True
    """Send an ``Idempotency-Key`` on non-idempotent methods (one per operation)."""
    idempotency_header: str = "Idempotency-Key"
    correlation_header: str = CORRELATION_HEADER

    def __post_init__(self) -> None:
        breaker = self.breaker
        if breaker is not None and breaker.judges_rates and isinstance(breaker.window, TimeWindow):
            attempt = self.timeouts.attempt
            if breaker.window.duration < 2 * attempt:
                raise ConfigError(
                    f"ClientConfig: the breaker's time window ({breaker.window.duration:g} s) is shorter than"
                    f" twice the attempt timeout ({attempt:g} s), so a few slow attempts would make up the"
                    " whole window; lengthen the window or lower timeouts.attempt"
                )
        total = self.timeouts.total
        if total is None:
            return
        if self.retry.max_elapsed is not None and self.retry.max_elapsed > total:
            raise ConfigError(
                f"ClientConfig: retry.max_elapsed ({self.retry.max_elapsed:g} s) is above timeouts.total"
                f" ({total:g} s), which ends every operation first; lower max_elapsed or drop it"
            )
        check_delays_fit(self.retry, total, "timeouts.total")
        for name, layer in (("bulkhead", self.bulkhead), ("rate_limit", self.rate_limit)):
            wait = None if layer is None else layer.max_wait
            if wait is not None and wait > total:
                raise ConfigError(
                    f"ClientConfig: {name}.max_wait ({wait:g} s) is above timeouts.total ({total:g} s), so"
                    f" a queued call would be cut off by the deadline anyway; lower {name}.max_wait"
                )

    def scaled(self, factor: float) -> ClientConfig:
        """Every duration multiplied by ``factor``: a real system's settings, run on loopback.

        Counts (attempts, thresholds, permits, limits per period) stay; times shrink.
        """
        if not (math.isfinite(factor) and factor > 0):
            raise ConfigError(f"scale factor must be a finite number > 0, got {factor!r}")
        retry = self.retry
        backoff = retry.backoff
        scaled_retry = dataclasses.replace(
            retry,
            backoff=Backoff(
                initial=backoff.initial * factor,
                multiplier=backoff.multiplier,
                max_delay=backoff.max_delay * factor,
                jitter=backoff.jitter,
                kind=backoff.kind,
            ),
            max_elapsed=None if retry.max_elapsed is None else retry.max_elapsed * factor,
            max_retry_after=retry.max_retry_after * factor,
        )
        breaker = self.breaker
        if breaker is not None and hasattr(breaker, "open_duration"):
            breaker = dataclasses.replace(breaker, open_duration=breaker.open_duration * factor)
        budget = self.budget
        if budget is not None:
            budget = dataclasses.replace(
                budget, ttl=budget.ttl * factor, min_retries_per_second=budget.min_retries_per_second / factor
            )
        return dataclasses.replace(
            self,
            timeouts=self.timeouts.scaled(factor),
            retry=scaled_retry,
            breaker=breaker,
            budget=budget,
            bulkhead=None if self.bulkhead is None else self.bulkhead.scaled(factor),
            rate_limit=None if self.rate_limit is None else self.rate_limit.scaled(factor),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class CallResult:
    """What happened to one logical operation."""

    response: httpx.Response | None
    """The last answer from the upstream, success or error (``None`` if the last attempt got none)."""
    error: ErrorClass | None
    """``None`` on success; otherwise why the last attempt failed."""
    attempts: int
    """Attempts made, refused ones included."""
    ambiguous: bool
    """Some attempt may have been applied upstream without the client seeing the answer."""
    answered: bool
    """The last attempt got an answer from the upstream."""
    stop_reason: StopReason | None
    correlation_id: str
    idempotency_key: str | None
    rejection: str = ""
    """Why the client refused to send (breaker, bulkhead, rate limit, deadline, token)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def detail(self) -> str:
        if self.rejection:
            return self.rejection
        return "" if self.response is None else self.response.text[:200]


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    url: str
    operation: str
    operation_id: str
    idempotency_key: str | None
    correlation_id: str | None
    priority: int
    credential: str | None
    headers: Mapping[str, str]
    request: Mapping[str, Any]


# The commands a plan yields; each runner answers them its own way.
@dataclass(frozen=True, slots=True)
class _Send:
    request: httpx.Request


@dataclass(frozen=True, slots=True)
class _Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class _Admit:
    priority: int
    timeout: float | None


@dataclass(frozen=True, slots=True)
class _GetToken:
    credential: str


_Command = _Send | _Sleep | _Admit | _GetToken
Plan = Generator[_Command, Any, CallResult]
Builder = Callable[..., httpx.Request]


class _NullSink:
    def attempt(self, event: Any) -> None:
        return None

    def breaker_transition(self, event: Any) -> None:
        return None


@dataclass(slots=True)
class _Attempt:
    """What one attempt ended with, as the plan sees it."""

    error: ErrorClass | None
    response: httpx.Response | None = None
    rejection: str = ""
    token: Token | None = None


@dataclass(slots=True)
class _Op:
    """One operation's fixed parts, shared by its attempts."""

    call: _Call
    build: Builder
    deadline: Deadline
    correlation: str
    key: str | None
    number: int = 0
    started: float = 0.0
    """When the current attempt started."""
    breaker_state: str | None = None
    """The breaker state the current attempt was admitted (or refused) in."""


@dataclass(slots=True)
class _Gate:
    """What an admitted attempt holds until it ends: a breaker permit and a bulkhead slot."""

    permit: Permit | None = None
    slot: Slot | None = None

    def abandon(self) -> None:
        """The attempt ends without a verdict (refused further in, or cancelled)."""
        if self.permit is not None:
            self.permit.ignore()
            self.permit = None

    def release(self) -> None:
        if self.slot is not None:
            self.slot.release()
            self.slot = None


class _Core:
    """The shared state and the plan; both faces hold one."""

    def __init__(
        self,
        *,
        upstream: str,
        config: ClientConfig,
        clock: Clock,
        rng: random.Random,
        events: EventSink | None,
        metrics: ClientMetrics | None,
        auth: TokenAuth | None,
        classify: Classifier,
        breaker: CircuitBreaker | None,
    ) -> None:
        # Imported here: harness._driver imports harness.resilience, so a module-level import would
        # be circular. By the time a client is built both modules are complete.
        from harness._driver import AttemptEvent

        self.attempt_event = AttemptEvent
        self.upstream = upstream
        self.config = config
        self.clock = clock
        self.rng = rng
        self.events: EventSink = events if events is not None else _NullSink()
        self.metrics = metrics
        self.auth = auth
        self.classify = classify
        if breaker is None and config.breaker is not None:
            breaker = CircuitBreaker(upstream, config.breaker, clock=clock)
            breaker.subscribe(self.events.breaker_transition)
        self.breaker = breaker
        self.bulkhead = None if config.bulkhead is None else Bulkhead(upstream, config.bulkhead, clock=clock)
        self.limiter = (
            None if config.rate_limit is None else TokenBucket(upstream, config.rate_limit, clock=clock)
        )
        self.budget = None if config.budget is None else RetryBudget(config.budget, clock=clock)

    def plan(self, call: _Call, build: Builder) -> Plan:
        """The whole operation; yields commands, returns the :class:`CallResult`."""
        config, clock = self.config, self.clock
        started = clock.now()
        total = config.timeouts.total
        key = call.idempotency_key
        correlation = call.correlation_id or new_correlation_id(self.rng)
        if key is None and config.idempotency_keys and call.method not in IDEMPOTENT_METHODS:
            key = new_correlation_id(self.rng)
        op = _Op(call, build, Deadline(clock, None if total is None else started + total), correlation, key)
        if self.budget is not None:
            self.budget.deposit()
        run = RetryRun(
            config.retry,
            clock=clock,
            rng=self.rng,
            started=started,
            budget=self.budget,
            deadline=op.deadline.at,
        )
        ambiguous = refreshed = False
        while True:
            op.number += 1
            attempt = yield from self._attempt(op)
            error = attempt.error
            stop: StopReason | None = None
            if error is None:
                pass
            elif attempt.rejection:
                stop = StopReason.REJECTED
            elif (
                error is ErrorClass.AUTH
                and attempt.token is not None
                and not refreshed
                and self.auth is not None
            ):
                refreshed = True
                self.auth.cache.invalidate(call.credential or self.auth.credential, attempt.token)
                continue
            else:
                ambiguous = ambiguous or error.ambiguous
                signals = RetrySignals.from_response(attempt.response, now_wall=wall_time(clock))
                decision = run.after_failure(retryable=config.retry.should_retry(error), signals=signals)
                if decision.delay is not None:
                    if decision.delay > 0:
                        yield _Sleep(decision.delay)
                    continue
                stop = decision.reason
            return CallResult(
                response=attempt.response,
                error=error,
                attempts=op.number,
                ambiguous=ambiguous,
                answered=attempt.response is not None,
                stop_reason=stop,
                correlation_id=correlation,
                idempotency_key=key,
                rejection=attempt.rejection,
            )

    def _attempt(self, op: _Op) -> Generator[_Command, Any, _Attempt]:
        op.started = self.clock.now()
        op.breaker_state = None
        gate = yield from self._admit(op)
        if isinstance(gate, _Attempt):
            return gate
        token: Token | None = None
        try:
            headers = dict(op.call.headers)
            headers[self.config.correlation_header] = op.correlation
            if op.key is not None:
                headers[self.config.idempotency_header] = op.key
            if self.auth is not None:
                got = yield _GetToken(op.call.credential or self.auth.credential)
                if isinstance(got, BaseException):
                    gate.abandon()
                    return self._refuse(op, f"no token for the call: {type(got).__name__}")
                token = got
                headers[self.auth.header] = self.auth.header_value(token)
            timeout = self.config.timeouts.for_attempt(op.deadline.remaining())
            request = op.build(
                op.call.method, op.call.url, headers=headers, timeout=timeout, **op.call.request
            )
            reply = yield _Send(request)
        except BaseException:
            gate.abandon()  # cancelled mid-attempt, or the runner failed: it proves nothing either way
            raise
        finally:
            gate.release()
        response = reply if isinstance(reply, httpx.Response) else None
        error = self.classify(reply) if response is not None else classify_exception(reply)
        if gate.permit is not None:
            gate.permit.settle_for(error)
        if self.metrics is not None:
            self.metrics.record(self.upstream, op.call.operation, self.clock.now() - op.started, error)
        status = None if response is None else response.status_code
        self._emit(op, "ok" if error is None else "error", error, status)
        return _Attempt(error, response=response, token=token)

    def _admit(self, op: _Op) -> Generator[_Command, Any, _Gate | _Attempt]:
        """Breaker, bulkhead, rate limiter and deadline, in that order; a refusal at any settles all."""
        gate = _Gate()
        if self.breaker is not None:
            try:
                gate.permit = self.breaker.acquire()
            except CircuitOpenError as exc:
                op.breaker_state = str(exc.state)
                return self._refuse(op, str(exc))
            op.breaker_state = str(gate.permit.state)
        try:
            if self.bulkhead is not None:
                admitted = yield _Admit(op.call.priority, op.deadline.remaining())
                if isinstance(admitted, BulkheadFullError):
                    gate.abandon()
                    return self._refuse(op, str(admitted))
                gate.slot = admitted
            if self.limiter is not None:
                wait = self.limiter.reserve(timeout=op.deadline.remaining())
                if wait > 0:
                    try:
                        yield _Sleep(wait)
                    except GeneratorExit:
                        self.limiter.refund()
                        raise
        except RateLimitedError as exc:
            gate.abandon()
            gate.release()
            return self._refuse(op, str(exc))
        except BaseException:
            gate.abandon()
            gate.release()
            raise
        if op.deadline.expired():
            gate.abandon()
            gate.release()
            total = self.config.timeouts.total
            return self._refuse(
                op, str(DeadlineExceededError(f"the {total:g} s deadline passed before the attempt"))
            )
        return gate

    def _refuse(self, op: _Op, why: str) -> _Attempt:
        self._emit(op, "rejected", ErrorClass.REJECTED, None)
        return _Attempt(ErrorClass.REJECTED, rejection=why)

    def _emit(self, op: _Op, outcome: str, error: ErrorClass | None, status: int | None) -> None:
        self.events.attempt(
            self.attempt_event(
                operation_id=op.call.operation_id,
                upstream=self.upstream,
                action=op.call.operation,
                attempt=op.number,
                started_at=op.started,
                latency=self.clock.now() - op.started,
                outcome=outcome,
                error=error,
                status_code=status,
                correlation_id=op.correlation,
                idempotency_key=op.key,
                breaker_state=op.breaker_state,
            )
        )


class _Face:
    """What both faces share: construction and the request signature."""

    _core: _Core

    def _setup(
        self,
        *,
        upstream: str,
        config: ClientConfig | None,
        clock: Clock | None,
        rng: random.Random | None,
        events: EventSink | None,
        metrics: ClientMetrics | None,
        auth: TokenAuth | None,
        classify: Classifier,
        breaker: CircuitBreaker | None,
    ) -> None:
        self._core = _Core(
            upstream=upstream,
            config=config or ClientConfig(),
            clock=clock or SystemClock(),
            rng=rng or random.Random(),
            events=events,
            metrics=metrics,
            auth=auth,
            classify=classify,
            breaker=breaker,
        )

    @property
    def config(self) -> ClientConfig:
        return self._core.config

    @property
    def upstream(self) -> str:
        return self._core.upstream

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self._core.breaker

    @property
    def bulkhead(self) -> Bulkhead | None:
        return self._core.bulkhead

    @property
    def limiter(self) -> TokenBucket | None:
        return self._core.limiter

    @property
    def budget(self) -> RetryBudget | None:
        return self._core.budget

    @staticmethod
    def _call(
        method: str,
        url: str,
        *,
        operation: str | None,
        operation_id: str | None,
        idempotency_key: str | None,
        correlation_id: str | None,
        priority: int,
        credential: str | None,
        headers: Mapping[str, str] | None,
        request: dict[str, Any],
    ) -> _Call:
        method = method.upper()
        return _Call(
            method=method,
            url=url,
            operation=operation or f"{method} {url}",
            operation_id=operation_id or "",
            idempotency_key=idempotency_key,
            correlation_id=correlation_id,
            priority=priority,
            credential=credential,
            headers=dict(headers or {}),
            request={k: v for k, v in request.items() if v is not None},
        )


class ResilientClient(_Face):
    """The blocking face, over :class:`httpx.Client`; safe to share between threads."""

    def __init__(
        self,
        *,
        upstream: str,
        base_url: str = "",
        config: ClientConfig | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        events: EventSink | None = None,
        metrics: ClientMetrics | None = None,
        auth: TokenAuth | None = None,
        classify: Classifier = classify_response,
        breaker: CircuitBreaker | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        trust_env: bool = True,
    ) -> None:
        self._setup(
            upstream=upstream,
            config=config,
            clock=clock,
            rng=rng,
            events=events,
            metrics=metrics,
            auth=auth,
            classify=classify,
            breaker=breaker,
        )
        self._http = httpx.Client(
            base_url=base_url,
            headers=dict(headers or {}),
            transport=transport,
            timeout=self._core.config.timeouts.for_attempt(None),
            trust_env=trust_env,
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        operation: str | None = None,
        operation_id: str | None = None,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        priority: int = 0,
        credential: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Any = None,
        json: Any = None,
        data: Any = None,
    ) -> CallResult:
        """Run one logical operation; never raises for an upstream's failure (see the result)."""
        call = self._call(
            method,
            url,
            operation=operation,
            operation_id=operation_id,
            idempotency_key=idempotency_key,
            correlation_id=correlation_id,
            priority=priority,
            credential=credential,
            headers=headers,
            request={"params": params, "json": json, "data": data},
        )
        plan = self._core.plan(call, self._http.build_request)
        reply: Any = None
        try:
            while True:
                reply = self._answer(plan.send(reply))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            plan.close()

    def _answer(self, command: _Command) -> Any:
        core = self._core
        if isinstance(command, _Send):
            try:
                return self._http.send(command.request)
            except httpx.HTTPError as exc:
                return exc
        if isinstance(command, _Sleep):
            core.clock.sleep(command.seconds)
            return None
        if isinstance(command, _Admit):
            assert core.bulkhead is not None
            try:
                return core.bulkhead.acquire(priority=command.priority, timeout=command.timeout)
            except BulkheadFullError as exc:
                return exc
        assert core.auth is not None
        try:
            return core.auth.cache.get(command.credential)
        except Exception as exc:
            return exc

    def get(self, url: str, **kwargs: Any) -> CallResult:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> CallResult:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ResilientClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncResilientClient(_Face):
    """The asyncio face, over :class:`httpx.AsyncClient`; same arguments, same decisions."""

    def __init__(
        self,
        *,
        upstream: str,
        base_url: str = "",
        config: ClientConfig | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        events: EventSink | None = None,
        metrics: ClientMetrics | None = None,
        auth: TokenAuth | None = None,
        classify: Classifier = classify_response,
        breaker: CircuitBreaker | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        trust_env: bool = True,
    ) -> None:
        self._setup(
            upstream=upstream,
            config=config,
            clock=clock,
            rng=rng,
            events=events,
            metrics=metrics,
            auth=auth,
            classify=classify,
            breaker=breaker,
        )
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers or {}),
            transport=transport,
            timeout=self._core.config.timeouts.for_attempt(None),
            trust_env=trust_env,
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        operation: str | None = None,
        operation_id: str | None = None,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        priority: int = 0,
        credential: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Any = None,
        json: Any = None,
        data: Any = None,
    ) -> CallResult:
        call = self._call(
            method,
            url,
            operation=operation,
            operation_id=operation_id,
            idempotency_key=idempotency_key,
            correlation_id=correlation_id,
            priority=priority,
            credential=credential,
            headers=headers,
            request={"params": params, "json": json, "data": data},
        )
        plan = self._core.plan(call, self._http.build_request)
        reply: Any = None
        try:
            while True:
                reply = await self._answer(plan.send(reply))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            plan.close()

    async def _answer(self, command: _Command) -> Any:
        core = self._core
        if isinstance(command, _Send):
            try:
                return await self._http.send(command.request)
            except httpx.HTTPError as exc:
                return exc
        if isinstance(command, _Sleep):
            await core.clock.sleep_async(command.seconds)
            return None
        if isinstance(command, _Admit):
            assert core.bulkhead is not None
            try:
                return await core.bulkhead.acquire_async(priority=command.priority, timeout=command.timeout)
            except BulkheadFullError as exc:
                return exc
        assert core.auth is not None
        try:
            return await core.auth.cache.get_async(command.credential)
        except Exception as exc:
            return exc

    async def get(self, url: str, **kwargs: Any) -> CallResult:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> CallResult:
        return await self.request("POST", url, **kwargs)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncResilientClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
