"""The demo's running stack: the instrumented service, Prometheus, Alertmanager and a webhook that receives
what Alertmanager routes. Everything listens on 127.0.0.1 and keeps its data in the workspace."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import requests

from mlmon.demo.processes import DemoError, ProcessGroup

T = TypeVar("T")

# Debian installs Alertmanager as prometheus-alertmanager; upstream's tarball calls it alertmanager.
PROMETHEUS_NAMES = ("prometheus",)
ALERTMANAGER_NAMES = ("alertmanager", "prometheus-alertmanager")
INSTALL_HINT = (
    "install Prometheus and Alertmanager to run the live part (Debian/Ubuntu: "
    "sudo apt-get install prometheus prometheus-alertmanager; elsewhere: https://prometheus.io/download/)"
)
HTTP_TIMEOUT = 5.0


@dataclass(frozen=True)
class Binaries:
    prometheus: str | None
    alertmanager: str | None


def find_binaries() -> Binaries:
    def first(names: tuple[str, ...]) -> str | None:
        return next((path for name in names if (path := shutil.which(name))), None)

    return Binaries(first(PROMETHEUS_NAMES), first(ALERTMANAGER_NAMES))


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_args(
    model: Path, profile: Path, port: int, *, name: str, version: str, run_id: str, trained_at: float
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlmon.demo.service",
        f"--model={model}",
        f"--profile={profile}",
        f"--name={name}",
        f"--version={version}",
        f"--run-id={run_id}",
        f"--trained-at={trained_at}",
        f"--port={port}",
    ]


def prometheus_args(binary: str, config: Path, storage: Path, port: int) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]


def alertmanager_args(binary: str, config: Path, storage: Path, port: int) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--storage.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        # Empty: no cluster gossip, which would otherwise listen on every interface.
        "--cluster.listen-address=",
        "--log.level=warn",
    ]


def wait_for(
    check: Callable[[], T | None],
    timeout: float,
    processes: ProcessGroup,
    on_wait: Callable[[float], None] | None = None,
    interval: float = 0.25,
) -> T | None:
    """Call ``check`` until it returns something other than None, or ``timeout`` seconds pass (then None).
    Raises if one of the demo's processes exits meanwhile; ``on_wait`` gets the seconds waited so far."""
    start = time.monotonic()
    while True:
        processes.check_running()
        try:
            result = check()
        except (requests.RequestException, ValueError, KeyError):
            result = None
        if result is not None:
            return result
        waited = time.monotonic() - start
        if waited >= timeout:
            return None
        if on_wait is not None:
            on_wait(waited)
        time.sleep(interval)


def http_ok(url: str) -> bool | None:
    return True if requests.get(url, timeout=HTTP_TIMEOUT).ok else None


class PrometheusQueries:
    """The few instant queries the demo needs while it waits (``mlmon status`` does the full picture)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.session.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=HTTP_TIMEOUT)
        data = answer.json()
        if data.get("status") != "success":
            raise DemoError(f"Prometheus refused the query {expr!r}: {data.get('error')}")
        return list(data["data"]["result"])

    def values(self, expr: str, label: str) -> dict[str, float]:
        """Each series' value by one of its labels."""
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr)}

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


class AlertWebhook:
    """A webhook receiver on 127.0.0.1 that keeps what Alertmanager sends: proof that an alert was routed."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        received = self.notifications
        lock = self._lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = None
                if isinstance(body, dict):
                    with lock:
                        received.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # keep the demo's output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/alerts"
        threading.Thread(target=self._server.serve_forever, name="mlmon-demo-webhook", daemon=True).start()

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert received, firing ones as Alertmanager last reported them."""
        with self._lock:
            return [alert for notification in self.notifications for alert in notification.get("alerts", [])]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
