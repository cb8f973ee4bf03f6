"""Token cache: single-flight refresh under threads and tasks, expiry with skew, one refresh per auth
failure and never a loop, separate maker/checker entries.

Tokens come from the scripted server over real HTTP; its ``/oauth/token`` revokes the previous token
on every call (as Daraja does), so a stampede of refreshes would show up as extra token requests.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable

import httpx
import pytest

from harness.resilience import (
    AsyncResilientClient,
    ClientConfig,
    ErrorClass,
    ResilientClient,
    StopReason,
    Token,
    TokenAuth,
    TokenCache,
    TokenFetchError,
    VirtualClock,
    parse_expires_in,
)
from tests.resilience.support import Reply, ScriptedServer, wait_for, wait_for_async


def _http_fetch(server: ScriptedServer, clock: VirtualClock, http: httpx.Client) -> Callable[[str], Token]:
    def fetch(credential: str) -> Token:
        body = http.get(f"{server.base_url}/oauth/token", params={"credential": credential}).json()
        return Token.expiring_in(body["access_token"], body["expires_in"], now=clock.now())

    return fetch


def test_many_threads_on_an_expired_token_make_exactly_one_token_request(
    server: ScriptedServer, clock: VirtualClock
) -> None:
    with httpx.Client() as http:
        cache = TokenCache(clock=clock, fetch=_http_fetch(server, clock, http), skew=30.0)
        assert cache.get("maker").value == "tok-1"
        clock.advance(3600.0)  # the 3599 s token is now expired
        gate = threading.Event()
        server.script(
            "/oauth/token", Reply(json={"access_token": "tok-fresh", "expires_in": "3599"}, gate=gate)
        )
        got: list[str] = []
        lock = threading.Lock()

        def caller() -> None:
            token = cache.get("maker")
            with lock:
                got.append(token.value)

        threads = [threading.Thread(target=caller) for _ in range(16)]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: cache.waiting("maker") == 15, "15 callers to wait for the one fetch")
            wait_for(lambda: len(server.seen("/oauth/token")) == 2, "the fetch to reach the server")
        finally:
            gate.set()
        for thread in threads:
            thread.join(10)

    assert got == ["tok-fresh"] * 16
    assert len(server.seen("/oauth/token")) == 2
    assert cache.fetches == 2


@pytest.mark.anyio
async def test_many_tasks_on_an_expired_token_make_exactly_one_token_request(
    server: ScriptedServer, clock: VirtualClock
) -> None:
    async with httpx.AsyncClient() as http:

        async def fetch(credential: str) -> Token:
            body = (await http.get(f"{server.base_url}/oauth/token")).json()
            return Token.expiring_in(body["access_token"], body["expires_in"], now=clock.now())

        cache = TokenCache(clock=clock, fetch_async=fetch, skew=30.0)
        assert (await cache.get_async("maker")).value == "tok-1"
        clock.advance(3600.0)
        gate = threading.Event()
        server.script(
            "/oauth/token", Reply(json={"access_token": "tok-fresh", "expires_in": 3599}, gate=gate)
        )

        tasks = [asyncio.create_task(cache.get_async("maker")) for _ in range(50)]
        try:
            await wait_for_async(lambda: cache.waiting("maker") == 49, "49 tasks to wait for the one fetch")
            await wait_for_async(
                lambda: len(server.seen("/oauth/token")) == 2, "the fetch to reach the server"
            )
        finally:
            gate.set()
        tokens = await asyncio.gather(*tasks)

    assert {t.value for t in tokens} == {"tok-fresh"}
    assert len(server.seen("/oauth/token")) == 2


def _counting_fetch(clock: VirtualClock, lifetime: float = 100.0) -> tuple[Callable[[str], Token], list[str]]:
    calls: list[str] = []

    def fetch(credential: str) -> Token:
        calls.append(credential)
        return Token(f"{credential}-{len(calls)}", clock.now() + lifetime)

    return fetch, calls


def test_a_token_is_refreshed_skew_seconds_before_it_expires() -> None:
    clock = VirtualClock()
    fetch, calls = _counting_fetch(clock, lifetime=100.0)
    cache = TokenCache(clock=clock, fetch=fetch, skew=30.0)
    first = cache.get()

    clock.advance(69.999)
    assert cache.get() is first
    clock.advance(0.001)
    assert cache.get().value == "default-2"
    assert len(calls) == 2


def test_maker_and_checker_are_separate_entries() -> None:
    clock = VirtualClock()
    fetch, calls = _counting_fetch(clock)
    cache = TokenCache(clock=clock, fetch=fetch)

    maker, checker = cache.get("maker"), cache.get("checker")
    assert cache.invalidate("maker", maker)

    assert cache.get("checker") is checker
    assert cache.get("maker").value == "maker-3"
    assert calls == ["maker", "checker", "maker"]


def test_invalidating_a_token_that_was_already_replaced_does_nothing() -> None:
    clock = VirtualClock()
    fetch, calls = _counting_fetch(clock)
    cache = TokenCache(clock=clock, fetch=fetch)
    stale = cache.get()
    cache.invalidate("default", stale)
    fresh = cache.get()

    assert cache.invalidate("default", stale) is False
    assert cache.get() is fresh
    assert len(calls) == 2


def test_a_failed_fetch_reaches_every_waiter_and_is_not_cached() -> None:
    clock = VirtualClock()
    gate = threading.Event()
    calls = 0

    def fetch(credential: str) -> Token:
        nonlocal calls
        calls += 1
        if calls == 1:
            gate.wait(10)
            raise ConnectionError("token endpoint down")
        return Token("ok")

    cache = TokenCache(clock=clock, fetch=fetch)
    errors: list[BaseException] = []

    def caller() -> None:
        try:
            cache.get()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(3)]
    for thread in threads:
        thread.start()
    wait_for(lambda: cache.waiting() == 2, "two callers to wait for the failing fetch")
    gate.set()
    for thread in threads:
        thread.join(10)

    assert sorted(type(e).__name__ for e in errors) == [
        "ConnectionError",
        "TokenFetchError",
        "TokenFetchError",
    ]
    assert all(isinstance(e.__cause__, ConnectionError) for e in errors if isinstance(e, TokenFetchError))
    assert cache.get().value == "ok"
    assert calls == 2


@pytest.mark.anyio
async def test_when_the_fetching_task_is_cancelled_a_waiting_task_takes_over() -> None:
    clock = VirtualClock()
    release = asyncio.Event()
    calls = 0

    async def fetch(credential: str) -> Token:
        nonlocal calls
        calls += 1
        if calls == 1:
            await release.wait()  # the first fetch never finishes
        return Token(f"tok-{calls}")

    cache = TokenCache(clock=clock, fetch_async=fetch)
    leader = asyncio.create_task(cache.get_async())
    await wait_for_async(lambda: calls == 1, "the first fetch to start")
    follower = asyncio.create_task(cache.get_async())
    await wait_for_async(lambda: cache.waiting() == 1, "the follower to wait")

    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader

    assert (await follower).value == "tok-2"


def test_expires_in_is_read_as_a_number_or_daraja_string() -> None:
    assert parse_expires_in("3599") == 3599.0
    assert parse_expires_in(3599) == 3599.0
    with pytest.raises(ValueError, match="number of seconds"):
        parse_expires_in("soon")
    with pytest.raises(TypeError):
        parse_expires_in(None)


def test_a_token_never_shows_its_value() -> None:
    token = Token("sk_live_secret", 10.0)

    assert "sk_live_secret" not in repr(token)
    assert "sk_live_secret" not in repr(
        TokenAuth(cache=TokenCache(clock=VirtualClock(), fetch=lambda c: token))
    )


# -- through the resilient client ------------------------------------------------------------------

NO_RETRIES = ClientConfig(budget=None, breaker=None)


def _client(server: ScriptedServer, clock: VirtualClock, cache: TokenCache) -> ResilientClient:
    return ResilientClient(
        upstream="mpesa",
        base_url=server.base_url,
        config=NO_RETRIES,
        clock=clock,
        rng=random.Random(0),
        auth=TokenAuth(cache=cache),
    )


def test_a_revoked_token_costs_one_refresh_and_the_call_succeeds(
    server: ScriptedServer, clock: VirtualClock
) -> None:
    with httpx.Client() as http:
        cache = TokenCache(clock=clock, fetch=_http_fetch(server, clock, http))
        with _client(server, clock, cache) as client:
            assert client.get("/oauth/protected").ok  # tok-1
            http.get(f"{server.base_url}/oauth/token")  # someone else's fetch revokes tok-1

            result = client.get("/oauth/protected")

    assert result.ok
    assert result.attempts == 2
    assert len(server.seen("/oauth/token")) == 3
    sent = [s.headers["authorization"] for s in server.seen("/oauth/protected")]
    assert sent == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-3"]


def test_a_credential_the_upstream_keeps_refusing_is_refreshed_once_not_in_a_loop(
    server: ScriptedServer, clock: VirtualClock
) -> None:
    server.script("/oauth/protected", *[Reply(status=401, json={"error": "no"})] * 10)
    with httpx.Client() as http:
        cache = TokenCache(clock=clock, fetch=_http_fetch(server, clock, http))
        with _client(server, clock, cache) as client:
            result = client.get("/oauth/protected")

    assert result.error is ErrorClass.AUTH
    assert result.stop_reason is StopReason.NOT_RETRYABLE
    assert result.attempts == 2
    assert len(server.seen("/oauth/protected")) == 2
    assert len(server.seen("/oauth/token")) == 2


def test_many_threads_failing_on_the_same_revoked_token_cause_one_refresh(
    server: ScriptedServer, clock: VirtualClock
) -> None:
    with httpx.Client() as http:
        cache = TokenCache(clock=clock, fetch=_http_fetch(server, clock, http))
        with _client(server, clock, cache) as client:
            assert client.get("/oauth/protected").ok
            http.get(f"{server.base_url}/oauth/token")  # revokes the cached tok-1
            results = []
            lock = threading.Lock()
            start = threading.Barrier(8)

            def call() -> None:
                start.wait()
                result = client.get("/oauth/protected")
                with lock:
                    results.append(result)

            threads = [threading.Thread(target=call) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)

    assert [r.ok for r in results] == [True] * 8
    assert len(server.seen("/oauth/token")) == 3  # the client's first, the revoking one, one refresh


@pytest.mark.anyio
async def test_the_async_client_also_refreshes_a_revoked_token_once(
    server: ScriptedServer, clock: VirtualClock
) -> None:
    async with httpx.AsyncClient() as http:

        async def fetch(credential: str) -> Token:
            body = (await http.get(f"{server.base_url}/oauth/token")).json()
            return Token.expiring_in(body["access_token"], body["expires_in"], now=clock.now())

        cache = TokenCache(clock=clock, fetch_async=fetch)
        async with AsyncResilientClient(
            upstream="mpesa",
            base_url=server.base_url,
            config=NO_RETRIES,
            clock=clock,
            rng=random.Random(0),
            auth=TokenAuth(cache=cache),
        ) as client:
            assert (await client.get("/oauth/protected")).ok
            await http.get(f"{server.base_url}/oauth/token")
            result = await client.get("/oauth/protected")

    assert result.ok
    assert result.attempts == 2
    assert len(server.seen("/oauth/token")) == 3
