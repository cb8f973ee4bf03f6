"""The retry budget: a share of requests plus a floor, over a window that rolls on the injected clock."""

from __future__ import annotations

import threading

import pytest

from harness.resilience import BudgetConfig, ConfigError, RetryBudget, VirtualClock


def test_the_floor_alone_allows_min_retries_per_second_times_ttl() -> None:
    budget = RetryBudget(
        BudgetConfig(ttl=10.0, min_retries_per_second=0.5, retry_ratio=0.0), clock=VirtualClock()
    )

    granted = sum(budget.try_withdraw() for _ in range(20))

    assert granted == 5


def test_requests_buy_retries_at_the_configured_ratio() -> None:
    budget = RetryBudget(
        BudgetConfig(ttl=10.0, min_retries_per_second=0.0, retry_ratio=0.2), clock=VirtualClock()
    )
    for _ in range(25):
        budget.deposit()

    granted = sum(budget.try_withdraw() for _ in range(20))

    assert granted == 5
    assert budget.window() == (25, 5)


def test_an_exhausted_budget_recovers_as_the_window_rolls() -> None:
    clock = VirtualClock()
    budget = RetryBudget(
        BudgetConfig(ttl=10.0, min_retries_per_second=0.0, retry_ratio=0.5, buckets=10), clock=clock
    )
    for _ in range(4):
        budget.deposit()
    assert [budget.try_withdraw() for _ in range(3)] == [True, True, False]

    clock.advance(5.0)  # half the window later: the spend is still remembered
    budget.deposit()
    budget.deposit()
    assert [budget.try_withdraw() for _ in range(2)] == [True, False]

    clock.advance(5.0)  # the first deposits and withdrawals expire; the later ones remain
    assert budget.window() == (2, 1)
    assert budget.try_withdraw() is False
    budget.deposit()
    budget.deposit()
    assert budget.try_withdraw() is True

    clock.advance(10.0)  # everything expired: a fresh window with nothing in it
    assert budget.window() == (0, 0)
    assert budget.balance == 0.0


def test_many_threads_cannot_overdraw_the_budget() -> None:
    budget = RetryBudget(
        BudgetConfig(ttl=10.0, min_retries_per_second=10.0, retry_ratio=0.0), clock=VirtualClock()
    )
    granted: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def spend() -> None:
        start.wait()
        mine = [budget.try_withdraw() for _ in range(50)]
        with lock:
            granted.extend(mine)

    threads = [threading.Thread(target=spend) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(granted) == 100


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ttl": 0.0}, "ttl must be"),
        ({"retry_ratio": -0.1}, "retry_ratio must be >= 0"),
        ({"min_retries_per_second": -1.0}, "min_retries_per_second must be >= 0"),
        ({"retry_ratio": 0.0, "min_retries_per_second": 0.0}, "set max_attempts=1"),
        ({"buckets": 0}, "buckets must be >= 1"),
    ],
)
def test_budget_config_refuses_bad_values(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BudgetConfig(**kwargs)  # type: ignore[arg-type]
