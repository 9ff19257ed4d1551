"""A scripted HTTP server that answers like Prometheus (and like a broken one), on 127.0.0.1, for the tests of
the Prometheus client and of `mlmon status`."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mlmon.backends.prometheus import PrometheusClient


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, list[str]]
    form: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class Answer:
    body: Any = None  # a str is sent as it is, anything else as JSON
    status: int = 200
    content_type: str = "application/json"
    delay: float = 0.0  # seconds before the headers
    dribble: float = 0.0  # seconds between single bytes of the body


Route = Callable[[Request], Answer]


@dataclass
class FakePrometheus:
    """A scripted HTTP server: ``routes`` maps an API path (under ``prefix``) to the answer for it."""

    url: str
    prefix: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def answer(self, path: str, *args: Any, **kwargs: Any) -> None:
        self.routes[path] = lambda _: Answer(*args, **kwargs)

    def client(self, **kwargs: Any) -> PrometheusClient:
        return PrometheusClient(self.url + self.prefix, **kwargs)


def handler(fake: FakePrometheus) -> type[BaseHTTPRequestHandler]:
    """The request handler that answers for ``fake``: its routes, delays and dribbles."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            request = Request(
                self.command, parts.path, parse_qs(parts.query), parse_qs(raw), dict(self.headers)
            )
            fake.requests.append(request)
            route = (
                fake.routes.get(parts.path.removeprefix(fake.prefix))
                if parts.path.startswith(fake.prefix)
                else None
            )
            answer = route(request) if route else Answer("404 page not found", 404, "text/plain")
            if fake.stop.wait(answer.delay):
                return
            body = answer.body
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not answer.dribble:
                self.wfile.write(data)
                return
            for byte in data:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                if fake.stop.wait(answer.dribble):
                    return

    return Handler


@contextmanager
def serving(fake: FakePrometheus) -> Iterator[FakePrometheus]:
    """Serve ``fake`` on 127.0.0.1. Port 0: the kernel picks a free port at bind time, so no other process
    can take it in between."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.stop.set()
        server.shutdown()
        server.server_close()


def vector(*series: dict[str, Any]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": list(series)}}
