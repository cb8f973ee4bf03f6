"""Token checks on synthetic Daraja request logs: each passes a sound client and fails a broken one."""

from __future__ import annotations

from typing import Any

import pytest

from harness.scenario import TOKEN_CHECKS, no_invalid_token_loop, token_refresh_single_flight
from tests.scenario.builders import build_history, fault, request

TOKEN = "/oauth/v1/generate"
PUSH = "/mpesa/stkpush/v1/processrequest"


def daraja(
    t: float, path: str = PUSH, *, status: int = 200, call: str | None = "a", fault: str | None = None
) -> dict[str, Any]:
    """One row of the fake Daraja's request log; ``call`` is the client's correlation id."""
    return {
        **request(None, t, status),
        "upstream": "mpesa",
        "method": "GET" if path == TOKEN else "POST",
        "path": path,
        "correlation_id": call,
        "fault": fault,
    }


def revoked(t: float, call: str | None) -> dict[str, Any]:
    """The request on which a token_revocation rule fired: refused, and every token revoked."""
    return daraja(t, status=404, call=call, fault="token_revocation")


SINGLE_FLIGHT = token_refresh_single_flight()
NO_LOOP = no_invalid_token_loop()


def test_one_token_for_a_whole_run_without_revocations_is_single_flight() -> None:
    history = build_history(
        requests=[daraja(0.0, TOKEN, call=None), daraja(0.1, call="a"), daraja(0.2, call="b")]
    )

    result = SINGLE_FLIGHT(history)

    assert result.passed
    assert result.applicable
    assert result.summary.startswith("1 token requests for 0 revocations")


def test_one_refresh_per_revocation_however_many_calls_held_the_token_passes() -> None:
    history = build_history(
        requests=[
            daraja(0.0, TOKEN, call=None),
            revoked(0.1, "a"),
            daraja(0.11, status=404, call="b"),  # b held the same revoked token
            daraja(0.12, TOKEN, call=None),
            daraja(0.13, call="a"),
            daraja(0.14, call="b"),
        ]
    )

    assert SINGLE_FLIGHT(history).passed
    assert NO_LOOP(history).passed


def test_a_refresh_per_caller_after_one_revocation_is_not_single_flight() -> None:
    history = build_history(
        requests=[
            daraja(0.0, TOKEN, call=None),
            revoked(0.1, "a"),
            daraja(0.11, status=404, call="b"),
            daraja(0.12, TOKEN, call=None),
            daraja(0.12, TOKEN, call=None),  # b refreshed too, revoking a's new token
            daraja(0.13, call="a"),
            daraja(0.14, call="b"),
        ]
    )

    result = SINGLE_FLIGHT(history)

    assert not result.passed
    assert len(result.evidence) == 3
    assert set(result.evidence["path"]) == {TOKEN}
    assert "at most 2" in result.summary


def test_a_token_request_for_every_call_is_not_single_flight() -> None:
    rows = []
    for i in range(5):
        rows += [daraja(i * 0.1, TOKEN, call=None), daraja(i * 0.1 + 0.01, call=f"c{i}")]

    assert not SINGLE_FLIGHT(build_history(requests=rows)).passed


def test_token_expiry_earns_one_refresh_per_lifetime_when_the_check_knows_the_lifetime() -> None:
    rows = [daraja(0.0, TOKEN, call=None), daraja(1.6, TOKEN, call=None), daraja(1.7, call="a")]
    history = build_history(requests=rows)  # meta duration: 3 s

    assert not SINGLE_FLIGHT(history).passed
    assert token_refresh_single_flight(token_lifetime=1.5)(history).passed


def test_the_single_flight_check_counts_only_its_upstream() -> None:
    rows = [daraja(0.0, TOKEN, call=None), {**daraja(0.1, TOKEN, call=None), "upstream": "cbs"}]

    assert SINGLE_FLIGHT(build_history(requests=rows)).passed


def test_a_refusal_then_a_refused_retry_is_the_most_one_call_may_meet() -> None:
    history = build_history(
        requests=[
            daraja(0.0, TOKEN, call=None),
            revoked(0.1, "a"),
            daraja(0.11, TOKEN, call=None),
            revoked(0.12, "a"),
        ]
    )

    result = NO_LOOP(history)

    assert result.passed
    assert "at most 2 in one call" in result.summary


def test_refreshing_and_retrying_until_accepted_is_a_loop() -> None:
    rows = [daraja(0.0, TOKEN, call=None)]
    for i in range(4):
        rows += [revoked(0.1 + i * 0.02, "a"), daraja(0.11 + i * 0.02, TOKEN, call=None)]
    rows += [daraja(0.2, call="a"), revoked(0.3, "b")]
    history = build_history(requests=rows)

    result = NO_LOOP(history)

    assert not result.passed
    assert set(result.evidence["correlation_id"]) == {"a"}
    assert len(result.evidence) == 4
    assert SINGLE_FLIGHT(history).passed, "every refresh answered a revocation: the loop is the only flaw"


def test_refusals_spread_over_many_calls_are_no_loop() -> None:
    rows = [revoked(0.1 * i, f"c{i}") for i in range(10)]

    assert NO_LOOP(build_history(requests=rows)).passed


def test_the_loop_check_without_correlation_ids_is_not_applicable_rather_than_passed_silently() -> None:
    history = build_history(requests=[daraja(0.0, TOKEN, call=None), revoked(0.1, None)])

    result = NO_LOOP(history)

    assert result.passed
    assert not result.applicable


def test_both_checks_without_any_request_are_not_applicable() -> None:
    for check in TOKEN_CHECKS:
        result = check(build_history())
        assert result.passed
        assert not result.applicable


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: token_refresh_single_flight(token_path="oauth"), "token_path"),
        (lambda: token_refresh_single_flight(token_lifetime=0.0), "token_lifetime"),
        (lambda: no_invalid_token_loop(per_call=0), "per_call"),
        (lambda: no_invalid_token_loop(refused_statuses=()), "refused_statuses"),
    ],
)
def test_bad_parameters_are_refused_naming_them(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_a_token_fetched_again_after_one_made_under_a_fault_is_excused() -> None:
    """The first answer may have been lost on the wire; the upstream's log cannot tell."""
    fetches = [daraja(0.10, TOKEN, call="x"), daraja(0.35, TOKEN, call="x")]
    loss = {**fault(0.0, 0.2), "target": "mpesa", "fault": "response_loss()", "kind": "response_loss"}
    under_fault = build_history(requests=fetches, faults=[loss])
    healthy = build_history(requests=fetches)

    assert SINGLE_FLIGHT(under_fault).passed
    assert "made under a fault" in SINGLE_FLIGHT(under_fault).summary
    assert not SINGLE_FLIGHT(healthy).passed
