"""Local HTTP servers that misbehave on purpose, for the fault-injection tests: each listens on 127.0.0.1 on
a free port, serves from daemon threads and stops when its ``with`` block ends (or, at the latest, when a
connection has been held for ``HOLD_SECONDS``).

Behaviours:
- ``stall``: accepts the connection, reads the request, never answers;
- ``trickle``: a valid JSON answer, status line and headers included, one byte every ``TRICKLE_SECONDS``;
- ``huge``: a 200 answer of ``HUGE_BYTES`` (no Content-Length, so only reading tells the size);
- ``huge_declared``: the same size, declared in Content-Length;
- ``gzip_bomb``: a small gzip body that unpacks to ``HUGE_BYTES``;
- ``echo``: a 500 whose body repeats the request line and every header (a proxy that echoes the request);
- ``echo_json``: a 400 in MLflow's error JSON whose message repeats every header, on one line;
- ``redirect``: a 302 to another server;
- ``close``: reads the request and closes the connection without a byte;
- ``close_mid_body``: sends headers announcing a body and closes after half of it.
"""

from __future__ import annotations

import gzip
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

TRICKLE_SECONDS = 0.5
HOLD_SECONDS = 60.0  # no connection is held longer than this, whatever the client does
HUGE_BYTES = 80 * 1024 * 1024  # above both caps: 32 MiB for Prometheus, 64 MiB for MLflow

BEHAVIOURS = (
    "stall",
    "trickle",
    "huge",
    "huge_declared",
    "gzip_bomb",
    "echo",
    "echo_json",
    "redirect",
    "close",
    "close_mid_body",
)


def _read_request(connection: socket.socket) -> bytes:
    """The request line and headers (and whatever body came with them)."""
    connection.settimeout(HOLD_SECONDS)
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 1 << 20:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _answer(status: str, body: bytes, content_type: str = "application/json", extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n{extra}\r\n"
    )
    return head.encode() + body


class _Handler(socketserver.BaseRequestHandler):
    server: _FaultServer

    def handle(self) -> None:
        connection: socket.socket = self.request
        request = _read_request(connection)
        behaviour = self.server.behaviour
        until = time.monotonic() + HOLD_SECONDS
        try:
            if behaviour == "stall":
                while time.monotonic() < until and not self.server.stopping.wait(0.1):
                    pass
            elif behaviour == "trickle":
                answer = _answer(
                    "200 OK", b'{"status": "success", "data": {"resultType": "vector", "result": []}}'
                )
                for byte in answer:
                    if time.monotonic() > until or self.server.stopping.wait(TRICKLE_SECONDS):
                        return
                    connection.sendall(bytes([byte]))
            elif behaviour in ("huge", "huge_declared"):
                length = f"Content-Length: {HUGE_BYTES}\r\n" if behaviour == "huge_declared" else ""
                connection.sendall(
                    f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}Connection: close\r\n\r\n".encode()
                )
                block = b" " * 65536
                for _ in range(HUGE_BYTES // len(block)):
                    if self.server.stopping.is_set():
                        return
                    connection.sendall(block)
            elif behaviour == "gzip_bomb":
                body = gzip.compress(b" " * HUGE_BYTES, compresslevel=9)
                connection.sendall(_answer("200 OK", body, extra="Content-Encoding: gzip\r\n"))
            elif behaviour == "echo":
                connection.sendall(_answer("500 Internal Server Error", request, "text/plain"))
            elif behaviour == "echo_json":
                echoed = request.decode("latin-1").strip().replace("\r\n", " | ")  # on one line
                message = {"error_code": "INVALID_PARAMETER_VALUE", "message": echoed}
                connection.sendall(_answer("400 Bad Request", json.dumps(message).encode()))
            elif behaviour == "redirect":
                location = "Location: http://127.0.0.1:9/elsewhere\r\n"
                connection.sendall(_answer("302 Found", b"", "text/plain", location))
            elif behaviour == "close":
                pass
            elif behaviour == "close_mid_body":
                head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                connection.sendall(head.encode() + b'{"status": "success", "data": ' + b" " * 400)
        except OSError:  # the client gave up, as it should
            pass


class _FaultServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, behaviour: str) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}")
        self.behaviour = behaviour
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)


@contextmanager
def misbehaving(behaviour: str) -> Iterator[str]:
    """A server that misbehaves as ``behaviour`` says; yields its base URL."""
    server = _FaultServer(behaviour)
    thread = threading.Thread(target=server.serve_forever, name=f"fault-{behaviour}", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
