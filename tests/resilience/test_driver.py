"""The reference driver on the resilient client: honest outcomes, keys per operation, profile options.

The driver talks real HTTP to the scripted server standing in for Stripe; the scenarios in
``scenarios/`` run it against the fake Stripe behind Toxiproxy.
"""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import parse_qs

import pytest

from harness._driver import DriverSetup, Endpoint, Operation, Outcome, OutcomeKind
from harness.drivers import (
    ReferenceConfig,
    ReferenceDriver,
    idempotency_key,
    reference,
    reference_without_idempotency,
)
from harness.resilience import (
    Backoff,
    BreakerConfig,
    BreakerState,
    ClientConfig,
    ConfigError,
    ErrorClass,
    Jitter,
    RetryPolicy,
    VirtualClock,
)
from tests.resilience.support import Reply, ScriptedServer

CHARGE = Operation(operation_id="op-7", upstream="stripe", action="charge", amount=500)
DECLINE = Reply(status=402, json={"error": {"type": "card_error", "code": "card_declined"}})


def _setup(server: ScriptedServer, **options: Any) -> DriverSetup:
    return DriverSetup(
        endpoints={
            "stripe": Endpoint(
                upstream="stripe", base_url=server.base_url, credentials={"secret_key": "sk_test_x"}
            )
        },
        clock=VirtualClock(),
        rng=random.Random(0),
        options=options,
    )


def test_a_charge_succeeds_with_its_payment_intent_and_one_derived_key_on_every_attempt(
    server: ScriptedServer,
) -> None:
    server.script("/v1/payment_intents", Reply(status=500), Reply(json={"id": "pi_1"}))
    driver = reference(_setup(server))
    try:
        outcome = driver.perform(CHARGE)
    finally:
        driver.close()

    assert (outcome.kind, outcome.reference) == (OutcomeKind.SUCCEEDED, "pi_1")
    seen = server.seen("/v1/payment_intents")
    assert [s.headers["idempotency-key"] for s in seen] == [idempotency_key(CHARGE)] * 2
    assert {s.headers["authorization"] for s in seen} == {"Bearer sk_test_x"}
    assert parse_qs(seen[0].body.decode())["metadata[operation_id]"] == ["op-7"]


def test_a_decline_after_an_ambiguous_5xx_settles_the_charge_as_failed(server: ScriptedServer) -> None:
    server.script("/v1/payment_intents", Reply(status=500), DECLINE)
    driver = reference(_setup(server))
    outcome = driver.perform(CHARGE)
    driver.close()

    assert (outcome.kind, outcome.error) == (OutcomeKind.FAILED, ErrorClass.DECLINE)


def test_without_keys_the_same_answers_leave_the_charge_unknown(server: ScriptedServer) -> None:
    server.script("/v1/payment_intents", Reply(status=500), DECLINE)
    driver = reference_without_idempotency(_setup(server))
    outcome = driver.perform(CHARGE)
    driver.close()

    assert (outcome.kind, outcome.error) == (OutcomeKind.UNKNOWN, ErrorClass.DECLINE)
    assert all("idempotency-key" not in s.headers for s in server.seen("/v1/payment_intents"))


def _driver(server: ScriptedServer, client: ClientConfig) -> ReferenceDriver:
    return ReferenceDriver(_setup(server), ReferenceConfig(client=client))


def _honest(driver: ReferenceDriver, operation: Operation) -> Outcome:
    """The integration's honest outcome, before the driver parks what it cannot know."""
    return driver.integration("stripe").perform(operation)[0]


FAST = RetryPolicy(max_attempts=3, backoff=Backoff(initial=0.01, max_delay=0.1, jitter=Jitter.NONE))


def test_a_breaker_refusal_after_an_ambiguous_attempt_is_unknown_and_without_one_failed(
    server: ScriptedServer,
) -> None:
    """The bug the scenario checks caught once: a local refusal reported as a definite failure."""
    server.script("/v1/payment_intents", Reply(status=500))
    config = ClientConfig(
        retry=FAST, breaker=BreakerConfig(failure_threshold=1, open_duration=60.0), budget=None
    )
    driver = _driver(server, config)

    after_ambiguous = _honest(driver, CHARGE)
    refused_outright = _honest(
        driver, Operation(operation_id="op-8", upstream="stripe", action="charge", amount=1)
    )
    driver.close()

    assert (after_ambiguous.kind, after_ambiguous.error) == (OutcomeKind.UNKNOWN, ErrorClass.REJECTED)
    assert (refused_outright.kind, refused_outright.error) == (OutcomeKind.FAILED, ErrorClass.REJECTED)
    assert len(server.seen("/v1/payment_intents")) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [(409, ErrorClass.CONFLICT), (429, ErrorClass.THROTTLED)],
)
def test_answers_from_in_front_of_the_idempotency_layer_do_not_settle_an_ambiguous_charge(
    server: ScriptedServer, status: int, error: ErrorClass
) -> None:
    """Stripe stores neither a 409 (key in use) nor a 429: they say nothing about the earlier attempt."""
    server.script("/v1/payment_intents", Reply(status=500), *[Reply(status=status, json={"error": {}})] * 2)
    driver = _driver(server, ClientConfig(retry=FAST, breaker=None, budget=None))
    outcome = _honest(driver, CHARGE)
    driver.close()

    assert (outcome.kind, outcome.error) == (OutcomeKind.UNKNOWN, error)


def test_throttling_alone_is_a_definite_failure(server: ScriptedServer) -> None:
    server.script("/v1/payment_intents", *[Reply(status=429, json={"error": {"type": "rate_limit"}})] * 3)
    driver = _driver(server, ClientConfig(retry=FAST, breaker=None, budget=None))
    outcome = driver.perform(CHARGE)
    driver.close()

    assert (outcome.kind, outcome.error) == (OutcomeKind.FAILED, ErrorClass.THROTTLED)


def test_a_400_without_stripes_error_body_is_not_taken_for_stripes_answer(server: ScriptedServer) -> None:
    server.script("/v1/payment_intents", Reply(status=500), Reply(status=400, json=["not", "stripe"]))
    driver = _driver(server, ClientConfig(retry=RetryPolicy(max_attempts=2), breaker=None, budget=None))
    outcome = _honest(driver, CHARGE)
    driver.close()

    assert (outcome.kind, outcome.error) == (OutcomeKind.UNKNOWN, ErrorClass.PROTOCOL)


def test_the_factory_takes_a_profile_a_time_scale_and_the_key_switch_from_options(
    server: ScriptedServer,
) -> None:
    driver = reference(_setup(server, profile="haven", time_scale="0.01", idempotency_keys="false"))
    try:
        config = driver.integration("stripe").client.config
        assert driver.profile.name == "haven@x0.01"
        assert config.timeouts.attempt == pytest.approx(0.3)
        assert config.timeouts.total == pytest.approx(0.3)
        assert not config.idempotency_keys
        assert driver.breaker("stripe").config.failure_threshold == 3
        driver.perform(CHARGE)
    finally:
        driver.close()

    assert "idempotency-key" not in server.seen("/v1/payment_intents")[0].headers


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"profile": "nope"}, "no client profile named 'nope'"),
        ({"profile": 3}, "must be a profile name"),
        ({"idempotency_keys": "perhaps"}, "must be true or false"),
        ({"time_scale": "fast"}, "must be a number"),
        ({"time_scale": 0}, "time_scale must be a finite number > 0"),
    ],
)
def test_bad_driver_options_are_refused_with_a_clear_message(
    server: ScriptedServer, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        reference(_setup(server, **options))


def test_an_unsupported_operation_is_refused(server: ScriptedServer) -> None:
    driver = reference(_setup(server))
    with pytest.raises(ValueError, match="cannot 'refund'"):
        driver.perform(Operation(operation_id="x", upstream="stripe", action="refund", amount=1))
    driver.close()


def test_an_unknown_charge_is_parked_and_settled_by_replaying_it_under_the_same_key(
    server: ScriptedServer,
) -> None:
    server.script(
        "/v1/payment_intents",
        *[Reply(status=500)] * 3,
        Reply(status=200, json={"id": "pi_replayed", "object": "payment_intent"}),
    )
    driver = _driver(server, ClientConfig(retry=FAST, breaker=None, budget=None))

    parked = driver.perform(CHARGE)
    settled = driver.settle()
    driver.close()

    assert parked.kind is OutcomeKind.PARKED
    assert parked.dead_letter_id
    assert settled == {CHARGE.operation_id: Outcome.succeeded("pi_replayed")}
    keys = {r.headers["idempotency-key"] for r in server.seen("/v1/payment_intents")}
    assert len(keys) == 1


def test_a_replay_that_still_cannot_learn_the_outcome_stays_parked(server: ScriptedServer) -> None:
    server.script("/v1/payment_intents", *[Reply(status=500)] * 6)
    driver = _driver(server, ClientConfig(retry=FAST, breaker=None, budget=None))

    driver.perform(CHARGE)
    settled = driver.settle()
    driver.close()

    outcome = settled[CHARGE.operation_id]
    assert outcome.kind is OutcomeKind.PARKED
    assert outcome.detail.startswith("replay failed")


def test_a_replay_refused_by_a_still_open_breaker_stays_parked_never_failed(server: ScriptedServer) -> None:
    """The settle phase once reported such charges as failed although they had been applied."""
    server.script("/v1/payment_intents", *[Reply(status=500)] * 3)
    client = ClientConfig(
        retry=FAST, breaker=BreakerConfig(failure_threshold=1, open_duration=60.0), budget=None
    )
    driver = ReferenceDriver(_setup(server), ReferenceConfig(client=client, settle_timeout=0.0))

    parked = driver.perform(CHARGE)
    settled = driver.settle()
    driver.close()

    assert parked.kind is OutcomeKind.PARKED
    assert settled[CHARGE.operation_id].kind is OutcomeKind.PARKED
    assert len(server.seen("/v1/payment_intents")) == 1


def test_a_stored_500_replayed_for_the_key_leaves_the_charge_parked_and_the_breaker_closed(
    server: ScriptedServer,
) -> None:
    """A replayed answer says nothing about the upstream's health now; an exploration found replays
    of stored 500s re-opening the breaker during the settle phase and starving every other replay."""
    replayed = Reply(
        status=500, json={"error": {"type": "api_error"}}, headers={"Idempotent-Replayed": "true"}
    )
    server.script("/v1/payment_intents", *[replayed] * 6)
    client = ClientConfig(
        retry=FAST, breaker=BreakerConfig(failure_threshold=1, open_duration=60.0), budget=None
    )
    driver = ReferenceDriver(_setup(server), ReferenceConfig(client=client, settle_timeout=0.0))

    parked = driver.perform(CHARGE)
    settled = driver.settle()
    state = driver.breaker("stripe").state
    driver.close()

    assert (parked.kind, parked.error) == (OutcomeKind.PARKED, ErrorClass.REPLAYED_ERROR)
    assert settled[CHARGE.operation_id].kind is OutcomeKind.PARKED
    assert state is BreakerState.CLOSED
    assert len(server.seen("/v1/payment_intents")) == 2
