"""The circuit breaker over the shared Redis store, against the real ``redis-server``.

* The breaker keeps its behaviour: the rules one by one under a virtual clock, and a breaker over
  Redis run side by side with one over the in-process store through random action sequences.
* Sharing: failures reported through one store open the breaker for another; threads and forked
  processes race for half-open permits (lined up with barriers) and never get more than there are,
  with exactly one OPEN -> HALF_OPEN transition per round; a process killed holding a probe permit
  does not wedge the breaker.
* Contention: 16 threads over 4 connections lose no update; an operation that always loses the race
  gives up after ``max_attempts``; a write sent again after its reply was lost lands once; healthy
  calls confirm the record instead of writing it.
* Refusals: another config, another time base, a clock far off the Redis server's.
* Redis down, hung or restarted: a call is refused before it is made (fails closed), an outcome that
  cannot be recorded after the call never hides the call's result or exception, lost state starts
  again from CLOSED, and state kept in an append-only file survives the restart.

Processes share virtual time through :class:`SharedClock`, a page of shared memory the parent moves
(named with ``time_base=``, as the store requires of a clock it does not know).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import mmap
import multiprocessing
import os
import select
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.resilience import (
    BreakerConfig,
    BreakerRecord,
    BreakerState,
    BreakerStore,
    BreakerTransition,
    CircuitBreaker,
    CircuitOpenError,
    ConfigError,
    CountWindow,
    ErrorClass,
    LocalBreakerStore,
    Permit,
    SystemClock,
    TimeWindow,
    VirtualClock,
)
from harness.stores import (
    BreakerConfigMismatchError,
    BreakerStoreContentionError,
    BreakerStoreUnavailableError,
    BreakerTimeBaseError,
    InvalidKeyError,
    RedisBreakerStore,
    RedisServer,
    UnixClock,
)
from harness.stores import _redis_server as redis_server_module
from tests.resilience.breakers import UpstreamError, assert_breakers_agree, failing
from tests.stores.conftest import Child

S = BreakerState
SHARED_TIME = "test-shared-page"


def config(**overrides: Any) -> BreakerConfig:
    settings_: dict[str, Any] = {
        "failure_threshold": 3,
        "open_duration": 10.0,
        "half_open_permits": 2,
        "success_threshold": 2,
        "max_half_open_duration": 60.0,
    }
    return BreakerConfig(**(settings_ | overrides))


class Stores:
    """Opens stores on the session's Redis under this test's namespace, as separate processes would."""

    def __init__(self, url: str, namespace: str) -> None:
        self.url = url
        self.namespace = namespace
        self.opened: list[RedisBreakerStore] = []

    def __call__(self, name: str, cfg: BreakerConfig, clock: Any, **options: Any) -> RedisBreakerStore:
        store = RedisBreakerStore.from_url(
            self.url, name, cfg, clock=clock, namespace=self.namespace, **options
        )
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            store.close()


@pytest.fixture
def stores(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[Stores]:
    opened = Stores(redis_server.url, "rb-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16])
    yield opened
    opened.close()


# -- the breaker's behaviour, kept ---------------------------------------------------------------------


def test_failures_through_two_stores_add_up_and_open_the_breaker_for_both(stores: Stores) -> None:
    clock = VirtualClock()
    cfg = config()
    first, second = stores("pay", cfg, clock).breaker(), stores("pay", cfg, clock).breaker()

    for subject in (first, second):
        with pytest.raises(UpstreamError):
            subject.call(failing)
    assert (first.state, second.state) == (S.CLOSED, S.CLOSED)
    with pytest.raises(UpstreamError):
        first.call(failing)

    assert (first.state, second.state) == (S.OPEN, S.OPEN)
    with pytest.raises(CircuitOpenError) as refused:
        second.call(lambda: "never sent")
    assert not isinstance(refused.value, BreakerStoreUnavailableError)
    assert refused.value.retry_after == pytest.approx(10.0)


def test_an_open_breaker_refuses_until_the_open_duration_has_passed_then_admits_only_its_permits(
    stores: Stores,
) -> None:
    clock = VirtualClock()
    cfg = config()
    log: list[BreakerTransition] = []
    first = stores("pay", cfg, clock).breaker(listeners=[log.append])
    second = stores("pay", cfg, clock).breaker(listeners=[log.append])
    for _ in range(3):
        with pytest.raises(UpstreamError):
            first.call(failing)

    clock.advance(9.999)
    with pytest.raises(CircuitOpenError):
        second.acquire()
    clock.advance(0.001)
    probes = [second.acquire(), first.acquire()]
    with pytest.raises(CircuitOpenError) as refused:
        second.acquire()
    assert refused.value.state is S.HALF_OPEN
    probes[0].success()
    assert first.state is S.HALF_OPEN
    probes[1].success()

    assert (first.state, second.state) == (S.CLOSED, S.CLOSED)
    assert [(t.from_state, t.to_state) for t in log] == [
        (S.CLOSED, S.OPEN),
        (S.OPEN, S.HALF_OPEN),
        (S.HALF_OPEN, S.CLOSED),
    ]
    snapshot = second.snapshot()
    assert (snapshot.generation, snapshot.not_permitted, snapshot.trips) == (3, 2, 0)


def test_a_failed_probe_reopens_the_breaker_and_a_permit_from_before_counts_for_nothing(
    stores: Stores,
) -> None:
    clock = VirtualClock()
    cfg = config(failure_threshold=1)
    first, second = stores("pay", cfg, clock).breaker(), stores("pay", cfg, clock).breaker()
    stale = first.acquire()  # taken while closed, in generation 0
    with pytest.raises(UpstreamError):
        second.call(failing)
    clock.advance(10.0)
    probe = second.acquire()

    stale.failure()  # from an older generation: not a failed probe
    assert first.state is S.HALF_OPEN
    probe.failure()

    assert (first.state, second.state) == (S.OPEN, S.OPEN)
    assert first.snapshot().trips == 2


ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("call"), st.sampled_from([None, ErrorClass.SERVER_ERROR, ErrorClass.DECLINE])),
        st.tuples(st.just("advance"), st.sampled_from([0.25, 0.5, 1.0, 3.0])),
        st.tuples(st.just("move"), st.sampled_from(BreakerState)),
        st.tuples(st.just("reset"), st.none()),
    ),
    max_size=40,
)
"""What the differential test does: the same actions as the in-process JSON-store test."""


_example = itertools.count()


@pytest.mark.parametrize("window", [CountWindow(size=4), TimeWindow(duration=2.0, bucket=0.5)])
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=ACTIONS)
def test_a_breaker_over_redis_behaves_exactly_like_one_over_the_in_process_store(
    window: CountWindow | TimeWindow, actions: list[tuple[str, Any]], stores: Stores
) -> None:
    cfg = BreakerConfig(
        failure_threshold=3,
        failure_rate_threshold=50,
        window=window,
        minimum_calls=2,
        open_duration=1.0,
        open_duration_multiplier=2.0,
        max_open_duration=4.0,
        half_open_permits=2,
        success_threshold=2,
        max_half_open_duration=2.0,
    )
    clock = VirtualClock()
    redis_store = stores(f"differential-{next(_example)}", cfg, clock)
    try:
        run_side_by_side(redis_store, cfg, clock, actions)
    finally:
        redis_store.close()


def run_side_by_side(
    redis_store: RedisBreakerStore, cfg: BreakerConfig, clock: VirtualClock, actions: list[tuple[str, Any]]
) -> None:
    assert isinstance(redis_store, BreakerStore)
    local = CircuitBreaker(
        redis_store.name,
        cfg,
        clock=clock,
        store=LocalBreakerStore(BreakerRecord.initial(cfg, clock.now())),
    )
    assert_breakers_agree([local, redis_store.breaker()], clock, actions)


# -- contention -----------------------------------------------------------------------------------------


def test_healthy_calls_confirm_the_shared_record_instead_of_writing_it(stores: Stores) -> None:
    clock = VirtualClock()
    cfg = config(window=CountWindow(size=4), minimum_calls=4)
    store = stores("pay", cfg, clock)
    breakers = [store.breaker(), stores("pay", cfg, clock).breaker()]
    for _ in range(4):  # fills the window with successes: each of these changes it
        breakers[0].call(lambda: None)
    version = store.client.hget(store.key, "ver")

    for index in range(20):
        breakers[index % 2].call(lambda: None)
    assert store.client.hget(store.key, "ver") == version  # no write, so nothing to conflict with
    with pytest.raises(UpstreamError):
        breakers[1].call(failing)

    assert store.client.hget(store.key, "ver") != version
    snapshot = breakers[0].snapshot()
    assert (snapshot.calls, snapshot.failures, snapshot.consecutive_failures) == (4, 1, 1)


def test_failures_from_16_threads_over_4_connections_are_all_counted(stores: Stores) -> None:
    clock = VirtualClock()
    cfg = config(failure_threshold=1000, window=CountWindow(size=1000))
    # Enough attempts that no writer gives up: this pins that every update lands exactly once (giving
    # up after max_attempts is pinned by the next test).
    opened = [stores("pay", cfg, clock, max_attempts=10_000) for _ in range(4)]
    breakers = [store.breaker() for store in opened]
    threads, each = 16, 25
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def report_failures(subject: CircuitBreaker) -> None:
        try:
            barrier.wait(timeout=30)
            for _ in range(each):
                with contextlib.suppress(UpstreamError):
                    subject.call(failing)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=report_failures, args=(breakers[i % 4],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert errors == []
    snapshot = breakers[0].snapshot()
    assert (snapshot.consecutive_failures, snapshot.failures, snapshot.calls) == (400, 400, 400)
    assert [store.lost_outcomes for store in opened] == [0, 0, 0, 0]


def test_an_operation_that_always_loses_the_race_is_refused_after_max_attempts(stores: Stores) -> None:
    clock = VirtualClock()
    cfg = config()
    store = stores("pay", cfg, clock, max_attempts=3)
    rival = stores("pay", cfg, clock)
    runs: list[int] = []

    def bump(record: BreakerRecord) -> None:
        record.trips += 1

    def lose_the_race(record: BreakerRecord) -> None:
        runs.append(record.trips)
        rival.run(bump)  # another writer gets in between this read and this write, every time
        record.trips += 1

    with pytest.raises(
        BreakerStoreContentionError, match="3 attempts to update it all conflicted"
    ) as refused:
        store.run(lose_the_race)

    assert isinstance(refused.value, CircuitOpenError)
    assert runs == [0, 1, 2]
    assert rival.breaker().snapshot().trips == 3


class ReplyLosingRedis(redis.Redis):
    """A client that, once, sends a write to the real server twice and keeps only the second reply.

    That is what redis-py's own retry does when a reply is lost after the server ran the command. A
    wrapper, because no proxy can lose exactly one reply on demand (Toxiproxy's toxics hit every
    connection, redis-py's re-sent command included).
    """

    lose_reply_of: str | None = None

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        if sha == self.lose_reply_of:
            self.lose_reply_of = None
            super().evalsha(sha, numkeys, *keys_and_args)  # ran on the server; its reply is lost
        return super().evalsha(sha, numkeys, *keys_and_args)


def test_a_write_sent_again_after_its_reply_was_lost_is_applied_once(stores: Stores) -> None:
    clock = VirtualClock()
    client = ReplyLosingRedis.from_url(stores.url, decode_responses=True)
    store = RedisBreakerStore(client, "pay", config(), clock=clock, namespace=stores.namespace)
    breaker = store.breaker()
    breaker.call(lambda: None)  # attached, and the write script loaded

    client.lose_reply_of = store._write_script.sha
    with pytest.raises(UpstreamError):
        breaker.call(failing)

    assert client.lose_reply_of is None
    assert breaker.snapshot().consecutive_failures == 1
    client.close()


# -- refusing a process that cannot share ---------------------------------------------------------------


def test_a_process_with_another_config_is_refused_with_the_differing_fields_named(stores: Stores) -> None:
    clock = VirtualClock()
    stores("pay", config(), clock).attach()
    other = stores("pay", config(failure_threshold=5, window=CountWindow(size=50)), clock).breaker()
    called: list[str] = []

    with pytest.raises(BreakerConfigMismatchError) as refused:
        other.call(lambda: called.append("sent"))

    assert called == []
    message = str(refused.value)
    assert "failure_threshold: 3 in Redis, 5 here" in message
    assert "'size': 100} in Redis" in message
    assert "'size': 50} here" in message
    assert "new breaker name or namespace" in message


def test_a_process_on_another_time_base_is_refused(stores: Stores) -> None:
    stores("pay", config(), VirtualClock()).attach()

    with pytest.raises(BreakerTimeBaseError, match=r"time base 'virtual@.*'.*'monotonic@"):
        stores("pay", config(), SystemClock()).attach()
    with pytest.raises(BreakerTimeBaseError, match="UnixClock"):
        stores("pay", config(), UnixClock()).attach()


def test_a_unix_time_base_refuses_a_clock_far_from_the_redis_servers(stores: Stores) -> None:
    stores("pay", config(), UnixClock()).attach()  # the real clock: within the limit

    with pytest.raises(BreakerTimeBaseError, match="off the Redis server's"):
        stores("pay", config(), VirtualClock(start=0.0), time_base="unix").attach()


def test_a_clock_of_unknown_time_base_must_be_named(stores: Stores) -> None:
    class Sundial:
        def now(self) -> float:
            return 12.0

        def sleep(self, seconds: float) -> None:
            raise AssertionError("not used")

        async def sleep_async(self, seconds: float) -> None:
            raise AssertionError("not used")

    with pytest.raises(ConfigError, match="time_base="):
        stores("pay", config(), Sundial())
    assert stores("pay", config(), Sundial(), time_base="sundial").breaker().state is S.CLOSED


def test_bad_settings_are_refused_naming_the_setting(stores: Stores) -> None:
    clock = VirtualClock()
    with pytest.raises(ConfigError, match="max_half_open_duration must be set"):
        stores("pay", BreakerConfig(), clock)
    with pytest.raises(InvalidKeyError, match="breaker name"):
        stores("pay\n", config(), clock)
    with pytest.raises(ValueError, match="namespace"):
        RedisBreakerStore.from_url(stores.url, "pay", config(), clock=clock, namespace="a b")
    with pytest.raises(ValueError, match="max_attempts"):
        stores("pay", config(), clock, max_attempts=0)
    with pytest.raises(ValueError, match="timeout"):
        stores("pay", config(), clock, timeout=0)


# -- across processes -----------------------------------------------------------------------------------


class SharedClock:
    """Virtual time on a page of shared memory: the parent moves it, forked children read it."""

    def __init__(self, start: float) -> None:
        self._page = mmap.mmap(-1, 8)
        self.set(start)

    def set(self, when: float) -> None:
        struct.pack_into("d", self._page, 0, when)

    def now(self) -> float:
        return float(struct.unpack_from("d", self._page, 0)[0])

    def advance(self, seconds: float) -> None:
        self.set(self.now() + seconds)

    def sleep(self, seconds: float) -> None:
        self.advance(max(seconds, 0.0))

    async def sleep_async(self, seconds: float) -> None:
        self.sleep(seconds)

    def close(self) -> None:
        self._page.close()


def _commands(fd: int) -> Iterator[str]:
    buffer = b""
    while True:
        while b"\n" not in buffer:
            ready, _, _ = select.select([fd], [], [], 60)
            if not ready:
                raise TimeoutError("no command from the parent within 60s")
            chunk = os.read(fd, 4096)
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        yield line.decode()


def take_permits(breaker: CircuitBreaker, threads: int, line_up: Any) -> tuple[list[Permit], list[str]]:
    """``threads`` threads wait at ``line_up``, then each tries to take a permit; (taken, refused in)."""
    admitted: list[Permit] = []
    refused: list[str] = []
    errors: list[BaseException] = []

    def take() -> None:
        try:
            line_up.wait(timeout=30)
            admitted.append(breaker.acquire())
        except CircuitOpenError as exc:
            refused.append(str(exc.state))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=take) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return admitted, refused


@dataclass(frozen=True, kw_only=True)
class ChildSetup:
    url: str
    namespace: str
    cfg: BreakerConfig
    clock: SharedClock
    threads: int
    herd: Any
    """A barrier shared by every thread of every process (multiprocessing's, made before the fork)."""


def breaker_child(report: Callable[[str], None], setup: ChildSetup, command_fd: int) -> None:
    """One process sharing the breaker: obeys the parent's commands, reports what happened.

    ``try all`` lines up ``threads`` threads of every process on the shared barrier and has each take
    a permit; ``try solo`` lines up this process's threads only. Permits taken are held until
    ``settle success|failure``. Every transition this process makes is reported.
    """
    threads = setup.threads
    store = RedisBreakerStore.from_url(
        setup.url, "shared", setup.cfg, clock=setup.clock, namespace=setup.namespace, time_base=SHARED_TIME
    )
    breaker = store.breaker(listeners=[lambda t: report(f"T {t.from_state}>{t.to_state}")])
    held: list[Permit] = []
    report("READY")
    for command in _commands(command_fd):
        verb, _, argument = command.partition(" ")
        if verb == "fail":
            for _ in range(int(argument)):
                with contextlib.suppress(UpstreamError):
                    breaker.call(failing)
            report("DONE")
        elif verb == "try":
            admitted, refused = take_permits(
                breaker, threads, setup.herd if argument == "all" else threading.Barrier(threads)
            )
            held.extend(admitted)
            report(f"TRIED {len(admitted)} {len(refused)} {','.join(sorted(set(refused)))}")
        elif verb == "settle":
            for permit in held:
                if argument == "success":
                    permit.success()
                else:
                    permit.failure()
            held.clear()
            report("DONE")
        elif verb == "state":
            report(f"STATE {breaker.state}")
        elif verb == "exit":
            store.close()
            return


class Herd:
    """Forked processes sharing one breaker, driven by commands; their reports read back in order."""

    def __init__(
        self, fork: Callable[..., Child], stores: Stores, cfg: BreakerConfig, *, processes: int, threads: int
    ) -> None:
        self.clock = SharedClock(1000.0)
        self.barrier = multiprocessing.get_context("fork").Barrier(processes * threads)
        self.pipes = [os.pipe() for _ in range(processes)]
        setup = ChildSetup(
            url=stores.url,
            namespace=stores.namespace,
            cfg=cfg,
            clock=self.clock,
            threads=threads,
            herd=self.barrier,
        )
        self.children = [fork(breaker_child, setup, read) for read, _ in self.pipes]
        self._read = [0] * processes
        self._transitions_seen = [0] * processes

    def send(self, command: str, *, to: list[int] | None = None) -> None:
        for index in range(len(self.children)) if to is None else to:
            os.write(self.pipes[index][1], (command + "\n").encode())

    def replies(self, prefix: str, *, to: list[int] | None = None) -> list[str]:
        """The next reply starting with ``prefix`` from each process in ``to`` (all by default)."""
        answers = []
        for index in range(len(self.children)) if to is None else to:
            child = self.children[index]
            deadline = time.monotonic() + 30
            while True:
                fresh = [(n, line) for n, line in enumerate(child.lines) if n >= self._read[index]]
                found = next(((n, line) for n, line in fresh if line.startswith(prefix)), None)
                if found is not None:
                    self._read[index] = found[0] + 1
                    answers.append(found[1])
                    break
                assert time.monotonic() < deadline, (
                    f"process {index} did not answer {prefix!r}: {child.lines[-3:]}"
                )
                child.poll(0.02)
        return answers

    def command(self, command: str, reply: str, *, to: list[int] | None = None) -> list[str]:
        self.send(command, to=to)
        return self.replies(reply, to=to)

    def tried(self, scope: str = "all", *, to: list[int] | None = None) -> tuple[int, int, set[str]]:
        """(permits admitted, calls refused, states refused in) over the processes that tried."""
        admitted = refused = 0
        states: set[str] = set()
        for line in self.command(f"try {scope}", "TRIED", to=to):
            _, taken, turned_away, refused_in = [*line.split(" "), ""][:4]
            admitted += int(taken)
            refused += int(turned_away)
            states |= {s for s in refused_in.split(",") if s}
        return admitted, refused, states

    def new_transitions(self) -> list[str]:
        """Transitions every process reported since the last look (all reports are in by now)."""
        fresh = []
        for index, child in enumerate(self.children):
            child.poll()
            reported = [line[2:] for line in child.lines if line.startswith("T ")]
            fresh += reported[self._transitions_seen[index] :]
            self._transitions_seen[index] = len(reported)
        return fresh

    def close(self) -> None:
        running = [index for index, child in enumerate(self.children) if child.alive()]
        self.send("exit", to=running)
        for index in running:
            assert self.children[index].join() == 0
        for read, write in self.pipes:
            os.close(read)
            os.close(write)
        self.clock.close()


@pytest.fixture
def herd(fork: Callable[..., Child], stores: Stores) -> Iterator[Callable[..., Herd]]:
    started: list[Herd] = []

    def start(cfg: BreakerConfig, *, processes: int, threads: int) -> Herd:
        group = Herd(fork, stores, cfg, processes=processes, threads=threads)
        started.append(group)
        group.replies("READY")
        return group

    yield start
    for group in started:
        group.close()


def test_failures_reported_in_three_processes_open_the_breaker_for_all_four(
    herd: Callable[..., Herd],
) -> None:
    group = herd(config(), processes=4, threads=4)

    for index in range(3):
        group.command("fail 1", "DONE", to=[index])
    assert group.new_transitions() == ["closed>open"]

    assert group.tried("all") == (0, 16, {"open"})
    assert group.command("state", "STATE") == ["STATE open"] * 4


def test_half_open_admits_exactly_its_permits_across_processes_with_one_transition_per_round(
    herd: Callable[..., Herd],
) -> None:
    group = herd(config(), processes=4, threads=4)
    group.command("fail 3", "DONE", to=[0])
    assert group.new_transitions() == ["closed>open"]

    for verdict in ("failure", "failure", "success"):
        group.clock.advance(10.0)  # the open duration has passed: 16 callers in 4 processes rush in
        assert group.tried("all") == (2, 14, {"half_open"})
        assert group.new_transitions() == ["open>half_open"]
        group.command(f"settle {verdict}", "DONE")
        assert group.new_transitions() == (
            ["half_open>open"] if verdict == "failure" else ["half_open>closed"]
        )

    assert group.command("state", "STATE") == ["STATE closed"] * 4


def test_a_process_killed_holding_the_probe_permit_does_not_wedge_the_breaker(
    herd: Callable[..., Herd],
) -> None:
    group = herd(
        config(half_open_permits=1, success_threshold=1, max_half_open_duration=30.0), processes=2, threads=2
    )
    group.command("fail 3", "DONE", to=[0])
    group.clock.advance(10.0)
    assert group.tried("solo", to=[0])[0] == 1
    group.children[0].kill()  # dies holding the only probe permit

    assert group.tried("solo", to=[1]) == (0, 2, {"half_open"})
    group.clock.advance(30.0)  # the half-open state times out, back to open for the open duration
    assert group.tried("solo", to=[1]) == (0, 2, {"open"})
    group.clock.advance(10.0)
    assert group.tried("solo", to=[1])[:2] == (1, 1)
    group.command("settle success", "DONE", to=[1])

    assert group.new_transitions() == [
        "closed>open",
        "open>half_open",
        "half_open>open",
        "open>half_open",
        "half_open>closed",
    ]


# -- Redis down, hung, restarted ------------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server of this test's own, free to be killed and restarted."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def durable_own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", durable=True).start()
    yield server
    server.stop()


def restart_on_the_same_port(server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kill the server and start it again where the clients expect it, as behind a fixed address."""
    port = server.port
    server.kill()
    with monkeypatch.context() as patch:
        patch.setattr(redis_server_module, "_free_port", lambda: port)
        server.start()


def trip(breaker: CircuitBreaker, failures: int = 3) -> None:
    for _ in range(failures):
        with pytest.raises(UpstreamError):
            breaker.call(failing)
    assert breaker.state is S.OPEN


def test_a_call_is_refused_without_being_sent_while_redis_is_down(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisBreakerStore.from_url(own_redis.url, "pay", config(), clock=VirtualClock(), timeout=2.0)
    breaker = store.breaker()
    assert breaker.call(lambda: "charged") == "charged"
    port = own_redis.port
    own_redis.kill()
    sent: list[str] = []

    with caplog.at_level(logging.WARNING), pytest.raises(BreakerStoreUnavailableError) as refused:
        breaker.call(lambda: sent.append("charge"))
    with pytest.raises(CircuitOpenError):
        breaker.acquire()

    assert sent == []
    assert refused.value.error_class is ErrorClass.REJECTED
    assert "nothing was sent" in str(refused.value)
    assert "Redis is unavailable" in caplog.text
    with monkeypatch.context() as patch:
        patch.setattr(redis_server_module, "_free_port", lambda: port)
        own_redis.start()
    assert breaker.call(lambda: "charged") == "charged"
    assert "can be read and written again" in caplog.text
    store.close()


def test_a_call_is_refused_while_redis_hangs(own_redis: RedisServer) -> None:
    store = RedisBreakerStore.from_url(own_redis.url, "pay", config(), clock=VirtualClock(), timeout=0.3)
    breaker = store.breaker()
    breaker.call(lambda: None)
    process = own_redis.process
    assert process is not None
    process.signal(signal.SIGSTOP)
    try:
        with pytest.raises(BreakerStoreUnavailableError, match="Timeout"):
            breaker.call(lambda: pytest.fail("sent while the breaker's state was unknown"))
    finally:
        process.signal(signal.SIGCONT)
    assert breaker.call(lambda: "charged") == "charged"
    store.close()


def test_redis_lost_during_a_call_never_hides_the_calls_result_or_its_exception(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisBreakerStore.from_url(own_redis.url, "pay", config(), clock=VirtualClock(), timeout=2.0)
    breaker = store.breaker()
    port = own_redis.port

    def charge_then_lose_redis() -> str:
        own_redis.kill()
        return "charged"

    def fail_then_lose_redis() -> None:
        own_redis.kill()
        raise UpstreamError

    with caplog.at_level(logging.WARNING):
        in_flight = [breaker.acquire(), breaker.acquire()]
        assert breaker.call(charge_then_lose_redis) == "charged"  # a success is recorded after the call
        in_flight[0].success()
        in_flight[1].failure()  # a failure is recorded through the breaker's settle operation
        assert store.lost_outcomes == 3
        assert caplog.text.count("could not be recorded") == 1  # logged once per outage

        with monkeypatch.context() as patch:
            patch.setattr(redis_server_module, "_free_port", lambda: port)
            own_redis.start()
        with pytest.raises(UpstreamError):
            breaker.call(fail_then_lose_redis)

    assert store.lost_outcomes == 4
    assert "can be read and written again; 3 outcomes lost so far" in caplog.text
    assert caplog.text.count("could not be recorded") == 2
    store.close()


def test_a_redis_restart_without_persistence_starts_the_breaker_again_from_closed(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = VirtualClock()
    store = RedisBreakerStore.from_url(own_redis.url, "pay", config(), clock=clock, timeout=2.0)
    breaker = store.breaker()
    trip(breaker)

    restart_on_the_same_port(own_redis, monkeypatch)

    with caplog.at_level(logging.WARNING):
        assert breaker.call(lambda: "charged") == "charged"
    assert "gone from Redis" in caplog.text
    assert breaker.state is S.CLOSED
    trip(breaker)  # and it works on as before
    store.close()


def test_an_open_breaker_stays_open_across_a_restart_from_the_append_only_file(
    durable_own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock()
    store = RedisBreakerStore.from_url(durable_own_redis.url, "pay", config(), clock=clock, timeout=2.0)
    breaker = store.breaker()
    trip(breaker)

    restart_on_the_same_port(durable_own_redis, monkeypatch)

    with pytest.raises(CircuitOpenError) as refused:
        breaker.call(lambda: pytest.fail("sent through an open breaker"))
    assert not isinstance(refused.value, BreakerStoreUnavailableError)
    clock.advance(10.0)
    assert breaker.acquire().state is S.HALF_OPEN
    store.close()


def test_the_record_in_redis_is_json_a_process_in_any_language_can_read(stores: Stores) -> None:
    store = stores("pay", config(), VirtualClock())
    trip(store.breaker())

    fields = store.client.hgetall(store.key)

    record = BreakerRecord.from_dict(json.loads(fields["record"]))
    assert (record.state, record.generation, record.trips) == (S.OPEN, 1, 1)
    assert fields["gate"] == "open 1"
    assert json.loads(fields["config"])["failure_threshold"] == 3
