"""promtool unit tests for the generated alerts, as data.

For each model: its target going down fires ``MlmonTargetDown``; a feature drifting past the critical PSI
fires both drift alerts (with ``drift_test: evidence``, on evidence far above the model's z threshold); a feature
drifting less than half the warning threshold (the PSI floor, with evidence) fires neither; an error
ratio above the threshold fires ``MlmonErrorRatioHigh``. The scenarios are built from the model's own
thresholds and windows, and the expected annotations come from the same parts as the rule's templates, so
``promtool test rules`` checks the whole chain: series -> recording rules -> alert rules -> annotations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlmon import contract as c
from mlmon import rules
from mlmon.drift.evidence import chi_square_homogeneity, wilson_hilferty_z
from mlmon.drift.statistics import psi
from mlmon.escape import promql_matchers
from mlmon.spec import ModelSpec, Spec, duration_seconds

TEST_VERSION = "1"
TEST_JOB = "mlmon-test"
TEST_INSTANCE = "127.0.0.1:9"
TEST_REFERENCE_OBSERVATIONS = 10_000
MAX_CRITICAL_PSI = 2.5  # the spec refuses higher thresholds; the scenario below can exceed this


@dataclass(frozen=True)
class Series:
    name: str
    labels: tuple[tuple[str, str], ...]
    values: str

    @property
    def selector(self) -> str:
        return self.name + promql_matchers(**dict(self.labels))


@dataclass(frozen=True)
class ExpectedAlert:
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class AlertCheck:
    eval_time: str
    alertname: str
    expected: tuple[ExpectedAlert, ...]


@dataclass(frozen=True)
class AlertTest:
    description: str
    interval: str
    series: tuple[Series, ...]
    checks: tuple[AlertCheck, ...]


def _seconds(value: float) -> str:
    return f"{int(value)}s"


def _alert(spec: Spec, model: ModelSpec, name: str) -> rules.AlertRule:
    for rule in rules.model_alerts(spec, model):
        if rule.alert == name:
            return rule
    raise KeyError(name)


def _expected(rule: rules.AlertRule, labels: dict[str, str], value: float) -> ExpectedAlert:
    all_labels = {**labels, **rule.labels, "model": rule.model}  # what the label template expands to
    # Annotation templates see the expression's labels only, not the rule's static ones.
    annotations = {
        "summary": rule.summary.expand(labels, value),
        "description": rule.description.expand(labels, value),
        "runbook_url": rule.runbook_url,
    }
    return ExpectedAlert(tuple(sorted(all_labels.items())), tuple(sorted(annotations.items())))


def _target_down(spec: Spec, model: ModelSpec) -> AlertTest:
    rule = _alert(spec, model, "MlmonTargetDown")
    labels = {"job": TEST_JOB, "instance": TEST_INSTANCE, c.TARGET_MODEL_LABEL: model.name}
    eval_time = duration_seconds(rule.for_) + 180
    return AlertTest(
        description=f"{model.name}: a target that is down fires MlmonTargetDown",
        interval="1m",
        series=(Series("up", tuple(labels.items()), f"0x{int(eval_time // 60) + 2}"),),
        checks=(AlertCheck(_seconds(eval_time), rule.alert, (_expected(rule, labels, 0.0),)),),
    )


def _baseline_steps(model: ModelSpec, step: int) -> int:
    """Samples before the drift starts: none against the reference; a whole seasonal period against a seasonal
    baseline, so that the window the drifted one is compared with holds only undrifted values."""
    t = model.thresholds
    return round(duration_seconds(t.seasonal_period) / step) if t.drift_baseline == "seasonal" else 0


def _drift_step(model: ModelSpec) -> tuple[int, int]:
    """(seconds between samples, samples per series) long enough for the window plus the alert's `for` (after
    a seasonal baseline's period).

    The step stays at one minute whatever the window: the reference-ratio gauges must have a sample within
    Prometheus' 5-minute lookback at every evaluation, as they do when scraped for real."""
    step = 60
    horizon = (
        duration_seconds(model.thresholds.drift_window)
        + duration_seconds(model.thresholds.drift_for)
        + 3 * step
    )
    return step, _baseline_steps(model, step) + math.ceil(horizon / step) + 1


def _drift_series(
    model: ModelSpec, feature: str, counts: tuple[int, int], steps: int, before: int = 0
) -> list[Series]:
    """The reference (50/50) and a feature's counts: ``before`` steps as the reference, then ``counts``."""
    base = {"model": model.name, "version": TEST_VERSION, "feature": feature}
    series = [
        Series(
            c.FEATURE_REFERENCE_OBSERVATIONS.name,
            tuple(base.items()),
            f"{TEST_REFERENCE_OBSERVATIONS}+0x{steps}",
        ),
        Series(c.FEATURE_REFERENCE_MISSING_RATIO.name, tuple(base.items()), f"0+0x{steps}"),
    ]
    half = sum(counts) // 2
    for bin_, count in enumerate(counts):
        labels = tuple({**base, "bin": str(bin_)}.items())
        series.append(Series(c.FEATURE_REFERENCE_RATIO.name, labels, f"0.5+0x{steps}"))
        values = f"0+{count}x{steps}"
        if (
            before
        ):  # values 0 .. before at `half` a step, then `count` a step (promtool's axb expands to b + 1)
            values = f"0+{half}x{before} {half * before + count}+{count}x{steps - before - 2}"
        series.append(Series(c.FEATURE_BIN.name, labels, values))
    return series


def _per_step_total(model: ModelSpec, step: int) -> int:
    """Observations per sample step, enough that a window holds at least twice min_drift_samples."""
    window_steps = duration_seconds(model.thresholds.drift_window) / step
    return max(1000, math.ceil(2 * model.thresholds.min_drift_samples / window_steps))


def _split_for_psi(total: int, target: float, above: bool) -> tuple[int, int]:
    """Counts (a, total - a) against a 50/50 reference whose PSI is the first above ``target`` (or the last
    below it, with above=False)."""
    best = (total // 2, total - total // 2)
    for a in range(total // 2, total):
        value = psi([a / total, (total - a) / total], [0.5, 0.5])
        if above and value > target:
            return a, total - a
        if not above:
            if value >= target:
                return best
            best = (a, total - a)
    return best


def _feature_drift(spec: Spec, model: ModelSpec, feature: str) -> tuple[AlertTest, AlertTest]:
    t = model.thresholds
    warning = _alert(spec, model, "MlmonFeatureDriftWarning")
    critical = _alert(spec, model, "MlmonFeatureDriftCritical")
    step, steps = _drift_step(model)
    total = _per_step_total(model, step)
    eval_time = _seconds(step * (steps - 1))
    labels = {"model": model.name, "version": TEST_VERSION, "feature": feature}

    window_steps = round(duration_seconds(t.drift_window) / step)
    before = _baseline_steps(model, step)
    # Against a seasonal baseline the window is compared with the same window a period earlier, which holds
    # `before` steps of 50/50 counts as large as the window's own.
    baseline_count = total * window_steps if before else TEST_REFERENCE_OBSERVATIONS
    high = _split_for_psi(total, min(t.psi_critical * 1.25, MAX_CRITICAL_PSI * 1.25), above=True)
    high_psi = psi([high[0] / total, high[1] / total], [0.5, 0.5])
    if t.drift_test == "evidence":  # the alert's value is then the z of the window's counts
        window_counts = [count * window_steps for count in high]
        statistic, degrees = chi_square_homogeneity(window_counts, [0.5, 0.5], baseline_count)
        high_psi = wilson_hilferty_z(statistic, degrees)
    fires = AlertTest(
        description=f"{model.name}: feature {feature} drifting past the critical PSI fires both drift alerts",
        interval=_seconds(step),
        series=tuple(_drift_series(model, feature, high, steps, before)),
        checks=(
            AlertCheck(eval_time, critical.alert, (_expected(critical, labels, high_psi),)),
            AlertCheck(eval_time, warning.alert, (_expected(warning, labels, high_psi),)),
        ),
    )
    floor = t.drift_min_psi if t.drift_test == "evidence" else t.psi_warning
    low = _split_for_psi(total, floor / 2, above=False)
    silent = AlertTest(
        description=f"{model.name}: feature {feature} drifting below half the warning PSI stays silent",
        interval=_seconds(step),
        series=tuple(_drift_series(model, feature, low, steps, before)),
        checks=(AlertCheck(eval_time, critical.alert, ()), AlertCheck(eval_time, warning.alert, ())),
    )
    return fires, silent


def _error_ratio(spec: Spec, model: ModelSpec) -> AlertTest:
    rule = _alert(spec, model, "MlmonErrorRatioHigh")
    total = 1000
    errors = min(total - 1, max(math.floor(model.thresholds.error_ratio * total) + 1, 100))
    base = {"model": model.name, "version": TEST_VERSION}
    steps = int((duration_seconds(rule.for_) + 600) // 60)
    return AlertTest(
        description=f"{model.name}: an error ratio above the threshold fires MlmonErrorRatioHigh",
        interval="1m",
        series=(
            Series(c.REQUESTS.name, tuple({**base, "status": "ok"}.items()), f"0+{total - errors}x{steps}"),
            Series(c.REQUESTS.name, tuple({**base, "status": "error"}.items()), f"0+{errors}x{steps}"),
        ),
        checks=(AlertCheck(_seconds(60 * steps), rule.alert, (_expected(rule, base, errors / total),)),),
    )


def alert_test_groups(spec: Spec) -> tuple[AlertTest, ...]:
    """The promtool test cases for every model in ``spec``."""
    tests: list[AlertTest] = []
    for model in spec.models:
        feature = model.features[0].name if model.features else "example_feature"
        tests.append(_target_down(spec, model))
        tests.extend(_feature_drift(spec, model, feature))
        tests.append(_error_ratio(spec, model))
    return tuple(tests)
