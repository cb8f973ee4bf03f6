"""Token cache: one token request for many callers, refreshed before it expires, never in a loop.

What the seeds ask for (MIFOS, seed 000: "token caching: 12-hour expiry with automatic refresh",
"dual credentials: separate maker/checker authentication", "simultaneous request prevention") and
what goes wrong without it (Daraja: each new token request *revokes* the previous token,
upstreams.md §1.2, so a stampede of refreshes makes callers invalidate each other's tokens):

* a token is served until ``expires_at - skew``, then refreshed;
* refreshing is single-flight per credential: the first caller fetches, everyone else who arrives
  meanwhile waits for that fetch and gets its token (or its error), threads and asyncio tasks alike;
* :meth:`TokenCache.invalidate` drops a token only if it is still the cached one, so N callers that
  all got a 401 with the same stale token cause one refresh, not N; the client invalidates at most
  once per operation, so a credential the upstream keeps refusing costs one extra fetch, not a loop;
* each credential (``"maker"``, ``"checker"``) is its own entry with its own flight.

A token's value never appears in a repr, a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from harness.resilience._clock import Clock
from harness.resilience._errors import ConfigError

__all__ = ["Token", "TokenAuth", "TokenCache", "TokenFetchError", "parse_expires_in"]


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer credential and when it expires on the cache's clock (``None``: never)."""

    value: str = field(repr=False)
    expires_at: float | None = None

    @classmethod
    def expiring_in(cls, value: str, expires_in: object, *, now: float) -> Token:
        """A token from an OAuth answer's ``expires_in`` (a number, or Daraja's string ``"3599"``)."""
        return cls(value, now + parse_expires_in(expires_in))

    def __repr__(self) -> str:
        return f"Token(<hidden>, expires_at={self.expires_at!r})"


def parse_expires_in(value: object) -> float:
    """``expires_in`` as seconds; Daraja sends a string, the OAuth RFC and most others a number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"expires_in must be a number of seconds, got {type(value).__name__}")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"expires_in must be a number of seconds, got {value!r}") from None
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"expires_in must be a finite number of seconds >= 0, got {value!r}")
    return seconds


class TokenFetchError(Exception):
    """The fetch this caller waited for (started by another caller) failed; see ``__cause__``."""


TokenFetch = Callable[[str], Token]
AsyncTokenFetch = Callable[[str], Awaitable[Token]]


class _Flight:
    """One fetch in progress for one credential, and who waits for it."""

    __slots__ = ("abandoned", "async_waiters", "done", "error", "result", "waiters")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Token | None = None
        self.error: BaseException | None = None
        self.abandoned = False
        self.waiters = 0
        self.async_waiters: list[Callable[[], object]] = []


@dataclass(slots=True)
class _Entry:
    token: Token | None = None
    flight: _Flight | None = None


class TokenCache:
    """Tokens per credential on an injected clock; ``fetch`` and/or ``fetch_async`` get new ones.

    With only ``fetch``, :meth:`get_async` runs it in a worker thread; with only ``fetch_async``,
    :meth:`get` refuses (it cannot block on a coroutine safely).
    """

    def __init__(
        self,
        *,
        clock: Clock,
        fetch: TokenFetch | None = None,
        fetch_async: AsyncTokenFetch | None = None,
        skew: float = 30.0,
    ) -> None:
        if fetch is None and fetch_async is None:
            raise ConfigError("TokenCache needs fetch= (a function) or fetch_async= (a coroutine function)")
        if not (math.isfinite(skew) and skew >= 0):
            raise ConfigError(
                f"TokenCache.skew must be >= 0 seconds (refresh that long before expiry), got {skew!r}"
            )
        self._clock = clock
        self._fetch = fetch
        self._fetch_async = fetch_async
        self.skew = skew
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._fetches = 0

    @property
    def fetches(self) -> int:
        """How many fetches this cache has started (for tests and the MIFOS auth-status view)."""
        with self._lock:
            return self._fetches

    def waiting(self, credential: str = "default") -> int:
        """How many callers are waiting for the fetch in flight for ``credential``."""
        with self._lock:
            flight = self._entries.get(credential, _Entry()).flight
            return 0 if flight is None else flight.waiters

    def peek(self, credential: str = "default") -> Token | None:
        """The cached token if it is still fresh, without fetching."""
        with self._lock:
            token = self._entries.get(credential, _Entry()).token
            return token if token is not None and self._fresh(token) else None

    def invalidate(self, credential: str, token: Token) -> bool:
        """Drop ``token`` (the upstream refused it) if it is still the cached one."""
        with self._lock:
            entry = self._entries.get(credential)
            if entry is None or entry.token is None or entry.token.value != token.value:
                return False
            entry.token = None
            return True

    def clear(self) -> None:
        """Forget every token (MIFOS's "clear authentication tokens" admin operation)."""
        with self._lock:
            for entry in self._entries.values():
                entry.token = None

    def get(self, credential: str = "default") -> Token:
        """A fresh token for ``credential``, fetching it (once, for every caller) if needed."""
        if self._fetch is None:
            raise ConfigError("this TokenCache only has fetch_async=; call get_async(), or give it fetch=")
        while True:
            token, flight, leader = self._join(credential, None)
            if token is not None:
                return token
            assert flight is not None
            if leader:
                return self._lead_sync(credential, flight, self._fetch)
            flight.done.wait()
            result = self._follow(flight)
            if result is not None:
                return result

    async def get_async(self, credential: str = "default") -> Token:
        loop = asyncio.get_running_loop()
        while True:
            event = asyncio.Event()
            token, flight, leader = self._join(
                credential, functools.partial(loop.call_soon_threadsafe, event.set)
            )
            if token is not None:
                return token
            assert flight is not None
            if leader:
                return await self._lead_async(credential, flight)
            try:
                await event.wait()
            finally:
                with self._lock:
                    if not flight.done.is_set():
                        flight.waiters -= 1
            result = self._follow(flight)
            if result is not None:
                return result

    # -- internals -----------------------------------------------------------------------------

    def _fresh(self, token: Token) -> bool:
        return token.expires_at is None or self._clock.now() < token.expires_at - self.skew

    def _join(
        self, credential: str, wake: Callable[[], object] | None
    ) -> tuple[Token | None, _Flight | None, bool]:
        """Return a fresh token, or the flight to lead or wait for."""
        with self._lock:
            entry = self._entries.setdefault(credential, _Entry())
            if entry.token is not None and self._fresh(entry.token):
                return entry.token, None, False
            if entry.flight is None:
                entry.flight = _Flight()
                self._fetches += 1
                return None, entry.flight, True
            entry.flight.waiters += 1
            if wake is not None:
                entry.flight.async_waiters.append(wake)
            return None, entry.flight, False

    def _follow(self, flight: _Flight) -> Token | None:
        """A waiter's result once the flight landed; ``None``: its leader gave up, try again."""
        if flight.abandoned:
            return None
        if flight.error is not None:
            raise TokenFetchError("the token fetch this call waited for failed") from flight.error
        return flight.result

    def _land(
        self,
        credential: str,
        flight: _Flight,
        *,
        token: Token | None = None,
        error: BaseException | None = None,
    ) -> None:
        with self._lock:
            entry = self._entries[credential]
            entry.flight = None
            if token is not None:
                entry.token = token
            flight.result, flight.error = token, error
            flight.abandoned = token is None and error is None
            flight.waiters = 0
            wakes = list(flight.async_waiters)
            flight.done.set()
        for wake in wakes:
            wake()

    def _lead_sync(self, credential: str, flight: _Flight, fetch: TokenFetch) -> Token:
        try:
            token = fetch(credential)
        except BaseException as exc:
            self._land(credential, flight, error=exc)
            raise
        self._land(credential, flight, token=token)
        return token

    async def _lead_async(self, credential: str, flight: _Flight) -> Token:
        try:
            if self._fetch_async is not None:
                token = await self._fetch_async(credential)
            else:
                assert self._fetch is not None
                token = await asyncio.to_thread(self._fetch, credential)
        except asyncio.CancelledError:
            self._land(credential, flight)  # abandoned: a waiter takes over the fetch
            raise
        except BaseException as exc:
            self._land(credential, flight, error=exc)
            raise
        self._land(credential, flight, token=token)
        return token

    def __repr__(self) -> str:
        return f"TokenCache(credentials={sorted(self._entries)!r}, skew={self.skew!r})"


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenAuth:
    """How the resilient client authenticates: a cache, a credential, and the header to send.

    Fineract's "token" is ``base64(user:password)`` sent as ``Basic`` (upstreams.md §2.2); Daraja and
    Stripe use ``Bearer``.
    """

    cache: TokenCache
    credential: str = "default"
    scheme: str = "Bearer"
    header: str = "Authorization"

    def header_value(self, token: Token) -> str:
        return f"{self.scheme} {token.value}"
