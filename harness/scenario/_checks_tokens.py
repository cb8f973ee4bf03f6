"""Token checks: refreshing a token is single-flight, and a refused token costs one refresh, not a loop.

Judged on the upstream's request log, never on the client's word. On Daraja the stakes are higher
than elsewhere: every new token request revokes the previous token (upstreams.md §1.2, FAQ 3), so a
client whose callers each refresh on their own invalidates its own tokens in flight, and a client
that answers every refusal with a refresh can chase its own tail.

What the log shows and these checks count:

* token requests: requests to the token endpoint (Daraja's ``GET /oauth/v1/generate``);
* revocations: requests on which the fake fired a ``token_revocation`` fault rule (column ``fault``);
  each firing revokes every token the upstream had issued;
* refused answers: answers with a status that means "this credential is not accepted" (Daraja's
  ``404.001.03`` is an HTTP 404), grouped by correlation id, i.e. by one logical call of the client.

A single-flight client needs one token, plus one per revocation that reached it (a revoked token is
replaced once, however many callers hold it), plus one per expiry when the run outlasts the token's
lifetime, plus one for every token request made while a fault was active on that upstream (its
answer may have been lost on the wire, and fetching again is then right).
"""

from __future__ import annotations

import math
from collections.abc import Collection

import pandas as pd

from harness.scenario._checks import Check, CheckResult
from harness.scenario._history import History

__all__ = ["DARAJA_OAUTH_PATH", "TOKEN_CHECKS", "no_invalid_token_loop", "token_refresh_single_flight"]

DARAJA_OAUTH_PATH = "/oauth/v1/generate"
REVOCATION_FAULT = "token_revocation"


def _upstream_requests(history: History, upstream: str) -> pd.DataFrame:
    requests = history.requests
    return requests[requests["upstream"] == upstream]


def token_refresh_single_flight(
    upstream: str = "mpesa", *, token_path: str = DARAJA_OAUTH_PATH, token_lifetime: float | None = None
) -> Check:
    """Token requests stay within 1 + revocations (+ one per ``token_lifetime`` the run lasted)."""
    if not token_path.startswith("/"):
        raise ValueError(f"token_refresh_single_flight(token_path=...) must be a path, got {token_path!r}")
    if token_lifetime is not None and not (math.isfinite(token_lifetime) and token_lifetime > 0):
        raise ValueError(
            "token_refresh_single_flight(token_lifetime=...) must be > 0 seconds or None,"
            f" got {token_lifetime!r}"
        )
    name = "token_refresh_single_flight"

    def evaluate(history: History) -> CheckResult:
        requests = _upstream_requests(history, upstream)
        if requests.empty:
            return CheckResult.not_applicable(name, f"{upstream} received no request")
        fetches = requests[requests["path"] == token_path].sort_values("t")
        revocations = int((requests["fault"] == REVOCATION_FAULT).sum())
        duration = float(history.meta.get("duration") or 0.0)
        expiries = 0 if token_lifetime is None else math.floor(duration / token_lifetime)
        faults = history.faults[history.faults["target"] == upstream]
        under_fault = 0
        for start, end in zip(faults["start"], faults["end"], strict=True):
            under_fault += int(((fetches["t"] >= start) & (fetches["t"] <= end)).sum())
        allowed = 1 + revocations + expiries + under_fault
        passed = len(fetches) <= allowed
        expiry_note = f" + {expiries} expiries" if token_lifetime is not None else ""
        if under_fault:
            expiry_note += f" + {under_fault} made under a fault"
        summary = (
            f"{len(fetches)} token requests for {revocations} revocations{expiry_note}"
            f" (at most {allowed} allowed)"
        )
        if not passed:
            summary = (
                f"{len(fetches)} token requests where a single-flight client needs at most {allowed}"
                f" (1 + {revocations} revocations{expiry_note}): the client refreshes without need,"
                " and on Daraja each new token revokes the one its other calls hold"
            )
        evidence = fetches.head(0) if passed else fetches
        return CheckResult(name=name, passed=passed, summary=summary, evidence=evidence)

    return Check(
        name=name,
        description=(
            f"Token refresh is single-flight: {upstream} sees at most one token request ({token_path}),"
            " plus one per revocation (and per expiry)."
        ),
        evaluate=evaluate,
    )


def no_invalid_token_loop(
    upstream: str = "mpesa",
    *,
    token_path: str = DARAJA_OAUTH_PATH,
    refused_statuses: Collection[int] = (404,),
    per_call: int = 2,
) -> Check:
    """No call of the client meets more than ``per_call`` refused-token answers (default 2: the
    first, and one after the single refresh it earns)."""
    if per_call < 1:
        raise ValueError(f"no_invalid_token_loop(per_call=...) must be >= 1, got {per_call!r}")
    if not refused_statuses:
        raise ValueError("no_invalid_token_loop(refused_statuses=...) needs at least one status, e.g. (404,)")
    statuses = frozenset(int(s) for s in refused_statuses)
    name = "no_invalid_token_loop"

    def evaluate(history: History) -> CheckResult:
        requests = _upstream_requests(history, upstream)
        calls = requests[(requests["path"] != token_path) & requests["correlation_id"].notna()]
        if calls.empty:
            return CheckResult.not_applicable(
                name, f"{upstream} saw no correlation ids to group its requests into calls by"
            )
        refused = calls[calls["status"].isin(statuses)]
        per_correlation = refused.groupby("correlation_id").size()
        looping = per_correlation[per_correlation > per_call]
        evidence = refused[refused["correlation_id"].isin(looping.index)].sort_values("t")
        passed = evidence.empty
        most = int(per_correlation.max()) if len(refused) else 0
        summary = (
            f"{len(refused)} refused-token answers, at most {most} in one call (limit {per_call})"
            if passed
            else f"{len(looping)} calls met up to {int(looping.max())} refused-token answers each"
            f" (limit {per_call}): the client refreshes and retries in a loop"
        )
        return CheckResult(name=name, passed=passed, summary=summary, evidence=evidence)

    return Check(
        name=name,
        description=(
            f"A refused token costs one refresh, not a loop: no call meets more than {per_call}"
            f" refused-token answers ({sorted(statuses)}) from {upstream}."
        ),
        evaluate=evaluate,
    )


TOKEN_CHECKS = (token_refresh_single_flight(), no_invalid_token_loop())
"""Both token checks, for Daraja."""
