"""HTTP glue: ASGI and WSGI middleware that count requests and latency, and serve /metrics.

The middleware counts every request to the prediction paths (status ``error`` for a 5xx answer or an
exception, ``ok`` otherwise: a 4xx is the client's mistake, not the model's) and times it. The application
still calls ``monitor.observe(features, prediction, confidence=...)`` for what only it knows; inside a
request the middleware handles, that call does not count the request a second time.

With several worker processes (gunicorn, uvicorn --workers), set PROMETHEUS_MULTIPROC_DIR to an empty folder
before the workers start: prometheus_client then keeps the values in files and /metrics merges them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, make_asgi_app, make_wsgi_app

from mlmon.instrument.counters import multiprocess_mode
from mlmon.instrument.monitor import REQUEST_COUNTED_BY_MIDDLEWARE, ModelMonitor

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def exposition_registry(registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """The registry /metrics should read: in multiprocess mode a fresh one that merges every worker's files."""
    if multiprocess_mode():
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return merged
    return registry if registry is not None else REGISTRY


def metrics_wsgi_app(registry: CollectorRegistry | None = None) -> WSGIApp:
    """A WSGI app serving the Prometheus exposition format (mount it at /metrics)."""
    return make_wsgi_app(exposition_registry(registry))


def metrics_asgi_app(registry: CollectorRegistry | None = None) -> ASGIApp:
    """An ASGI app serving the Prometheus exposition format (mount it at /metrics)."""
    return make_asgi_app(exposition_registry(registry))


class _Paths:
    def __init__(self, predict_paths: Iterable[str] | None, metrics_path: str | None) -> None:
        self.predict = tuple(predict_paths) if predict_paths is not None else None
        self.metrics = metrics_path

    def counts(self, path: str) -> bool:
        if path == self.metrics:
            return False
        return self.predict is None or any(
            path == p or path.startswith(p.rstrip("/") + "/") for p in self.predict
        )


class MonitorMiddleware:
    """ASGI middleware (Starlette, FastAPI, any ASGI app).

    >>> app = MonitorMiddleware(app, monitor, predict_paths=["/predict"])  # doctest: +SKIP
    """

    def __init__(
        self,
        app: ASGIApp,
        monitor: ModelMonitor,
        predict_paths: Iterable[str] | None = ("/predict",),
        metrics_path: str | None = "/metrics",
    ) -> None:
        self.app = app
        self.monitor = monitor
        self.paths = _Paths(predict_paths, metrics_path)
        self.metrics_app = metrics_asgi_app(monitor.registry) if metrics_path else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if self.metrics_app is not None and path == self.paths.metrics:
            await self.metrics_app(scope, receive, send)
            return
        if not self.paths.counts(path):
            await self.app(scope, receive, send)
            return
        status = 500
        finished: float | None = None

        async def send_status(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                # Latency ends when the client has its answer: background tasks that run after the response
                # (Starlette's BackgroundTasks) are not the model's latency.
                finished = time.perf_counter()

        token = REQUEST_COUNTED_BY_MIDDLEWARE.set(True)
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        except BaseException:
            self.monitor.record_request((finished or time.perf_counter()) - start, failed=True)
            raise
        finally:
            REQUEST_COUNTED_BY_MIDDLEWARE.reset(token)
        self.monitor.record_request((finished or time.perf_counter()) - start, failed=status >= 500)


class MonitorWSGIMiddleware:
    """WSGI middleware (Flask, Django, any WSGI app); serves /metrics too."""

    def __init__(
        self,
        app: WSGIApp,
        monitor: ModelMonitor,
        predict_paths: Iterable[str] | None = ("/predict",),
        metrics_path: str | None = "/metrics",
    ) -> None:
        self.app = app
        self.monitor = monitor
        self.paths = _Paths(predict_paths, metrics_path)
        self.metrics_app = metrics_wsgi_app(monitor.registry) if metrics_path else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self.metrics_app is not None and path == self.paths.metrics:
            return self.metrics_app(environ, start_response)
        if not self.paths.counts(path):
            return self.app(environ, start_response)
        status = 500

        def capture(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal status
            status = int(status_line.split(" ", 1)[0])
            return start_response(status_line, headers, exc_info)

        token = REQUEST_COUNTED_BY_MIDDLEWARE.set(True)
        start = time.perf_counter()
        try:
            # The body is read here, inside the timing, so that latency covers producing it (a prediction
            # answer is small; a streaming response would be buffered). close() is PEP 3333's due.
            iterable = self.app(environ, capture)
            try:
                body = list(iterable)
            finally:
                close = getattr(iterable, "close", None)
                if close is not None:
                    close()
        except BaseException:
            self.monitor.record_request(time.perf_counter() - start, failed=True)
            raise
        finally:
            REQUEST_COUNTED_BY_MIDDLEWARE.reset(token)
        self.monitor.record_request(time.perf_counter() - start, failed=status >= 500)
        return body
