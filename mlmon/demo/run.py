"""The whole loop on one machine, in one call: what ``mlmon demo`` runs.

1. A workspace folder: synthetic credit data, two trained model versions, their reference profiles.
2. MLflow (a sqlite store in the workspace): a run per version with params, metrics and the profile,
   registered under one name with the aliases champion and challenger. This runs beside steps 3-5.
3. mlmon.yaml for the stack on free loopback ports, and the monitoring files rendered from it as `mlmon init`
   renders them.
4. The instrumented service (serving the champion), Prometheus and Alertmanager, from PATH.
5. Traffic like the training data, then drifted in income and debt ratio, with failures and late feedback;
   then a wait until Prometheus' drift alert fires.
6. `mlmon status` and `mlmon compare-runs` as a user runs them, and an offline drift report of the drifted
   data against the reference data.

Without Prometheus on PATH, steps 4 and 5 are skipped and the rest still runs. Every process the demo
starts is stopped by its process id when the demo ends or is interrupted, unless ``keep`` leaves the stack
running.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mlmon.demo.processes import (
    PROCESSES_FILE,
    DemoError,
    ProcessGroup,
    StartedProcess,
    recorded_processes_alive,
)
from mlmon.demo.registry import TrainedVersion
from mlmon.demo.stack import INSTALL_HINT, Binaries, PrometheusQueries, find_binaries, free_port
from mlmon.demo.traffic import TrafficPlan, TrafficSent

T = TypeVar("T")

MODEL_NAME = "credit-risk"
MARKER_FILE = ".mlmon-demo"
SPEC_FILE = "mlmon.yaml"
MONITORING_DIR = "monitoring"
# Short enough to fit the demo, long enough (the spec's minimum) to be a real rolling window.
WINDOW = "5m"
# Enough observations that sampling noise stays under the warning threshold (the PSI of n draws from the
# reference itself is about (bins - 1) / n), and a few seconds of drift before the alert fires.
MIN_DRIFT_SAMPLES = 200
DRIFT_FOR = "5s"
DRIFTED_FEATURES = ("income", "debt_ratio")
# The demo's Alertmanager groups with group_wait 1s and group_interval 10s: every firing alert reaches the
# webhook within about 12 s of firing.
ALERT_DELIVERY_SECONDS = 20
VERDICT_ORDER = ("OK", "NO DATA", "WARN", "CRIT")


class Reporter(Protocol):
    """Where the demo says what it is doing (the command line draws it on stderr)."""

    def step(self, message: str) -> None: ...

    def progress(self, task: str, done: float, total: float, detail: str = "") -> None: ...

    def warn(self, message: str) -> None: ...


class SilentReporter:
    def step(self, message: str) -> None:
        pass

    def progress(self, task: str, done: float, total: float, detail: str = "") -> None:
        pass

    def warn(self, message: str) -> None:
        pass


@dataclass(frozen=True)
class DemoOptions:
    workspace: Path
    keep: bool = False
    live: bool = True  # False: skip the service, Prometheus and Alertmanager even when installed
    machine_output: bool = False  # status and compare-runs as JSON rather than their tables
    color: bool = False  # their tables in colour (when the demo's own stdout is a terminal)
    columns: int | None = None
    alert_timeout: float = 45.0  # seconds to wait for the drift alert once the traffic is sent
    traffic: TrafficPlan = field(default_factory=TrafficPlan)


@dataclass
class CommandOutput:
    """A command the demo ran as a user would, and what it printed."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def shown(self) -> str:
        """The command line to show, as a user would type it."""
        return "mlmon " + " ".join(_quote(a) for a in self.args)

    def json(self) -> Any:
        import json

        try:
            return json.loads(self.stdout)
        except ValueError:
            return None


@dataclass
class DemoResult:
    workspace: Path
    spec_path: Path
    tracking_uri: str
    registered_model: str
    versions: list[TrainedVersion]
    live: bool = False
    missing_tools: list[str] = field(default_factory=list)
    install_hint: str | None = None
    offline_drift: dict[str, Any] | None = None
    offline_report: Any = None  # the DriftReport behind offline_drift, for the terminal; not in the JSON
    live_psi: dict[str, float] = field(default_factory=dict)
    alerts_firing: list[dict[str, str]] = field(default_factory=list)
    alerts_delivered: list[dict[str, str]] = field(default_factory=list)
    alert_fired: bool = False
    latency: dict[str, float] = field(default_factory=dict)
    traffic: TrafficSent | None = None
    status: CommandOutput | None = None
    compare: CommandOutput | None = None
    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    service_url: str | None = None
    processes: list[dict[str, Any]] = field(default_factory=list)
    kept: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    duration_seconds: float = 0.0
    thresholds: dict[str, float] = field(default_factory=dict)

    # What the demo found, from `mlmon status` when it ran, else from Prometheus, else offline.
    def drifted_features(self) -> tuple[list[str], str]:
        checks = self._status_checks()
        if checks is not None:
            found = [
                c["feature"]
                for c in checks
                if c.get("name") == "feature_psi" and c.get("verdict") in ("WARN", "CRIT")
            ]
            return sorted(found), "status"
        if self.live_psi:
            warning = self.thresholds.get("psi_warning", 0.1)
            return sorted(f for f, v in self.live_psi.items() if v > warning), "prometheus"
        if self.offline_drift is not None:
            return sorted(self.offline_drift["drifted_features"]), "offline"
        return [], "none"

    def latency_verdict(self) -> str | None:
        checks = self._status_checks()
        if checks is not None:
            verdicts = [
                c.get("verdict", "NO DATA") for c in checks if str(c.get("name")).startswith("latency_")
            ]
            return max(verdicts, key=VERDICT_ORDER.index) if verdicts else "NO DATA"
        if not self.live:
            return None
        if "p95" not in self.latency:
            return "NO DATA"
        if self.latency.get("p99", 0.0) > self.thresholds["latency_p99_seconds"]:
            return "CRIT"
        return "WARN" if self.latency["p95"] > self.thresholds["latency_p95_seconds"] else "OK"

    def _status_checks(self) -> list[dict[str, Any]] | None:
        data = self.status.json() if self.status is not None else None
        if not isinstance(data, dict):
            return None
        model = next((m for m in data.get("models", []) if m.get("name") == MODEL_NAME), None)
        return list(model.get("checks", [])) if isinstance(model, dict) else None

    def to_dict(self) -> dict[str, Any]:
        drifted, source = self.drifted_features()
        return {
            "workspace": str(self.workspace),
            "spec": str(self.spec_path),
            "tracking_uri": self.tracking_uri,
            "registered_model": self.registered_model,
            "versions": {v.alias: v.version for v in self.versions},
            "served": {"alias": "champion", "version": self.versions[0].version},
            "runs": [v.to_dict() for v in self.versions],
            "live": self.live,
            "missing_tools": self.missing_tools,
            "install_hint": self.install_hint,
            "drifted_features": drifted,
            "drifted_features_source": source,
            "expected_drifted_features": sorted(DRIFTED_FEATURES),
            "live_psi": self.live_psi,
            "latency_verdict": self.latency_verdict(),
            "latency_seconds": self.latency,
            "alert_fired": self.alert_fired,
            "alerts_firing": self.alerts_firing,
            "alerts_delivered": self.alerts_delivered,
            "offline_drift": self.offline_drift,
            "traffic": self.traffic.to_dict() if self.traffic else None,
            "status": self.status.json() if self.status else None,
            "status_error": _command_error(self.status) if self.status else None,
            "compare": self.compare.json() if self.compare else None,
            "compare_error": _command_error(self.compare) if self.compare else None,
            "prometheus_url": self.prometheus_url,
            "alertmanager_url": self.alertmanager_url,
            "service_url": self.service_url,
            "processes": self.processes,
            "kept": self.kept,
            "duration_seconds": round(self.duration_seconds, 2),
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
        }


def _command_error(command: CommandOutput) -> str | None:
    return (
        None if command.returncode == 0 else (command.stderr.strip()[-1000:] or f"exit {command.returncode}")
    )


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


# ------------------------------------------------------------------------------------------------------


def prepare_workspace(workspace: Path) -> Path:
    """Create the workspace, or clear one a previous demo made; never touch a folder the demo did not make."""
    workspace = workspace.resolve()
    if workspace.exists() and not workspace.is_dir():
        raise DemoError(f"{workspace} is a file, not a folder", "pass --workspace with a new folder")
    if workspace.is_dir() and any(workspace.iterdir()):
        if not (workspace / MARKER_FILE).exists():
            raise DemoError(
                f"{workspace} exists and was not made by `mlmon demo`: not touching it",
                "pass --workspace with a new or empty folder",
            )
        alive = recorded_processes_alive(workspace / PROCESSES_FILE)
        if alive:
            pids = ", ".join(f"{p['name']} {p['pid']}" for p in alive)
            raise DemoError(
                f"a demo kept running in {workspace} is still up ({pids})",
                f"stop it with `mlmon demo --stop --workspace {workspace}`, or pass another --workspace",
            )
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / MARKER_FILE).write_text(
        "Made by `mlmon demo`; the next run in this folder replaces everything in it.\n", encoding="utf-8"
    )
    return workspace


def write_spec(
    path: Path,
    *,
    prometheus_port: int,
    alertmanager_port: int,
    service_port: int,
    webhook_url: str | None,
    tracking_uri: str,
) -> None:
    """The demo's mlmon.yaml: the real ports, one-second intervals and a short drift window, so the whole
    loop fits in a minute."""
    import yaml

    from mlmon.demo.model import CATEGORICAL, FEATURES

    receivers = [{"name": "demo-webhook", "webhook": {"url": webhook_url}}] if webhook_url else []
    spec = {
        "version": 1,
        "project": "mlmon-demo",
        "prometheus": {
            "url": f"http://127.0.0.1:{prometheus_port}",
            "scrape_interval": "1s",
            "evaluation_interval": "1s",
        },
        "alertmanager": {
            "url": f"http://127.0.0.1:{alertmanager_port}",
            "group_wait": "1s",
            "group_interval": "10s",
            "receivers": receivers,
        },
        "mlflow": {"tracking_uri": tracking_uri},
        "models": [
            {
                "name": MODEL_NAME,
                "registered_model": MODEL_NAME,
                "alias": "champion",
                "targets": [f"127.0.0.1:{service_port}"],
                "features": [
                    {"name": f, "type": "categorical" if f in CATEGORICAL else "numerical"} for f in FEATURES
                ],
                "thresholds": {
                    "drift_window": WINDOW,
                    "feedback_window": WINDOW,
                    "drift_for": DRIFT_FOR,
                    "min_drift_samples": MIN_DRIFT_SAMPLES,
                },
            }
        ],
    }
    header = (
        "# Written by `mlmon demo` for the stack it runs on this machine's free ports. A production spec\n"
        "# keeps the default intervals, a drift window of an hour or more and drift_for of 15m.\n"
    )
    path.write_text(header + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")


def write_csv(path: Path, columns: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    path.parent.mkdir(parents=True, exist_ok=True)
    pa_csv.write_csv(pa.table({name: pa.array(list(values)) for name, values in columns.items()}), path)


def offline_drift(reference: dict[str, Any], current: dict[str, Any]) -> Any:
    """The offline drift report of ``current`` against ``reference``: what `mlmon drift` says."""
    from mlmon.demo.model import FEATURES
    from mlmon.drift.report import drift_report

    return drift_report({f: reference[f] for f in FEATURES}, {f: current[f] for f in FEATURES})


def drift_summary(report: Any) -> dict[str, Any]:
    """The demo's JSON of an offline drift report, in short."""
    return {
        "reference_rows": report.rows_reference,
        "current_rows": report.rows_current,
        "drifted_features": [f.name for f in report.drifted],
        "features": [
            {
                "name": f.name,
                "method": f.method,
                "statistic": f.statistic,
                "threshold": f.threshold,
                "psi": f.psi,
                "drift": f.drift,
            }
            for f in report.features
        ],
    }


def start_mlmon(group: ProcessGroup, name: str, args: list[str], options: DemoOptions) -> StartedProcess:
    """Start an mlmon command in a new process, as a user would run it; its output goes to the logs."""
    env = dict(os.environ)
    if options.color and not options.machine_output:
        env["FORCE_COLOR"] = "1"  # its stdout is a file, but the demo prints it to a terminal
    if options.columns:
        env["COLUMNS"] = str(options.columns)
    env.pop("MLMON_DEBUG", None)
    return group.start(name, [sys.executable, "-m", "mlmon", *args], command=True, env=env)


def finish_mlmon(process: StartedProcess, timeout: float = 120) -> CommandOutput:
    """Wait for a command started by :func:`start_mlmon` and read what it printed."""
    try:
        process.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DemoError(f"`mlmon {process.args[3]}` did not finish within {timeout:.0f}s") from None
    assert process.output is not None
    return CommandOutput(
        process.args[3:],
        process.popen.returncode,
        process.output.read_text(encoding="utf-8", errors="replace"),
        process.log.read_text(encoding="utf-8", errors="replace"),
    )


def in_background(function: Callable[..., T], *args: Any) -> Future[T]:
    """Run ``function`` in a daemon thread: an interrupted demo exits without waiting for it."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # handed to whoever waits for the result
            future.set_exception(exc)

    threading.Thread(target=run, name=f"mlmon-demo-{function.__name__}", daemon=True).start()
    return future


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.monotonic()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.monotonic() - start


# ------------------------------------------------------------------------------------------------------


def run_demo(options: DemoOptions, reporter: Reporter | None = None) -> DemoResult:
    """Run the demo end to end; see the module's description. Raises :class:`DemoError` when a part of
    the stack fails, after stopping every process it started."""
    from mlmon.demo.model import FEATURES, make_credit_data
    from mlmon.demo.registry import open_store, register_versions, train_versions

    say = reporter or SilentReporter()
    start = time.monotonic()
    timings: dict[str, float] = {}
    workspace = prepare_workspace(options.workspace)
    binaries = find_binaries() if options.live else Binaries(None, None)
    tracking_uri = f"sqlite:///{workspace / 'mlflow.db'}"
    result = DemoResult(workspace, workspace / SPEC_FILE, tracking_uri, MODEL_NAME, [])
    mlflow_start = time.monotonic()
    store = in_background(open_store, tracking_uri)
    if options.live:
        result.missing_tools = [
            name for name, path in (("prometheus", binaries.prometheus), ("alertmanager", binaries.alertmanager))
            if path is None
        ]  # fmt: skip
        if binaries.prometheus is None:
            result.install_hint = INSTALL_HINT
            say.warn(f"prometheus is not on PATH, so the live part is skipped: {INSTALL_HINT}")
        elif binaries.alertmanager is None:
            result.install_hint = INSTALL_HINT
            say.warn(
                f"alertmanager is not on PATH: alerts will fire in Prometheus but go nowhere; {INSTALL_HINT}"
            )

    with _timed(timings, "data_and_training"):
        say.step(f"workspace {workspace}: synthetic credit data, two model versions")
        plan = options.traffic
        training = make_credit_data(5000, seed=1)
        validation = make_credit_data(2000, seed=2)
        normal = make_credit_data(plan.normal_rows, seed=3)
        drifted = make_credit_data(plan.drifted_rows, seed=4, shift=plan.shift)
        data = workspace / "data"
        columns = (*FEATURES, "outcome")
        write_csv(data / "reference.csv", {c: training[c] for c in columns})
        write_csv(data / "drifted.csv", {c: drifted[c] for c in columns})
        result.versions = train_versions(training, validation, workspace / "models", MODEL_NAME)

    def register() -> None:
        register_versions(store.result(), result.versions, MODEL_NAME, workspace / "mlartifacts")

    registered = in_background(register)
    drift_report = in_background(offline_drift, training, drifted)
    say.step(f"MLflow: logging both runs to {tracking_uri}, registering {MODEL_NAME} (in the background)")
    group = ProcessGroup(workspace / "logs")
    completed = False
    try:
        if binaries.prometheus is not None:
            _run_live(
                options, binaries, result, say, timings, group, registered, mlflow_start, normal, drifted
            )
        else:
            _render(
                result, timings, prometheus_port=9090, alertmanager_port=9093, service_port=8000, webhook=None
            )
            say.step(f"wrote {result.spec_path} and rendered {workspace / MONITORING_DIR} from it")
            say.step("waiting for MLflow (a new sqlite store migrates its schema first)")
            _finish_mlflow(registered, mlflow_start, timings, say)
            with _timed(timings, "compare_runs"):
                result.compare = finish_mlmon(_start_compare(group, options, result))
        with _timed(timings, "offline_drift"):
            result.offline_report = drift_report.result()
            result.offline_drift = drift_summary(result.offline_report)
        completed = True
    finally:
        if options.keep and completed and result.live:
            result.kept = True
            group.record(workspace / PROCESSES_FILE)
        else:
            with _timed(timings, "stop"):
                if any(p.running() for p in group.processes):
                    say.step("stopping the processes the demo started")
                group.stop()
    result.processes = [p.to_dict() for p in group.processes]
    result.timings = timings
    result.duration_seconds = time.monotonic() - start
    return result


def _finish_mlflow(
    registered: Future[None], started: float, timings: dict[str, float], say: Reporter
) -> None:
    registered.result()
    timings["mlflow"] = time.monotonic() - started
    say.step(f"MLflow: versions 1 (champion) and 2 (challenger) registered ({timings['mlflow']:.1f}s)")


def _start_compare(group: ProcessGroup, options: DemoOptions, result: DemoResult) -> StartedProcess:
    args = ["compare-runs", "--mlflow-uri", result.tracking_uri, "--model", MODEL_NAME]
    args += ["--aliases", "champion", "--aliases", "challenger"]
    return start_mlmon(
        group, "compare-runs", [*args, "--format", "json"] if options.machine_output else args, options
    )


def _render(
    result: DemoResult,
    timings: dict[str, float],
    *,
    prometheus_port: int,
    alertmanager_port: int,
    service_port: int,
    webhook: str | None,
) -> None:
    from mlmon.render import apply_plan, plan_outputs
    from mlmon.spec import load_spec

    with _timed(timings, "spec_and_render"):
        write_spec(
            result.spec_path,
            prometheus_port=prometheus_port,
            alertmanager_port=alertmanager_port,
            service_port=service_port,
            webhook_url=webhook,
            tracking_uri=result.tracking_uri,
        )
        spec = load_spec(result.spec_path)
        apply_plan(plan_outputs(spec, result.workspace / MONITORING_DIR))
        t = spec.models[0].thresholds
        result.thresholds = {
            "psi_warning": t.psi_warning,
            "psi_critical": t.psi_critical,
            "latency_p95_seconds": t.latency_p95_seconds,
            "latency_p99_seconds": t.latency_p99_seconds,
        }


def _run_live(
    options: DemoOptions,
    binaries: Binaries,
    result: DemoResult,
    say: Reporter,
    timings: dict[str, float],
    group: ProcessGroup,
    registered: Future[None],
    mlflow_start: float,
    normal: dict[str, Any],
    drifted: dict[str, Any],
) -> None:
    from mlmon.demo.stack import (
        AlertWebhook,
        alertmanager_args,
        http_ok,
        prometheus_args,
        service_args,
        wait_for,
    )
    from mlmon.demo.traffic import TrafficSender
    from mlmon.layout import ALERTMANAGER_CONFIG, PROMETHEUS_CONFIG

    workspace = result.workspace
    ports = {"prometheus": free_port(), "alertmanager": free_port(), "service": free_port()}
    webhook = AlertWebhook() if binaries.alertmanager else None
    try:
        _render(
            result,
            timings,
            prometheus_port=ports["prometheus"],
            alertmanager_port=ports["alertmanager"],
            service_port=ports["service"],
            webhook=webhook.url if webhook else None,
        )
        say.step(f"wrote {result.spec_path} and rendered {workspace / MONITORING_DIR} from it")
        monitoring = workspace / MONITORING_DIR
        with _timed(timings, "start_stack"):
            result.prometheus_url = f"http://127.0.0.1:{ports['prometheus']}"
            group.start(
                "prometheus",
                prometheus_args(
                    binaries.prometheus or "prometheus",
                    monitoring / PROMETHEUS_CONFIG,
                    workspace / "prometheus",
                    ports["prometheus"],
                ),
                result.prometheus_url,
            )
            if binaries.alertmanager:
                result.alertmanager_url = f"http://127.0.0.1:{ports['alertmanager']}"
                group.start(
                    "alertmanager",
                    alertmanager_args(
                        binaries.alertmanager,
                        monitoring / ALERTMANAGER_CONFIG,
                        workspace / "alertmanager",
                        ports["alertmanager"],
                    ),
                    result.alertmanager_url,
                )
            group.record(workspace / PROCESSES_FILE)
            started = "Prometheus" + (" and Alertmanager" if result.alertmanager_url else "")
            say.step(f"started {started} (data and logs in the workspace)")
        # The service reports the MLflow run it serves, so it starts once the runs exist.
        say.step("waiting for MLflow (a new sqlite store migrates its schema first)")
        _finish_mlflow(registered, mlflow_start, timings, say)
        compare = _start_compare(group, options, result)  # runs while the traffic flows
        champion = result.versions[0]
        with _timed(timings, "start_service"):
            result.service_url = f"http://127.0.0.1:{ports['service']}"
            group.start(
                "service",
                service_args(
                    champion.model_path,
                    champion.profile_path,
                    ports["service"],
                    name=MODEL_NAME,
                    version=champion.version,
                    run_id=champion.run_id,
                    trained_at=champion.trained_at,
                ),
                result.service_url,
            )
            group.record(workspace / PROCESSES_FILE)
            for process in [p for p in group.processes if p.server]:
                ready = f"{process.url}/health" if process.name == "service" else f"{process.url}/-/ready"
                if wait_for(lambda url=ready: http_ok(url), 30, group) is None:  # type: ignore[misc]
                    raise DemoError(
                        f"{process.name} did not get ready within 30s", f"see its log {process.log}"
                    )
            prometheus = PrometheusQueries(result.prometheus_url)
            # Counters must be scraped at zero before traffic, or increase() misses the first requests.
            target_up = f'up{{mlmon_model="{MODEL_NAME}"}} == 1'
            if wait_for(lambda: True if prometheus.query(target_up) else None, 30, group) is None:
                raise DemoError(
                    "Prometheus did not scrape the demo service within 30s", f"see {group.log_dir}"
                )
            say.step(f"service v{champion.version} (champion) on {result.service_url}, scraped by Prometheus")

        with _timed(timings, "traffic"):
            sender = TrafficSender(result.service_url, options.traffic)
            result.traffic = sender.run(
                normal, drifted, lambda phase, done, total: say.progress("traffic", done, total, phase)
            )
            say.step(
                f"sent {result.traffic.requests} requests ({result.traffic.errors} failing on purpose), "
                f"then {result.traffic.feedback} delayed feedback"
            )

        with _timed(timings, "wait_for_alert"):
            result.alert_fired = _wait_for_drift_alert(options, result, prometheus, group, say)
        _read_live(result, prometheus)

        with _timed(timings, "status"):
            say.step("running mlmon status")
            args = ["status", "--spec", str(result.spec_path), "--prometheus-url", result.prometheus_url]
            args += ["--mlflow-uri", result.tracking_uri, "--window", WINDOW]
            status = start_mlmon(
                group, "status", [*args, "--json"] if options.machine_output else args, options
            )
            result.status = finish_mlmon(status)
        if webhook is not None:
            say.step("waiting for Alertmanager to deliver the firing alerts")
            firing = {(a["name"], a["feature"]) for a in result.alerts_firing}

            def all_delivered() -> bool | None:
                got = {
                    (d["name"], d["feature"]) for d in _delivered(webhook.alerts()) if d["status"] == "firing"
                }
                return True if firing <= got else None

            # Alerts that join a group after its first notification go out one group_interval (10 s) later.
            wait_for(all_delivered, ALERT_DELIVERY_SECONDS, group)
            result.alerts_delivered = _delivered(webhook.alerts())
        with _timed(timings, "compare_runs"):
            result.compare = finish_mlmon(compare)
    finally:
        if webhook is not None:
            webhook.close()


def _wait_for_drift_alert(
    options: DemoOptions,
    result: DemoResult,
    prometheus: PrometheusQueries,
    group: ProcessGroup,
    say: Reporter,
) -> bool:
    """Wait until Prometheus has scraped all the traffic and a feature drift alert fires for every feature
    whose PSI is past the critical threshold. Shows the PSI of the drifted features meanwhile."""
    from mlmon import rules
    from mlmon.demo.stack import wait_for

    assert result.traffic is not None
    sent = result.traffic
    model = f'model="{MODEL_NAME}"'
    critical = result.thresholds["psi_critical"]

    def ready() -> bool | None:
        scraped = prometheus.scalar(f"sum(mlmon_requests_total{{{model}}})")
        feedback = prometheus.scalar(f"sum(mlmon_feedback_total{{{model}}})")
        if scraped != sent.requests or feedback != sent.feedback:
            return None
        psi = prometheus.values(f"{rules.feature_psi(WINDOW)}{{{model}}}", "feature")
        firing = _firing(prometheus)
        drifting = {a["feature"] for a in firing if a["name"] == "MlmonFeatureDriftCritical"}
        over = {f for f, v in psi.items() if v > critical}
        return True if drifting and over <= drifting else None

    def show(waited: float) -> None:
        try:
            psi = prometheus.values(f"{rules.feature_psi(WINDOW)}{{{model}}}", "feature")
        except Exception:  # a failed progress read never stops the demo
            psi = {}
        detail = ", ".join(f"{f} PSI {psi[f]:.2f}" for f in DRIFTED_FEATURES if f in psi)
        say.progress("waiting for the drift alert (seconds)", waited, options.alert_timeout, detail)

    fired = wait_for(ready, options.alert_timeout, group, on_wait=show, interval=0.5)
    if fired is None:
        say.warn(f"no feature drift alert fired within {options.alert_timeout:.0f}s; showing what there is")
        return False
    say.step("drift alert firing in Prometheus")
    return True


def _firing(prometheus: PrometheusQueries) -> list[dict[str, str]]:
    found = prometheus.query(f'ALERTS{{alertstate="firing",model="{MODEL_NAME}"}}')
    return sorted(
        (
            {
                "name": a["metric"].get("alertname", ""),
                "severity": a["metric"].get("severity", ""),
                "feature": a["metric"].get("feature", ""),
            }
            for a in found
        ),
        key=lambda a: (a["name"], a["feature"]),
    )


def _read_live(result: DemoResult, prometheus: PrometheusQueries) -> None:
    from mlmon import rules

    model = f'model="{MODEL_NAME}"'
    result.live = True
    result.live_psi = prometheus.values(f"{rules.feature_psi(WINDOW)}{{{model}}}", "feature")
    result.alerts_firing = _firing(prometheus)
    for q in (50, 95, 99):
        value = prometheus.scalar(f"max({rules.latency_quantile(q)}{{{model}}})")
        if value is not None:
            result.latency[f"p{q}"] = value


def _delivered(alerts: list[dict[str, Any]]) -> list[dict[str, str]]:
    seen = {
        (
            a.get("labels", {}).get("alertname", ""),
            a.get("labels", {}).get("feature", ""),
            a.get("status", ""),
        )
        for a in alerts
    }
    return [{"name": n, "feature": f, "status": s} for n, f, s in sorted(seen)]
