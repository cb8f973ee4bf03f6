"""How many simple requests a second each fake upstream serves on one core, direct and via Toxiproxy.

Each fake runs as the stack runs it (``python -m fake_upstreams NAME --fd N``, a child process) and is
pinned to one core with ``os.sched_setaffinity``; this process, pinned to another core, drives it with
a small asyncio load generator over keep-alive connections. The generator writes raw HTTP/1.1 and
keeps two requests in flight per connection on purpose: httpx spends about as much Python per request
as the fake does, so with it the bench would measure the client. Toxiproxy is left unpinned.

Two figures per request kind. *Achieved* is requests answered per wall-clock second, which on a
shared two-core machine depends on what else runs. *Capacity* is requests answered per second of CPU
the fake itself used (from ``/proc/PID/stat``): what the fake sustains on one core it has to itself,
and the figure held against the target. Each is given direct and through Toxiproxy, with the ratio.

Two simple requests per fake: a read (an authenticated GET, or Daraja's STK query, which is a POST)
and a write that is answered from the fake's store without a new effect (an idempotent replay for
Stripe and Fineract; a duplicate B2C request refused as such for Daraja). Every answer's status is
checked, so a fast stream of errors cannot pass for throughput.

Run: ``python bench/bench_fakes.py`` (about 40 s). The target is 2,000 requests a second per fake on
one core, so that a fake is never the bottleneck of a scenario.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx

from harness.stack import Stack, StackConfig

TARGET = 2000.0
DURATION = 2.0
CONNECTIONS = 16
PIPELINE = 2
FAKE_CORE, LOAD_CORE = 1, 0


@dataclass(frozen=True)
class Probe:
    name: str
    request: bytes
    status: int


def _http(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: bench", *(f"{k}: {v}" for k, v in headers.items())]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _worker(port: int, probe: Probe, deadline: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            writer.write(probe.request * PIPELINE)
            for _ in range(PIPELINE):
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                counts[0 if status == probe.status else 1] += 1
    finally:
        writer.close()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Run:
    achieved: float
    capacity: float
    errors: int


async def _drive(port: int, probe: Probe, pid: int) -> Run:
    counts = [0, 0]
    cpu = _cpu_seconds(pid)
    started = time.perf_counter()
    deadline = started + DURATION
    await asyncio.gather(*(_worker(port, probe, deadline, counts) for _ in range(CONNECTIONS)))
    elapsed, used = time.perf_counter() - started, _cpu_seconds(pid) - cpu
    return Run(counts[0] / elapsed, counts[0] / max(used, 1e-9), counts[1])


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _stripe_probes(stack: Stack) -> list[Probe]:
    admin = stack.admin("stripe")
    admin.configure(rate_limit_enabled=False)
    key = admin.credentials()["secret_key"]
    auth = {"Authorization": f"Bearer {key}"}
    form = b"amount=1000&currency=usd&payment_method=pm_card_visa&confirm=true&metadata[operation_id]=bench-1"
    headers = {**auth, "Idempotency-Key": "bench-key", "Content-Type": "application/x-www-form-urlencoded"}
    created = httpx.post(
        stack.upstreams["stripe"].direct_url + "/v1/payment_intents", content=form, headers=headers
    ).json()
    return [
        Probe("GET payment_intent", _http("GET", f"/v1/payment_intents/{created['id']}", auth), 200),
        Probe("POST replay (Idempotency-Key)", _http("POST", "/v1/payment_intents", headers, form), 200),
    ]


def _mpesa_probes(stack: Stack) -> list[Probe]:
    admin = stack.admin("mpesa")
    admin.configure(stk_delay=0.0, b2c_delay=3600.0)
    creds = admin.credentials()
    base = stack.upstreams["mpesa"].direct_url
    token = httpx.get(
        base + "/oauth/v1/generate?grant_type=client_credentials",
        auth=(creds["consumer_key"], creds["consumer_secret"]),
    ).json()["access_token"]
    timestamp = time.strftime("%Y%m%d%H%M%S")
    password = base64.b64encode((creds["shortcode"] + creds["passkey"] + timestamp).encode()).decode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    push = {
        "BusinessShortCode": creds["shortcode"],
        "Password": password,
        "Timestamp": timestamp,
        "TransactionType": "CustomerPayBillOnline",
        "Amount": 10,
        "PartyA": "254708374149",
        "PartyB": creds["shortcode"],
        "PhoneNumber": "254708374149",
        "CallBackURL": "http://127.0.0.1:9/callback",
        "AccountReference": "bench",
    }
    checkout = httpx.post(base + "/mpesa/stkpush/v1/processrequest", json=push, headers=headers).json()
    query = json.dumps(
        {
            "BusinessShortCode": creds["shortcode"],
            "Password": password,
            "Timestamp": timestamp,
            "CheckoutRequestID": checkout["CheckoutRequestID"],
        }
    ).encode()
    b2c = {
        "OriginatorConversationID": "bench-b2c-1",
        "InitiatorName": creds["initiator_name"],
        "SecurityCredential": creds["security_credential"],
        "CommandID": "BusinessPayment",
        "Amount": 100,
        "PartyA": "600996",
        "PartyB": "254708374149",
        "Remarks": "bench",
        "QueueTimeOutURL": "http://127.0.0.1:9/timeout",
        "ResultURL": "http://127.0.0.1:9/result",
    }
    httpx.post(base + "/mpesa/b2c/v3/paymentrequest", json=b2c, headers=headers).raise_for_status()
    return [
        Probe("POST stkpushquery", _http("POST", "/mpesa/stkpushquery/v1/query", headers, query), 200),
        Probe(
            "POST duplicate B2C (500.002.1001)",
            _http("POST", "/mpesa/b2c/v3/paymentrequest", headers, json.dumps(b2c).encode()),
            500,
        ),
    ]


def _cbs_probes(stack: Stack) -> list[Probe]:
    creds = stack.admin("cbs").credentials()
    base = stack.upstreams["cbs"].direct_url + "/fineract-provider/api/v1"
    basic = base64.b64encode(f"{creds['username']}:{creds['password']}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}", "Fineract-Platform-TenantId": creds["tenant"]}
    body = json.dumps(
        {
            "transactionDate": "15 March 2024",
            "transactionAmount": 10,
            "locale": "en",
            "dateFormat": "dd MMMM yyyy",
            "externalId": "bench-1",
        }
    ).encode()
    write = {**headers, "Idempotency-Key": "bench-key", "Content-Type": "application/json"}
    path = "/fineract-provider/api/v1/loans/1/transactions?command=repayment"
    httpx.post(
        base + "/loans/1/transactions?command=repayment", content=body, headers=write
    ).raise_for_status()
    return [
        Probe("GET loan", _http("GET", "/fineract-provider/api/v1/loans/1", headers), 200),
        Probe("POST replay (Idempotency-Key)", _http("POST", path, write, body), 200),
    ]


PROBES = {"stripe": _stripe_probes, "mpesa": _mpesa_probes, "cbs": _cbs_probes}


def main() -> int:
    pinned = hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2
    with TemporaryDirectory(prefix="bench-fakes-") as tmp:
        stack = Stack(StackConfig(upstreams=tuple(PROBES), state_dir=Path(tmp)))
        with stack:
            if pinned:
                os.sched_setaffinity(0, {LOAD_CORE})
                for upstream in stack.upstreams.values():
                    assert upstream.process.pid is not None
                    os.sched_setaffinity(upstream.process.pid, {FAKE_CORE})
            print(
                f"fakes pinned to core {FAKE_CORE}, load on core {LOAD_CORE}: {pinned};"
                f" {CONNECTIONS} keep-alive connections, {DURATION:g} s per run"
            )
            print(
                f"{'':44} {'---- capacity (req/CPU-s) ----':>31} {'---- achieved (req/s) ----':>29}\n"
                f"{'fake':8} {'request':35} {'direct':>9} {'proxied':>9} {'ratio':>6}"
                f" {'direct':>9} {'proxied':>9} {'ratio':>6}"
            )
            slowest = float("inf")
            for name, probes in PROBES.items():
                upstream = stack.upstreams[name]
                pid = upstream.process.pid
                assert pid is not None
                for probe in probes(stack):
                    direct = asyncio.run(_drive(_port(upstream.direct_url), probe, pid))
                    proxied = asyncio.run(_drive(_port(upstream.proxied_url), probe, pid))
                    slowest = min(slowest, direct.capacity)
                    print(
                        f"{name:8} {probe.name:35} {direct.capacity:9.0f} {proxied.capacity:9.0f}"
                        f" {proxied.capacity / direct.capacity:6.2f} {direct.achieved:9.0f}"
                        f" {proxied.achieved:9.0f} {proxied.achieved / direct.achieved:6.2f}"
                    )
                    if direct.errors or proxied.errors:
                        print(f"  unexpected statuses for {name} {probe.name}", file=sys.stderr)
                        return 1
    verdict = "meets" if slowest >= TARGET else "MISSES"
    print(f"slowest fake request: {slowest:.0f} requests per CPU-second; {verdict} the {TARGET:.0f}/s target")
    return 0 if slowest >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
