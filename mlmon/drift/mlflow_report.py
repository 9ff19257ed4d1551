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

import json
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mlmon.drift.mlflow_profile import mlflow_client, mlflow_errors

if TYPE_CHECKING:
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


def require_run(run_id: str, tracking_uri: str | None = None) -> None:
    """Raise :class:`~mlmon.errors.BackendError` unless MLflow run ``run_id`` exists: checked before a long
    comparison rather than after it."""
    client = mlflow_client(tracking_uri)
    with mlflow_errors(f"MLflow run {run_id!r}", client.tracking_uri):
        client.get_run(run_id)


def log_report_to_mlflow(
    report: DriftReport, run_id: str, html: str, tracking_uri: str | None = None
) -> list[str]:
    """Log ``report``'s metrics and its HTML (``html``) and JSON forms to MLflow run ``run_id``.

    Returns the ``runs:/`` URIs of the artifacts. Raises :class:`~mlmon.errors.BackendError` when the run
    does not exist or MLflow fails."""
    from mlflow.entities import Metric

    client = mlflow_client(tracking_uri)
    where = f"MLflow run {run_id!r}"
    with mlflow_errors(where, client.tracking_uri):
        client.get_run(run_id)
    now = int(time.time() * 1000)
    metrics = [Metric(key, float(value), now, 0) for key, value in drift_metrics(report).items()]
    with tempfile.TemporaryDirectory(prefix="mlmon-drift-") as name:
        folder = Path(name)
        (folder / HTML_NAME).write_text(html, encoding="utf-8")
        (folder / JSON_NAME).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        with mlflow_errors(where, client.tracking_uri):
            for start in range(0, len(metrics), BATCH_SIZE):
                client.log_batch(run_id, metrics=metrics[start : start + BATCH_SIZE])
            client.log_artifacts(run_id, str(folder), artifact_path=DRIFT_ARTIFACT_DIR)
    return [f"runs:/{run_id}/{DRIFT_ARTIFACT_DIR}/{name}" for name in (HTML_NAME, JSON_NAME)]
