"""Retry discipline, judged on what the upstream received (its request log), not on the driver's word.

* :data:`retries_honour_retry_after`: an upstream that answers ``Retry-After: N`` (Stripe's rate
  limiter, a gateway's 429, a 503) must not see the same operation again within N seconds. The
  client-side view cannot show this: a client may log a sleep and not take it, or take it from the
  wrong moment. The upstream's own log holds both ends: when it answered (``t + duration``) and when
  the next request with the same correlation id arrived.
* :func:`retry_amplification_within`: upstream requests per operation stay within a limit, so that
  retries do not multiply the load on an upstream that is already struggling (a retry storm).
"""

from __future__ import annotations

import itertools
import math

import pandas as pd

from harness.scenario._checks import Check, CheckResult
from harness.scenario._history import History

__all__ = ["RETRY_AFTER_TOLERANCE", "retries_honour_retry_after", "retry_amplification_within"]

RETRY_AFTER_TOLERANCE = 0.001
"""Seconds of slack for float rounding: times are read from one monotonic clock, so an honest wait
is never shorter than asked, but two subtractions of large timestamps can lose a few microseconds."""

_EVIDENCE_COLUMNS = ["answered_at", "retry_after", "waited"]


def _retries_honour_retry_after(history: History) -> CheckResult:
    name = "retries_honour_retry_after"
    requests = history.requests
    if "retry_after" not in requests.columns:
        return CheckResult.not_applicable(
            name, "the request log has no retry_after column (an older history)"
        )
    asked = requests[requests["retry_after"].notna()]
    if asked.empty:
        return CheckResult.not_applicable(name, "no answer of the upstream carried Retry-After")
    correlated = requests[requests["correlation_id"].notna()].sort_values("t", kind="stable")
    if correlated[correlated["retry_after"].notna()].empty:
        return CheckResult.not_applicable(
            name, "the answers that carried Retry-After went to requests without a correlation id"
        )
    bad = []
    for _, same in correlated.groupby("correlation_id", sort=False):
        rows = same.to_dict(orient="records")
        for previous, following in itertools.pairwise(rows):
            wait = previous["retry_after"]
            if wait is None or (isinstance(wait, float) and math.isnan(wait)):
                continue
            answered_at = float(previous["t"]) + float(previous["duration"])
            waited = float(following["t"]) - answered_at
            if waited < float(wait) - RETRY_AFTER_TOLERANCE:
                bad.append(
                    {**following, "answered_at": answered_at, "retry_after": float(wait), "waited": waited}
                )
    columns = [c for c in requests.columns if c != "retry_after"] + _EVIDENCE_COLUMNS
    evidence = pd.DataFrame(bad, columns=columns)
    passed = evidence.empty
    summary = (
        f"{len(asked)} answers carried Retry-After; no request with the same correlation id came sooner"
        if passed
        else f"{len(evidence)} requests came back sooner than the Retry-After of the answer before them"
        f" (shortest wait {evidence['waited'].min():.3f}s)"
    )
    return CheckResult(name=name, passed=passed, summary=summary, evidence=evidence)


retries_honour_retry_after = Check(
    name="retries_honour_retry_after",
    description=(
        "After an answer carrying Retry-After: N, the upstream sees no request with the same correlation"
        " id for N seconds (upstream log)."
    ),
    evaluate=_retries_honour_retry_after,
)


def retry_amplification_within(limit: float) -> Check:
    """Upstream requests per operation (retries, lookups and logins included) stay at most ``limit``.

    Counted on the upstreams the workload used, over the whole run (settle phase included): the load
    the client put on them for each thing it was asked to do.
    """
    if not (math.isfinite(limit) and limit >= 1):
        raise ValueError(
            f"retry_amplification_within(limit=...) must be a finite number >= 1 (one request per"
            f" operation is no amplification), got {limit!r}"
        )
    name = "retry_amplification_within"

    def evaluate(history: History) -> CheckResult:
        ops = history.operations
        if ops.empty:
            return CheckResult.not_applicable(name, "the run had no operations")
        requests = history.requests[history.requests["upstream"].isin(set(ops["upstream"]))]
        ratio = len(requests) / len(ops)
        per_call = requests.groupby("correlation_id").agg(
            requests=("t", "size"),
            first=("t", "min"),
            last=("t", "max"),
            statuses=("status", lambda s: " ".join(str(int(v)) for v in s)),
        )
        evidence = per_call.sort_values("requests", ascending=False).head(20).reset_index()
        passed = ratio <= limit
        summary = (
            f"{len(requests)} upstream requests for {len(ops)} operations ({ratio:.2f} each, limit {limit:g})"
        )
        return CheckResult(
            name=name,
            passed=passed,
            summary=summary if passed else f"retries amplified the load: {summary}",
            evidence=evidence.head(0) if passed else evidence,
        )

    return Check(
        name=name,
        description=f"At most {limit:g} upstream requests per operation: retries do not multiply the load.",
        evaluate=evaluate,
    )
