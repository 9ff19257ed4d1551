"""What mlmon's rules cost Prometheus, side by side with the rules of an earlier commit, in one run.

One exporter in this process holds N real ``ModelMonitor``s (20 features of 10 bins each, a prediction, a
confidence, feedback) in one registry and keeps observing rows into them. Two real Prometheus servers scrape
it every 15 s: one loads today's generated rules, the other the rules an earlier commit generates from the same
spec (``--old``, default 1015f65, the rules before the counting group). After the warm-up, every 15 s the bench
reads each group's last evaluation time from /api/v1/rules and reports, per server, the median seconds of rule
evaluation per 15 s of wall time (a group with a longer ``interval`` counts pro rata), the CPU the whole
server used meanwhile (scrapes and storage included), and the missed iterations.

    python bench/rule_eval.py --models 10,100,300 --minutes 6
    python bench/rule_eval.py --models 10,100,300 --minutes 6 --only today   # each server alone

The windows are mlmon's defaults (1h drift, 6h feedback), so the counting group runs once a minute. A run
shorter than a window holds less than the window: the old rules' raw ranges then read fewer samples than they
would in production (which favours the old rules), and today's window sums fewer steps.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import requests
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from mlmon.drift.profile import FeatureProfile, Profile
from mlmon.instrument.monitor import ModelMonitor
from mlmon.render import apply_plan, plan_outputs
from mlmon.spec import spec_from_dict

REPO = Path(__file__).resolve().parents[1]
FEATURES = [f"f{i:02d}" for i in range(20)]
EDGES = tuple(float(e) for e in range(1, 10))  # 10 bins
CLASSES = ("yes", "no")


def _profile(name: str) -> Profile:
    features = tuple(
        FeatureProfile(f, "numerical", tuple([0.1] * 10), edges=EDGES, count=1000) for f in FEATURES
    )
    prediction = FeatureProfile("__prediction__", "categorical", (0.6, 0.4, 0.0), categories=CLASSES)
    return Profile(name, features, prediction, reference_confidence_mean=0.8, reference_accuracy=0.8)


class Exporter:
    """N monitors, each in its own registry served at /metrics/NAME (each model's scrape job reads only its
    own, as with one service per model), observed into by a background thread."""

    def __init__(self, models: int) -> None:
        self.registries = {f"m{i:03d}": CollectorRegistry() for i in range(models)}
        self.monitors = [
            ModelMonitor(name, "1", _profile(name), registry=registry)
            for name, registry in self.registries.items()
        ]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._observe, daemon=True)

    def _observe(self) -> None:
        rng = random.Random(1)
        while not self.stop.is_set():
            for monitor in self.monitors:
                row = {f: rng.uniform(0, 10) for f in FEATURES}
                prediction = rng.choice(CLASSES)
                monitor.observe(row, prediction, confidence=rng.random(), latency_seconds=0.01)
                monitor.record_feedback(prediction, rng.choice(CLASSES))
            time.sleep(0.5)

    def serve(self, port: int) -> Any:
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            body = generate_latest(self.registries[environ["PATH_INFO"].rsplit("/", 1)[-1]])
            start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4")])
            return [body]

        server = make_server("127.0.0.1", port, app, handler_class=Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.thread.start()
        return server


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _render_old(ref: str, spec: dict[str, Any], out: Path) -> None:
    """The rules commit ``ref`` generates from ``spec``: its mlmon/ and templates/, run from a temp folder."""
    source = out / "source"
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "mlmon", "templates"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(source, filter="data")
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(source)!r})\n"
        "from mlmon.render import apply_plan, plan_outputs\n"
        "from mlmon.spec import spec_from_dict\n"
        "from pathlib import Path\n"
        # Its own templates first: an editable install of today's mlmon would otherwise lend its own.
        "spec = json.loads(Path(sys.argv[1]).read_text())\n"
        "apply_plan(plan_outputs(spec_from_dict(spec), Path(sys.argv[2]), sys.argv[3]))\n"
    )
    # The spec goes in a file: at 300 models it is longer than a command line may be.
    spec_file = out / "spec.json"
    spec_file.write_text(json.dumps(spec))
    subprocess.run(
        [sys.executable, "-c", script, str(spec_file), str(out), str(source / "templates")],
        check=True,
        cwd=out,
    )


def _prometheus(config_dir: Path, port: int, binary: str) -> subprocess.Popen[bytes]:
    config = config_dir / "prometheus" / "prometheus.yml"
    data = yaml.safe_load(config.read_text())
    data.pop("alerting", None)  # no Alertmanager here; its absence only adds log lines
    config.write_text(yaml.safe_dump(data))
    args = [binary, f"--config.file={config}", f"--storage.tsdb.path={config_dir / 'tsdb'}"]
    args += [f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=(config_dir / "log").open("wb"))


def _cost(url: str) -> tuple[float, float]:
    """Seconds of evaluation per 15 s of wall time, and of that the share of the groups on window counts."""
    groups = requests.get(f"{url}/api/v1/rules", timeout=30).json()["data"]["groups"]
    total = counts = 0.0
    for group in groups:
        share = float(group["evaluationTime"]) * 15 / float(group["interval"])
        total += share
        if not group["name"].startswith(("mlmon.rates.", "mlmon.alerts.")):
            counts += share
    return total, counts


def _metric(url: str, name: str) -> float:
    """The sum of a metric's samples on a server's own /metrics (the generated config does not scrape it)."""
    lines = requests.get(f"{url}/metrics", timeout=30).text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.split("{")[0].split(" ")[0] == name)


def run(models: int, minutes: float, old: str, binary: str, only: str) -> None:
    exporter = Exporter(models)
    exporter_port = _free_port()
    server = exporter.serve(exporter_port)
    spec = _spec(models, exporter_port)
    with tempfile.TemporaryDirectory() as tmp:
        new_dir, old_dir = Path(tmp) / "new", Path(tmp) / "old"
        apply_plan(plan_outputs(spec_from_dict(spec), new_dir))
        old_dir.mkdir()
        _render_old(old, spec, old_dir)
        configs = {"today": new_dir, old: old_dir}
        if only != "both":  # one server alone: the other's load no longer inflates its figures
            configs = {"today": new_dir} if only == "today" else {old: old_dir}
        ports = {name: _free_port() for name in configs}
        servers = {name: _prometheus(configs[name], ports[name], binary) for name in configs}
        try:
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
            warmup = time.monotonic() + (minutes - 2) * 60
            end = time.monotonic() + minutes * 60
            cpu_start: dict[str, tuple[float, float]] = {}
            while time.monotonic() < end:
                time.sleep(15)
                if time.monotonic() < warmup:
                    continue
                for name, port in ports.items():
                    url = f"http://127.0.0.1:{port}"
                    if name not in cpu_start:
                        cpu_start[name] = (_metric(url, "process_cpu_seconds_total"), time.monotonic())
                    samples[name].append(_cost(url))
            for name, port in ports.items():
                url = f"http://127.0.0.1:{port}"
                groups = requests.get(f"{url}/api/v1/rules", timeout=30).json()["data"]["groups"]
                missed = _metric(url, "prometheus_rule_group_iterations_missed_total")
                series = _metric(url, "prometheus_tsdb_head_series")
                cpu, since = cpu_start[name]
                cores = (_metric(url, "process_cpu_seconds_total") - cpu) / (time.monotonic() - since)
                total = statistics.median(t for t, _ in samples[name])
                windows = statistics.median(w for _, w in samples[name])
                print(
                    f"| {models} | {series:,.0f} | {name} | {len(groups)} | {total:.3f} s ({100 * total / 15:.1f}%) "
                    f"| {windows:.3f} s | {cores:.2f} | {missed:.0f} |",
                    flush=True,
                )
        finally:
            for process in servers.values():
                process.terminate()
                process.wait(timeout=30)
            exporter.stop.set()
            server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="10,100,300", help="comma-separated model counts")
    parser.add_argument("--minutes", type=float, default=6.0, help="per model count; the last 2 are measured")
    parser.add_argument("--old", default="1015f65", help="the commit whose rules to compare with")
    parser.add_argument("--prometheus", default="prometheus")
    parser.add_argument(
        "--only",
        choices=("both", "today", "old"),
        default="both",
        help="run both servers side by side (default), or one alone",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that the servers this started are stopped
    print(
        "| models | head series | rules | groups | evaluation per 15 s (share) | of which on window counts "
        "| CPU cores | missed iterations |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for models in (int(m) for m in args.models.split(",")):
        run(models, args.minutes, args.old, args.prometheus, args.only)


def _spec(models: int, port: int) -> dict[str, Any]:
    return {
        "prometheus": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "models": [
            {
                "name": f"m{i:03d}",
                "targets": [f"127.0.0.1:{port}"],
                "metrics_path": f"/metrics/m{i:03d}",
                "features": [{"name": f} for f in FEATURES],
            }
            for i in range(models)
        ],
    }


if __name__ == "__main__":
    main()
