"""Real servers for tests, on 127.0.0.1 only, each stopped by the process id this module started."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import requests

from mlmon.demo.stack import free_port

T = TypeVar("T")


@contextmanager
def running(
    args: list[str], log: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server for the duration of a ``with`` block; its output goes to ``log`` for failure messages."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def poll(check: Callable[[], T | None], timeout: float, what: str, log: Path | None = None) -> T:
    """Call ``check`` until it returns something other than None; fail with the server log after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result is not None:
                return result
        except (requests.RequestException, ValueError, KeyError) as exc:
            last_error = exc
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})\n{tail}")


@contextmanager
def prometheus(binary: str, config: Path, workdir: Path) -> Iterator[str]:
    """A real Prometheus with ``config`` on a free loopback port; yields its base URL once it is ready."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "prometheus.log"
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]
    with running(args, log):
        poll(
            lambda: True if requests.get(f"{url}/-/ready", timeout=2).ok else None,
            60,
            "Prometheus ready",
            log,
        )
        yield url


def mlflow_server_binary() -> str | None:
    """`mlflow` of this interpreter's environment when it can serve (the full mlflow, not mlflow-skinny)."""
    import importlib.util
    import shutil
    import sys

    binary = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    servable = importlib.util.find_spec("flask") is not None and importlib.util.find_spec("mlflow.server")
    if not Path(binary).exists() or not servable:
        return None
    return binary


@contextmanager
def mlflow_server_started(binary: str, store_uri: str, workdir: Path) -> Iterator[tuple[str, Path]]:
    """Start a real `mlflow server --workers 1` on a free loopback port over ``store_uri`` and yield (its URL,
    its log) at once: it takes seconds to boot, which a caller may spend on other work first.

    It runs in its own process group (its uvicorn worker is a child), stopped by the pid started here; the
    job runner is switched off, since its workers would outlive the server."""
    import os
    import signal

    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "mlflow-server.log"
    args = [
        binary, "server", "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", store_uri, "--default-artifact-root", (workdir / "artifacts").as_uri(),
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            args, stdout=sink, stderr=subprocess.STDOUT, cwd=workdir, env=env, start_new_session=True
        )
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


def wait_for_mlflow(url: str, log: Path) -> None:
    poll(lambda: True if requests.get(f"{url}/health", timeout=2).ok else None, 90, "mlflow server", log)


@contextmanager
def mlflow_server(binary: str, store_uri: str, workdir: Path) -> Iterator[str]:
    """A real `mlflow server` (see :func:`mlflow_server_started`), yielded once it answers."""
    with mlflow_server_started(binary, store_uri, workdir) as (url, log):
        wait_for_mlflow(url, log)
        yield url
