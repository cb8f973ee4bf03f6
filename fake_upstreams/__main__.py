"""``python -m fake_upstreams NAME --port P``: serve one fake upstream on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import sys
import tempfile
from pathlib import Path

import uvicorn

from fake_upstreams._base import FakeUpstream
from fake_upstreams._protocol import AbortableHttpToolsProtocol
from fake_upstreams._registry import FAKES


def _http_protocol(name: str) -> type[asyncio.Protocol] | str:
    """``httptools`` (default): uvicorn's fast protocol with the abort extension; ``h11``: uvicorn's
    pure-Python one (slower, and a dropped connection becomes a truncated response)."""
    return AbortableHttpToolsProtocol if name == "httptools" else name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fake_upstreams", description=__doc__)
    parser.add_argument("name", choices=sorted(FAKES), help="which upstream to fake")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: any free port)")
    parser.add_argument("--fd", type=int, default=None, help="serve on an already bound socket")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="folder for the ledger and idempotency records (default: a new temporary folder)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for ids, credentials and faults")
    parser.add_argument(
        "--http",
        choices=["httptools", "h11"],
        default="httptools",
        help="HTTP/1.1 implementation (default httptools)",
    )
    args = parser.parse_args(argv)

    spec = FAKES[args.name]
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix=f"fake-{args.name}-"))
    fake = FakeUpstream.open(
        args.name, state_dir, args.seed, spec.credentials(random.Random(f"{args.name}:{args.seed}"))
    )
    app = spec.create_app(fake)
    # uvicorn's own --fd path wraps the descriptor as an AF_UNIX socket, so asyncio never sets
    # TCP_NODELAY on accepted connections and a second small write waits for a delayed ACK (~40 ms).
    # socket(fileno=...) reads the real family from the descriptor.
    sockets = None if args.fd is None else [socket.socket(fileno=args.fd)]
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        http=_http_protocol(args.http),
        log_level="warning",
        access_log=False,
        lifespan="on",
        proxy_headers=False,  # loopback only: no proxy in front whose headers could be trusted
        timeout_graceful_shutdown=2,
    )
    if args.fd is None:
        print(
            f"fake {args.name} on http://{args.host}:{args.port} state in {state_dir}",
            file=sys.stderr,
        )
    try:
        uvicorn.Server(config).run(sockets=sockets)
    finally:
        fake.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
