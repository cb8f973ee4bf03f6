"""The fakes' HTTP/1.1 (uvicorn with httptools) spoken to over raw sockets: what clients rely on
from a real server (framing, keep-alive, pipelining, chunked bodies, 100-continue), and plain
refusals of malformed requests instead of an application traceback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest


def _read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[bytes, bytes], bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full head: {bytes(buffer)!r}")
        buffer += chunk
    end = buffer.index(b"\r\n\r\n")
    lines = bytes(buffer[:end]).split(b"\r\n")
    del buffer[: end + 4]
    status = int(lines[0].split(b" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
    length = int(headers.get(b"content-length", b"0"))
    while len(buffer) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        buffer += chunk
    body = bytes(buffer[:length])
    del buffer[:length]
    return status, headers, body


@pytest.fixture
def conn(stripe_fake: Any) -> Iterator[tuple[socket.socket, bytearray]]:
    port = int(stripe_fake.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    yield sock, bytearray()
    sock.close()


def test_keep_alive_serves_many_requests_on_one_connection(conn: tuple[socket.socket, bytearray]) -> None:
    sock, buffer = conn
    for _ in range(3):
        sock.sendall(b"GET /__admin/health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = _read_response(sock, buffer)
        assert status == 200
        assert b'"ok"' in body
        assert b"connection" not in headers


def test_pipelined_requests_are_answered_in_order(conn: tuple[socket.socket, bytearray]) -> None:
    sock, buffer = conn
    sock.sendall(b"GET /__admin/health HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")

    assert _read_response(sock, buffer)[0] == 200
    assert _read_response(sock, buffer)[0] == 404


def test_a_chunked_request_body_is_reassembled(conn: tuple[socket.socket, bytearray]) -> None:
    sock, buffer = conn
    body = b'{"advance": 0}'
    chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (5, body[:5], len(body) - 5, body[5:])
    sock.sendall(
        b"POST /__admin/clock HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\n\r\n" + chunked
    )

    status, _, answer = _read_response(sock, buffer)
    assert status == 200
    assert b"api_time" in answer


def test_expect_100_continue_is_honoured(conn: tuple[socket.socket, bytearray]) -> None:
    sock, buffer = conn
    body = b'{"advance": 0}'
    sock.sendall(
        b"POST /__admin/clock HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
        % len(body)
    )
    status, _, _ = _read_response(sock, buffer)
    sock.sendall(body)

    assert status == 100
    assert _read_response(sock, buffer)[0] == 200


def test_connection_close_is_honoured(conn: tuple[socket.socket, bytearray]) -> None:
    sock, buffer = conn
    sock.sendall(b"GET /__admin/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, headers, _ = _read_response(sock, buffer)

    assert status == 200
    assert headers[b"connection"] == b"close"
    assert sock.recv(1024) == b""


def test_head_has_no_body_but_keeps_the_length(conn: tuple[socket.socket, bytearray]) -> None:
    sock, buffer = conn
    sock.sendall(
        b"HEAD /__admin/health HTTP/1.1\r\nHost: x\r\n\r\nGET /__admin/health HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)
    end = buffer.index(b"\r\n\r\n")
    head = bytes(buffer[:end])
    del buffer[: end + 4]

    assert head.startswith(b"HTTP/1.1 ")
    assert b"content-length" in head.lower()
    assert _read_response(sock, buffer)[0] == 200  # the next answer starts right after the head


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET x HTTP/1.1\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ],
)
def test_malformed_requests_get_a_plain_refusal_and_a_closed_connection(
    conn: tuple[socket.socket, bytearray], request_bytes: bytes, status: int
) -> None:
    sock, buffer = conn
    sock.sendall(request_bytes)
    answer, headers, _ = _read_response(sock, buffer)

    assert answer == status
    assert headers[b"connection"] == b"close"
    assert sock.recv(1024) == b""
