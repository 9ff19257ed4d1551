"""The evidence behind the drift and missing-value alerts: the z scores the recording rules compute equal those of
mlmon.drift.evidence on the same counts (promtool's own evaluator), the statistics agree with scipy, and the alerts
fire on evidence and effect together, not on either alone."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from mlmon import contract as c
from mlmon import rules
from mlmon.drift.evidence import (
    ASSUMED_REFERENCE_OBSERVATIONS,
    chi_square_homogeneity,
    histogram_variance_bound,
    mean_drop_z,
    proportion_z,
    wilson_hilferty_z,
    z_threshold,
)
from mlmon.render import ALERT_RULES, RECORDING_RULES
from mlmon.spec import spec_from_dict
from tests.helpers import promtool_test, render_into

WINDOW = "30m"
MINUTES = 30  # the window at minute 40 holds the increments of minutes 11 to 40
EVAL_MINUTE = 40
REFERENCE_SHARES = (0.4, 0.3, 0.2, 0.1)
REFERENCE_OBSERVATIONS = 500  # small, so that the reference's own sampling error weighs in
REFERENCE_MISSING = 0.02


def _spec(features: int = 1) -> dict[str, object]:
    return {
        "models": [
            {
                "name": "m",
                "targets": ["127.0.0.1:8000"],
                "features": [f"f{i}" for i in range(features)],
                "thresholds": {"drift_window": WINDOW, "feedback_window": "1h"},
            }
        ]
    }


def _input_series(
    per_minute: tuple[int, ...], missing_per_minute: int, reference: int = REFERENCE_OBSERVATIONS
) -> list[dict[str, str]]:
    labels = 'model="m",version="1",feature="f0"'
    steps = EVAL_MINUTE + 20
    series = [
        {
            "series": f"{c.FEATURE_REFERENCE_OBSERVATIONS.name}{{{labels}}}",
            "values": f"{reference}x{steps}",
        },
        {
            "series": f"{c.FEATURE_REFERENCE_MISSING_RATIO.name}{{{labels}}}",
            "values": f"{REFERENCE_MISSING}x{steps}",
        },
        {"series": f"{c.FEATURE_MISSING.name}{{{labels}}}", "values": f"0+{missing_per_minute}x{steps}"},
    ]
    for bin_, (share, count) in enumerate(zip(REFERENCE_SHARES, per_minute, strict=True)):
        bin_labels = f'{labels},bin="{bin_}"'
        series.append(
            {"series": f"{c.FEATURE_REFERENCE_RATIO.name}{{{bin_labels}}}", "values": f"{share}x{steps}"}
        )
        series.append({"series": f"{c.FEATURE_BIN.name}{{{bin_labels}}}", "values": f"0+{count}x{steps}"})
    return series


def _expected_z(
    per_minute: tuple[int, ...], missing_per_minute: int, reference: int = REFERENCE_OBSERVATIONS
) -> tuple[float, float]:
    window = [count * MINUTES for count in per_minute]
    statistic, degrees = chi_square_homogeneity(window, REFERENCE_SHARES, reference)
    present, missing = sum(window), missing_per_minute * MINUTES
    reference_rows = reference / (1 - REFERENCE_MISSING)
    return (
        wilson_hilferty_z(statistic, degrees),
        proportion_z(missing, missing + present, REFERENCE_MISSING, reference_rows),
    )


@pytest.mark.parametrize(
    ("per_minute", "missing_per_minute", "counts_exported"),
    [
        ((12, 9, 6, 3), 1, True),  # as the reference: little evidence of anything
        ((10, 9, 7, 4), 3, True),  # a small move, and missing values up from 2% to 9%
        ((3, 6, 9, 12), 0, True),  # the shares reversed, no missing value at all
        # A service whose profile predates reference counts: the reference is taken as exact (1e9 values).
        ((10, 9, 7, 4), 3, False),
    ],
)
def test_recorded_z_scores_equal_the_offline_ones(
    promtool: str, tmp_path: Path, per_minute: tuple[int, ...], missing_per_minute: int, counts_exported: bool
) -> None:
    out = render_into(spec_from_dict(_spec()), tmp_path / "out")
    reference = REFERENCE_OBSERVATIONS if counts_exported else int(ASSUMED_REFERENCE_OBSERVATIONS)
    drift_z, missing_z = _expected_z(per_minute, missing_per_minute, reference)
    labels = 'model="m",version="1",feature="f0"'
    series = _input_series(per_minute, missing_per_minute)
    if not counts_exported:
        series = [s for s in series if c.FEATURE_REFERENCE_OBSERVATIONS.name not in s["series"]]
    case = {
        "interval": "1m",
        "input_series": series,
        # Equal to 1e-12 (the rules add in another order than Python): the comparison is a 0 or 1 sample.
        "promql_expr_test": [
            {
                "expr": f"abs({name} - {value!r}) < bool {1e-12 * max(abs(value), 1)!r}",
                "eval_time": f"{EVAL_MINUTE}m",
                "exp_samples": [{"labels": f"{{{labels}}}", "value": 1}],
            }
            for name, value in (
                (rules.feature_drift_z(WINDOW), drift_z),
                (rules.feature_missing_z(WINDOW), missing_z),
            )
        ],
    }
    promtool_test(promtool, tmp_path, [out / RECORDING_RULES], [case])


def test_the_alerts_need_evidence_and_effect(promtool: str, tmp_path: Path) -> None:
    """A large move on few observations (z below the threshold) and a clear but tiny move (PSI below the
    floor) stay quiet; a clear move above the floor warns; a rise of missing values alerts."""
    spec = spec_from_dict(_spec())
    out = render_into(spec, tmp_path / "out")
    z = rules.drift_z_threshold(spec.models[0])
    cases = {
        # (per minute per bin, missing per minute, reference observations, the alerts firing 16 minutes on)
        "few observations": ((1, 1, 1, 1), 0, REFERENCE_OBSERVATIONS, ()),
        "a move too small to matter": ((4100, 3000, 1950, 950), 204, 1_000_000, ()),
        "a clear move": ((250, 300, 280, 170), 20, REFERENCE_OBSERVATIONS, ("MlmonFeatureDriftWarning",)),
        "missing values up": ((400, 300, 200, 100), 200, REFERENCE_OBSERVATIONS, ("MlmonMissingValuesHigh",)),
    }
    tests = []
    for name, (per_minute, missing, reference, firing) in cases.items():
        drift_z, missing_z = _expected_z(per_minute, missing, reference)
        window = [n * MINUTES for n in per_minute]
        effect = sum(
            (a / sum(window) - e) * math.log(max(a / sum(window), 1e-4) / e)
            for a, e in zip(window, REFERENCE_SHARES, strict=True)
        )
        # The cases are what they claim to be (checked here, so that a change of numbers cannot hide it).
        if name == "few observations":
            assert drift_z < z
        elif name == "a move too small to matter":
            assert drift_z > z and effect < 0.01
        elif name == "a clear move":
            assert drift_z > z and 0.01 < effect < 0.2 and missing_z < z
        else:
            assert missing_z > z and effect < 0.01
        checks = [
            {
                "eval_time": f"{EVAL_MINUTE + 16}m",
                "alertname": alert,
                **({} if alert in firing else {"exp_alerts": []}),
            }
            for alert in ("MlmonFeatureDriftWarning", "MlmonFeatureDriftCritical", "MlmonMissingValuesHigh")
        ]
        tests.append(
            {
                "interval": "1m",
                "input_series": _input_series(per_minute, missing, reference),
                "alert_rule_test": [check for check in checks if "exp_alerts" in check],
                "promql_expr_test": [
                    {
                        "expr": f'count(ALERTS{{alertname="{alert}",alertstate="firing"}})',
                        "eval_time": f"{EVAL_MINUTE + 16}m",
                        "exp_samples": [{"labels": "{}", "value": 1}],
                    }
                    for alert in firing
                ],
            }
        )
    promtool_test(promtool, tmp_path, [out / RECORDING_RULES, out / ALERT_RULES], tests)


def test_the_statistics_agree_with_scipy() -> None:
    rng = np.random.default_rng(7)
    for bins in (2, 4, 10, 21):
        reference_counts = rng.integers(50, 500, size=bins)
        current = rng.integers(0, 400, size=bins).astype(float)
        shares = reference_counts / reference_counts.sum()
        statistic, degrees = chi_square_homogeneity(current.tolist(), shares.tolist(), reference_counts.sum())
        table = np.vstack([reference_counts, current])
        expected = stats.chi2_contingency(table[:, table.sum(axis=0) > 0], correction=False)[0]
        assert statistic == pytest.approx(expected, rel=1e-9)
        assert degrees == bins - 1
        # Wilson-Hilferty, in the tail that matters: at most the exact normal quantile of the chi-square (so it
        # raises fewer alerts than budgeted, never more), and short of it by less than 0.25 from 3 degrees of
        # freedom, 0.4 for one or two (at p = 1e-7; less at larger p).
        for p in (1e-3, 1e-5, 1e-7):
            shortfall = stats.norm.isf(p) - wilson_hilferty_z(stats.chi2.isf(p, degrees), degrees)
            assert -0.02 < shortfall < (0.25 if degrees >= 3 else 0.4)
    # The two-proportion z equals the square root of the 2x2 chi-square.
    table = np.array([[90, 910], [200, 9800]])
    z = proportion_z(90, 1000, 200 / 10_000, 10_000)
    assert z**2 == pytest.approx(stats.chi2_contingency(table, correction=False)[0], rel=1e-9)


def test_the_budget_sets_the_threshold() -> None:
    # More features or a longer week of windows split the same budget finer: the threshold rises.
    # 25 features x 2 tests + 3 model tests, 168 hour-long windows a week, 20 evaluations' worth each.
    assert z_threshold(0.05, 25, 3600) == pytest.approx(stats.norm.isf(0.05 / (53 * 168 * 20)), rel=1e-9)
    assert z_threshold(0.05, 25, 3600) == pytest.approx(5.004, abs=1e-3)
    assert z_threshold(0.05, 50, 3600) > z_threshold(0.05, 25, 3600)
    assert z_threshold(0.05, 25, 6 * 3600) < z_threshold(0.05, 25, 3600)
    assert z_threshold(1.0, 25, 3600) < z_threshold(0.05, 25, 3600)


# -- offline: the same evidence, at small and large samples --------------------------------------------------


def test_offline_two_samples_of_one_distribution_are_not_drift_even_at_100_rows() -> None:
    """Wasserstein above 0.1 called 97.5% of such features drifted at 100 rows a side; the evidence, which
    knows how little 100 rows say, calls none in 40 seeded reports of 20 features."""
    from mlmon.drift.report import drift_report

    rng = np.random.default_rng(11)
    flagged = wasserstein_flagged = 0
    for _ in range(40):
        reference = {f"x{i}": rng.normal(size=100) for i in range(20)}
        current = {f"x{i}": rng.normal(size=100) for i in range(20)}
        report = drift_report(reference, current)
        flagged += len(report.drifted)
        wasserstein_flagged += len(drift_report(reference, current, method="wasserstein").drifted)
    assert flagged == 0
    assert wasserstein_flagged > 600  # of 800: what the old default said


def test_offline_at_100000_rows_subtle_changes_are_flagged_and_both_types_judged_alike() -> None:
    from mlmon.drift.report import drift_report

    rng = np.random.default_rng(12)
    rows = 100_000
    categories = np.array([f"c{i}" for i in range(10)], dtype=object)
    shares = np.array([0.30, 0.20, 0.15, 0.10, 0.08, 0.06, 0.05, 0.03, 0.02, 0.01])
    moved = np.concatenate([[0.40], shares[1:] * 0.6 / 0.7])
    reference = {
        "shifted": rng.normal(size=rows),
        "steady": rng.normal(size=rows),
        "category": rng.choice(categories, size=rows, p=shares),
        "steady_category": rng.choice(categories, size=rows, p=shares),
    }
    current = {
        "shifted": rng.normal(0.3, 1.0, size=rows),
        "steady": rng.normal(size=rows),
        "category": rng.choice(categories, size=rows, p=moved),
        "steady_category": rng.choice(categories, size=rows, p=shares),
    }
    report = drift_report(reference, current)
    assert sorted(f.name for f in report.drifted) == ["category", "shifted"]
    by_name = {f.name: f for f in report.features}
    # The old defaults missed the category (Jensen-Shannon 0.084 < 0.1) while flagging the 0.3-sigma shift.
    old = {f.name: f for f in drift_report(reference, current, method="jensenshannon").features}
    assert not old["category"].drift
    assert by_name["category"].jensenshannon is not None and by_name["category"].jensenshannon < 0.1
    assert by_name["steady"].statistic < 3 and by_name["steady_category"].statistic < 3


# -- the model's own signals: predictions, confidence, accuracy --------------------------------------------------

PREDICTION_SHARES = (0.6, 0.3, 0.1)


def _model_series(
    predictions_per_minute: tuple[int, ...],
    confidence_sum_per_minute: float,
    correct_per_minute: int,
    wrong_per_minute: int,
) -> list[dict[str, str]]:
    labels = 'model="m",version="1"'
    steps = EVAL_MINUTE + 20
    gauges = {
        c.PREDICTION_REFERENCE_OBSERVATIONS.name: 2000,
        c.REFERENCE_CONFIDENCE_MEAN.name: 0.9,
        c.REFERENCE_CONFIDENCE_OBSERVATIONS.name: 2000,
        c.REFERENCE_ACCURACY.name: 0.85,
        c.REFERENCE_ACCURACY_OBSERVATIONS.name: 1500,
    }
    series = [
        {"series": f"{name}{{{labels}}}", "values": f"{value}x{steps}"} for name, value in gauges.items()
    ]
    for bin_, (share, count) in enumerate(zip(PREDICTION_SHARES, predictions_per_minute, strict=True)):
        bin_labels = f'{labels},bin="c{bin_}"'
        series += [
            {"series": f"{c.PREDICTION_REFERENCE_RATIO.name}{{{bin_labels}}}", "values": f"{share}x{steps}"},
            {"series": f"{c.PREDICTION_BIN.name}{{{bin_labels}}}", "values": f"0+{count}x{steps}"},
        ]
    confidence = c.PREDICTION_CONFIDENCE.name
    n = sum(predictions_per_minute)
    series += [
        {"series": f"{confidence}_count{{{labels}}}", "values": f"0+{n}x{steps}"},
        {"series": f"{confidence}_sum{{{labels}}}", "values": f"0+{confidence_sum_per_minute}x{steps}"},
    ]
    # The buckets as Python's client writes them (le="1.0"), from a spread of the confidences per minute.
    for bound, cumulative in zip(c.CONFIDENCE_BUCKETS, confidence_buckets(n), strict=True):
        bucket = f'{labels},le="{float(bound)!r}"'
        series.append({"series": f"{confidence}_bucket{{{bucket}}}", "values": f"0+{cumulative}x{steps}"})
    for correct, count in (("true", correct_per_minute), ("false", wrong_per_minute)):
        outcome = (
            f'{labels},predicted="c0",actual="{"c0" if correct == "true" else "c1"}",correct="{correct}"'
        )
        series.append({"series": f"{c.FEEDBACK.name}{{{outcome}}}", "values": f"0+{count}x{steps}"})
    return series


def confidence_buckets(n: int) -> list[int]:
    """Cumulative counts per confidence bucket of ``n`` predictions: a tenth at or below 0.7, a third more at or
    below 0.9, the rest above."""
    low, middle = n // 10, n // 3
    return [
        0 if bound < 0.7 else low if bound < 0.9 else low + middle if bound < 0.95 else n
        for bound in c.CONFIDENCE_BUCKETS
    ]


def _model_spec(drift_test: str = "evidence") -> dict[str, object]:
    thresholds = {"drift_window": WINDOW, "feedback_window": WINDOW, "drift_test": drift_test}
    return {"models": [{"name": "m", "targets": ["127.0.0.1:8000"], "thresholds": thresholds}]}


def test_model_level_z_scores_equal_the_offline_ones(promtool: str, tmp_path: Path) -> None:
    """Prediction drift by the features' chi-square, the confidence drop by mean_drop_z, the accuracy drop by
    the two-proportion z: each recorded z equals mlmon.drift.evidence's on the same counts."""
    out = render_into(spec_from_dict(_model_spec()), tmp_path / "out")
    predictions, confidence_sum, correct, wrong = (50, 35, 15), 84.0, 20, 5
    window = [n * MINUTES for n in predictions]
    statistic, degrees = chi_square_homogeneity(window, PREDICTION_SHARES, 2000)
    n = sum(window)
    expected = {
        rules.prediction_drift_z(WINDOW): wilson_hilferty_z(statistic, degrees),
        rules.confidence_drop_z(WINDOW): mean_drop_z(
            confidence_sum * MINUTES / n,
            n,
            0.9,
            2000,
            histogram_variance_bound(
                [count * MINUTES for count in confidence_buckets(sum(predictions))],
                c.CONFIDENCE_BUCKETS,
                confidence_sum * MINUTES / n,
            ),
        ),
        rules.accuracy_drop_z(WINDOW): -proportion_z(
            correct * MINUTES, (correct + wrong) * MINUTES, 0.85, 1500
        ),
    }
    assert all(value > 1 for value in expected.values())  # each case is a drift or a drop, not a zero
    case = {
        "interval": "1m",
        "input_series": _model_series(predictions, confidence_sum, correct, wrong),
        "promql_expr_test": [
            {
                "expr": f"abs({name} - {value!r}) < bool {1e-12 * max(abs(value), 1)!r}",
                "eval_time": f"{EVAL_MINUTE}m",
                "exp_samples": [{"labels": '{model="m",version="1"}', "value": 1}],
            }
            for name, value in expected.items()
        ],
    }
    promtool_test(promtool, tmp_path, [out / RECORDING_RULES], [case])


@pytest.mark.parametrize("drift_test", ["evidence", "psi"])
def test_an_accuracy_drop_on_little_feedback_needs_evidence(
    promtool: str, tmp_path: Path, drift_test: str
) -> None:
    """Accuracy 0.78 against a reference of 0.85 measured on 1,500 rows (a drop above accuracy_drop, 0.05) on
    270 feedback events in the window may be chance (z 3.0): only the old rule pages. Accuracy 0.76 on 4,500
    is not (z 7.3): both page. The same for the mean confidence: 0.78 against 0.9 on 270 predictions (z 4.6),
    then on 4,500 (z 13)."""
    out = render_into(spec_from_dict(_model_spec(drift_test)), tmp_path / "out")
    z_needed = rules.drift_z_threshold(spec_from_dict(_model_spec()).models[0])
    cases = []
    for per_minute, correct, evidence in ((9, 7, False), (150, 114, True)):
        # The cases are what they claim to be.
        accuracy_z = -proportion_z(correct * MINUTES, per_minute * MINUTES, 0.85, 1500)
        confidence_z = mean_drop_z(0.78, per_minute * MINUTES, 0.9, 2000)
        assert (accuracy_z > z_needed, confidence_z > z_needed) == (evidence, evidence)
        fires = evidence or drift_test == "psi"
        predictions = (per_minute, 0, 0)
        cases.append(
            {
                "interval": "1m",
                "input_series": _model_series(predictions, 0.78 * per_minute, correct, per_minute - correct),
                "promql_expr_test": [
                    {
                        "expr": f'count(ALERTS{{alertname="{name}",alertstate="firing"}}) or vector(0)',
                        "eval_time": f"{EVAL_MINUTE + 31}m",
                        "exp_samples": [{"labels": "{}", "value": 1 if fires else 0}],
                    }
                    for name in ("MlmonAccuracyDrop", "MlmonConfidenceDrop")
                ],
            }
        )
    promtool_test(promtool, tmp_path, [out / RECORDING_RULES, out / ALERT_RULES], cases)
