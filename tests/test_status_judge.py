"""Judging without a server: mlmon.status.judge reads answers as Prometheus would give them and gives each check
the verdict its alert would, with a detail that says why."""

from __future__ import annotations

from mlmon.backends.prometheus import Sample
from mlmon.spec import ModelSpec, spec_from_dict
from mlmon.status.ask import CHECK_LABEL, WINDOW_LABEL, Answers, seasonal_key
from mlmon.status.judge import judge_model
from mlmon.status.report import Check


def model(**thresholds: object) -> ModelSpec:
    spec = spec_from_dict(
        {
            "models": [
                {
                    "name": "m",
                    "targets": ["127.0.0.1:1"],
                    "features": ["a", "b", "c"],
                    "thresholds": thresholds,
                }
            ]
        }
    )
    return spec.models[0]


def answers(window: str, **per_feature: dict[str, float]) -> Answers:
    """Per-feature answers of model m for ``window``: check -> {feature: value}."""
    found = Answers()
    for check, values in per_feature.items():
        found.add(
            Sample({CHECK_LABEL: check, WINDOW_LABEL: window, "model": "m", "feature": f}, v)
            for f, v in values.items()
        )
    return found


def drift_checks(judged: list[Check]) -> dict[str, tuple[str, str]]:
    return {c.feature or "": (c.verdict, c.detail) for c in judged if c.name == "feature_psi"}


def test_drift_needs_evidence_size_and_observations() -> None:
    a = answers(
        "1h",
        feature_psi={"a": 0.05, "b": 0.3, "c": 0.9},
        feature_drift_z={"a": 9.0, "b": 2.0, "c": 30.0},
        feature_observations={"a": 500, "b": 500, "c": 20},
    )
    judged = drift_checks(judge_model(model(), a))
    assert judged["a"][0] == "WARN" and judged["a"][1].startswith("z 9.0 (alerts above 4.")
    assert judged["b"][0] == "OK"  # a large PSI the evidence does not bear out
    assert judged["c"] == ("NO DATA", "20 observations in the window, fewer than min_drift_samples (100)")


def test_a_rule_that_is_not_loaded_is_named() -> None:
    why = "recording rule model_feature:mlmon_feature_drift:z_1h is not loaded in Prometheus"
    a = answers("1h", feature_psi={"a": 0.05}, feature_observations={"a": 500})
    judged = drift_checks(judge_model(model(), a, {("feature_drift_z", "1h"): why}))
    assert judged["a"] == ("NO DATA", why)


def test_seasonal_verdicts_come_from_the_earlier_window() -> None:
    earlier = seasonal_key("1h", "1d")
    a = answers(
        "1h", feature_psi={"a": 0.0}, feature_drift_z={"a": 0.0}, feature_observations={"a": 500, "b": 500}
    )
    for check, values in {
        "feature_psi": {"a": 0.3, "b": 0.3},
        "feature_drift_z": {"a": 12.0, "b": 12.0},
        "feature_observations": {"a": 450},
    }.items():
        a.add(
            Sample({CHECK_LABEL: check, WINDOW_LABEL: earlier, "model": "m", "feature": f}, v)
            for f, v in values.items()
        )
    judged = drift_checks(judge_model(model(drift_baseline="seasonal"), a))
    assert judged["a"][0] == "CRIT" and "against the same 1h 1d earlier" in judged["a"][1]
    assert judged["b"][0] == "NO DATA" and judged["b"][1].startswith("no seasonal baseline: 0 observations")
