"""The demo credit-risk model behind HTTP, instrumented with mlmon: the service the demo and the tests run.

    python -m mlmon.demo.service --model model.json --profile profile.json --version 1 --port 8000

Endpoints: ``POST /predict`` with ``{"features": {...}}`` answers ``{"prediction", "confidence"}`` (a body
with ``"fail": true`` makes the model raise, to produce errors on purpose); ``POST /feedback`` with
``{"predicted", "actual"}``; ``GET /health``; ``GET /metrics``. It listens on 127.0.0.1 only.

Behind gunicorn (several workers, ``PROMETHEUS_MULTIPROC_DIR`` set), the same app comes from the
environment, read in each worker as it starts::

    MLMON_DEMO_MODEL=model.json MLMON_DEMO_PROFILE=profile.json MLMON_DEMO_VERSION=1 \
        gunicorn -c gunicorn.conf.py 'mlmon.demo.service:from_environment()'
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from mlmon.demo.model import CreditModel
from mlmon.instrument.http import MonitorWSGIMiddleware
from mlmon.instrument.monitor import ModelMonitor

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ModelFailure(RuntimeError):
    """Raised on purpose when a request asks for it, so that errors can be produced and watched."""


def make_app(model: CreditModel, monitor: ModelMonitor) -> WSGIApp:
    """The WSGI application, already wrapped in mlmon's middleware (which also serves /metrics)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if path == "/health":
            return _json(start_response, "200 OK", {"status": "ok"})
        if method != "POST" or path not in ("/predict", "/feedback"):
            return _json(start_response, "404 Not Found", {"error": f"no {method} {path}"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        except (ValueError, json.JSONDecodeError) as exc:
            return _json(start_response, "400 Bad Request", {"error": f"body is not JSON: {exc}"})
        if path == "/feedback":
            monitor.record_feedback(body.get("predicted"), body.get("actual"))
            return _json(start_response, "202 Accepted", {"status": "recorded"})
        features = body.get("features")
        if not isinstance(features, dict):
            return _json(start_response, "400 Bad Request", {"error": "features must be an object"})
        try:
            if body.get("fail"):
                raise ModelFailure("failure requested by the client")
            prediction, confidence = model.predict(features)
        except ModelFailure as exc:
            monitor.observe(features, error=exc)
            return _json(start_response, "500 Internal Server Error", {"error": str(exc)})
        monitor.observe(features, prediction, confidence=confidence)
        return _json(start_response, "200 OK", {"prediction": prediction, "confidence": confidence})

    return MonitorWSGIMiddleware(app, monitor, predict_paths=["/predict"])


def _json(start_response: Callable[..., Any], status: str, data: Any) -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one line per request would drown the demo
        pass


def serve(app: WSGIApp, port: int, host: str = "127.0.0.1") -> WSGIServer:
    """Start serving in a background thread; returns the server (``shutdown()`` stops it)."""
    server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="mlmon-demo-service", daemon=True).start()
    return server


def from_environment() -> WSGIApp:
    """The app built from ``MLMON_DEMO_MODEL``, ``MLMON_DEMO_PROFILE``, ``MLMON_DEMO_NAME`` (default
    credit-risk) and ``MLMON_DEMO_VERSION`` (default 1): a gunicorn app factory."""
    try:
        model, profile = os.environ["MLMON_DEMO_MODEL"], os.environ["MLMON_DEMO_PROFILE"]
    except KeyError as missing:
        raise SystemExit(f"set {missing.args[0]} to run the demo service from the environment") from None
    name = os.environ.get("MLMON_DEMO_NAME", "credit-risk")
    monitor = ModelMonitor(name, os.environ.get("MLMON_DEMO_VERSION", "1"), profile)
    return make_app(CreditModel.load(model), monitor)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The instrumented demo credit-risk service.")
    parser.add_argument("--model", required=True, help="model JSON written by the demo")
    parser.add_argument("--profile", required=True, help="reference profile JSON")
    parser.add_argument("--name", default="credit-risk")
    parser.add_argument("--version", default="1")
    parser.add_argument("--run-id", default="")
    parser.add_argument("--trained-at", type=float, default=None)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    monitor = ModelMonitor(
        args.name, args.version, args.profile, run_id=args.run_id, trained_at=args.trained_at
    )
    server = make_server(
        "127.0.0.1",
        args.port,
        make_app(CreditModel.load(args.model), monitor),
        _ThreadingServer,
        _QuietHandler,
    )
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"serving on http://127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
