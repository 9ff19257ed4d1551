"""`mlmon status`: one screen that says whether every model is healthy, from PromQL and the MLflow registry."""

from __future__ import annotations

import math
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlmon.cli import output
from mlmon.cli.output import handles_errors
from mlmon.errors import BackendError, CheckFailed
from mlmon.settings import DEFAULT_PROMETHEUS_URL, optional_spec, registry_uri_for, tracking_uri_for
from mlmon.sparklines import sparkline

if TYPE_CHECKING:
    from mlmon.spec import Spec
    from mlmon.status import Check, ModelStatus, StatusReport

# All of Prometheus' answers together within little more than one timeout: a slow server makes status slow
# once, not once per question.
PROMETHEUS_BUDGET_FACTOR = 1.5
VERDICT_STYLE = {"OK": "green", "WARN": "yellow", "CRIT": "bold red", "NO DATA": "dim"}
PER_FEATURE = ("feature_psi", "missing_ratio")
FEATURES_SHOWN = 3  # healthy features shown per check; the rest are counted


@handles_errors
def status_command(
    spec_file: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            "-s",
            envvar="MLMON_SPEC",
            help="The spec. Default: mlmon.yaml when it exists; without one, every model Prometheus knows, "
            "with default thresholds.",
            show_default=False,
        ),
    ] = None,
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            envvar="MLMON_PROMETHEUS_URL",
            help="Prometheus (or a compatible API, with its path prefix) to query; overrides the spec.",
        ),
    ] = None,
    mlflow_uri: Annotated[
        str | None,
        typer.Option(
            envvar="MLFLOW_TRACKING_URI",
            help="MLflow tracking URI; overrides the spec. The registry is the tracking store's, unless "
            "MLFLOW_REGISTRY_URI (or, with the spec's tracking store, its mlflow.registry_uri) names another.",
        ),
    ] = None,
    models: Annotated[list[str] | None, typer.Option("--model", help="Only this model (repeatable).")] = None,
    window: Annotated[str, typer.Option(help="Span of the sparklines, a Prometheus duration.")] = "1h",
    watch: Annotated[
        float | None, typer.Option(help="Refresh in place every SECONDS until Ctrl-C.", min=1.0)
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="Exit 3 when a model is CRIT (and 1 when Prometheus cannot be asked)."),
    ] = False,
    strict: Annotated[bool, typer.Option("--strict", help="With --check, WARN fails too.")] = False,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            envvar="MLMON_PROMETHEUS_CA_FILE", help="CA bundle to verify Prometheus' TLS certificate."
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Do not verify Prometheus' TLS certificate (not recommended).")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds each whole answer from Prometheus or an MLflow server may take; all of one "
            "server's answers together get at most 1.5 times this.",
            min=0.1,
        ),
    ] = 5.0,
) -> None:
    """Health and drift of every model, from Prometheus and the MLflow registry.

    For each model: targets up, request rate, error ratio, latency p50/p95/p99, PSI per feature (the most
    drifted first), missing ratios, prediction PSI, confidence, accuracy and F1 where feedback exists, model
    age, the alerts firing, and which registry version each alias points to against the version served.
    Each check is OK, WARN, CRIT or NO DATA against the spec's thresholds; a model gets its worst.

    Credentials for Prometheus come from the environment: MLMON_PROMETHEUS_USERNAME with
    MLMON_PROMETHEUS_PASSWORD(_FILE), or MLMON_PROMETHEUS_BEARER_TOKEN(_FILE).

    Exit codes: 0; 1 when neither backend answered, or Prometheus did not and no spec names the models;
    with --check, 1 when Prometheus did not answer and 3 when a model is CRIT (or WARN, with --strict).
    """
    spec = optional_spec(spec_file)
    prom_url = prometheus_url or (spec.prometheus.url if spec else DEFAULT_PROMETHEUS_URL)
    tracking_uri = tracking_uri_for(spec, mlflow_uri)
    registry_uri = registry_uri_for(spec, tracking_given=mlflow_uri is not None)
    if insecure:
        output.warn("not verifying Prometheus' TLS certificate (--insecure)")

    def gather() -> StatusReport:
        return _gather(
            spec,
            prom_url,
            (tracking_uri, registry_uri),
            models or (),
            window,
            ca_file,
            insecure,
            timeout,
            not json_output,
        )

    if watch is not None and not json_output:
        _watch(gather, watch)
        return
    report = gather()
    fatal = _fatal(report, check)
    if json_output:
        output.print_json(report.to_json())  # a script reads what was learned, even on failure
    elif fatal is None:
        _print(report)
    if fatal is not None:
        raise fatal  # one error, which holds the cause: no view of nothing and no warning repeating it
    _report_gaps(report)
    _exit(report, check, strict)


def _gather(
    spec: Spec | None,
    prom_url: str,
    mlflow_uris: tuple[str, str | None],
    models: list[str] | tuple[str, ...],
    window: str,
    ca_file: Path | None,
    insecure: bool,
    timeout: float,
    sparklines: bool,
) -> StatusReport:
    from mlmon.backends.mlflow.registry import registry_lookup
    from mlmon.backends.prometheus import Credentials, PrometheusClient
    from mlmon.spec import duration_seconds
    from mlmon.status import gather_status

    try:
        duration_seconds(window)
    except ValueError:
        raise typer.BadParameter(f"{window!r} is not a Prometheus duration such as 30m, 1h or 1d") from None
    tracking_uri, registry_uri = mlflow_uris
    credentials = Credentials.from_environment()
    with PrometheusClient(
        prom_url,
        credentials=credentials,
        ca_file=str(ca_file) if ca_file else None,
        verify_tls=not insecure,
        timeout=timeout,
        budget=timeout * PROMETHEUS_BUDGET_FACTOR,
    ) as client:
        return gather_status(
            spec,
            prometheus=client,
            prometheus_url=prom_url,
            registry=registry_lookup(tracking_uri, timeout, registry_uri),
            mlflow_uri=_shown_uri(tracking_uri)
            + (f" (registry {_shown_uri(registry_uri)})" if registry_uri not in (None, tracking_uri) else ""),
            only=models,
            window=window,
            history=sparklines,
        )


def _shown_uri(uri: str) -> str:
    from mlmon.spec import without_credentials

    return without_credentials(uri)[0]


def _fatal(report: StatusReport, check: bool) -> BackendError | None:
    """The error that ends status without a view: Prometheus needed and silent, or nothing answered."""
    prometheus, mlflow = report.prometheus, report.mlflow
    if check and not prometheus.ok:
        return BackendError(f"cannot check the models: {prometheus.error}", prometheus.hint)
    if not prometheus.ok and not mlflow.ok:
        return BackendError(f"neither Prometheus nor MLflow answered: {prometheus.error}", prometheus.hint)
    if not prometheus.ok and not report.models:
        # Without a spec the models are the ones Prometheus knows: nothing was learned at all.
        return BackendError(
            f"no model to show: Prometheus did not answer ({prometheus.error})",
            "; ".join(filter(None, [prometheus.hint, "or name the models in mlmon.yaml (mlmon init)"])),
        )
    return None


def _exit(report: StatusReport, check: bool, strict: bool) -> None:
    if check:
        failing = [m.name for m in report.models if m.verdict == "CRIT" or (strict and m.verdict == "WARN")]
        if failing:
            raise CheckFailed(
                f"{len(failing)} model(s) unhealthy: {', '.join(failing)}",
                "see `mlmon status` for the checks",
            )


def _report_gaps(report: StatusReport) -> None:
    for name, backend in (("Prometheus", report.prometheus), ("MLflow", report.mlflow)):
        if not backend.ok and backend.error:
            output.note([("warning:", "yellow"), (f" {name} ({backend.url}): {backend.error}", "")])
            if backend.hint:
                output.note([("hint:", "dim"), (f" {backend.hint}", "")])


def _print(report: StatusReport) -> None:
    sys.stdout.write(_screen(report))
    sys.stdout.flush()


def _screen(report: StatusReport) -> str:
    """The view as text, coloured and cut to the width on a terminal; laid out without rich, which took a
    quarter of a second for 50 models."""
    colour = output.stdout_colour()
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    return output.styled_text(_view(report), colour=colour, width=width)


def _watch(gather: Any, seconds: float) -> None:
    """Redraw in place on a terminal (elsewhere, one view after another) until Ctrl-C."""
    try:
        while True:
            screen = _screen(gather())
            sys.stdout.write(("\x1b[H\x1b[2J" if sys.stdout.isatty() else "\n") + screen)
            sys.stdout.flush()
            time.sleep(seconds)
    except KeyboardInterrupt:
        pass


# ------------------------------------------------------------------------------------------------------
# The view: lines of (text, style) spans


Line = list[tuple[str, str]]


def _view(report: StatusReport) -> list[Line]:
    worst = report.worst()
    prom, mlflow = report.prometheus, report.mlflow
    lines: list[Line] = [
        [
            ("mlmon status ", "bold"),
            (f"{len(report.models)} model(s), worst ", ""),
            (worst, VERDICT_STYLE[worst]),
            (f"  ·  Prometheus {prom.url} ", "dim"),
            ("ok" if prom.ok else "UNREACHABLE", "green" if prom.ok else "bold red"),
            (f"  ·  MLflow {mlflow.url} ", "dim"),
            ("ok" if mlflow.ok else "UNAVAILABLE", "green" if mlflow.ok else "yellow"),
        ]
    ]
    if not report.models:
        lines.append(
            [("No models: the spec lists none, or Prometheus exports no mlmon_model_info.", "yellow")]
        )
    for model in report.models:
        lines += _model_view(model)
    return lines


def _model_view(model: ModelStatus) -> list[Line]:
    lines: list[Line] = [
        [],
        [(model.name, "bold"), ("  ", ""), (model.verdict, VERDICT_STYLE[model.verdict])],
    ]
    if model.registry is not None:
        g = model.registry
        aliases = ", ".join(f"{a}=v{v}" for a, v in sorted(g.aliases.items())) or "no aliases"
        served = ", ".join(f"v{v}" for v in g.served_versions) or "unknown"
        age = f", {g.age_days:.1f} days old" if g.age_days is not None else ""
        lines.append([(f"  registry {g.registered_model}: {aliases}; serving {served}{age}", "dim")])
        if g.metrics:
            shown = ", ".join(f"{k}={_number(v)}" for k, v in sorted(g.metrics.items())[:8])
            lines.append([(f"  training metrics of {g.watched_alias}: {shown}", "dim")])
    elif model.registry_error:
        lines.append([(f"  registry: {model.registry_error}", "yellow")])
    spark = []
    for key, label in (("traffic", "traffic"), ("latency_p95", "p95 latency"), ("drift", "worst drift")):
        points = model.history.get(key)
        if points:
            values = [v for _, v in points]
            spark.append(f"{label} {sparkline(values)} {_number(values[-1])}")
    if spark:
        lines.append([("  " + "   ".join(spark), "")])
    lines += _checks_lines(model.checks)
    for alert in model.alerts:
        since = ""
        if alert.active_since is not None:
            since = f" for {_duration(time.time() - alert.active_since.timestamp())}"
        feature = f" ({alert.feature})" if alert.feature else ""
        lines.append(
            [
                ("  alert ", "dim"),
                (f"{alert.name}{feature}", "bold red" if alert.severity == "critical" else "yellow"),
                (f" {alert.state}{since}: {alert.summary}", ""),
            ]
        )
    return lines


def _checks_lines(checks: tuple[Check, ...]) -> list[Line]:
    """The checks as aligned columns; on a narrow terminal lines are cut, not wrapped."""
    rows: list[tuple[str, str, str, str, str]] = [("check", "value", "threshold", "verdict", "detail")]
    for check in _shown_checks(checks):
        if isinstance(check, tuple):
            name, hidden = check
            rows.append((f"{name} (+{hidden})", "", "", "", "more features, OK or no data"))
            continue
        name = f"{check.name} {check.feature}" if check.feature is not None else check.name
        threshold = "" if check.threshold is None else _number(check.threshold)
        rows.append((name, _value(check), threshold, check.verdict, check.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines: list[Line] = []
    for index, (name, value, threshold, verdict, detail) in enumerate(rows):
        header = index == 0
        lines.append(
            [
                (
                    f"{name:<{widths[0]}}  {value:>{widths[1]}}  {threshold:>{widths[2]}}  ",
                    "bold" if header else "",
                ),
                (f"{verdict:<{widths[3]}}", "bold" if header else VERDICT_STYLE.get(verdict, "")),
                (f"  {detail}", "bold" if header else "dim"),
            ]
        )
    return lines


def _shown_checks(checks: tuple[Check, ...]) -> list[Check | tuple[str, int]]:
    """Every model-wide check; of the per-feature ones, the unhealthy and the worst few, the rest counted
    as (check name, how many are not shown)."""
    shown: list[Check | tuple[str, int]] = []
    for name in dict.fromkeys(ch.name for ch in checks):
        group = [ch for ch in checks if ch.name == name]
        if name not in PER_FEATURE:
            shown += group
            continue
        keep = [ch for ch in group if ch.verdict in ("WARN", "CRIT")]
        healthy = [ch for ch in group if ch not in keep]
        keep += healthy[:FEATURES_SHOWN]
        shown += [ch for ch in group if ch in keep]
        if len(group) > len(keep):
            shown.append((name, len(group) - len(keep)))
    return shown


def _value(check: Check) -> str:
    if check.name == "targets_up" and check.value is not None and check.threshold is not None:
        return f"{check.value:.0f}/{check.threshold:.0f}"
    if check.value is None:
        return "-"
    return _number(check.value)


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value == 0 or 0.001 <= abs(value) < 100_000:
        return f"{value:.4g}" if abs(value) < 1 else f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
