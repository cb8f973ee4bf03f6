"""Graceful shutdown that hands unfinished work to the dead-letter queue instead of dropping it.

:class:`ParkingExecutor` is a thread pool that knows what it holds. On :meth:`~ParkingExecutor.shutdown`
it stops taking work, parks everything that has not started (error class ``shutdown``, no attempt
made), gives running work ``grace`` seconds (on the injected clock), then parks what is still running
(one attempt, outcome unknown). The caller's future of parked work raises :class:`ParkedError` with
the entry, so a driver can report ``PARKED`` with its id.

Python cannot stop a running thread, so work parked while running may still finish. If it succeeds,
its entry is resolved at once (unless a replay already took it); if it fails, the entry stays as
parked. Either way nothing is dropped, and a replay under the operation's idempotency key cannot
apply it twice.

Why not ``concurrent.futures.ThreadPoolExecutor.shutdown(cancel_futures=True)`` alone: it drops the
queued work on the floor and says nothing about what was still running, which is the part that can
lose money.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import math
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from harness.resilience import Clock
from harness.stores._checks import is_int_at_least
from harness.stores._dead_letters import DeadLetterQueue
from harness.stores._errors import DeadLetterTransitionError, ExecutorClosedError, StoreError
from harness.stores._model import DeadLetter, ErrorInfo, WorkItem

__all__ = ["LateCompletion", "ParkedError", "ParkingExecutor", "ShutdownReport"]

T = TypeVar("T")

SHUTDOWN_ERROR_CLASS = "shutdown"


class ParkedError(StoreError):
    """The work was parked in the dead-letter queue at shutdown; ``entry`` says where."""

    def __init__(self, entry: DeadLetter) -> None:
        super().__init__(
            f"operation {entry.operation_id!r} was parked at shutdown as dead letter {entry.id!r}"
            f" ({entry.error.message})"
        )
        self.entry = entry


@dataclass(frozen=True, kw_only=True, slots=True)
class ShutdownReport:
    parked: tuple[DeadLetter, ...] = ()
    not_started: int = 0
    """How many of the parked items never started."""
    unfinished: int = 0
    """How many of the parked items were still running at the deadline."""
    park_failures: tuple[tuple[WorkItem, str], ...] = ()
    """Items that could not be parked (the queue failed): their futures carry the error."""


@dataclass(frozen=True, kw_only=True, slots=True)
class LateCompletion:
    entry_id: str
    succeeded: bool
    resolved: bool
    """Whether the entry was resolved (False if a replay or an operator had already moved it)."""


class _State(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    PARKED = "parked"


@dataclass(eq=False)
class _Job:
    item: WorkItem
    fn: Callable[[], Any]
    future: Future[Any]
    state: _State = _State.QUEUED
    started_at: float | None = None
    finished: bool = False
    error: BaseException | None = None
    entry_id: str | None = None
    late_handled: bool = False


class ParkingExecutor:
    def __init__(
        self,
        dlq: DeadLetterQueue,
        *,
        clock: Clock,
        workers: int = 4,
        poll_interval: float = 0.01,
        name: str = "parking-executor",
    ) -> None:
        if not is_int_at_least(workers, 1):
            raise ValueError(f"ParkingExecutor.workers must be an int >= 1, got {workers!r}")
        if not math.isfinite(poll_interval) or poll_interval <= 0:
            raise ValueError(f"ParkingExecutor.poll_interval must be > 0 seconds, got {poll_interval!r}")
        self._dlq = dlq
        self._clock = clock
        self._poll = poll_interval
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._jobs: dict[int, _Job] = {}
        self._ids = itertools.count()
        self.closing = threading.Event()
        """Set as soon as shutdown begins; work may watch it to finish early."""
        self._late: list[LateCompletion] = []

    @property
    def late_completions(self) -> list[LateCompletion]:
        """Work that finished after being parked, and what became of its entry."""
        with self._lock:
            return list(self._late)

    def in_flight(self) -> int:
        with self._lock:
            return sum(job.state in (_State.QUEUED, _State.RUNNING) for job in self._jobs.values())

    def submit(self, item: WorkItem, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        job = _Job(item=item, fn=fn, future=future)
        with self._lock:
            if self.closing.is_set():
                raise ExecutorClosedError(
                    f"the executor is shutting down; park {item.operation_id!r} in the dead-letter queue"
                    " instead"
                )
            job_id = next(self._ids)
            self._jobs[job_id] = job
        self._pool.submit(self._run, job_id, job)
        return future

    def _run(self, job_id: int, job: _Job) -> None:
        with self._lock:
            if job.state is not _State.QUEUED:
                return  # parked before it could start
            if not job.future.set_running_or_notify_cancel():
                job.state = _State.DONE  # the caller cancelled it
                del self._jobs[job_id]
                return
            job.state = _State.RUNNING
            job.started_at = self._clock.now()
        value: Any = None
        error: BaseException | None = None
        try:
            value = job.fn()
        except BaseException as exc:
            error = exc
        with self._lock:
            job.finished, job.error = True, error
            parked = job.state is _State.PARKED
            if not parked:
                job.state = _State.DONE
                del self._jobs[job_id]
            late_ready = parked and job.entry_id is not None and not job.late_handled
            if late_ready:
                job.late_handled = True
        if late_ready:
            self._late_finish(job)
        elif not parked:
            if error is None:
                job.future.set_result(value)
            else:
                job.future.set_exception(error)

    def _late_finish(self, job: _Job) -> None:
        assert job.entry_id is not None
        resolved = False
        if job.error is None:
            try:
                self._dlq.resolve(job.entry_id)
                resolved = True
            except DeadLetterTransitionError:
                resolved = False  # a replay or an operator got there first; the entry says what happened
        with self._lock:
            self._late.append(
                LateCompletion(entry_id=job.entry_id, succeeded=job.error is None, resolved=resolved)
            )

    def _park(
        self, jobs: list[_Job], *, error: ErrorInfo, attempts: int
    ) -> tuple[list[DeadLetter], list[tuple[WorkItem, str]]]:
        parked: list[DeadLetter] = []
        failures: list[tuple[WorkItem, str]] = []
        for job in jobs:
            try:
                entry = self._dlq.park(
                    job.item,
                    error=error,
                    attempts=attempts,
                    first_attempt_at=job.started_at,
                    last_attempt_at=job.started_at,
                )
            except Exception as exc:
                failures.append((job.item, repr(exc)))
                exc.add_note(f"harness.stores: {job.item.operation_id!r} could not be parked at shutdown")
                self._settle_future(job, exc)
                continue
            parked.append(entry)
            with self._lock:
                job.entry_id = entry.id
                late_ready = job.finished and not job.late_handled
                if late_ready:
                    job.late_handled = True
            self._settle_future(job, ParkedError(entry))
            if late_ready:
                self._late_finish(job)
        return parked, failures

    @staticmethod
    def _settle_future(job: _Job, exc: BaseException) -> None:
        with contextlib.suppress(InvalidStateError):  # the caller cancelled it meanwhile
            job.future.set_exception(exc)

    def shutdown(self, *, grace: float) -> ShutdownReport:
        """Stop, wait up to ``grace`` seconds for running work, park everything unfinished."""
        if not math.isfinite(grace) or grace < 0:
            raise ValueError(f"shutdown grace must be a finite number of seconds >= 0, got {grace!r}")
        with self._lock:
            self.closing.set()
            queued = [j for j in self._jobs.values() if j.state is _State.QUEUED and not j.future.cancelled()]
            for job in queued:
                job.state = _State.PARKED
        parked_queued, failures_queued = self._park(
            queued,
            error=ErrorInfo(error_class=SHUTDOWN_ERROR_CLASS, message="not started before shutdown"),
            attempts=0,
        )
        deadline = self._clock.now() + grace
        while True:
            with self._lock:
                running = any(j.state is _State.RUNNING for j in self._jobs.values())
            if not running or self._clock.now() >= deadline:
                break
            self._clock.sleep(self._poll)
        with self._lock:
            unfinished = [j for j in self._jobs.values() if j.state is _State.RUNNING]
            for job in unfinished:
                job.state = _State.PARKED
        parked_running, failures_running = self._park(
            unfinished,
            error=ErrorInfo(
                error_class=SHUTDOWN_ERROR_CLASS,
                message=f"still running when the shutdown grace of {grace:g}s ran out; it may complete late",
            ),
            attempts=1,
        )
        self._pool.shutdown(wait=False, cancel_futures=True)
        return ShutdownReport(
            parked=(*parked_queued, *parked_running),
            not_started=len(parked_queued),
            unfinished=len(parked_running),
            park_failures=(*failures_queued, *failures_running),
        )
