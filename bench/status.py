"""Wall time and HTTP requests of `mlmon status` for 50 models with 20 features each, against a real local
Prometheus fed with real instrumented metrics.

The stack, all on 127.0.0.1 and stopped by this script (Prometheus by its process id):
- this process serves every model's metrics on its own path (``/m/<i>``), each from a ``ModelMonitor`` with a
  20-feature reference profile built by ``build_profile`` from synthetic data, and feeds the monitors
  synthetic traffic in-process (``observe_batch``, ``record_feedback``) until the timing starts (the
  windows keep what was fed); one model in five drifts, one in ten fails some requests;
- Prometheus (from PATH) with the configuration and rules ``mlmon`` renders from the spec, scrape and
  evaluation every second.

Once the recording rules see every model and feature, ``mlmon status --json`` and the human view run as whole
processes, interleaved with the start-up floor (``mlmon --help``, and Python importing what status imports),
N times after a warm-up. Requests are counted with Prometheus' own ``prometheus_http_requests_total``
(read from its /metrics before and after each run). Then ``gather_status`` is timed in-process, request by
request, to split the wall time into start-up and Prometheus time. With ``--mlflow`` (the default), it runs
once more against a sqlite MLflow store holding every model registered with a ``champion`` alias.

    python bench/status.py                      # 50 models x 20 features, 5 runs, Markdown tables
    python bench/status.py --models 10 --features 5 --runs 3 --no-mlflow
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

from mlmon.demo.stack import free_port

WINDOW = "5m"  # drift and feedback window: the shortest the spec allows, so the rules fill quickly
MIN_SAMPLES = 100
ROWS_PER_TICK = 20
TICK = 1.0  # seconds between batches (plus the time to render the expositions)
WARM_UP_TICKS = 10  # 200 rows per model, over MIN_SAMPLES
TRICKLE = 15.0
CLI_ENV = {"NO_COLOR": "1", "COLUMNS": "160", "MLMON_DEBUG": ""}


# -- the spec and the rendered Prometheus configuration --------------------------------------------------------


def spec_dict(
    models: int, features: int, exporter_port: int, tracking_uri: str, interval: str = "1s"
) -> dict[str, Any]:
    return {
        "project": "bench",
        "prometheus": {"scrape_interval": interval, "evaluation_interval": interval},
        "mlflow": {"tracking_uri": tracking_uri},
        "defaults": {
            "thresholds": {
                "drift_window": WINDOW,
                "feedback_window": WINDOW,
                "drift_for": "0s",
                "min_drift_samples": MIN_SAMPLES,
            }
        },
        "models": [
            {
                "name": model_name(i),
                "targets": [f"127.0.0.1:{exporter_port}"],
                "metrics_path": f"/m/{i}",
                "features": feature_names(features),
            }
            for i in range(models)
        ],
    }


def model_name(i: int) -> str:
    return f"model-{i:03d}"


def feature_names(count: int) -> list[str]:
    return [f"f{j:02d}" for j in range(count)]


def render(spec: Any, out: Path) -> Path:
    """mlmon's rendering, minus the scrape jobs and Alertmanager for servers this bench does not start."""
    from mlmon.render import PROMETHEUS_CONFIG, apply_plan, plan_outputs

    apply_plan(plan_outputs(spec, out))
    config_path = out / PROMETHEUS_CONFIG
    config = yaml.safe_load(config_path.read_text())
    config.pop("alerting", None)
    config["scrape_configs"] = [
        job for job in config["scrape_configs"] if job["job_name"] not in ("prometheus", "alertmanager")
    ]
    config_path.write_text(yaml.safe_dump(config))
    return config_path


# -- the models: monitors, their metrics over HTTP, synthetic traffic ---------------------------------------------


class Models:
    """One ModelMonitor per model, each with its own registry served on /m/<i>, fed from a thread."""

    def __init__(self, count: int, features: int, seed: int = 1) -> None:
        import numpy as np
        from prometheus_client import CollectorRegistry

        from mlmon.drift.build import build_profile
        from mlmon.instrument import ModelMonitor

        self.np = np
        self.rng = np.random.default_rng(seed)
        self.features = feature_names(features)
        reference = self._rows(5_000, shift=0.0)
        profile = build_profile(
            reference,
            "bench",
            features=self.features,
            target="target",
            prediction="prediction",
            confidence="confidence",
        )
        self.monitors = [
            ModelMonitor(
                model_name(i),
                "1",
                profile,
                registry=CollectorRegistry(),
                trained_at=time.time() - (i % 40) * 86400,
            )
            for i in range(count)
        ]
        self.stop = threading.Event()
        # Set while the commands are timed, so that feeding and rendering do not compete with them for CPU;
        # the windows still hold the traffic fed so far.
        self.paused = threading.Event()
        self.bodies: list[bytes] = []

    def _rows(self, count: int, shift: float) -> dict[str, Any]:
        np = self.np
        columns = {name: self.rng.normal(shift, 1.0, count) for name in self.features}
        score = columns[self.features[0]] + self.rng.normal(0, 0.5, count)
        columns["prediction"] = np.where(score > 0, "yes", "no")
        columns["target"] = np.where(columns[self.features[0]] > 0, "yes", "no")
        columns["confidence"] = self.rng.uniform(0.5, 1.0, count)
        return columns

    def feed_once(self) -> None:
        for i, monitor in enumerate(self.monitors):
            drifting, failing = i % 5 == 1, i % 10 == 3
            rows = self._rows(ROWS_PER_TICK, shift=1.5 if drifting else 0.0)
            errors = self.rng.uniform(size=ROWS_PER_TICK) < (0.2 if failing else 0.0)
            monitor.observe_batch(
                {name: rows[name] for name in self.features},
                predictions=list(rows["prediction"]),
                latencies=self.rng.gamma(2.0, 0.02, ROWS_PER_TICK).tolist(),
                errors=list(errors),
                confidences=rows["confidence"],
            )
            for predicted, actual in zip(rows["prediction"][:5], rows["target"][:5], strict=True):
                monitor.record_feedback(str(predicted), str(actual))

    def render(self) -> None:
        """Each model's exposition, rendered here rather than per scrape: rendering 50 registries takes about
        a second of CPU, which would make Prometheus' 1 s scrapes time out."""
        from prometheus_client import generate_latest

        self.bodies = [generate_latest(monitor.registry) for monitor in self.monitors]

    def feed(self) -> None:
        """WARM_UP_TICKS batches, one a second, then one every TRICKLE seconds: enough to keep every window
        holding traffic, while leaving the CPU to Prometheus' 1 s scrapes."""
        ticks = 0
        while not self.stop.wait(TICK if ticks < WARM_UP_TICKS else TRICKLE):
            if not self.paused.is_set():
                self.feed_once()
                self.render()
                ticks += 1

    @contextmanager
    def serving(self) -> Iterator[int]:
        """Serve /m/<i> on a free loopback port and feed traffic until the block ends; yields the port."""
        from prometheus_client import CONTENT_TYPE_LATEST

        models = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                match = re.fullmatch(r"/m/(\d+)", self.path)
                if not match or int(match.group(1)) >= len(models.bodies):
                    self.send_error(404)
                    return
                body = models.bodies[int(match.group(1))]
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threads = [
            threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True),
            threading.Thread(target=self.feed, daemon=True),
        ]
        self.feed_once()
        self.render()
        for thread in threads:
            thread.start()
        try:
            yield int(server.server_address[1])
        finally:
            self.stop.set()
            server.shutdown()
            server.server_close()
            for thread in threads:
                thread.join(timeout=10)


# -- Prometheus ----------------------------------------------------------------------------------------------------


@contextmanager
def prometheus(config: Path, workdir: Path) -> Iterator[str]:
    """Prometheus from PATH on a free loopback port, stopped by its process id when the block ends."""
    binary = shutil.which("prometheus")
    if binary is None:
        sys.exit("prometheus not found on PATH (Debian: apt-get install prometheus)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "prometheus.log"
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",  # to slow scraping and evaluation down before timing (see quiet_down)
        "--log.level=warn",
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: requests.get(f"{url}/-/ready", timeout=2).ok or None, 60, "Prometheus ready", log)
        yield url
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


def wait_for(check: Callable[[], Any], timeout: float, what: str, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result is not None:
                return result
        except (requests.RequestException, ValueError, KeyError) as exc:
            last = exc
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    sys.exit(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last})\n{tail}")


def instant(url: str, promql: str) -> list[dict[str, Any]]:
    answer = requests.post(f"{url}/api/v1/query", data={"query": promql}, timeout=10).json()
    return list(answer["data"]["result"])


def scalar(url: str, promql: str) -> float:
    result = instant(url, promql)
    return float(result[0]["value"][1]) if result else 0.0


def wait_for_rules(url: str, models: int, features: int, patience: float) -> str:
    """Wait until every model's request rate and every feature's PSI are recorded over at least MIN_SAMPLES
    observations, or for ``patience`` seconds: on a busy machine, Prometheus may take longer than its
    evaluation interval to evaluate the drift rules of 1,000 features, and then misses some. Returns what the
    recorded series cover, for the report."""
    w, full = WINDOW, models * features
    deadline = time.monotonic() + patience
    while True:
        try:
            rates = scalar(url, "count(model:mlmon_requests:rate5m > 0)")
            psi = scalar(url, f"count(model_feature:mlmon_feature_psi:{w})")
            seen = scalar(url, f"count(model_feature:mlmon_feature_observations:count{w} >= {MIN_SAMPLES})")
            feedback = scalar(url, f"count(model:mlmon_feedback_f1:macro_{w})")
        except (requests.RequestException, ValueError, KeyError) as exc:
            print(f"  waiting: {exc}", file=sys.stderr)
            rates = psi = seen = feedback = 0.0
        coverage = (
            f"{rates:.0f}/{models} request rates, {psi:.0f}/{full} PSI series, "
            f"{seen:.0f}/{full} features with {MIN_SAMPLES}+ observations, {feedback:.0f}/{models} F1"
        )
        print(f"  waiting: {coverage}", file=sys.stderr)
        if (rates, psi, seen, feedback) == (models, full, full, models) or time.monotonic() > deadline:
            return coverage
        time.sleep(2)


def api_requests(url: str) -> dict[str, float]:
    """Prometheus' own count of API requests, by handler."""
    counts: dict[str, float] = {}
    pattern = re.compile(r'^prometheus_http_requests_total\{code="[^"]*",handler="(/api/v1/[^"]*)"\} (\S+)$')
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if match := pattern.match(line):
            counts[match.group(1)] = counts.get(match.group(1), 0.0) + float(match.group(2))
    return counts


def requests_between(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    return {h: int(after[h] - before.get(h, 0.0)) for h in sorted(after) if after[h] > before.get(h, 0.0)}


# -- MLflow --------------------------------------------------------------------------------------------------------


def register_models(tracking_uri: str, models: int) -> None:
    """Every model registered once, version 1 from a run with two metrics, behind the champion alias."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("bench-status")
    for i in range(models):
        name = model_name(i)
        run = client.create_run(experiment, run_name=name)
        client.log_metric(run.info.run_id, "val_auc", 0.8 + i / 1000)
        client.log_metric(run.info.run_id, "val_loss", 0.3 - i / 1000)
        client.set_terminated(run.info.run_id)
        client.create_registered_model(name)
        client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
        client.set_registered_model_alias(name, "champion", "1")


# -- measuring -----------------------------------------------------------------------------------------------------


def mlmon_command() -> str:
    return shutil.which("mlmon") or str(Path(sys.executable).with_name("mlmon"))


def run_cases(
    cases: list[tuple[str, list[str]]], runs: int, cwd: Path, prometheus_url: str
) -> tuple[dict[str, list[float]], dict[str, list[dict[str, int]]]]:
    """Each case as a whole process, round-robin after one warm-up round: wall times and the API requests
    Prometheus received during each run."""
    env = {**os.environ, **CLI_ENV}
    for label, args in cases:
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(f"warm-up of {label} exited {done.returncode}:\n{done.stderr[-2000:]}", file=sys.stderr)
    times: dict[str, list[float]] = {label: [] for label, _ in cases}
    counted: dict[str, list[dict[str, int]]] = {label: [] for label, _ in cases}
    for _ in range(runs):
        for label, args in cases:
            before = api_requests(prometheus_url)
            start = time.perf_counter()
            done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
            times[label].append(time.perf_counter() - start)
            counted[label].append(requests_between(before, api_requests(prometheus_url)))
            if done.returncode != 0:
                print(f"{label} exited {done.returncode}: {done.stderr[-500:]}", file=sys.stderr)
    return times, counted


def in_process(spec: Any, prometheus_url: str, runs: int, timeout: float) -> dict[str, Any]:
    """gather_status timed in-process, request by request, and the time to turn the report into output."""

    from mlmon import promapi
    from mlmon.cli.output import json_text
    from mlmon.cli.status import _screen
    from mlmon.status import gather_status

    timings: list[tuple[str, float]] = []

    class TimedClient(promapi.PrometheusClient):
        def _send(self, method: str, endpoint: str, form: dict[str, str] | None) -> tuple[int, str, str]:
            start = time.perf_counter()
            try:
                return super()._send(method, endpoint, form)
            finally:
                route = endpoint.split("/api/v1/")[-1].split("?")[0]
                timings.append((route, time.perf_counter() - start))

    totals: list[float] = []
    per_route: dict[str, list[float]] = {}
    render_json: list[float] = []
    render_view: list[float] = []
    report = None
    for _ in range(runs + 1):  # the first run warms the imports and the connection pool up
        timings.clear()
        with TimedClient(prometheus_url, timeout=timeout) as client:
            start = time.perf_counter()
            report = gather_status(
                spec, prometheus=client, prometheus_url=prometheus_url, registry=None, mlflow_uri="-"
            )
            totals.append(time.perf_counter() - start)
        for route, seconds in timings:
            per_route.setdefault(route, []).append(seconds)
        start = time.perf_counter()
        json_text(report.to_json())
        render_json.append(time.perf_counter() - start)
        start = time.perf_counter()
        _screen(report)
        render_view.append(time.perf_counter() - start)
    assert report is not None and report.prometheus.ok, report and report.prometheus
    return {
        "gather": totals[1:],
        "routes": {route: seconds[1:] for route, seconds in per_route.items()},
        "json": render_json[1:],
        "view": render_view[1:],
        "verdicts": [m.verdict for m in report.models],
    }


def heaviest_imports(args: list[str], cwd: Path, top: int = 8) -> list[tuple[str, float]]:
    """The top-level imports of one run, by cumulative import time (python -X importtime)."""
    env = {**os.environ, **CLI_ENV, "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    found: list[tuple[str, float]] = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)$", line)
        if match and len(match.group(2)) <= 1:  # imported by the script itself, not by another module
            found.append((match.group(3), int(match.group(1)) / 1e6))
    return sorted(found, key=lambda item: -item[1])[:top]


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:,.0f} | {min(values) * 1000:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--interval", default="1s", help="Prometheus' scrape and evaluation interval")
    parser.add_argument("--timeout", type=float, default=30, help="mlmon status --timeout")
    parser.add_argument(
        "--patience", type=float, default=300, help="seconds to wait for the rules to cover every feature"
    )
    parser.add_argument("--mlflow", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--hold",
        type=float,
        default=0,
        metavar="SECONDS",
        help="keep the stack up this long before timing (to profile `mlmon status` by hand against it)",
    )
    options = parser.parse_args()
    # Stopped by a signal (a --hold ended early, say), still stop Prometheus and remove the folder.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from mlmon.spec import spec_from_dict

    with tempfile.TemporaryDirectory(prefix="mlmon-bench-status-") as folder:
        tmp = Path(folder)
        store = None
        if options.mlflow:
            # Before the stack starts: registering takes a while, and the bench should not wait on it later.
            store = f"sqlite:///{tmp / 'mlflow.db'}"
            print(f"registering {options.models} models in {store} ...", file=sys.stderr)
            register_models(store, options.models)
        print(f"building {options.models} monitors with {options.features} features ...", file=sys.stderr)
        models = Models(options.models, options.features)
        with models.serving() as exporter_port:
            missing_store = f"sqlite:///{tmp / 'no-store.db'}"
            raw = spec_dict(options.models, options.features, exporter_port, missing_store, options.interval)
            spec = spec_from_dict(raw)
            (tmp / "mlmon.yaml").write_text(yaml.safe_dump(raw))
            config = render(spec, tmp / "monitoring")
            with prometheus(config, tmp) as url:
                print(f"Prometheus at {url}; feeding traffic ...", file=sys.stderr)
                coverage = wait_for_rules(url, options.models, options.features, options.patience)
                models.paused.set()
                quiet_down(config, url, options.interval)
                if options.hold:
                    print(
                        f"holding for {options.hold:.0f} s: mlmon status --spec {tmp / 'mlmon.yaml'} "
                        f"--prometheus-url {url} --mlflow-uri {store or missing_store}",
                        file=sys.stderr,
                    )
                    time.sleep(options.hold)
                measure(options, spec, url, tmp, missing_store, store, coverage)


def quiet_down(config: Path, url: str, interval: str) -> None:
    """Once the data is in, scrape and evaluate once a minute: at a 1 s interval, evaluating the drift rules of
    1,000 features keeps a core of this 2-core machine busy, and the timings would measure that contention
    rather than status. The recorded series stay fresh (Prometheus' lookback is 5 minutes)."""
    text = config.read_text()
    for key in ("scrape_interval", "evaluation_interval"):
        text = text.replace(f"{key}: {interval}\n", f"{key}: 1m\n")
    config.write_text(text)
    requests.post(f"{url}/-/reload", timeout=30).raise_for_status()
    time.sleep(5)  # let the reload settle before the first timed run


def measure(
    options: argparse.Namespace,
    spec: Any,
    url: str,
    tmp: Path,
    missing_store: str,
    store: str | None,
    coverage: str,
) -> None:
    mlmon = mlmon_command()
    status = [mlmon, "status", "--spec", str(tmp / "mlmon.yaml"), "--prometheus-url", url]
    status += ["--timeout", str(options.timeout)]
    status_json = [*status, "--json", "--mlflow-uri", missing_store]
    imports = "import mlmon.cli.status, mlmon.status, mlmon.backends.prometheus, mlmon.spec, yaml"
    cases = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("mlmon --help", [mlmon, "--help"]),
        (f"python -c '{imports}'", [sys.executable, "-c", imports]),
        ("mlmon status --json (MLflow store missing: skipped)", status_json),
        (
            "mlmon status, human view (MLflow store missing: skipped)",
            [*status, "--mlflow-uri", missing_store],
        ),
    ]
    if store is not None:
        cases.append(
            (
                f"mlmon status --json (MLflow sqlite store, {options.models} models)",
                [*status, "--json", "--mlflow-uri", store],
            )
        )
        cases.append(
            (
                f"mlmon status, human view (MLflow sqlite store, {options.models} models)",
                [*status, "--mlflow-uri", store],
            )
        )
    print(f"timing {len(cases)} cases, {options.runs} runs each ...", file=sys.stderr)
    times, counted = run_cases(cases, options.runs, tmp, url)
    inside = in_process(spec, url, options.runs, options.timeout)

    n, f = options.models, options.features
    print(
        f"\n### `mlmon status`, {n} models x {f} features, local Prometheus ({options.runs} runs, interleaved)\n"
    )
    print(
        f"Prometheus scraped and evaluated every {options.interval} until the rules had data ({coverage}), then"
        " once a minute while the commands were timed.\n"
    )
    print("| command | median ms | fastest ms | HTTP requests to Prometheus per run |")
    print("|---|---:|---:|---|")
    for label, _ in cases:
        runs = counted[label]
        total = {sum(r.values()) for r in runs}
        routes = ", ".join(f"{h} {c}" for h, c in runs[-1].items()) if runs[-1] else ""
        shown = f"{'/'.join(map(str, sorted(total)))} ({routes})" if routes else "0"
        print(f"| {label} | {ms(times[label])} | {shown} |")

    verdicts = inside["verdicts"]
    summary = ", ".join(f"{v} {verdicts.count(v)}" for v in ("OK", "WARN", "CRIT", "NO DATA"))
    print(f"\n### Inside the process (gather_status with a timed client; verdicts: {summary})\n")
    print("| part | median ms | fastest ms |")
    print("|---|---:|---:|")
    print(f"| gather_status, all of it | {ms(inside['gather'])} |")
    for route, seconds in sorted(inside["routes"].items()):
        print(f"| - request {route} (round trip, body read) | {ms(seconds)} |")
    print(f"| report to JSON text | {ms(inside['json'])} |")
    print(f"| report to the terminal view | {ms(inside['view'])} |")

    print("\n### Heaviest top-level imports of one `mlmon status --json` run (python -X importtime)\n")
    print("| module | cumulative ms |")
    print("|---|---:|")
    for module, seconds in heaviest_imports(status_json, tmp):
        print(f"| {module} | {seconds * 1000:,.0f} |")


if __name__ == "__main__":
    main()
