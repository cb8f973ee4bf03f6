"""The resilient client end to end, against a real uvicorn server, through both faces.

Time is a VirtualClock (sleeps are recorded, not waited) and randomness a seeded ``random.Random``, so
every delay, correlation id and idempotency key below is exact; the HTTP is real.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import socket
import threading
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from harness._driver import AttemptEvent
from harness.resilience import (
    AsyncResilientClient,
    Backoff,
    BreakerConfig,
    BreakerTransition,
    BudgetConfig,
    BulkheadConfig,
    CallResult,
    ClientConfig,
    ClientMetrics,
    ErrorClass,
    Jitter,
    RateLimitConfig,
    ResilientClient,
    RetryPolicy,
    StopReason,
    TimeoutConfig,
    VirtualClock,
    new_correlation_id,
)
from tests.resilience.support import Reply, ScriptedServer, wait_for, wait_for_async

CONFIG = ClientConfig(
    timeouts=TimeoutConfig(attempt=2.0, total=30.0),
    retry=RetryPolicy(
        max_attempts=4, backoff=Backoff(initial=0.05, multiplier=2.0, max_delay=1.0, jitter=Jitter.FULL)
    ),
    breaker=BreakerConfig(failure_threshold=5, open_duration=1.0),
    budget=None,
)


class Events:
    """An EventSink that keeps everything."""

    def __init__(self) -> None:
        self.attempts: list[AttemptEvent] = []
        self.transitions: list[BreakerTransition] = []
        self._lock = threading.Lock()

    def attempt(self, event: AttemptEvent) -> None:
        with self._lock:
            self.attempts.append(event)

    def breaker_transition(self, event: BreakerTransition) -> None:
        with self._lock:
            self.transitions.append(event)


def _sync(server: ScriptedServer, clock: VirtualClock, seed: int = 5, **kwargs: Any) -> ResilientClient:
    options: dict[str, Any] = {"config": CONFIG, "events": Events()} | kwargs
    return ResilientClient(
        upstream="stripe", base_url=server.base_url, clock=clock, rng=random.Random(seed), **options
    )


def test_a_server_error_is_retried_with_one_idempotency_key_and_one_correlation_id(
    server: ScriptedServer, clock: VirtualClock
) -> None:
    server.script("/v1/charges", Reply(status=500), Reply(status=503), Reply(json={"id": "ch_1"}))
    events = Events()

    with _sync(server, clock, seed=5, events=events) as client:
        result = client.post("/v1/charges", data={"amount": "100"}, operation="charge", operation_id="op-1")

    reference = random.Random(5)
    correlation, key = new_correlation_id(reference), new_correlation_id(reference)
    assert result.ok
    assert result.response is not None
    assert result.response.json() == {"id": "ch_1"}
    assert (result.attempts, result.correlation_id, result.idempotency_key) == (3, correlation, key)
    assert result.ambiguous  # the 5xx answers may have come after a commit
    assert clock.sleeps == [reference.uniform(0, 0.05), reference.uniform(0, 0.1)]
    seen = server.seen("/v1/charges")
    assert [(s.headers["idempotency-key"], s.headers["x-correlation-id"]) for s in seen] == [
        (key, correlation)
    ] * 3
    assert [(e.attempt, e.outcome, e.status_code, e.breaker_state) for e in events.attempts] == [
        (1, "error", 500, "closed"),
        (2, "error", 503, "closed"),
        (3, "ok", 200, "closed"),
    ]
    assert {(e.operation_id, e.action, e.upstream) for e in events.attempts} == {("op-1", "charge", "stripe")}


# -- one scenario through both faces ---------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    method: str
    path: str
    replies: tuple[Reply, ...] = ()
    advance: float = 0.0
    """Virtual seconds to let pass before the call."""


RETRY_AT = email.utils.formatdate(1_700_000_000 + 3, usegmt=True)
ANSWERED_AT = email.utils.formatdate(1_700_000_000, usegmt=True)

SCENARIO = (
    Step("POST", "/pay", (Reply(json={"id": "a"}),)),
    Step("POST", "/pay", (Reply(status=500), Reply(json={"id": "b"}))),
    Step("POST", "/pay", (Reply(status=429, headers={"Retry-After": "2"}), Reply(json={"id": "c"}))),
    Step(
        "POST", "/pay", (Reply(status=503, headers={"Retry-After": RETRY_AT, "Date": ANSWERED_AT}), Reply())
    ),
    Step("POST", "/pay", (Reply(status=500, headers={"Stripe-Should-Retry": "false"}),)),
    Step("POST", "/pay", (Reply(status=402, json={"error": {"type": "card_error"}}),)),
    Step("GET", "/lookup", tuple(Reply(status=503) for _ in range(4))),
    Step("POST", "/pay"),  # the breaker is open now: refused, nothing sent
    Step("POST", "/pay", (Reply(json={"id": "probe"}),), advance=1.0),  # half-open probe closes it
)


def _transcript(
    results: list[CallResult], clock: VirtualClock, events: Events, server: ScriptedServer
) -> dict[str, Any]:
    return {
        "results": [
            (
                r.error,
                r.attempts,
                r.stop_reason,
                r.answered,
                r.ambiguous,
                None if r.response is None else r.response.status_code,
                r.correlation_id,
                r.idempotency_key,
            )
            for r in results
        ],
        "sleeps": list(clock.sleeps),
        "attempts": [
            (
                e.attempt,
                e.outcome,
                e.error,
                e.status_code,
                e.breaker_state,
                e.correlation_id,
                e.idempotency_key,
            )
            for e in events.attempts
        ],
        "transitions": [(t.from_state, t.to_state) for t in events.transitions],
        "seen": [(s.method, s.path, s.headers.get("idempotency-key")) for s in server.seen()],
    }


def _run_sync(server: ScriptedServer) -> dict[str, Any]:
    server.reset()
    clock, events, results = VirtualClock(start=1000.0), Events(), []
    with _sync(server, clock, seed=11, events=events) as client:
        for step in SCENARIO:
            server.script(step.path, *step.replies)
            clock.advance(step.advance)
            results.append(client.request(step.method, step.path))
    return _transcript(results, clock, events, server)


async def _run_async(server: ScriptedServer) -> dict[str, Any]:
    server.reset()
    clock, events, results = VirtualClock(start=1000.0), Events(), []
    async with AsyncResilientClient(
        upstream="stripe",
        base_url=server.base_url,
        config=CONFIG,
        clock=clock,
        rng=random.Random(11),
        events=events,
    ) as client:
        for step in SCENARIO:
            server.script(step.path, *step.replies)
            clock.advance(step.advance)
            results.append(await client.request(step.method, step.path))
    return _transcript(results, clock, events, server)


@pytest.mark.anyio
async def test_sync_and_async_faces_give_the_same_results_for_the_same_scenario(
    server: ScriptedServer,
) -> None:
    sync = await asyncio.to_thread(_run_sync, server)
    async_ = await _run_async(server)

    assert async_ == sync
    # And the scenario did what it says, so that the comparison is not between two empty runs.
    errors = [(error, attempts, stop) for error, attempts, stop, *_ in sync["results"]]
    assert errors == [
        (None, 1, None),
        (None, 2, None),
        (None, 2, None),
        (None, 2, None),
        (ErrorClass.SERVER_ERROR, 1, StopReason.SERVER_SAID_NO),
        (ErrorClass.DECLINE, 1, StopReason.NOT_RETRYABLE),
        (ErrorClass.SERVER_ERROR, 4, StopReason.MAX_ATTEMPTS),
        (ErrorClass.REJECTED, 1, StopReason.REJECTED),
        (None, 1, None),
    ]
    assert 2.0 in sync["sleeps"]  # Retry-After in seconds
    assert 3.0 in sync["sleeps"]  # Retry-After as a date, 3 s after the response's Date
    assert sync["transitions"] == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert len(sync["seen"]) == 14  # the refused call never reached the server
    assert all(key is None for method, _, key in sync["seen"] if method == "GET")


# -- deadlines and timeouts ------------------------------------------------------------------------


class RecordingTransport(httpx.BaseTransport):
    """The real HTTP transport, noting the timeout each request was sent with."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.timeouts: list[dict[str, float]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.timeouts.append(dict(request.extensions["timeout"]))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_the_overall_deadline_cuts_down_the_next_attempts_timeout(
    server: ScriptedServer, clock: VirtualClock
) -> None:
    server.script("/pay", Reply(status=429, headers={"Retry-After": "7"}), Reply())
    transport = RecordingTransport()
    config = ClientConfig(timeouts=TimeoutConfig(attempt=5.0, total=10.0), budget=None, breaker=None)

    with _sync(server, clock, config=config, transport=transport) as client:
        result = client.post("/pay")

    assert result.ok
    assert clock.sleeps == [7.0]
    assert transport.timeouts == [
        {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0},
        {"connect": 3.0, "read": 3.0, "write": 3.0, "pool": 3.0},
    ]


def test_a_retry_after_beyond_the_deadline_ends_the_operation_without_sleeping(
    server: ScriptedServer, clock: VirtualClock
) -> None:
    server.script("/pay", Reply(status=503, headers={"Retry-After": "20"}), Reply())
    config = ClientConfig(timeouts=TimeoutConfig(attempt=5.0, total=10.0), budget=None, breaker=None)

    with _sync(server, clock, config=config) as client:
        result = client.post("/pay")

    assert (result.error, result.stop_reason, result.attempts) == (
        ErrorClass.SERVER_ERROR,
        StopReason.DEADLINE,
        1,
    )
    assert clock.sleeps == []


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_is_retried_and_is_not_ambiguous(clock: VirtualClock) -> None:
    with ResilientClient(
        upstream="stripe", base_url=f"http://127.0.0.1:{_closed_port()}", config=CONFIG, clock=clock
    ) as client:
        result = client.post("/pay")

    assert (result.error, result.attempts, result.stop_reason) == (
        ErrorClass.CONNECT,
        4,
        StopReason.MAX_ATTEMPTS,
    )
    assert not result.ambiguous
    assert not result.answered


# -- local refusals: bulkhead, rate limit, budget ----------------------------------------------------


def test_a_full_bulkhead_refuses_a_call_while_another_is_in_flight(
    server: ScriptedServer, clock: VirtualClock
) -> None:
    gate = threading.Event()
    server.script("/slow", Reply(gate=gate))
    config = ClientConfig(bulkhead=BulkheadConfig(max_concurrent=1), budget=None)
    results: list[CallResult] = []
    with _sync(server, clock, config=config) as client:
        first = threading.Thread(target=lambda: results.append(client.get("/slow")))
        first.start()
        try:
            wait_for(lambda: len(server.seen("/slow")) == 1, "the first call to reach the server")
            refused = client.get("/slow")
        finally:
            gate.set()
        first.join(10)

    assert (refused.error, refused.stop_reason, refused.answered) == (
        ErrorClass.REJECTED,
        StopReason.REJECTED,
        False,
    )
    assert "bulkhead 'stripe' is full" in refused.rejection
    assert results[0].ok
    assert len(server.seen("/slow")) == 1


def test_the_rate_limit_makes_the_third_call_wait_in_virtual_time(
    server: ScriptedServer, clock: VirtualClock
) -> None:
    config = ClientConfig(rate_limit=RateLimitConfig(limit=2, period=10.0), budget=None)

    with _sync(server, clock, config=config) as client:
        results = [client.get("/ping") for _ in range(3)]

    assert [r.ok for r in results] == [True] * 3
    assert clock.sleeps == [5.0]


def test_a_rate_limit_wait_longer_than_the_deadline_is_refused(
    server: ScriptedServer, clock: VirtualClock
) -> None:
    config = ClientConfig(
        timeouts=TimeoutConfig(attempt=1.0, total=2.0),
        retry=RetryPolicy(max_attempts=1),
        rate_limit=RateLimitConfig(limit=1, period=10.0),
        budget=None,
    )

    with _sync(server, clock, config=config) as client:
        client.get("/ping")
        refused = client.get("/ping")

    assert refused.error is ErrorClass.REJECTED
    assert "rate limiter 'stripe'" in refused.rejection
    assert len(server.seen("/ping")) == 1


def test_a_spent_retry_budget_stops_a_retry_storm(server: ScriptedServer, clock: VirtualClock) -> None:
    server.script("/pay", *[Reply(status=503)] * 20)
    config = ClientConfig(
        budget=BudgetConfig(ttl=10.0, min_retries_per_second=0.0, retry_ratio=0.5), breaker=None
    )

    with _sync(server, clock, config=config) as client:
        results = [client.post("/pay") for _ in range(4)]

    assert [(r.attempts, r.stop_reason) for r in results] == [
        (1, StopReason.BUDGET),
        (2, StopReason.BUDGET),
        (1, StopReason.BUDGET),
        (2, StopReason.BUDGET),
    ]
    assert len(server.seen("/pay")) == 6  # without the budget: 4 calls x 3 attempts = 12


def test_idempotency_keys_go_on_posts_only_and_can_be_switched_off(
    server: ScriptedServer, clock: VirtualClock
) -> None:
    with _sync(server, clock) as client:
        client.post("/pay")
        client.get("/pay")
        client.post("/pay", idempotency_key="caller-chosen")
    off = ClientConfig(idempotency_keys=False, budget=None)
    with _sync(server, clock, config=off) as client:
        client.post("/pay")

    keys = [s.headers.get("idempotency-key") for s in server.seen("/pay")]
    assert keys[0] is not None
    assert keys[1:] == [None, "caller-chosen", None]


def test_attempts_are_counted_in_the_registry_passed_in(server: ScriptedServer, clock: VirtualClock) -> None:
    server.script("/pay", Reply(status=500), Reply())
    registry = CollectorRegistry()
    metrics = ClientMetrics(clock=clock, registry=registry)

    with _sync(server, clock, metrics=metrics) as client:
        client.post("/pay", operation="charge")

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"upstream": "stripe", "operation": "charge", **labels})

    assert sample("resilience_client_attempts_total", outcome="ok") == 1.0
    assert sample("resilience_client_attempts_total", outcome="server_error") == 1.0
    assert sample("resilience_client_error_ratio") == 0.5
    assert metrics.stats("stripe", "charge").count == 2


@pytest.mark.anyio
async def test_the_async_face_also_refuses_on_a_full_bulkhead(
    server: ScriptedServer, clock: VirtualClock
) -> None:
    gate = threading.Event()
    server.script("/slow", Reply(gate=gate))
    config = ClientConfig(bulkhead=BulkheadConfig(max_concurrent=1), budget=None)
    async with AsyncResilientClient(
        upstream="stripe", base_url=server.base_url, config=config, clock=clock, rng=random.Random(0)
    ) as client:
        first = asyncio.create_task(client.get("/slow"))
        try:
            await wait_for_async(lambda: len(server.seen("/slow")) == 1, "the first call to reach the server")
            refused = await client.get("/slow")
        finally:
            gate.set()
        assert (await first).ok

    assert refused.error is ErrorClass.REJECTED
    assert len(server.seen("/slow")) == 1


def test_a_result_can_be_retried_by_classifying_it(server: ScriptedServer, clock: VirtualClock) -> None:
    """Retry on result: a 200 that says "not done yet" is classified as CONFLICT and asked again."""
    server.script(
        "/status",
        Reply(json={"state": "pending"}),
        Reply(json={"state": "pending"}),
        Reply(json={"state": "done"}),
    )

    def pending_is_not_an_answer(response: httpx.Response) -> ErrorClass | None:
        if response.status_code == 200 and response.json().get("state") == "pending":
            return ErrorClass.CONFLICT
        return None

    with _sync(server, clock, classify=pending_is_not_an_answer) as client:
        result = client.get("/status")

    assert result.ok
    assert result.attempts == 3
    assert result.response is not None
    assert result.response.json() == {"state": "done"}
