"""Recording and alert rules as data; the templates only lay them out.

Recording rules are shared by all models: they aggregate ``by (model, version, ...)``, so each replica of a
service only increments counters and Prometheus computes rates, quantiles, PSI, missing ratios and accuracy
across all replicas. Alert rules are per model, because each model has its own thresholds.

Rule names follow the Prometheus convention ``level:metric:operations``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mlmon import contract as c
from mlmon.escape import go_template_text, number, promql_matchers
from mlmon.spec import ModelSpec, Spec

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


# ------------------------------------------------------------------------------------------------------
# Recording rules

_MV = "model, version"


def _ratio_or_zero(numerator: str, denominator: str) -> str:
    """numerator / denominator, where an absent numerator (no error yet, say) counts as 0, not as no data."""
    return f"(\n  {numerator}\n  or\n  {denominator} * 0\n)\n/\n{denominator}"


def _psi(current: str, reference: str, on: str) -> str:
    """PSI = sum((a - e) * ln(a / e)) with both shares clamped to PSI_EPSILON, as offline drift computes it."""
    a = f"clamp_min({current}, {EPS})"
    e = f"clamp_min(max by ({on}) ({reference}), {EPS})"
    return f"(\n    {a}\n    - on ({on}) {e}\n  )\n  * ln(\n    {a}\n    / on ({on}) {e}\n  )"


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
    rules.append(RecordingRule(model_age(), f"time() - max by ({_MV}) ({c.MODEL_TRAINED_TIMESTAMP.name})"))
    return RuleGroup(f"mlmon.rates.{RATE_WINDOW}", tuple(rules))


def window_count(selector: str, w: str) -> str:
    """Events counted by a counter over the window ``w``, per series, exactly.

    ``increase()`` extrapolates each series to the window's edges by a factor that depends on when its
    target was scraped, so summing it over replicas weighs each replica a little differently, and shares
    (and so PSI) drift away from the true ones. The instrument creates every series at zero, so the count
    is simply the last value in the window minus the value at its start; a series younger than the window
    counts from zero, and one that went stale inside the window still counts up to its last sample. After
    a counter reset (a restarted process) only the events since the reset are counted."""
    return (
        f"(\n    last_over_time({selector}[{w}]) - {selector} offset {w} >= 0\n"
        f"    or\n    last_over_time({selector}[{w}])\n  )"
    )


def _window_rules(w: str) -> RuleGroup:
    mvf, mvfb, mvb = f"{_MV}, feature", f"{_MV}, feature, bin", f"{_MV}, bin"
    conf = c.PREDICTION_CONFIDENCE.name
    feedback = feedback_counts(w)
    mvc = f"{_MV}, class"

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
    rules = [
        # Exact counts per bin first; every share and statistic below derives from them.
        RecordingRule(feature_bin_count(w), f"sum by ({mvfb}) (\n  {window_count(c.FEATURE_BIN.name, w)}\n)"),
        RecordingRule(feature_observations(w), f"sum by ({mvf}) ({feature_bin_count(w)})"),
        RecordingRule(
            feature_bin_ratio(w),
            f"{feature_bin_count(w)}\n/ ignoring (bin) group_left\n{feature_observations(w)}",
        ),
        RecordingRule(
            feature_psi(w),
            f"sum by ({mvf}) (\n  "
            + _psi(feature_bin_ratio(w), c.FEATURE_REFERENCE_RATIO.name, mvfb)
            + "\n)",
        ),
        RecordingRule(
            feature_missing_count(w), f"sum by ({mvf}) (\n  {window_count(c.FEATURE_MISSING.name, w)}\n)"
        ),
        RecordingRule(
            feature_missing_ratio(w),
            f"{feature_missing_count(w)}\n/\n({feature_missing_count(w)} + {feature_observations(w)})",
        ),
        RecordingRule(
            prediction_bin_count(w), f"sum by ({mvb}) (\n  {window_count(c.PREDICTION_BIN.name, w)}\n)"
        ),
        RecordingRule(prediction_observations(w), f"sum by ({_MV}) ({prediction_bin_count(w)})"),
        RecordingRule(
            prediction_bin_ratio(w),
            f"{prediction_bin_count(w)}\n/ ignoring (bin) group_left\n{prediction_observations(w)}",
        ),
        RecordingRule(
            prediction_psi(w),
            f"sum by ({_MV}) (\n  "
            + _psi(prediction_bin_ratio(w), c.PREDICTION_REFERENCE_RATIO.name, mvb)
            + "\n)",
        ),
        RecordingRule(confidence_count(w), f"sum by ({_MV}) (\n  {window_count(conf + '_count', w)}\n)"),
        RecordingRule(
            confidence_mean(w),
            f"sum by ({_MV}) (\n  {window_count(conf + '_sum', w)}\n)\n/\n{confidence_count(w)}",
        ),
        RecordingRule(
            feedback,
            f"sum by ({_MV}, predicted, actual, correct) (\n  {window_count(c.FEEDBACK.name, w)}\n)",
        ),
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
    ]
    return RuleGroup(f"mlmon.window.{w}", tuple(rules))


def recording_rules(spec: Spec) -> tuple[RuleGroup, ...]:
    """The recording rule groups for ``spec``: 5-minute rates, then one group per drift or feedback window."""
    return (_rate_rules(), *(_window_rules(w) for w in spec.windows()))


# ------------------------------------------------------------------------------------------------------
# Alert rules

CLASSIFICATION_SIGNALS = ("confidence", "accuracy")

M = Label("model")
TM = Label(c.TARGET_MODEL_LABEL)  # `up` knows its model by the scrape config's target label
F = Label("feature")


def _runbook(spec: Spec, alert: str) -> str:
    return f"{spec.alerting.runbook_base_url}#{alert.lower()}"


def _model_alerts(spec: Spec, model: ModelSpec) -> RuleGroup:
    t = model.thresholds
    sel = promql_matchers(model=model.name)
    dw, fw = t.drift_window, t.feedback_window
    n = t.min_drift_samples
    mvf = f"{_MV}, feature"

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
            model.name, name, expr, for_, severity, signal, summary, description, _runbook(spec, name)
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
    for severity, threshold in (("warning", t.psi_warning), ("critical", t.psi_critical)):
        rules.append(
            alert(
                f"MlmonFeatureDrift{severity.title()}",
                f"{feature_psi(dw)}{sel} > {number(threshold)}\n"
                f"and on ({mvf})\n{feature_observations(dw)}{sel} >= {n}",
                t.drift_for,
                severity,
                "drift",
                _annotation("Feature ", F, " of model ", M, " drifted (PSI ", Value("%.3f"), ")"),
                _annotation(
                    "PSI of ",
                    F,
                    " over ",
                    dw,
                    " for version ",
                    Label("version"),
                    " is ",
                    Value("%.3f"),
                    f", above the {severity} threshold ",
                    number(threshold),
                    ".",
                ),
            )
        )
    rules += [
        alert(
            "MlmonPredictionDrift",
            f"{prediction_psi(dw)}{sel} > {number(t.prediction_psi)}\n"
            f"and on ({_MV})\n{prediction_observations(dw)}{sel} >= {n}",
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
        ),
        alert(
            "MlmonMissingValuesHigh",
            f"{feature_missing_ratio(dw)}{sel} > {number(t.missing_ratio)}\n"
            f"and on ({mvf})\n({feature_observations(dw)}{sel} + {feature_missing_count(dw)}{sel}) >= {n}",
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
        ),
        alert(
            "MlmonConfidenceDrop",
            f"{confidence_mean(dw)}{sel}\n< on ({_MV})\n"
            f"(max by ({_MV}) ({c.REFERENCE_CONFIDENCE_MEAN.name}{sel}) - {number(t.confidence_drop)})\n"
            f"and on ({_MV})\n{confidence_count(dw)}{sel} >= {n}",
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
                " below its reference.",
            ),
        ),
        alert(
            "MlmonAccuracyDrop",
            f"{accuracy(fw)}{sel}\n< on ({_MV})\n"
            f"(max by ({_MV}) ({c.REFERENCE_ACCURACY.name}{sel}) - {number(t.accuracy_drop)})\n"
            f"and on ({_MV})\n{feedback_count(fw)}{sel} >= {n}",
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
                " below its reference.",
            ),
        ),
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
    return RuleGroup(f"mlmon.alerts.{model.name}", tuple(rules))


def alert_rules(spec: Spec) -> tuple[RuleGroup, ...]:
    """One alert group per model, each with that model's thresholds."""
    return tuple(_model_alerts(spec, model) for model in spec.models)


def alert_names() -> tuple[str, ...]:
    """Every alert mlmon defines, in the order of the rule file."""
    from mlmon.spec import spec_from_dict

    example = spec_from_dict({"models": [{"name": "m", "targets": ["127.0.0.1:1"]}]})
    return tuple(rule.alert for rule in alert_rules(example)[0].rules if isinstance(rule, AlertRule))
