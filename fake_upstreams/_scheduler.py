"""Work a fake does later, from its own event loop: resolving prompts and delivering callbacks.

Jobs live in the store (:meth:`UpstreamStore.add_job`), written in the same transaction as whatever
scheduled them, so a killed and restarted fake still resolves every accepted STK prompt and still
delivers every webhook it owes. Due times are on the fake's API clock, so an admin ``clock`` advance
brings them forward too.

Callbacks (Daraja's ``CallBackURL``/``ResultURL``, Stripe's webhook endpoints) are POSTed with
``httpx.AsyncClient`` to loopback addresses only; any other host is refused and logged, never
contacted. Every attempt is a row in the ``deliveries`` table, which is the ground truth for "was the
client told". Callback fault rules (drop, duplicate, delay) are consulted once per callback, before
its first attempt; a failed attempt is retried on the schedule the job carries (empty for Daraja,
whose retries are undocumented; a few, for Stripe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from fake_upstreams._store import Job

if TYPE_CHECKING:
    from fake_upstreams._base import FakeUpstream

__all__ = ["DELIVER", "LOOPBACK_HOSTS", "Scheduler", "is_loopback_url"]

DELIVER = "deliver"
LOOPBACK_HOSTS = frozenset({"127.0.0.1"})
_MAX_WAIT = 0.25
_logger = logging.getLogger("fake_upstreams")

JobHandler = Callable[[Job], Awaitable[None]]
Signer = Callable[[bytes, dict[str, Any]], dict[str, str]]


def is_loopback_url(url: str) -> bool:
    """True for an http(s) URL whose host is 127.0.0.1: the only place a fake sends callbacks."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.hostname in LOOPBACK_HOSTS and port != 0


class Scheduler:
    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self.handlers: dict[str, JobHandler] = {DELIVER: self._deliver}
        self.signers: dict[str, Signer] = {}
        self._running: set[int] = set()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._jobs: set[asyncio.Task[None]] = set()

    def register(self, kind: str, handler: JobHandler) -> None:
        self.handlers[kind] = handler

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def cancel_running(self) -> None:
        """Abandon the jobs being run now (on reset: their rows are gone, their results must not land)."""
        for task in self._jobs:
            task.cancel()
        self._running.clear()

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._http = httpx.AsyncClient(timeout=5.0, follow_redirects=False, trust_env=False)
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        for task in [self._task, *self._jobs]:
            if task is not None:
                task.cancel()
        for task in [self._task, *self._jobs]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            now = self.fake.clock.api_time()
            for job in self.fake.store.due_jobs(now):
                if job.id not in self._running:
                    self._running.add(job.id)
                    task = asyncio.get_running_loop().create_task(self._run(job))
                    self._jobs.add(task)
                    task.add_done_callback(self._jobs.discard)
            upcoming = self.fake.store.next_due(exclude=self._running)
            wait = _MAX_WAIT if upcoming is None else min(max(upcoming - now, 0.005), _MAX_WAIT)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def _run(self, job: Job) -> None:
        try:
            handler = self.handlers.get(job.kind)
            if handler is None:
                _logger.error("no handler for scheduled job kind %r", job.kind)
                with self.fake.store.transaction() as db:
                    self.fake.store.finish_job(db, job.id, "failed")
                return
            await handler(job)
        except Exception:
            _logger.exception("scheduled job %s (%s) failed", job.id, job.kind)
            with self.fake.store.transaction() as db:
                self.fake.store.finish_job(db, job.id, "failed")
        finally:
            self._running.discard(job.id)
            self.wake()

    # -- callbacks ------------------------------------------------------------------------------

    async def _deliver(self, job: Job) -> None:
        store, payload = self.fake.store, dict(job.payload)
        url = str(payload["url"])
        kind, ref = str(payload.get("kind", "callback")), payload.get("ref")
        if not payload.get("fault_checked"):
            payload["fault_checked"] = True
            rule = self.fake.faults.pick("POST", urlsplit(url).path, callback=True)
            if rule is not None and rule.kind == "callback_drop":
                store.log_delivery(
                    job_id=job.id,
                    kind=kind,
                    ref=ref,
                    url=url,
                    attempt=int(payload.get("attempt", 1)),
                    status=None,
                    error="dropped by fault rule",
                    fault=rule.kind,
                    body=str(payload["body"]),
                )
                with store.transaction() as db:
                    store.finish_job(db, job.id, "dropped")
                return
            if rule is not None and rule.kind == "callback_delay":
                payload["fault"] = rule.kind
                store.reschedule_job(job.id, self.fake.clock.api_time() + rule.params["ms"] / 1000, payload)
                return
            if rule is not None:
                payload["fault"] = rule.kind
                payload["copies"] = rule.params["copies"]
        copies = int(payload.pop("copies", 1))
        delivered = False
        for _ in range(copies):
            delivered = await self._post(job, payload) or delivered
        attempt = int(payload.get("attempt", 1))
        retry_delays = [float(d) for d in payload.get("retry_delays", [])]
        if delivered or attempt > len(retry_delays):
            with store.transaction() as db:
                store.finish_job(db, job.id, "delivered" if delivered else "failed")
            return
        payload["attempt"] = attempt + 1
        payload.pop("fault", None)
        store.reschedule_job(job.id, self.fake.clock.api_time() + retry_delays[attempt - 1], payload)

    async def _post(self, job: Job, payload: dict[str, Any]) -> bool:
        url, body = str(payload["url"]), str(payload["body"])
        status: int | None = None
        error: str | None = None
        if not is_loopback_url(url):
            error = "refused: callbacks go to 127.0.0.1 only"
        elif self._http is None:
            error = "scheduler not running"
        else:
            raw = body.encode()
            headers = {"Content-Type": "application/json", **dict(payload.get("headers", {}))}
            signer = self.signers.get(str(payload.get("kind")))
            if signer is not None:
                headers.update(signer(raw, payload))
            try:
                response = await self._http.post(url, content=raw, headers=headers)
                status = response.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
        self.fake.store.log_delivery(
            job_id=job.id,
            kind=str(payload.get("kind", "callback")),
            ref=payload.get("ref"),
            url=url,
            attempt=int(payload.get("attempt", 1)),
            status=status,
            error=error,
            fault=payload.get("fault"),
            body=body,
        )
        return status is not None and 200 <= status < 300
