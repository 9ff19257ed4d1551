"""``drift_baseline: seasonal``: a feature whose shares follow a rhythm is judged against the same window one period
earlier, by promtool's own evaluator of the generated rules. The recorded z and PSI equal mlmon.drift.evidence's
on the same counts; the rhythm that pages against the reference stays quiet against the seasonal baseline; a real
change still alerts; a version younger than the period has no baseline and no seasonal alert."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from mlmon import contract as c
from mlmon import rules
from mlmon.drift.evidence import chi_square_homogeneity, wilson_hilferty_z
from mlmon.render import ALERT_RULES, RECORDING_RULES
from mlmon.spec import spec_from_dict
from tests.helpers import promtool_test, render_into

WINDOW, PERIOD, PERIOD_MINUTES = "30m", "2h", 120
REFERENCE_SHARES = (0.4, 0.3, 0.2, 0.1)
REFERENCE_OBSERVATIONS = 100_000
# Per minute and bin: the first half of each period looks like the reference, the second half does not (a
# daily rhythm, shortened to two hours); from minute 300 on, a real change.
PHASE_A, PHASE_B, CHANGED = (40, 30, 20, 10), (25, 30, 25, 20), (10, 20, 30, 40)
CHANGE_MINUTE, MINUTES = 300, 360


def per_minute(minute: int) -> tuple[int, ...]:
    if minute >= CHANGE_MINUTE:
        return CHANGED
    return PHASE_A if minute % PERIOD_MINUTES < PERIOD_MINUTES // 2 else PHASE_B


def window_counts(end_minute: int) -> list[int]:
    """The window at minute T holds the increments of minutes T - 29 to T (see tests/test_drift_evidence.py)."""
    minutes = range(end_minute - 29, end_minute + 1)
    return [sum(per_minute(m)[b] for m in minutes) for b in range(len(REFERENCE_SHARES))]


def _spec() -> dict[str, object]:
    thresholds = {"drift_window": WINDOW, "feedback_window": "1h"}
    return {
        "models": [
            {"name": "ref", "targets": ["127.0.0.1:8000"], "features": ["f0"], "thresholds": thresholds},
            {
                "name": "seasonal",
                "targets": ["127.0.0.1:8001"],
                "features": ["f0"],
                "thresholds": {**thresholds, "drift_baseline": "seasonal", "seasonal_period": PERIOD},
            },
        ]
    }


def _series(model: str, version: str = "1", first_minute: int = 0) -> list[dict[str, str]]:
    """A model's counters and reference gauges, the counters starting at ``first_minute`` (a version deployed
    then)."""
    labels = f'model="{model}",version="{version}",feature="f0"'
    gap = "_ " * first_minute
    reference = {"series": f"{c.FEATURE_REFERENCE_OBSERVATIONS.name}{{{labels}}}"}
    series = [{**reference, "values": gap + f"{REFERENCE_OBSERVATIONS}x{MINUTES - first_minute}"}]
    for bin_, share in enumerate(REFERENCE_SHARES):
        bin_labels = f'{labels},bin="{bin_}"'
        totals, total = [], 0
        for minute in range(first_minute, MINUTES + 1):
            if minute > first_minute:
                total += per_minute(minute)[bin_]
            totals.append(str(total))
        series += [
            {
                "series": f"{c.FEATURE_REFERENCE_RATIO.name}{{{bin_labels}}}",
                "values": gap + f"{share}x{MINUTES - first_minute}",
            },
            {"series": f"{c.FEATURE_BIN.name}{{{bin_labels}}}", "values": gap + " ".join(totals)},
        ]
    return series


def _promtool_test(promtool: str, tmp_path: Path, tests: Sequence[dict[str, object]], alerts: bool) -> None:
    out = render_into(spec_from_dict(_spec()), tmp_path / "out")
    rule_files = [out / RECORDING_RULES] + ([out / ALERT_RULES] if alerts else [])
    promtool_test(promtool, tmp_path, rule_files, list(tests), timeout=300)


@pytest.mark.parametrize(
    "minute",
    [
        230,  # the second half of the second period against that of the first: the same shares
        325,  # the change, half in the window, against a window that straddles the rhythm's turn
        340,  # the change against the rhythm's second half
    ],
)
def test_recorded_seasonal_z_and_psi_equal_the_offline_ones(
    promtool: str, tmp_path: Path, minute: int
) -> None:
    current, baseline = window_counts(minute), window_counts(minute - PERIOD_MINUTES)
    baseline_shares = [count / sum(baseline) for count in baseline]
    statistic, degrees = chi_square_homogeneity(current, baseline_shares, sum(baseline))
    z = wilson_hilferty_z(statistic, degrees)
    eps = c.PSI_EPSILON
    psi = sum(
        (max(a / sum(current), eps) - max(e, eps)) * math.log(max(a / sum(current), eps) / max(e, eps))
        for a, e in zip(current, baseline_shares, strict=True)
    )
    labels = '{model="seasonal",version="1",feature="f0"}'
    case = {
        "interval": "1m",
        "input_series": _series("seasonal"),
        "promql_expr_test": [
            {
                "expr": f"abs({name} - {value!r}) < bool {1e-12 * max(abs(value), 1)!r}",
                "eval_time": f"{minute}m",
                "exp_samples": [{"labels": labels, "value": 1}],
            }
            for name, value in (
                (rules.feature_seasonal_z(WINDOW, PERIOD), z),
                (rules.feature_seasonal_psi(WINDOW, PERIOD), psi),
            )
        ],
    }
    _promtool_test(promtool, tmp_path, [case], alerts=False)


def _firing(minute: int, model: str, alerts: Sequence[str]) -> list[dict[str, object]]:
    """Checks that exactly ``alerts`` of the drift alerts fire for ``model`` at ``minute``."""
    checks: list[dict[str, object]] = [
        {
            "expr": f'count(ALERTS{{alertname="{name}",alertstate="firing",model="{model}"}}) or vector(0)',
            "eval_time": f"{minute}m",
            "exp_samples": [{"labels": "{}", "value": 1 if name in alerts else 0}],
        }
        for name in ("MlmonFeatureDriftWarning", "MlmonFeatureDriftCritical")
    ]
    return checks


def test_the_rhythm_pages_against_the_reference_not_against_the_seasonal_baseline(
    promtool: str, tmp_path: Path
) -> None:
    # The cases are what they claim to be: the rhythm's second half is clear drift against the reference.
    against_reference, _ = chi_square_homogeneity(
        window_counts(230), REFERENCE_SHARES, REFERENCE_OBSERVATIONS
    )
    assert wilson_hilferty_z(against_reference, 3) > 2 * rules.drift_z_threshold(
        spec_from_dict(_spec()).models[1]
    )
    checks = []
    # Through the second and third periods' rhythm (turns included), only the reference-judged model pages.
    for minute in (150, 175, 200, 230, 250, 265, 280, 295):
        checks += _firing(minute, "seasonal", ())
    for minute in (215, 230):
        checks += _firing(minute, "ref", ("MlmonFeatureDriftWarning",))
    # The real change, 15 minutes of evidence (drift_for) after it shows: the seasonal model pages too; its
    # PSI against the rhythm's second half (0.27) is above psi_critical.
    checks += _firing(340, "seasonal", ("MlmonFeatureDriftWarning", "MlmonFeatureDriftCritical"))
    case = {
        "interval": "1m",
        "input_series": _series("ref") + _series("seasonal"),
        "promql_expr_test": checks,
    }
    _promtool_test(promtool, tmp_path, [case], alerts=True)


def test_a_version_younger_than_the_period_has_no_seasonal_baseline(promtool: str, tmp_path: Path) -> None:
    """Version 2 starts at minute 250 with the change already in its data: no window of version 2 two hours
    earlier, so no seasonal evidence and no alert (the bins are the version's own, so another version's
    window cannot stand in for it). `mlmon status` says so (tests/test_status_live.py)."""
    checks = _firing(340, "seasonal", ())
    checks.append(
        {
            "expr": f'count({rules.feature_seasonal_z(WINDOW, PERIOD)}{{version="2"}}) or vector(0)',
            "eval_time": "340m",
            "exp_samples": [{"labels": "{}", "value": 0}],
        }
    )
    case = {"interval": "1m", "input_series": _series("seasonal", "2", 250), "promql_expr_test": checks}
    _promtool_test(promtool, tmp_path, [case], alerts=True)
