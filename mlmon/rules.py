"""Recording and alert rules as data; the templates only lay them out.

Recording rules are shared by all models: they aggregate ``by (model, version, ...)``, so each replica of a
service only increments counters and Prometheus computes rates, quantiles, PSI, missing ratios and accuracy
across all replicas. Alert rules are per model, because each model has its own thresholds.

Rule names follow the Prometheus convention ``level:metric:operations``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise

from mlmon import contract as c
from mlmon.drift.evidence import (
    ASSUMED_FEATURES,
    ASSUMED_REFERENCE_OBSERVATIONS,
    MIN_EXPECTED_PER_BIN,
    z_threshold,
)
from mlmon.escape import go_template_text, number, promql_matchers
from mlmon.spec import ModelSpec, Spec, duration_seconds

RATE_WINDOW = "5m"
EPS = number(c.PSI_EPSILON)


# ------------------------------------------------------------------------------------------------------
# Rule data


@dataclass(frozen=True)
class Label:
    """An alert label in an annotation, e.g. the feature that drifted."""

    name: str


@dataclass(frozen=True)
class Value:
    """The alert's value in an annotation, formatted with printf ``fmt``."""

    fmt: str = "%.3f"


AnnotationPart = str | Label | Value


@dataclass(frozen=True)
class Annotation:
    """Text with placeholders. It renders as a Go template for Prometheus, and as the expected text in the
    promtool tests, from the same parts, so the two cannot disagree."""

    parts: tuple[AnnotationPart, ...]

    def go_template(self) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, Label):
                out.append(f"{{{{ $labels.{part.name} }}}}")
            elif isinstance(part, Value):
                out.append(f'{{{{ $value | printf "{part.fmt}" }}}}')
            else:
                out.append(go_template_text(part))
        return "".join(out)

    def expand(self, labels: Mapping[str, str], value: float) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, Label):
                out.append(labels.get(part.name, ""))
            elif isinstance(part, Value):
                out.append(part.fmt % value)
            else:
                out.append(part)
        return "".join(out)


def _annotation(*parts: AnnotationPart) -> Annotation:
    return Annotation(tuple(parts))


@dataclass(frozen=True)
class RecordingRule:
    record: str
    expr: str


@dataclass(frozen=True)
class AlertRule:
    model: str
    alert: str
    expr: str
    for_: str
    severity: str
    signal: str  # what is wrong (drift, latency, ...); inhibition pairs warnings with criticals of one signal
    summary: Annotation
    description: Annotation
    runbook_url: str
    keep_firing_for: str = ""  # how long it stays firing once its condition is gone

    @property
    def labels(self) -> dict[str, str]:
        """Static labels as Prometheus should receive them (Go templates). ``model`` is set on every alert,
        so that alerts of different models never look alike, even when their expression lost the label."""
        return {"model": go_template_text(self.model), "severity": self.severity, "signal": self.signal}

    def annotations(self) -> dict[str, str]:
        return {
            "summary": self.summary.go_template(),
            "description": self.description.go_template(),
            "runbook_url": go_template_text(self.runbook_url),
        }


@dataclass(frozen=True)
class RuleGroup:
    name: str
    rules: tuple[RecordingRule | AlertRule, ...] = field(default_factory=tuple)
    interval: str | None = None  # None: Prometheus' global evaluation_interval


# ------------------------------------------------------------------------------------------------------
# Recorded series names: one function each, used by the alert rules, the dashboards and `mlmon status`.


def requests_rate() -> str:
    return f"model:mlmon_requests:rate{RATE_WINDOW}"


def errors_rate() -> str:
    return f"model:mlmon_request_errors:rate{RATE_WINDOW}"


def error_ratio() -> str:
    return f"model:mlmon_request_errors:ratio_rate{RATE_WINDOW}"


def latency_quantile(q: int) -> str:
    return f"model:mlmon_request_duration_seconds:p{q}_rate{RATE_WINDOW}"


def feature_bin_count(window: str) -> str:
    return f"model_feature_bin:mlmon_feature_bin:count{window}"


def feature_bin_ratio(window: str) -> str:
    return f"model_feature_bin:mlmon_feature_bin:ratio_{window}"


def feature_observations(window: str) -> str:
    return f"model_feature:mlmon_feature_observations:count{window}"


def feature_psi(window: str) -> str:
    return f"model_feature:mlmon_feature_psi:{window}"


def feature_missing_count(window: str) -> str:
    return f"model_feature:mlmon_feature_missing:count{window}"


def feature_missing_ratio(window: str) -> str:
    return f"model_feature:mlmon_feature_missing:ratio_{window}"


def invalid_input_ratio(window: str) -> str:
    return f"model_feature_reason:mlmon_invalid_input:per_request_{window}"


def prediction_bin_count(window: str) -> str:
    return f"model_bin:mlmon_prediction_bin:count{window}"


def prediction_bin_ratio(window: str) -> str:
    return f"model_bin:mlmon_prediction_bin:ratio_{window}"


def prediction_observations(window: str) -> str:
    return f"model:mlmon_prediction_observations:count{window}"


def prediction_psi(window: str) -> str:
    return f"model:mlmon_prediction_psi:{window}"


def confidence_count(window: str) -> str:
    return f"model:mlmon_prediction_confidence:count{window}"


def confidence_mean(window: str) -> str:
    return f"model:mlmon_prediction_confidence:mean_{window}"


def feedback_counts(window: str) -> str:
    return f"model_outcome:mlmon_feedback:count{window}"


def feedback_count(window: str) -> str:
    return f"model:mlmon_feedback:count{window}"


def accuracy(window: str) -> str:
    return f"model:mlmon_feedback_accuracy:ratio_{window}"


def class_precision(window: str) -> str:
    return f"model_class:mlmon_feedback_precision:ratio_{window}"


def class_recall(window: str) -> str:
    return f"model_class:mlmon_feedback_recall:ratio_{window}"


def class_f1(window: str) -> str:
    return f"model_class:mlmon_feedback_f1:ratio_{window}"


def macro_f1(window: str) -> str:
    return f"model:mlmon_feedback_f1:macro_{window}"


def model_age() -> str:
    return "model:mlmon_model_age:seconds"


def feature_reference_share() -> str:
    return "model_feature_bin:mlmon_feature_reference_ratio:clamped"


def feature_reference_share_exact() -> str:
    return "model_feature_bin:mlmon_feature_reference_ratio:last"


def feature_reference_degrees() -> str:
    """Degrees of freedom of a feature's chi-square: the bins its reference has values in, less one."""
    return "model_feature:mlmon_feature_reference_bins:degrees"


def feature_reference_observations() -> str:
    return "model_feature:mlmon_feature_reference_observations:last"


def feature_reference_missing_ratio() -> str:
    return "model_feature:mlmon_feature_reference_missing_ratio:last"


def feature_reference_rows() -> str:
    return "model_feature:mlmon_feature_reference_rows:last"


def feature_missing_pooled(window: str) -> str:
    return f"model_feature:mlmon_feature_missing:pooled_{window}"


def feature_drift_z(window: str) -> str:
    """How sure the window's shares differ from the reference's: the chi-square of both, as a z score."""
    return f"model_feature:mlmon_feature_drift:z_{window}"


def feature_seasonal_psi(window: str, period: str) -> str:
    """PSI of the window's shares against those of the same window one ``period`` earlier."""
    return f"model_feature:mlmon_feature_seasonal_psi:{window}_offset_{period}"


def feature_seasonal_z(window: str, period: str) -> str:
    """How sure the window's shares differ from those of the same window one ``period`` earlier: the
    chi-square of both windows' counts, as a z score."""
    return f"model_feature:mlmon_feature_seasonal_drift:z_{window}_offset_{period}"


def feature_missing_z(window: str) -> str:
    """How sure the window's missing ratio is above the reference's: the two-proportion z."""
    return f"model_feature:mlmon_feature_missing:z_{window}"


def prediction_reference_share() -> str:
    return "model_bin:mlmon_prediction_reference_ratio:clamped"


def prediction_reference_share_exact() -> str:
    return "model_bin:mlmon_prediction_reference_ratio:last"


def prediction_reference_degrees() -> str:
    """Degrees of freedom of the predictions' chi-square: the bins the reference has predictions in, less one."""
    return "model:mlmon_prediction_reference_bins:degrees"


def prediction_reference_observations() -> str:
    return "model:mlmon_prediction_reference_observations:last"


def prediction_drift_z(window: str) -> str:
    """How sure the window's prediction shares differ from the reference's: the chi-square, as a z score."""
    return f"model:mlmon_prediction_drift:z_{window}"


def reference_confidence_mean() -> str:
    return "model:mlmon_reference_confidence_mean:last"


def reference_confidence_observations() -> str:
    return "model:mlmon_reference_confidence_observations:last"


def confidence_variance_bound(window: str) -> str:
    """The largest variance the window's confidences can have, given how many fell in each histogram bucket."""
    return f"model:mlmon_prediction_confidence:variance_bound_{window}"


def confidence_drop_z(window: str) -> str:
    """How sure the window's mean confidence is below the reference's (see mlmon.drift.evidence.mean_drop_z)."""
    return f"model:mlmon_prediction_confidence:drop_z_{window}"


def reference_accuracy() -> str:
    return "model:mlmon_reference_accuracy:last"


def reference_accuracy_observations() -> str:
    return "model:mlmon_reference_accuracy_observations:last"


def accuracy_drop_z(window: str) -> str:
    """How sure the window's accuracy from feedback is below the reference's: the two-proportion z."""
    return f"model:mlmon_accuracy:drop_z_{window}"


# ------------------------------------------------------------------------------------------------------
# Recording rules

_MV = "model, version"


def _ratio_or_zero(numerator: str, denominator: str) -> str:
    """numerator / denominator, where an absent numerator (no error yet, say) counts as 0, not as no data."""
    return f"(\n  {numerator}\n  or\n  {denominator} * 0\n)\n/\n{denominator}"


def _psi(current: str, reference_share: str, on: str) -> str:
    """PSI = sum((a - e) * ln(a / e)) with both shares clamped to PSI_EPSILON, as offline drift computes it;
    ``reference_share`` is the recorded, already clamped reference (see :func:`_reference_shares`)."""
    a = f"clamp_min({current}, {EPS})"
    e = reference_share
    return f"(\n    {a}\n    - on ({on}) {e}\n  )\n  * ln(\n    {a}\n    / on ({on}) {e}\n  )"


def _reference_shares() -> list[RecordingRule]:
    """The reference shares (exact and clamped), their bins and sample sizes, once per step for every window:
    the gauges change only with the served version, and each window would otherwise read them over
    GAP_TOLERANCE."""
    feature_on, prediction_on, mvf = f"{_MV}, feature, bin", f"{_MV}, bin", f"{_MV}, feature"
    exact = feature_reference_share_exact()
    return [
        RecordingRule(exact, reference_gauge(c.FEATURE_REFERENCE_RATIO.name, feature_on)),
        RecordingRule(feature_reference_share(), f"clamp_min({exact}, {EPS})"),
        RecordingRule(feature_reference_degrees(), f"count by ({mvf}) ({exact} > 0) - 1 > 0"),
        _observations_or_exact(
            feature_reference_observations(),
            c.FEATURE_REFERENCE_OBSERVATIONS.name,
            feature_reference_degrees(),
            mvf,
        ),
        RecordingRule(
            feature_reference_missing_ratio(), reference_gauge(c.FEATURE_REFERENCE_MISSING_RATIO.name, mvf)
        ),
        RecordingRule(
            feature_reference_rows(),
            f"{feature_reference_observations()}\n/\n(1 - {feature_reference_missing_ratio()} > 0)",
        ),
        RecordingRule(
            prediction_reference_share_exact(),
            reference_gauge(c.PREDICTION_REFERENCE_RATIO.name, prediction_on),
        ),
        RecordingRule(
            prediction_reference_share(), f"clamp_min({prediction_reference_share_exact()}, {EPS})"
        ),
        RecordingRule(
            prediction_reference_degrees(),
            f"count by ({_MV}) ({prediction_reference_share_exact()} > 0) - 1 > 0",
        ),
        _observations_or_exact(
            prediction_reference_observations(),
            c.PREDICTION_REFERENCE_OBSERVATIONS.name,
            prediction_reference_degrees(),
        ),
        RecordingRule(reference_confidence_mean(), reference_gauge(c.REFERENCE_CONFIDENCE_MEAN.name, _MV)),
        _observations_or_exact(
            reference_confidence_observations(),
            c.REFERENCE_CONFIDENCE_OBSERVATIONS.name,
            reference_confidence_mean(),
        ),
        RecordingRule(reference_accuracy(), reference_gauge(c.REFERENCE_ACCURACY.name, _MV)),
        _observations_or_exact(
            reference_accuracy_observations(), c.REFERENCE_ACCURACY_OBSERVATIONS.name, reference_accuracy()
        ),
    ]


def _observations_or_exact(record: str, gauge: str, present: str, on: str = _MV) -> RecordingRule:
    """The observations a reference rests on; where a profile predates them (the gauge is absent while the
    reference, ``present``, is there), a very large number: the reference is taken as exact."""
    return RecordingRule(
        record,
        f"{reference_gauge(gauge, on)}\nor\n{present} * 0 + {number(ASSUMED_REFERENCE_OBSERVATIONS)}",
    )


def _rate_rules() -> RuleGroup:
    total = f"sum by ({_MV}) (rate({c.REQUESTS.name}[{RATE_WINDOW}]))"
    errors = f'sum by ({_MV}) (rate({c.REQUESTS.name}{{status="error"}}[{RATE_WINDOW}]))'
    rules = [
        RecordingRule(requests_rate(), total),
        RecordingRule(errors_rate(), errors),
        RecordingRule(error_ratio(), _ratio_or_zero(errors, total)),
    ]
    for q in (50, 95, 99):
        rules.append(
            RecordingRule(
                latency_quantile(q),
                f"histogram_quantile(\n  {q / 100},\n  sum by ({_MV}, le) "
                f"(rate({c.REQUEST_DURATION.name}_bucket[{RATE_WINDOW}]))\n)",
            )
        )
    rules.append(
        RecordingRule(model_age(), f"time() - {reference_gauge(c.MODEL_TRAINED_TIMESTAMP.name, _MV)}")
    )
    return RuleGroup(f"mlmon.rates.{RATE_WINDOW}", tuple(rules))


# How long a target may go unscraped (failed scrapes, a slow restart) and still have what it counted in the
# meantime carried into the windows when it is back. Every step evaluation reads this much of each counter.
GAP_TOLERANCE = "10m"
# The shortest window is counted in this many steps; the counting group evaluates once per step.
STEPS_PER_WINDOW = 60
MAX_COUNT_STEP_MS = 60_000


def count_step_ms(spec: Spec) -> int:
    """The counting group's interval in milliseconds: a sixtieth of the shortest window, at least the
    evaluation interval and at most a minute (an hour's drift need not be re-read every 15 seconds)."""
    shortest_ms = round(duration_seconds(spec.windows()[0]) * 1000)
    evaluation_ms = round(duration_seconds(spec.prometheus.evaluation_interval) * 1000)
    return max(evaluation_ms, min(MAX_COUNT_STEP_MS, shortest_ms // STEPS_PER_WINDOW))


def duration_text(ms: int) -> str:
    """A Prometheus duration for ``ms`` milliseconds: 59m30s, 5s, 1h, 2500ms."""
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(parts) or "0s"


@dataclass(frozen=True)
class Counted:
    """A counter the windows count: its exposed series, the labels beyond (model, version) it is summed by,
    and the level and metric parts of its recorded names."""

    series: str
    extra: tuple[str, ...]
    level: str
    metric: str

    @property
    def by(self) -> str:
        return ", ".join((_MV, *self.extra))

    @property
    def step(self) -> str:
        return f"{self.level}:{self.metric}:step"

    def count(self, window: str) -> str:
        return f"{self.level}:{self.metric}:count{window}"


FEATURE_BINS = Counted(c.FEATURE_BIN.name, ("feature", "bin"), "model_feature_bin", "mlmon_feature_bin")
FEATURE_MISSING = Counted(c.FEATURE_MISSING.name, ("feature",), "model_feature", "mlmon_feature_missing")
PREDICTION_BINS = Counted(c.PREDICTION_BIN.name, ("bin",), "model_bin", "mlmon_prediction_bin")
CONFIDENCE_COUNT = Counted(
    c.PREDICTION_CONFIDENCE.name + "_count", (), "model", "mlmon_prediction_confidence"
)
CONFIDENCE_SUM = Counted(
    c.PREDICTION_CONFIDENCE.name + "_sum", (), "model", "mlmon_prediction_confidence_sum"
)
# The confidence histogram's buckets: they bound the spread of the confidences (see _confidence_variance_bound).
CONFIDENCE_BUCKETS = Counted(
    c.PREDICTION_CONFIDENCE.name + "_bucket", ("le",), "model_le", "mlmon_prediction_confidence_bucket"
)
FEEDBACK = Counted(c.FEEDBACK.name, ("predicted", "actual", "correct"), "model_outcome", "mlmon_feedback")
REQUESTS = Counted(c.REQUESTS.name, ("status",), "model_status", "mlmon_requests")
INVALID_INPUT = Counted(
    c.INVALID_INPUT.name, ("feature", "reason"), "model_feature_reason", "mlmon_invalid_input"
)
COUNTED = (
    FEATURE_BINS,
    FEATURE_MISSING,
    PREDICTION_BINS,
    CONFIDENCE_COUNT,
    CONFIDENCE_SUM,
    CONFIDENCE_BUCKETS,
    FEEDBACK,
    REQUESTS,
    INVALID_INPUT,
)


def step_count(counter: Counted, step: str, matchers: str = "") -> str:
    """What every process counted since the previous step, summed over processes: exactly, across restarts.

    Each process exports, beside its counters, ``mlmon_monitor_start_time_seconds``: a new value means a new
    process whose counters began at zero. For each series, at each step of the counting group:

    - the same process as at the last step: its value now minus its value at the last step (after failed
      scrapes, the last value within GAP_TOLERANCE, so the gap loses nothing; a series the process created
      since counts from zero, even where an earlier process had one with the same labels);
    - a new process in place of an old one (a restart, a gunicorn master reload): all of its value;
    - a process not seen within GAP_TOLERANCE that started within it (a new replica, a rolling deploy's new
      instance): all of its value; one that started earlier (Prometheus itself is new) is taken as the
      baseline, as ``increase()`` would;
    - a service without the start gauge: the difference, or all of the value where it went down.

    The steps partition the scrapes: summing them over a window counts each observation Prometheus scraped
    exactly once, with no extrapolation, whatever restarts and gaps. What Prometheus cannot know is lost:
    what a process counted after its last successful scrape before it died."""
    x = counter.series + matchers
    start = c.MONITOR_START.name
    match = f" ignoring ({', '.join(counter.extra)})" if counter.extra else ""
    # The series' value at the last step: from the last scrape, or, where that scrape failed (the start
    # gauge is stale then too), the last value within GAP_TOLERANCE. Where the last scrape succeeded
    # without the series (it is stale, the start gauge is not), the process has not created it yet, so it
    # has none: an older value would be an earlier process's, with the same labels.
    previous = (
        f"({x} offset {step} or (last_over_time({x}[{GAP_TOLERANCE}] offset {step})"
        f" unless{match} {start} offset {step}))"
    )
    previous_start = f"last_over_time({start}[{GAP_TOLERANCE}] offset {step})"
    young = duration_seconds(GAP_TOLERANCE) + duration_seconds(step)
    # Per target (one start gauge each, so these cost next to nothing): a process that is not the one of the
    # last step, and of those the ones whose whole value counts (a new process in place of an old one, or
    # one not seen before that started within the tolerance).
    not_the_last = f"({start} unless {start} == {previous_start})"
    counted_whole = (
        f"({start} != {previous_start} or {start} > time() - {number(young)} unless {previous_start})"
    )
    # The same process as at the last step, or a service without the start gauge: the difference, or all of
    # the value where the series is new (or, without the gauge, went down). Each counter is read five times;
    # every read of a big vector is what a step costs.
    return (
        f"sum by ({counter.by}) (\n"
        f"    ({x} - {previous} >= 0 or {x})\n"
        f"    unless{match} {not_the_last}\n"
        f"  or\n"
        f"    {x}\n"
        f"    and{match} {counted_whole}\n"
        f")"
    )


def _window_range(window: str, step_ms: int) -> str:
    """The range that holds a window's last window/step step samples: half a step short of the window, so
    that it holds that many whether its left end is closed (Prometheus 2) or open (Prometheus 3)."""
    steps = max(1, round(duration_seconds(window) * 1000 / step_ms))
    return duration_text(steps * step_ms - step_ms // 2)


def window_sum(step_series: str, window: str, step_ms: int) -> str:
    """The sum of a recorded step series over the last ``window``."""
    return f"sum_over_time({step_series}[{_window_range(window, step_ms)}])"


def raw_window_count(
    counter: Counted, window: str, step_ms: int, matchers: str = "", at: float | None = None
) -> str:
    """A window count without recording rules: the steps as a subquery evaluated at the counting step.

    ``at`` (unix seconds) pins the subquery's end to the last step boundary at or before it (see
    ``pinned_subquery``); without it the window holds one step fewer whenever it is read more than half a step
    after a boundary, as a range query's points are."""
    step = duration_text(step_ms)
    steps = f"(\n  {step_count(counter, step, matchers)}\n)[{_window_range(window, step_ms)}:{step}]"
    return f"sum_over_time({steps}{pinned_subquery(step_ms, at)})"


def pinned_subquery(step_ms: int, at: float | None) -> str:
    """The ``@`` modifier that ends a subquery of ``step_ms`` on the last step boundary at or before ``at``.

    A subquery's points fall on multiples of its step. Its range, half a step short of the window (see
    ``_window_range``), holds exactly window/step of them only when it ends on one: read at an arbitrary
    moment, the oldest step falls out half the time. Recorded windows are summed at their own evaluation, so
    they always hold every step; a raw window pinned to a boundary does too."""
    if at is None:
        return ""
    boundary_ms = math.floor(at * 1000 / step_ms) * step_ms
    return f" @ {boundary_ms / 1000:.3f}"


def reference_gauge(metric: str, on: str) -> str:
    """A reference gauge that a few failed scrapes do not take away (it would end the PSI and the alert)."""
    return f"max by ({on}) (last_over_time({metric}[{GAP_TOLERANCE}]))"


def _drift_window_rules(w: str, step_ms: int) -> list[RecordingRule]:
    """A drift window's counts: feature and prediction bins and their PSI, missing values, confidence,
    requests and invalid inputs."""
    mvf, mvfb, mvb = f"{_MV}, feature", f"{_MV}, feature, bin", f"{_MV}, bin"

    def counted(counter: Counted) -> RecordingRule:
        return RecordingRule(counter.count(w), window_sum(counter.step, w, step_ms))

    return [
        # Exact counts first; every share and statistic below derives from them.
        counted(FEATURE_BINS),
        RecordingRule(feature_observations(w), f"sum by ({mvf}) ({feature_bin_count(w)})"),
        RecordingRule(
            feature_bin_ratio(w),
            f"{feature_bin_count(w)}\n/ ignoring (bin) group_left\n{feature_observations(w)}",
        ),
        RecordingRule(
            feature_psi(w),
            f"sum by ({mvf}) (\n  " + _psi(feature_bin_ratio(w), feature_reference_share(), mvfb) + "\n)",
        ),
        RecordingRule(feature_drift_z(w), _drift_z(w)),
        counted(FEATURE_MISSING),
        RecordingRule(
            feature_missing_ratio(w),
            f"{feature_missing_count(w)}\n/\n({feature_missing_count(w)} + {feature_observations(w)})",
        ),
        *_missing_z(w),
        counted(PREDICTION_BINS),
        RecordingRule(prediction_observations(w), f"sum by ({_MV}) ({prediction_bin_count(w)})"),
        RecordingRule(
            prediction_bin_ratio(w),
            f"{prediction_bin_count(w)}\n/ ignoring (bin) group_left\n{prediction_observations(w)}",
        ),
        RecordingRule(
            prediction_psi(w),
            f"sum by ({_MV}) (\n  "
            + _psi(prediction_bin_ratio(w), prediction_reference_share(), mvb)
            + "\n)",
        ),
        RecordingRule(
            prediction_drift_z(w),
            _chi_square_z(
                prediction_bin_ratio(w),
                prediction_reference_share_exact(),
                prediction_reference_observations(),
                prediction_observations(w),
                _MV,
                prediction_reference_degrees(),
            ),
        ),
        counted(CONFIDENCE_COUNT),
        RecordingRule(
            confidence_mean(w),
            f"{window_sum(CONFIDENCE_SUM.step, w, step_ms)}\n/\n{confidence_count(w)}",
        ),
        counted(CONFIDENCE_BUCKETS),
        RecordingRule(confidence_variance_bound(w), _confidence_variance_bound(w)),
        RecordingRule(confidence_drop_z(w), _confidence_drop_z(w)),
        counted(REQUESTS),
        counted(INVALID_INPUT),
        # Per feature and reason, the share of requests that brought such a value (an unknown feature is
        # counted under its own name, so a renamed feature shows here by name).
        RecordingRule(
            invalid_input_ratio(w),
            f"{INVALID_INPUT.count(w)}\n/ on ({_MV}) group_left ()\n"
            f"(sum by ({_MV}) ({REQUESTS.count(w)}) > 0)",
        ),
    ]


def _drift_z(w: str) -> str:
    """The two-sample chi-square of the window's bin shares against the reference's, as a z score."""
    return _chi_square_z(
        feature_bin_ratio(w),
        feature_reference_share_exact(),
        feature_reference_observations(),
        feature_observations(w),
    )


def _chi_square_z(
    current: str,
    baseline: str,
    n_baseline: str,
    n_current: str,
    group: str = f"{_MV}, feature",
    degrees: str = feature_reference_degrees(),
) -> str:
    """The two-sample chi-square of ``current`` bin shares against ``baseline`` shares, with both sample sizes,
    as a Wilson-Hilferty z (see mlmon.drift.evidence, which computes the same offline):
    X2 = n_ref * n_cur * sum((p_cur - p_ref)^2 / (n_ref * p_ref + n_cur * p_cur)) over bins with any mass, with
    the reference's bins with values, less one, as degrees of freedom. ``group``: the labels of one
    distribution (a feature's, or the predictions', of a model version); its bins add ``bin``."""
    bins = f"{group}, bin"
    k = degrees
    pooled = f"({baseline} * on ({group}) group_left {n_baseline}\n    + {current} * on ({group}) group_left {n_current})"
    chi2 = (
        f"sum by ({group}) (\n  ({current} - on ({bins}) {baseline}) ^ 2\n"
        f"  / on ({bins})\n  ({pooled} > 0)\n)\n* on ({group}) {n_baseline} * on ({group}) {n_current}"
    )
    return f"(\n  ({chi2}\n  / on ({group}) {k}) ^ (1 / 3)\n  - 1 + 2 / (9 * {k})\n)\n/ sqrt(2 / (9 * {k}))"


def _le_matcher(bound: float) -> str:
    """A bucket's ``le`` as Python's client writes it (1.0) and as Go's does (1)."""
    python, go = repr(float(bound)), f"{bound:g}"
    return (
        f'{{le=~"{python.replace(".", "[.]")}|{go.replace(".", "[.]")}"}}'
        if python != go
        else f'{{le="{python}"}}'
    )


def _confidence_variance_bound(w: str) -> str:
    """The window's confidences have at most this variance: each value at its bucket's upper bound gives the
    largest possible mean square, E[X^2] <= sum_i p_i u_i^2, less the known mean squared, and never more than
    m (1 - m), the bound for any values in [0, 1]. Written over the cumulative bucket counts C_i (Abel summation):
    n E[X^2] <= C_K u_K^2 - sum_{i<K} C_i (u_{i+1}^2 - u_i^2), K the bucket of 1."""
    bounds = c.CONFIDENCE_BUCKETS
    count, mean, n = CONFIDENCE_BUCKETS.count(w), confidence_mean(w), confidence_count(w)

    def bucket(bound: float) -> str:
        return f"sum by ({_MV}) ({count}{_le_matcher(bound)})"

    terms = [f"{bucket(bounds[-1])} * {number(bounds[-1] ** 2)}"]
    # Rounded: the differences of squares are decimals (0.03, ...) that floats would print with noise.
    terms += [f"{bucket(low)} * {number(round(high**2 - low**2, 12))}" for low, high in pairwise(bounds)]
    square_sum = "\n  - ".join(terms)
    variance = f"(\n  {square_sum}\n) / {n} - {mean} ^ 2"
    bernoulli = f"{mean} * (1 - {mean})"
    return f"clamp_min(\n  ({variance}) <= {bernoulli}\n  or\n  {bernoulli},\n  0\n)"


def _confidence_drop_z(w: str) -> str:
    """mlmon.drift.evidence.mean_drop_z in PromQL: the window's variance bounded by its histogram (see
    _confidence_variance_bound), the reference's by m (1 - m)."""
    mean, n, ref, n_ref = (
        confidence_mean(w),
        confidence_count(w),
        reference_confidence_mean(),
        reference_confidence_observations(),
    )
    return (
        f"({ref} - on ({_MV}) {mean})\n/ on ({_MV})\nsqrt(\n  {confidence_variance_bound(w)} / {n}\n"
        f"  + on ({_MV}) {ref} * (1 - {ref}) / {n_ref}\n)"
    )


def _accuracy_drop_z(w: str) -> str:
    """The two-proportion z of the window's accuracy below the reference's, both sample sizes in it (see
    mlmon.drift.evidence.proportion_z, whose sign is the other way)."""
    acc, n, ref, n_ref = (
        accuracy(w),
        feedback_count(w),
        reference_accuracy(),
        reference_accuracy_observations(),
    )
    pooled = f"(({acc} * {n} + on ({_MV}) {ref} * {n_ref}) / ({n} + on ({_MV}) {n_ref}))"
    return (
        f"({ref} - on ({_MV}) {acc})\n/ on ({_MV})\n"
        f"sqrt({pooled} * (1 - {pooled}) * (1 / {n} + on ({_MV}) 1 / {n_ref}))"
    )


def seasonal_baselines(spec: Spec) -> tuple[tuple[str, str], ...]:
    """The distinct (drift window, seasonal period) of the models with ``drift_baseline: seasonal``."""
    return tuple(
        sorted(
            {
                (m.thresholds.drift_window, m.thresholds.seasonal_period)
                for m in spec.models
                if m.thresholds.drift_baseline == "seasonal"
            }
        )
    )


def _seasonal_rules(model: ModelSpec) -> list[RecordingRule]:
    """For a model with ``drift_baseline: seasonal``: its window's shares against those of the same window one
    seasonal period earlier, as PSI and as a chi-square z with both windows' sizes. Per version, as the bins
    are: a version younger than the period has no baseline yet."""
    t = model.thresholds
    w, period, sel = t.drift_window, t.seasonal_period, promql_matchers(model=model.name)
    current, observations = f"{feature_bin_ratio(w)}{sel}", f"{feature_observations(w)}{sel}"
    baseline = f"{feature_bin_ratio(w)}{sel} offset {period}"
    psi = _psi(current, f"clamp_min({baseline}, {EPS})", f"{_MV}, feature, bin")
    return [
        RecordingRule(feature_seasonal_psi(w, period), f"sum by ({_MV}, feature) (\n  {psi}\n)"),
        RecordingRule(
            feature_seasonal_z(w, period),
            _chi_square_z(current, baseline, f"{observations} offset {period}", observations),
        ),
    ]


def _missing_z(w: str) -> list[RecordingRule]:
    """The two-proportion z of the window's missing ratio against the reference's, with the pooled ratio and
    both sample sizes (the reference's rows: its present values over its share of present values)."""
    p_ref, n_ref, pooled = (
        feature_reference_missing_ratio(),
        feature_reference_rows(),
        feature_missing_pooled(w),
    )
    missing, rows = feature_missing_count(w), f"({feature_missing_count(w)} + {feature_observations(w)})"
    return [
        RecordingRule(pooled, f"({missing} + {p_ref} * {n_ref})\n/\n({rows} + {n_ref})"),
        RecordingRule(
            feature_missing_z(w),
            f"({feature_missing_ratio(w)} - {p_ref})\n"
            f"/ sqrt({pooled} * (1 - {pooled}) * (1 / {rows} + 1 / {n_ref}))",
        ),
    ]


def _feedback_window_rules(w: str, step_ms: int) -> list[RecordingRule]:
    """A feedback window's counts: outcomes, accuracy, per-class precision, recall and F1, macro F1."""
    feedback = feedback_counts(w)
    mvc = f"{_MV}, class"

    def counted(counter: Counted) -> RecordingRule:
        return RecordingRule(counter.count(w), window_sum(counter.step, w, step_ms))

    def per_class(label: str, correct_only: bool) -> str:
        selector = f'{feedback}{{correct="true"}}' if correct_only else feedback
        return (
            f"sum without ({label}) (label_replace(\n    sum by ({_MV}, {label}) ({selector}),\n"
            f'    "class", "$1", "{label}", "(.*)"\n  ))'
        )

    true_pos = per_class("predicted", correct_only=True)
    predicted = per_class("predicted", correct_only=False)
    actual = per_class("actual", correct_only=False)
    classes = f"(\n  {predicted} * 0\n  or\n  {actual} * 0\n)"
    return [
        counted(FEEDBACK),
        RecordingRule(feedback_count(w), f"sum by ({_MV}) ({feedback})"),
        RecordingRule(
            accuracy(w),
            _ratio_or_zero(f'sum by ({_MV}) ({feedback}{{correct="true"}})', feedback_count(w)),
        ),
        # Every class seen as a prediction or as the truth gets a precision, recall and F1, 0 where
        # undefined (never predicted, never true, or P + R = 0), as scikit-learn's macro average counts them;
        # otherwise a classifier that collapses onto one class would look better, or its F1 would be NaN.
        RecordingRule(
            class_precision(w),
            f"(\n  ({true_pos}\n  or\n  {predicted} * 0)\n  / on ({mvc})\n  {predicted}\n)\nor\n{classes}",
        ),
        RecordingRule(
            class_recall(w),
            f"(\n  ({true_pos}\n  or\n  {actual} * 0)\n  / on ({mvc})\n  {actual}\n)\nor\n{classes}",
        ),
        RecordingRule(
            class_f1(w),
            f"(\n  2 * {class_precision(w)} * on ({mvc}) {class_recall(w)}\n"
            f"  / on ({mvc})\n  ({class_precision(w)} + on ({mvc}) {class_recall(w)})\n"
            f"  > -Inf\n)\nor\n{class_precision(w)} * 0",
        ),
        RecordingRule(macro_f1(w), f"avg by ({_MV}) ({class_f1(w)})"),
        RecordingRule(accuracy_drop_z(w), _accuracy_drop_z(w)),
    ]


def _count_rules(spec: Spec) -> RuleGroup:
    """One group for every window: the steps first, then each window's counts and what derives from them.
    One group, so that each window sums steps recorded at its own evaluation times, a whole number of them."""
    step_ms = count_step_ms(spec)
    step = duration_text(step_ms)
    rules: list[RecordingRule | AlertRule] = [RecordingRule(k.step, step_count(k, step)) for k in COUNTED]
    rules += _reference_shares()
    # Each window counts only what is watched over it: the feature bins of a 6h feedback window would cost
    # as much as those of the drift window, for nothing.
    drift, feedback = spec.drift_windows(), spec.feedback_windows()
    for w in spec.windows():
        if w in drift:
            rules += _drift_window_rules(w, step_ms)
        if w in feedback:
            rules += _feedback_window_rules(w, step_ms)
    for model in spec.models:
        if model.thresholds.drift_baseline == "seasonal":
            rules += _seasonal_rules(model)
    return RuleGroup("mlmon.counts", tuple(rules), interval=step)


def recording_rules(spec: Spec) -> tuple[RuleGroup, ...]:
    """The recording rule groups for ``spec``: 5-minute rates, then the counts of every drift and feedback
    window, evaluated every :func:`count_step_ms`."""
    return (_rate_rules(), _count_rules(spec))


# ------------------------------------------------------------------------------------------------------
# Alert rules

CLASSIFICATION_SIGNALS = ("confidence", "accuracy")
# The signals whose alerts read the window counts.
WINDOW_SIGNALS = ("drift", "prediction_drift", "missing", "invalid_input", "confidence", "accuracy")

M = Label("model")
TM = Label(c.TARGET_MODEL_LABEL)  # `up` knows its model by the scrape config's target label
F = Label("feature")


# A firing alert outlives a few failed scrapes or a missed evaluation by this much, so that a gap does not
# resolve it and fire it anew (each new firing would restart `for` and page again). Availability and
# staleness alerts need no such grace: their inputs do not go away with a failed scrape.
KEEP_FIRING_FOR = {
    signal: "5m"
    for signal in (
        "errors",
        "latency",
        "drift",
        "prediction_drift",
        "missing",
        "invalid_input",
        "confidence",
        "accuracy",
    )
}


def _runbook(spec: Spec, alert: str) -> str:
    return f"{spec.alerting.runbook_base_url}#{alert.lower()}"


def _model_alerts(spec: Spec, model: ModelSpec) -> tuple[RuleGroup, RuleGroup]:
    t = model.thresholds
    sel = promql_matchers(model=model.name)
    dw = t.drift_window
    n = t.min_drift_samples

    def alert(
        name: str,
        expr: str,
        for_: str,
        severity: str,
        signal: str,
        summary: Annotation,
        description: Annotation,
    ) -> AlertRule:
        return AlertRule(
            model.name,
            name,
            expr,
            for_,
            severity,
            signal,
            summary,
            description,
            _runbook(spec, name),
            KEEP_FIRING_FOR.get(signal, ""),
        )

    target_sel = promql_matchers(**{c.TARGET_MODEL_LABEL: model.name})
    rules = [
        alert(
            "MlmonTargetDown",
            f"up{target_sel} == 0",
            "2m",
            "critical",
            "availability",
            _annotation("Model ", TM, ": target ", Label("instance"), " is down"),
            _annotation(
                "Prometheus cannot scrape ",
                Label("instance"),
                " (job ",
                Label("job"),
                ") for model ",
                TM,
                ".",
            ),
        ),
        alert(
            "MlmonNoTraffic",
            # absent(...) * 0: a model with no request series at all reads as 0 requests per second.
            f"(sum by (model) ({requests_rate()}{sel}) < {number(t.min_request_rate)})\nor\n"
            f"absent({requests_rate()}{sel}) * 0",
            "10m",
            "warning",
            "availability",
            _annotation("Model ", M, " gets too little traffic"),
            _annotation(
                "Requests per second over 5m: ",
                Value("%.4f"),
                " (minimum ",
                number(t.min_request_rate),
                ").",
            ),
        ),
        alert(
            "MlmonErrorRatioHigh",
            f"{error_ratio()}{sel} > {number(t.error_ratio)}",
            "5m",
            "critical",
            "errors",
            _annotation("Model ", M, " fails ", Value("%.3f"), " of requests"),
            _annotation(
                "Error ratio over 5m for version ",
                Label("version"),
                " is ",
                Value("%.4f"),
                ", above ",
                number(t.error_ratio),
                ".",
            ),
        ),
        alert(
            "MlmonLatencyP95High",
            f"{latency_quantile(95)}{sel} > {number(t.latency_p95_seconds)}",
            "10m",
            "warning",
            "latency",
            _annotation("Model ", M, " p95 latency is ", Value("%.3f"), "s"),
            _annotation(
                "p95 latency over 5m for version ",
                Label("version"),
                " is ",
                Value("%.3f"),
                "s, above ",
                number(t.latency_p95_seconds),
                "s.",
            ),
        ),
        alert(
            "MlmonLatencyP99High",
            f"{latency_quantile(99)}{sel} > {number(t.latency_p99_seconds)}",
            "10m",
            "critical",
            "latency",
            _annotation("Model ", M, " p99 latency is ", Value("%.3f"), "s"),
            _annotation(
                "p99 latency over 5m for version ",
                Label("version"),
                " is ",
                Value("%.3f"),
                "s, above ",
                number(t.latency_p99_seconds),
                "s.",
            ),
        ),
    ]
    rules += [_drift_alert(model, severity, alert) for severity in ("warning", "critical")]
    rules += [
        _prediction_drift_alert(model, alert),
        _missing_alert(model, alert),
        alert(
            "MlmonInvalidInput",
            f"{invalid_input_ratio(dw)}{sel} > {number(t.invalid_ratio)}\n"
            f"and on ({_MV})\nsum by ({_MV}) ({REQUESTS.count(dw)}{sel}) >= {n}",
            "15m",
            "warning",
            "invalid_input",
            _annotation("Model ", M, ": ", F, " ", Label("reason"), " in ", Value("%.3f"), " of requests"),
            _annotation(
                "Over ",
                dw,
                " for version ",
                Label("version"),
                ", ",
                Value("%.4f"),
                " of requests brought a value of ",
                F,
                " the monitor could not use (",
                Label("reason"),
                "; an unknown_feature is a name the profile does not have, often a renamed feature), above ",
                number(t.invalid_ratio),
                ".",
            ),
        ),
        _confidence_alert(model, alert),
        _accuracy_alert(model, alert),
        alert(
            "MlmonModelStale",
            f"{model_age()}{sel} > {number(t.max_model_age_days * 86400)}",
            "1h",
            "warning",
            "staleness",
            _annotation(
                "Model ",
                M,
                " version ",
                Label("version"),
                " is older than ",
                number(t.max_model_age_days),
                " days",
            ),
            _annotation("The served version was trained ", Value("%.0f"), " seconds ago."),
        ),
    ]
    if model.task == "regression":
        # Confidence of a predicted class and accuracy from class feedback mean nothing for a regressor.
        rules = [r for r in rules if r.signal not in CLASSIFICATION_SIGNALS]
    # The alerts on window counts run at the counting step: their inputs change only then, and evaluating
    # them every interval would cost as much again for nothing.
    on_windows = tuple(r for r in rules if r.signal in WINDOW_SIGNALS)
    return (
        RuleGroup(f"mlmon.alerts.{model.name}", tuple(r for r in rules if r.signal not in WINDOW_SIGNALS)),
        RuleGroup(
            f"mlmon.window-alerts.{model.name}", on_windows, interval=duration_text(count_step_ms(spec))
        ),
    )


def _drift_alert(model: ModelSpec, severity: str, alert: Callable[..., AlertRule]) -> AlertRule:
    """MlmonFeatureDriftWarning or ...Critical: evidence and size of a change of a feature's values, against
    the reference profile or, with ``drift_baseline: seasonal``, against the same window one period earlier."""
    t = model.thresholds
    sel, dw, n, mvf = (
        promql_matchers(model=model.name),
        t.drift_window,
        t.min_drift_samples,
        f"{_MV}, feature",
    )
    seasonal = t.drift_baseline == "seasonal"
    period = t.seasonal_period
    psi = feature_seasonal_psi(dw, period) if seasonal else feature_psi(dw)
    against = f"the same {dw} {period} earlier" if seasonal else "the reference"
    # Enough observations in the window (and, seasonal, in the baseline window): min_drift_samples, and for the
    # evidence 5 per bin, below which the chi-square's tail is too heavy to trust.
    sizes = [f"{feature_observations(dw)}{sel}"] + (
        [f"{feature_observations(dw)}{sel} offset {period}"] if seasonal else []
    )
    enough = [f"{size} >= {n}" for size in sizes]
    if t.drift_test == "evidence":
        enough += [
            f"{size} >= {MIN_EXPECTED_PER_BIN} * ({feature_reference_degrees()}{sel} + 1)" for size in sizes
        ]
        floor = t.drift_min_psi if severity == "warning" else t.psi_critical
        z = number(round(drift_z_threshold(model), 3))
        evidence = feature_seasonal_z(dw, period) if seasonal else feature_drift_z(dw)
        conditions = [f"{evidence}{sel} > {z}", f"{psi}{sel} > {number(floor)}", *enough]
        summary = _annotation("Feature ", F, " of model ", M, " drifted (z ", Value("%.1f"), ")")
        description = _annotation(
            "Over ",
            dw,
            ", the values of ",
            F,
            " for version ",
            Label("version"),
            f" differ from {against} with z = ",
            Value("%.1f"),
            f" (above {z}, at most {number(t.false_alarms_per_week)} false alarms "
            f"a week), and their PSI is above {number(floor)} ({severity}).",
        )
    else:
        threshold = t.psi_warning if severity == "warning" else t.psi_critical
        conditions = [f"{psi}{sel} > {number(threshold)}", *enough]
        summary = _annotation("Feature ", F, " of model ", M, " drifted (PSI ", Value("%.3f"), ")")
        description = _annotation(
            "PSI of ",
            F,
            " over ",
            dw,
            " for version ",
            Label("version"),
            f" against {against} is " if seasonal else " is ",
            Value("%.3f"),
            f", above the {severity} threshold ",
            number(threshold),
            ".",
        )
    return alert(
        f"MlmonFeatureDrift{severity.title()}",
        f"\nand on ({mvf})\n".join(conditions),
        t.drift_for,
        severity,
        "drift",
        summary,
        description,
    )


def _prediction_drift_alert(model: ModelSpec, alert: Callable[..., AlertRule]) -> AlertRule:
    """MlmonPredictionDrift: the predictions' bins judged as a feature's are (evidence and size), or, with
    ``drift_test: psi``, their PSI above ``prediction_psi``."""
    t = model.thresholds
    sel, dw, n = promql_matchers(model=model.name), t.drift_window, t.min_drift_samples
    enough = f"and on ({_MV})\n{prediction_observations(dw)}{sel} >= {n}"
    if t.drift_test == "psi":
        return alert(
            "MlmonPredictionDrift",
            f"{prediction_psi(dw)}{sel} > {number(t.prediction_psi)}\n{enough}",
            t.drift_for,
            "warning",
            "prediction_drift",
            _annotation("Predictions of model ", M, " drifted (PSI ", Value("%.3f"), ")"),
            _annotation(
                "PSI of the prediction distribution over ",
                dw,
                " for version ",
                Label("version"),
                " is ",
                Value("%.3f"),
                ", above ",
                number(t.prediction_psi),
                ".",
            ),
        )
    z = number(round(drift_z_threshold(model), 3))
    return alert(
        "MlmonPredictionDrift",
        f"{prediction_drift_z(dw)}{sel} > {z}\n"
        f"and on ({_MV})\n{prediction_psi(dw)}{sel} > {number(t.drift_min_psi)}\n{enough}\n"
        f"and on ({_MV})\n{prediction_observations(dw)}{sel}"
        f" >= {MIN_EXPECTED_PER_BIN} * ({prediction_reference_degrees()}{sel} + 1)",
        t.drift_for,
        "warning",
        "prediction_drift",
        _annotation("Predictions of model ", M, " drifted (z ", Value("%.1f"), ")"),
        _annotation(
            "Over ",
            dw,
            ", the predictions of version ",
            Label("version"),
            " are spread over their bins differently from the reference, with z = ",
            Value("%.1f"),
            f" (above {z}, at most {number(t.false_alarms_per_week)} false alarms a week), and their PSI is "
            f"above {number(t.drift_min_psi)}.",
        ),
    )


def _dropped(
    model: ModelSpec,
    value: str,
    reference: str,
    drop: float,
    evidence: str,
    count: str,
) -> str:
    """``value`` more than ``drop`` below ``reference``, on ``count`` >= min_drift_samples; with
    ``drift_test: evidence``, also with evidence (``evidence`` above the model's z). The value stays first, so
    that it is the alert's."""
    t, sel = model.thresholds, promql_matchers(model=model.name)
    expr = (
        f"{value}{sel}\n< on ({_MV})\n({reference}{sel} - {number(drop)})\n"
        f"and on ({_MV})\n{count}{sel} >= {t.min_drift_samples}"
    )
    if t.drift_test == "evidence":
        expr += f"\nand on ({_MV})\n{evidence}{sel} > {number(round(drift_z_threshold(model), 3))}"
    return expr


def _evidence_words(model: ModelSpec) -> str:
    t = model.thresholds
    if t.drift_test != "evidence":
        return "."
    z = number(round(drift_z_threshold(model), 3))
    return f", with evidence above z {z} (at most {number(t.false_alarms_per_week)} false alarms a week)."


def _confidence_alert(model: ModelSpec, alert: Callable[..., AlertRule]) -> AlertRule:
    """MlmonConfidenceDrop: the window's mean confidence more than ``confidence_drop`` below the reference's
    (and, with evidence, surely below it: mlmon.drift.evidence.mean_drop_z)."""
    t, dw = model.thresholds, model.thresholds.drift_window
    return alert(
        "MlmonConfidenceDrop",
        _dropped(
            model,
            confidence_mean(dw),
            reference_confidence_mean(),
            t.confidence_drop,
            confidence_drop_z(dw),
            confidence_count(dw),
        ),
        "30m",
        "warning",
        "confidence",
        _annotation("Model ", M, " is less confident (mean ", Value("%.3f"), ")"),
        _annotation(
            "Mean confidence over ",
            dw,
            " for version ",
            Label("version"),
            " is ",
            Value("%.3f"),
            ", more than ",
            number(t.confidence_drop),
            " below its reference" + _evidence_words(model),
        ),
    )


def _accuracy_alert(model: ModelSpec, alert: Callable[..., AlertRule]) -> AlertRule:
    """MlmonAccuracyDrop: accuracy from feedback more than ``accuracy_drop`` below the reference's (and, with
    evidence, surely below it: the two-proportion z with both sample sizes)."""
    t, fw = model.thresholds, model.thresholds.feedback_window
    return alert(
        "MlmonAccuracyDrop",
        _dropped(
            model,
            accuracy(fw),
            reference_accuracy(),
            t.accuracy_drop,
            accuracy_drop_z(fw),
            feedback_count(fw),
        ),
        "30m",
        "critical",
        "accuracy",
        _annotation("Model ", M, " accuracy dropped to ", Value("%.3f")),
        _annotation(
            "Accuracy from feedback over ",
            fw,
            " for version ",
            Label("version"),
            " is ",
            Value("%.3f"),
            ", more than ",
            number(t.accuracy_drop),
            " below its reference" + _evidence_words(model),
        ),
    )


MISSING_EVIDENCE_FOR = "5m"


def drift_z_threshold(model: ModelSpec) -> float:
    """The z above which a feature's drift or missing-value evidence alerts, from the model's false-alarm
    budget (see :func:`mlmon.drift.evidence.z_threshold`)."""
    t = model.thresholds
    features = len(model.features) or ASSUMED_FEATURES
    return z_threshold(t.false_alarms_per_week, features, duration_seconds(t.drift_window))


def _missing_alert(model: ModelSpec, alert: Callable[..., AlertRule]) -> AlertRule:
    t = model.thresholds
    sel, dw, n, mvf = (
        promql_matchers(model=model.name),
        t.drift_window,
        t.min_drift_samples,
        f"{_MV}, feature",
    )
    rows = f"({feature_observations(dw)}{sel} + {feature_missing_count(dw)}{sel}) >= {n}"
    if t.drift_test == "psi":
        return alert(
            "MlmonMissingValuesHigh",
            f"{feature_missing_ratio(dw)}{sel} > {number(t.missing_ratio)}\nand on ({mvf})\n{rows}",
            "15m",
            "warning",
            "missing",
            _annotation("Feature ", F, " of model ", M, " is missing in ", Value("%.3f"), " of rows"),
            _annotation(
                "Missing-value ratio of ",
                F,
                " over ",
                dw,
                " for version ",
                Label("version"),
                " is ",
                Value("%.4f"),
                ", above ",
                number(t.missing_ratio),
                ".",
            ),
        )
    z = number(round(drift_z_threshold(model), 3))
    rise = f"{feature_missing_ratio(dw)}{sel} - {feature_reference_missing_ratio()}{sel}"
    return alert(
        "MlmonMissingValuesHigh",
        f"{feature_missing_z(dw)}{sel} > {z}\n"
        f"and on ({mvf})\n({rise}) > {number(t.missing_min_increase)}\n"
        f"and on ({mvf})\n{rows}",
        # The evidence already rules chance out: a short `for` lets a jump from 1% to 10% alert within half an
        # hour (bench/drift_alarms.py: 15m made it 28 minutes at the median).
        MISSING_EVIDENCE_FOR,
        "warning",
        "missing",
        _annotation(
            "Feature ",
            F,
            " of model ",
            M,
            " is missing more often than in the reference (z ",
            Value("%.1f"),
            ")",
        ),
        _annotation(
            "Over ",
            dw,
            ", ",
            F,
            " is missing more often for version ",
            Label("version"),
            " than in the reference, with z = ",
            Value("%.1f"),
            f" (above {z}), by more than {number(t.missing_min_increase)}.",
        ),
    )


def alert_rules(spec: Spec) -> tuple[RuleGroup, ...]:
    """Two alert groups per model, each with that model's thresholds: ``mlmon.alerts.MODEL`` evaluated at
    every interval (availability, errors, latency, staleness), ``mlmon.window-alerts.MODEL`` at the counting
    step (drift, missing values, invalid inputs, confidence, accuracy)."""
    return tuple(group for model in spec.models for group in _model_alerts(spec, model))


def model_alerts(spec: Spec, model: ModelSpec) -> tuple[AlertRule, ...]:
    """Every alert rule of ``model``, across its groups."""
    return tuple(
        rule for group in _model_alerts(spec, model) for rule in group.rules if isinstance(rule, AlertRule)
    )


def alert_names() -> tuple[str, ...]:
    """Every alert mlmon defines, in the order of the rule file."""
    from mlmon.spec import spec_from_dict

    example = spec_from_dict({"models": [{"name": "m", "targets": ["127.0.0.1:1"]}]})
    return tuple(rule.alert for rule in model_alerts(example, example.models[0]))
