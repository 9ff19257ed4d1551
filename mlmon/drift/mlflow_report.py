"""A drift report logged to an MLflow run: per-feature metrics, and the HTML and JSON reports as artifacts.

``mlmon drift REF CUR --log-to-mlflow RUN_ID`` calls :func:`log_report_to_mlflow`. The metrics are

* ``drift.share_drifted``, ``drift.features_drifted``, ``drift.features_compared``;
* per feature, ``drift.<feature>.statistic``, ``.p_value`` (when the verdict's test has one), ``.psi``,
  ``.drift`` (1 or 0), ``.missing_ratio_reference`` and ``.missing_ratio_current``.

MLflow allows letters, digits, ``_ - . : /`` and spaces in a metric name; any other character of a feature
name, and ``/`` too, becomes ``_`` (a suffix keeps two features apart should they then collide). The
artifacts go under ``mlmon/drift/``: ``report.html`` and ``report.json``.
"""

from __future__ import annotations

import functools
import json
import math
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmon.backends.mlflow.client import call_mlflow, mlflow_client, require_run, rest_client

if TYPE_CHECKING:
    from mlflow.entities import Metric

    from mlmon.drift.report import DriftReport

DRIFT_ARTIFACT_DIR = "mlmon/drift"
HTML_NAME, JSON_NAME = "report.html", "report.json"
# MLflow accepts at most 1000 metrics in one log_batch call.
BATCH_SIZE = 1000
_NOT_IN_METRIC_NAME = re.compile(r"[^\w\-. :]")


def drift_metrics(report: DriftReport) -> dict[str, float]:
    """The metrics :func:`log_report_to_mlflow` logs, by name (see the module docstring)."""
    metrics: dict[str, float] = {
        "drift.share_drifted": report.share_drifted,
        "drift.features_drifted": float(len(report.drifted)),
        "drift.features_compared": float(len(report.features)),
    }
    used: set[str] = set()
    for feature in report.features:
        key = metric_name(feature.name, used)
        values = {
            "statistic": feature.statistic,
            "p_value": feature.p_value,
            "psi": feature.psi,
            "drift": 1.0 if feature.drift else 0.0,
            "missing_ratio_reference": feature.missing_ratio_reference,
            "missing_ratio_current": feature.missing_ratio_current,
        }
        metrics.update({f"drift.{key}.{name}": value for name, value in values.items() if value is not None})
    return metrics


def metric_name(feature: str, used: set[str]) -> str:
    """A feature name made fit for an MLflow metric name, unique among ``used`` (which it joins)."""
    base = _NOT_IN_METRIC_NAME.sub("_", feature).strip() or "_"
    base = re.sub(r"\.{2,}", "_", base)  # ".." reads as a path to MLflow
    name, number = base, 2
    while name in used:
        name, number = f"{base}_{number}", number + 1
    used.add(name)
    return name


def log_report_to_mlflow(
    report: DriftReport, run_id: str, html: str, tracking_uri: str | None = None
) -> list[str]:
    """Log ``report``'s metrics and its HTML (``html``) and JSON forms to MLflow run ``run_id``.

    Returns the ``runs:/`` URIs of the artifacts. Raises :class:`~mlmon.errors.BackendError` when the run
    does not exist or MLflow fails."""
    from mlflow.entities import Metric

    client = mlflow_client(tracking_uri)
    where = f"MLflow run {run_id!r}"
    require_run(run_id, client.tracking_uri)
    now = int(time.time() * 1000)
    metrics = [Metric(key, float(value), now, 0) for key, value in drift_metrics(report).items()]
    with tempfile.TemporaryDirectory(prefix="mlmon-drift-") as name:
        folder = Path(name)
        (folder / HTML_NAME).write_text(html, encoding="utf-8")
        (folder / JSON_NAME).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        rest = rest_client(client.tracking_uri)
        for start in range(0, len(metrics), BATCH_SIZE):
            batch = metrics[start : start + BATCH_SIZE]
            if rest is not None:  # a blank 200 is an error here, not a batch logged
                body = {"run_id": run_id, "metrics": [_metric_json(metric) for metric in batch]}
                rest.post("runs/log-batch", body, what=where)
            else:
                log_batch = functools.partial(client.log_batch, run_id, metrics=batch)
                call_mlflow(where, client.tracking_uri, log_batch, transfer=True)
        call_mlflow(
            where,
            client.tracking_uri,
            lambda: client.log_artifacts(run_id, str(folder), artifact_path=DRIFT_ARTIFACT_DIR),
            transfer=True,
        )
    return [f"runs:/{run_id}/{DRIFT_ARTIFACT_DIR}/{name}" for name in (HTML_NAME, JSON_NAME)]


def _metric_json(metric: Metric) -> dict[str, Any]:
    """A metric as MLflow's REST API takes it: protobuf's JSON mapping, where a non-finite double is a string."""
    value: float | str = metric.value
    if math.isnan(metric.value):
        value = "NaN"
    elif math.isinf(metric.value):
        value = "Infinity" if metric.value > 0 else "-Infinity"
    return {"key": metric.key, "value": value, "timestamp": metric.timestamp, "step": metric.step}
