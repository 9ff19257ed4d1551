"""`mlmon compare-runs --experiment` over 200 runs with 30 params and 30 metrics each, on a real `mlflow server`.

The issue's budget: one run-search request page, and at most 1.5 s for the whole command as a user runs it
(a new process: Python start-up, imports, the requests, the table). The script fills a sqlite store in a
temporary folder (200 runs, 30 params, 30 metrics with 10 steps of history each), starts `mlflow server
--workers 1` on a free loopback port over it, then times whole processes, interleaved round by round and in a
new random order each round, so that the machine's changing speed and the server's own periodic work (in a
fixed order, one case kept getting a slower server) hit every case alike:

- `mlmon --help`, what starting mlmon costs before any request;
- `mlmon compare-runs --experiment bench` as a table (200 runs: transposed, no histories), and as JSON;
- the same with `--top 6` (runs as columns, with a sparkline per metric: one history request per metric);
- the floor: the one search request alone, sent by curl (the server's own time);
- MLflow's client doing that same search (`python -c "from mlflow import MlflowClient; ..."`);
- `mlflow runs list --experiment-id ID`, MLflow's own command line.

HTTP requests per command are counted from the server's access log; beside the wall time, the script reports
the CPU time of the command and of the server, which the machine's load does not change.

    python bench/compare_runs.py                               # the mlmon and mlflow next to this python
    python bench/compare_runs.py --client /tmp/venv-cmp/bin/python --runs 9
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlmon.demo.stack import free_port

RUNS, PARAMS, METRICS, STEPS = 200, 30, 30, 10
REQUEST_LINE = re.compile(r'"(GET|POST) (/api/2\.0/mlflow/[^ ?]+)')


def fill(store_uri: str, artifacts: Path) -> str:
    """The runs, written straight into the sqlite store (faster than through the server); the experiment id."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(store_uri)
    experiment = client.create_experiment("bench", artifact_location=artifacts.as_uri())
    rng = random.Random(6)
    now = int(time.time() * 1000)
    for index in range(RUNS):
        run_id = client.create_run(experiment, run_name=f"run-{index:03d}").info.run_id
        client.log_batch(
            run_id,
            params=[Param(f"param_{p:02d}", str(rng.choice([1, 2, 4, 8]) * (p + 1))) for p in range(PARAMS)],
            metrics=[
                Metric(f"metric_{m:02d}", rng.random(), now + step, step)
                for m in range(METRICS)
                for step in range(STEPS)
            ],
        )
        client.set_terminated(run_id)
    return str(experiment)


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"mlflow server exited with {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
            if answer.status == 200:
                return
        time.sleep(0.25)
    raise SystemExit(f"mlflow server at {url} not ready after {timeout}s")


def requests_of(args: list[str], log: Path, env: dict[str, str]) -> tuple[int, dict[str, int]]:
    """Run a command once; the HTTP requests the server logged meanwhile, in all and per endpoint."""
    before = log.stat().st_size
    subprocess.run(args, capture_output=True, check=True, env=env, cwd=log.parent)
    time.sleep(0.3)  # the access log line is written after the answer
    with log.open("rb") as text:
        text.seek(before)
        lines = text.read().decode("utf-8", "replace").splitlines()
    endpoints: dict[str, int] = {}
    for line in lines:
        if match := REQUEST_LINE.search(line):
            endpoints[match[2]] = endpoints.get(match[2], 0) + 1
    return sum(endpoints.values()), endpoints


def client_cases(client: Path, url: str, experiment_id: str, name_it: bool) -> dict[str, list[str]]:
    """The commands timed for one installation (a venv's python): mlmon, MLflow's client, MLflow's CLI."""
    mlmon = str(client.with_name("mlmon"))
    prefix = f"[{client.parent.parent.name}] " if name_it else ""
    compare = [mlmon, "compare-runs", "--experiment", "bench", "--mlflow-uri", url]
    client_search = (
        f"from mlflow import MlflowClient; runs = MlflowClient({url!r}).search_runs([{experiment_id!r}], "
        "max_results=1000); assert len(runs) == 200"
    )
    cases = {
        f"{prefix}`mlmon --help` (start-up alone, no request)": [mlmon, "--help"],
        f"{prefix}`mlmon compare-runs --experiment bench` (table, 200 runs)": compare,
        f"{prefix}`... --format json`": [*compare, "--format", "json"],
        f"{prefix}`... --top 6` (runs as columns, a sparkline per metric)": [*compare, "--top", "6"],
        f"{prefix}MLflow's client: `import mlflow` and the same search": [str(client), "-c", client_search],
    }
    mlflow_cli = client.with_name("mlflow")
    if mlflow_cli.exists():
        cases[f"{prefix}`mlflow runs list --experiment-id ID`"] = [
            str(mlflow_cli), "runs", "list", "--experiment-id", experiment_id,
        ]  # fmt: skip
    return cases


def group_cpu_seconds(group: int) -> float:
    """CPU time (user + system) used so far by the processes of a process group: the server and its worker."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group:  # state, ppid, pgrp, ...; utime and stime are the 12th and 13th
                ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def timed(args: list[str], env: dict[str, str], cwd: Path, server: int) -> tuple[float, float, float]:
    """Wall seconds of one run of a command, its own CPU seconds, and the server's CPU seconds meanwhile.

    The CPU figures do not depend on what else the machine is doing; the wall time does, a lot, on a shared
    2-core machine: the command and the server each wait for a core."""
    before_server = group_cpu_seconds(server)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(args, capture_output=True, check=True, env=env, cwd=cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, group_cpu_seconds(server) - before_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed rounds (every case once per round)")
    parser.add_argument(
        "--client",
        action="append",
        help="a Python whose mlmon and mlflow client are timed (repeatable; default: this one). The server "
        "always runs from this one, which needs the full mlflow package",
    )
    options = parser.parse_args()
    here = Path(sys.executable)
    clients = [Path(path) for path in options.client or [sys.executable]]
    server_binary = shutil.which("mlflow", path=str(here.parent)) or "mlflow"
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    with tempfile.TemporaryDirectory(prefix="mlmon-bench-") as folder:
        root = Path(folder)
        store = f"sqlite:///{root / 'mlflow.db'}"
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            experiment_id = fill(store, root / "artifacts")
        filled = time.perf_counter() - started
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = root / "server.log"
        server_args = [
            server_binary, "server", "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", store, "--default-artifact-root", (root / "artifacts").as_uri(),
        ]  # fmt: skip
        with log.open("wb") as sink:
            # No job runner: not needed here, and its workers outlive a SIGTERM to the server.
            server = subprocess.Popen(
                server_args,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                start_new_session=True,
            )
        try:
            wait_for(url, server)
            env["MLFLOW_TRACKING_URI"] = url  # for `mlflow runs list`, which has no option for it
            search = f'{{"experiment_ids": ["{experiment_id}"], "max_results": 1000}}'
            cases = {
                "floor: the search request alone (`curl`)": [
                    "curl", "-sf", "-o", "/dev/null", "-H", "Content-Type: application/json", "-d", search,
                    f"{url}/api/2.0/mlflow/runs/search",
                ],
            }  # fmt: skip
            for client in clients:
                cases.update(client_cases(client, url, experiment_id, len(clients) > 1))
            requests = {label: requests_of(args, log, env) for label, args in cases.items()}  # also a warm-up
            times: dict[str, list[tuple[float, float, float]]] = {label: [] for label in cases}
            order = list(cases)
            for round_number in range(options.runs):
                random.Random(round_number).shuffle(order)
                for label in order:
                    times[label].append(timed(cases[label], env, root, server.pid))
        finally:
            os.killpg(server.pid, signal.SIGTERM)  # the server's own group: its uvicorn worker too
            server.wait(timeout=15)
    print(
        f"{RUNS} runs x {PARAMS} params x {METRICS} metrics ({STEPS} steps each), stored in {filled:.0f} s; "
        f"`mlflow server --workers 1` on loopback; {options.runs} rounds\n"
    )
    print("| command | median s | fastest s | its CPU s | server CPU s | HTTP requests |")
    print("|---|---:|---:|---:|---:|---|")
    for label, measured in times.items():
        walls, cpus, server_cpus = zip(*measured, strict=True)
        count, endpoints = requests[label]
        detail = ", ".join(f"{n} {path.removeprefix('/api/2.0/mlflow/')}" for path, n in endpoints.items())
        print(
            f"| {label} | {statistics.median(walls):.2f} | {min(walls):.2f} | {statistics.median(cpus):.2f} "
            f"| {statistics.median(server_cpus):.2f} | {count}" + (f" ({detail})" if detail else "") + " |"
        )
    print(
        "\nmedian and fastest: wall time of the whole process; its CPU: user + system seconds of the command's "
        "processes; server CPU: of the mlflow server's process group meanwhile (medians)."
    )


if __name__ == "__main__":
    main()
