"""The metric contract: every metric a monitored service exports, with its labels and buckets.

The instrument library, the rule and dashboard templates, ``mlmon check`` and ``mlmon status`` all read
this module, so a name changes in one place only. Names follow Prometheus conventions: base units, a
``_total`` suffix on counters, an ``mlmon_`` prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["counter", "gauge", "histogram"]

# Bin label for categorical values outside a feature's top-K reference categories.
OTHER_BIN = "__other__"
# The feature label under which unknown feature names beyond the instrument's cap are counted.
UNKNOWN_FEATURE = "__unknown__"
# Quantile bins per numerical feature in a reference profile.
DEFAULT_BINS = 10
# Shares are clamped to this before PSI, in the recording rules and in offline drift alike, so that both give
# the same number on the same data. Changing it changes every PSI mlmon reports.
PSI_EPSILON = 1e-4
# A monitor refuses new values of one label past this many, rather than let cardinality explode.
DEFAULT_LABEL_VALUE_CAP = 100

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


@dataclass(frozen=True)
class Metric:
    name: str  # the name as exposed; counters include _total
    type: MetricType
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()

    def series_names(self) -> tuple[str, ...]:
        """The names that appear in a scrape, and so in PromQL."""
        if self.type == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


MODEL_INFO = Metric(
    "mlmon_model_info",
    "gauge",
    ("model", "version", "run_id"),
    "Which model version this service runs (always 1).",
)
REQUESTS = Metric(
    "mlmon_requests_total",
    "counter",
    ("model", "version", "status"),
    "Prediction requests by status (ok, error).",
)
REQUEST_DURATION = Metric(
    "mlmon_request_duration_seconds",
    "histogram",
    ("model", "version"),
    "Prediction latency.",
    LATENCY_BUCKETS,
)
PREDICTION_BIN = Metric(
    "mlmon_prediction_bin_total",
    "counter",
    ("model", "version", "bin"),
    "Predictions per reference bin: a quantile bin of the score (regression) or the class (classification).",
)
PREDICTION_REFERENCE_RATIO = Metric(
    "mlmon_prediction_reference_ratio",
    "gauge",
    ("model", "version", "bin"),
    "Share of reference predictions in each bin.",
)
PREDICTION_REFERENCE_OBSERVATIONS = Metric(
    "mlmon_prediction_reference_observations",
    "gauge",
    ("model", "version"),
    "Predictions in the reference data: how sure the reference prediction shares are.",
)
PREDICTION_CONFIDENCE = Metric(
    "mlmon_prediction_confidence",
    "histogram",
    ("model", "version"),
    "Confidence of the predicted class.",
    CONFIDENCE_BUCKETS,
)
REFERENCE_CONFIDENCE_MEAN = Metric(
    "mlmon_reference_confidence_mean",
    "gauge",
    ("model", "version"),
    "Mean confidence of the predicted class on the reference data.",
)
REFERENCE_CONFIDENCE_OBSERVATIONS = Metric(
    "mlmon_reference_confidence_observations",
    "gauge",
    ("model", "version"),
    "Reference rows the mean confidence rests on.",
)
FEATURE_BIN = Metric(
    "mlmon_feature_bin_total",
    "counter",
    ("model", "version", "feature", "bin"),
    "Non-missing feature values per reference bin.",
)
FEATURE_REFERENCE_RATIO = Metric(
    "mlmon_feature_reference_ratio",
    "gauge",
    ("model", "version", "feature", "bin"),
    "Share of reference values in each bin of a feature.",
)
FEATURE_REFERENCE_OBSERVATIONS = Metric(
    "mlmon_feature_reference_observations",
    "gauge",
    ("model", "version", "feature"),
    "Non-missing values of a feature in the reference data: how sure its reference shares are.",
)
FEATURE_REFERENCE_MISSING_RATIO = Metric(
    "mlmon_feature_reference_missing_ratio",
    "gauge",
    ("model", "version", "feature"),
    "Share of reference rows in which the feature is missing.",
)
FEATURE_MISSING = Metric(
    "mlmon_feature_missing_total",
    "counter",
    ("model", "version", "feature"),
    "Missing feature values (absent, null or NaN).",
)
INVALID_INPUT = Metric(
    "mlmon_invalid_input_total",
    "counter",
    ("model", "version", "feature", "reason"),
    "Feature values the monitor could not use (wrong type, unknown feature, label cap reached).",
)
FEEDBACK = Metric(
    "mlmon_feedback_total",
    "counter",
    ("model", "version", "predicted", "actual", "correct"),
    "Delayed ground truth joined to predictions.",
)
REFERENCE_ACCURACY = Metric(
    "mlmon_reference_accuracy",
    "gauge",
    ("model", "version"),
    "Accuracy of the model version on its reference data.",
)
REFERENCE_ACCURACY_OBSERVATIONS = Metric(
    "mlmon_reference_accuracy_observations",
    "gauge",
    ("model", "version"),
    "Reference rows (with a target and a prediction) the reference accuracy rests on.",
)
MONITOR_START = Metric(
    "mlmon_monitor_start_time_seconds",
    "gauge",
    ("model", "version"),
    "When this process began counting for the model version (Unix time); a new value means a counter reset.",
)
MODEL_TRAINED_TIMESTAMP = Metric(
    "mlmon_model_trained_timestamp_seconds",
    "gauge",
    ("model", "version"),
    "When the served model version was trained (Unix time).",
)

METRICS: tuple[Metric, ...] = (
    MODEL_INFO,
    REQUESTS,
    REQUEST_DURATION,
    PREDICTION_BIN,
    PREDICTION_REFERENCE_RATIO,
    PREDICTION_REFERENCE_OBSERVATIONS,
    PREDICTION_CONFIDENCE,
    REFERENCE_CONFIDENCE_MEAN,
    REFERENCE_CONFIDENCE_OBSERVATIONS,
    FEATURE_BIN,
    FEATURE_REFERENCE_RATIO,
    FEATURE_REFERENCE_OBSERVATIONS,
    FEATURE_REFERENCE_MISSING_RATIO,
    FEATURE_MISSING,
    INVALID_INPUT,
    FEEDBACK,
    REFERENCE_ACCURACY,
    REFERENCE_ACCURACY_OBSERVATIONS,
    MONITOR_START,
    MODEL_TRAINED_TIMESTAMP,
)

# Series Prometheus itself makes, which rules and dashboards may select too.
PROMETHEUS_BUILTIN_SERIES = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds"})

# The label Prometheus' scrape config puts on each model's targets, so `up` can be tied to a model.
TARGET_MODEL_LABEL = "mlmon_model"


def contract_series_names() -> frozenset[str]:
    """Every series name a monitored service exposes under the contract."""
    return frozenset(name for metric in METRICS for name in metric.series_names())
