"""`mlmon compare-runs --experiment` over 200 runs with 30 params and 30 metrics each, on a real `mlflow server`.

The issue's budget: one run-search request page, and at most 1.5 s for the whole command as a user runs it
(a new process: Python start-up, imports, the request, the table). The script starts a local tracking server
on a free loopback port with a sqlite store in a temporary folder, fills it with log_batch (one request per
run), then:

- counts the search pages, in-process, through MlflowRunSource.search_pages;
- times the whole command as a subprocess N times (median and fastest), for the table and for JSON.

    python bench/compare_runs.py            # prints a Markdown table for the README
    python bench/compare_runs.py --runs 10
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS, PARAMS, METRICS = 200, 30, 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"mlflow server exited with {process.returncode}")
        try:
            if requests.get(f"{url}/health", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise SystemExit(f"mlflow server at {url} not ready after {timeout}s")


def fill(url: str) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(url)
    experiment = client.create_experiment("bench")
    rng = random.Random(6)
    now = int(time.time() * 1000)
    for index in range(RUNS):
        run_id = client.create_run(experiment, run_name=f"run-{index:03d}").info.run_id
        client.log_batch(
            run_id,
            params=[Param(f"param_{p:02d}", str(rng.choice([1, 2, 4, 8]) * (p + 1))) for p in range(PARAMS)],
            metrics=[Metric(f"metric_{m:02d}", rng.random(), now, 0) for m in range(METRICS)],
        )
        client.set_terminated(run_id)


def count_pages(url: str) -> tuple[int, int, float]:
    """Runs found, search pages used, and the seconds of the search itself (request and parsing)."""
    from mlmon.compare import MlflowRunSource

    source = MlflowRunSource.connect(url)
    source.experiment_runs("bench")  # warm the server's caches, as the timed commands after a warm-up do
    source.search_pages = 0
    started = time.perf_counter()
    records = source.experiment_runs("bench")
    return len(records), source.search_pages, time.perf_counter() - started


def time_command(args: list[str], runs: int) -> list[float]:
    subprocess.run(args, capture_output=True, check=True)  # warm-up: page cache, bytecode
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each command")
    options = parser.parse_args()
    mlflow = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    mlmon = shutil.which("mlmon") or str(Path(sys.executable).with_name("mlmon"))
    with tempfile.TemporaryDirectory(prefix="mlmon-bench-") as folder:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server_args = [
            mlflow, "server", "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{folder}/mlflow.db", "--default-artifact-root", f"{folder}/artifacts",
        ]  # fmt: skip
        with open(os.path.join(folder, "server.log"), "wb") as log:
            # No job runner: not needed here, and its workers outlive a SIGTERM to the server.
            env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
            server = subprocess.Popen(
                server_args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            wait_for(url, server)
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints a link per finished run
                fill(url)
            filled = time.perf_counter() - started
            found, pages, search = count_pages(url)
            command = [mlmon, "compare-runs", "--experiment", "bench", "--mlflow-uri", url]
            table = time_command(command, options.runs)
            machine = time_command([*command, "--format", "json"], options.runs)
            floor = time_command([sys.executable, "-c", "from mlflow import MlflowClient"], options.runs)
        finally:
            os.killpg(server.pid, signal.SIGTERM)  # the server's own group: its uvicorn worker too
            server.wait(timeout=15)
    print(
        f"{RUNS} runs x {PARAMS} params x {METRICS} metrics, filled in {filled:.1f} s; mlflow server --workers 1\n"
    )
    print(
        f"runs read: {found}; search request pages: {pages} (expected 1); the search alone: {search:.2f} s\n"
    )
    print("| command | median | fastest |")
    print("|---|---|---|")
    cases = (
        ("`mlmon compare-runs --experiment bench` (table)", table),
        ("`... --format json`", machine),
        ("floor: `python -c 'from mlflow import MlflowClient'`", floor),
    )
    for label, times in cases:
        print(f"| {label} | {statistics.median(times):.2f} s | {min(times):.2f} s |")


if __name__ == "__main__":
    main()
