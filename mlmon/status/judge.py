"""Judging the answers: each check's verdict against the model's thresholds, as the alert rules judge it, and
the registry's. Pure: it reads Answers, never a server, so it is tested without one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from mlmon import contract as c
from mlmon import rules as r
from mlmon.backends.mlflow.registry import RegistryState
from mlmon.spec import ModelSpec, Thresholds

if TYPE_CHECKING:
    from mlmon.backends.prometheus import Sample

from mlmon.status.ask import Answers, seasonal_key
from mlmon.status.report import Check, Verdict

# ------------------------------------------------------------------------------------------------------
# Verdicts


def _verdict(
    value: float | None, warn: float | None = None, crit: float | None = None, below: bool = False
) -> Verdict:
    if value is None or math.isnan(value):
        return "NO DATA"

    def beyond(threshold: float | None) -> bool:
        return threshold is not None and (value < threshold if below else value > threshold)

    if beyond(crit):
        return "CRIT"
    if beyond(warn):
        return "WARN"
    return "OK"


def _evidence_verdict(psi: float | None, z: float, z_needed: float, floor: float, critical: float) -> Verdict:
    """Drift as the alerts judge it: evidence above the budget's z, and an effect (PSI) above the floor for a
    warning, above ``critical`` for a critical."""
    if psi is None or math.isnan(psi):
        return "NO DATA"
    if z > z_needed and psi > critical:
        return "CRIT"
    if z > z_needed and psi > floor:
        return "WARN"
    return "OK"


def _missing_evidence(
    model: ModelSpec,
    features: list[str],
    missing_ratio: dict[str, float],
    a: Answers,
    missing: Callable[[str, str], str],
) -> list[Check]:
    """Missing values as MlmonMissingValuesHigh judges them: evidence of a rise over the reference's ratio
    (z above the budget's), by more than missing_min_increase."""
    t, dw = model.thresholds, model.thresholds.drift_window
    evidence, rise = a.per_feature("missing_z", model.name, dw), a.per_feature("missing_rise", model.name, dw)
    z_needed = r.drift_z_threshold(model)
    checks = []
    for feature in features:
        value, z, up = missing_ratio.get(feature), evidence.get(feature), rise.get(feature)
        unanswered = missing("missing_ratio", dw) or missing("missing_z", dw)
        if value is None or z is None or up is None or math.isnan(value):
            checks.append(
                Check("missing_ratio", value, t.missing_min_increase, "NO DATA", feature, unanswered)
            )
            continue
        verdict: Verdict = "WARN" if z > z_needed and up > t.missing_min_increase else "OK"
        detail = f"{up:+.3f} on the reference, z {z:.1f} (alerts above {z_needed:.2f} with a rise above " + (
            f"{t.missing_min_increase:g})"
        )
        checks.append(Check("missing_ratio", value, t.missing_min_increase, verdict, feature, detail))
    return checks


def _enough(count: float | None, needed: int) -> tuple[bool, str]:
    if count is None or math.isnan(count):
        return False, "no observations in the window"
    if count < needed:
        return False, f"{count:.0f} observations in the window, fewer than min_drift_samples ({needed})"
    return True, f"{count:.0f} observations"


def _drift_checks(
    model: ModelSpec, features: list[str], a: Answers, missing: Callable[[str, str], str]
) -> list[Check]:
    """Per feature, drift as MlmonFeatureDrift* judges it: against the reference profile or, with
    ``drift_baseline: seasonal``, against the same window one period earlier (which must hold enough
    observations too: a version younger than the period has none)."""
    t, name, dw = model.thresholds, model.name, model.thresholds.drift_window
    seasonal = t.drift_baseline == "seasonal"
    key = seasonal_key(dw, t.seasonal_period) if seasonal else dw
    against = f" against the same {dw} {t.seasonal_period} earlier" if seasonal else ""
    psi, observations = (
        a.per_feature("feature_psi", name, key),
        a.per_feature("feature_observations", name, dw),
    )
    earlier = a.per_feature("feature_observations", name, key) if seasonal else {}
    evidence = a.per_feature("feature_drift_z", name, key)
    z_needed = r.drift_z_threshold(model)
    checks = []
    for feature in features:
        value, z = psi.get(feature), evidence.get(feature)
        ok, detail = _enough(observations.get(feature), t.min_drift_samples)
        if ok and seasonal:
            before = earlier.get(feature)
            if before is None or math.isnan(before) or before < t.min_drift_samples:
                ok, detail = (
                    False,
                    (
                        f"no seasonal baseline: {0 if before is None or math.isnan(before) else before:.0f} "
                        f"observations in the same {dw} {t.seasonal_period} earlier (a version younger than "
                        f"{t.seasonal_period} has none; it needs min_drift_samples, {t.min_drift_samples})"
                    ),
                )
        verdict: Verdict = "NO DATA"
        if t.drift_test == "psi":
            verdict = _verdict(value, t.psi_warning, t.psi_critical) if ok else "NO DATA"
            detail = f"PSI{against}, {detail}" if ok and seasonal else detail
            checks.append(
                Check(
                    "feature_psi",
                    value,
                    t.psi_warning,
                    verdict,
                    feature,
                    missing("feature_psi", key) or detail,
                )
            )
            continue
        unanswered = missing("feature_psi", key) or missing("feature_drift_z", key)
        if ok and (z is None or math.isnan(z)):
            detail = unanswered or f"no drift evidence recorded ({detail})"
        elif ok and z is not None:
            verdict = _evidence_verdict(value, z, z_needed, t.drift_min_psi, t.psi_critical)
            detail = f"z {z:.1f}{against} (alerts above {z_needed:.2f} with PSI above {t.drift_min_psi:g}), {detail}"
        checks.append(Check("feature_psi", value, t.drift_min_psi, verdict, feature, unanswered or detail))
    return checks


def _prediction_check(model: ModelSpec, a: Answers, missing: Callable[[str, str], str]) -> Check:
    """Prediction drift as MlmonPredictionDrift judges it."""
    t, name, dw = model.thresholds, model.name, model.thresholds.drift_window
    value, z = a.one("prediction_psi", name, dw), a.one("prediction_drift_z", name, dw)
    ok, detail = _enough(a.one("prediction_observations", name, dw), t.min_drift_samples)
    verdict: Verdict = "NO DATA"
    if t.drift_test == "psi":
        verdict = _verdict(value, warn=t.prediction_psi) if ok else "NO DATA"
        return Check(
            "prediction_psi", value, t.prediction_psi, verdict, detail=missing("prediction_psi", dw) or detail
        )
    unanswered = missing("prediction_psi", dw) or missing("prediction_drift_z", dw)
    if ok and (z is None or math.isnan(z)):
        detail = unanswered or f"no prediction-drift evidence recorded ({detail})"
    elif ok and z is not None:
        # One severity, as the alert: a warning however large the PSI.
        verdict = _evidence_verdict(value, z, r.drift_z_threshold(model), t.drift_min_psi, math.inf)
        detail = f"z {z:.1f} (alerts above {r.drift_z_threshold(model):.2f} with PSI above {t.drift_min_psi:g}), {detail}"
    return Check("prediction_psi", value, t.drift_min_psi, verdict, detail=unanswered or detail)


# check -> (its reference, its evidence, what it counts, the drop that may alert, its window)
_DROPS = {
    "confidence": (
        "reference_confidence",
        "confidence_z",
        "confidence_count",
        "confidence_drop",
        "drift_window",
    ),
    "accuracy": ("reference_accuracy", "accuracy_z", "feedback_count", "accuracy_drop", "feedback_window"),
}


def _dropped_check(model: ModelSpec, a: Answers, missing: Callable[[str, str], str], check: str) -> Check:
    """A mean (confidence, accuracy) judged as MlmonConfidenceDrop and MlmonAccuracyDrop do: more than the
    allowed drop below the profile's reference value, and with drift_test evidence, surely below it."""
    t, name = model.thresholds, model.name
    reference, evidence, count, drop_key, window_key = _DROPS[check]
    window, drop = getattr(t, window_key), getattr(t, drop_key)
    value, ref, z = a.one(check, name, window), a.one(reference, name), a.one(evidence, name, window)
    floor = ref - drop if ref is not None and math.isfinite(ref) else None
    ok, detail = _enough(a.one(count, name, window), t.min_drift_samples)
    if count == "feedback_count":
        detail = detail.replace("observations", "feedback events")
    if floor is None:
        detail += f"; no {reference.replace('_', ' ')} in the profile"
    verdict = _verdict(value, warn=floor, below=True) if ok else "NO DATA"
    if t.drift_test == "evidence" and ok and floor is not None:
        z_needed = r.drift_z_threshold(model)
        if z is None or math.isnan(z):
            detail += f"; no evidence recorded{': ' + missing(evidence, window) if missing(evidence, window) else ''}"
        else:
            detail = f"z {z:.1f} below the reference (alerts above {z_needed:.2f} with a drop above {drop:g}), {detail}"
            if verdict == "WARN" and z <= z_needed:
                verdict = "OK"  # below the floor, but as likely chance as not: the alert stays quiet too
    return Check(check, value, floor, verdict, detail=missing(check, window) or detail)


def judge_model(
    model: ModelSpec, a: Answers, unanswerable: Mapping[tuple[str, str], str] | None = None
) -> list[Check]:
    """Every check of ``model`` from Prometheus' answers, in the report's order. ``unanswerable``: the checks
    (and windows) that could not be asked, with why (a recording rule not loaded); their detail says so."""
    t, name = model.thresholds, model.name
    dw, fw = t.drift_window, t.feedback_window
    checks: list[Check] = []
    refused = unanswerable or {}

    def missing(check: str, window: str = "") -> str:
        return refused.get((check, window), "")

    up, total = a.one("targets_up", name), a.one("targets_total", name)
    if total is None:
        checks.append(
            Check("targets_up", None, None, "NO DATA", detail="Prometheus scrapes no target for it")
        )
    else:
        up = up or 0.0
        verdict: Verdict = "OK" if up >= total else ("CRIT" if up == 0 else "WARN")
        checks.append(Check("targets_up", up, total, verdict, detail=f"{up:.0f}/{total:.0f} targets up"))

    exported = sorted(
        {x.labels.get("exported_model", "") for x in a.values.get(("exported_model", "", name), [])} - {name}
    )
    if exported:
        checks.append(
            Check(
                "exported_model",
                None,
                None,
                "WARN",
                detail=f"its targets export model {', '.join(map(repr, exported))}, not {name!r}: fix the name in "
                "the service's ModelMonitor or in mlmon.yaml; until then their numbers are not in this report",
            )
        )

    rate = a.one("request_rate", name)
    checks.append(
        Check(
            "request_rate",
            rate,
            t.min_request_rate,
            _verdict(rate, warn=t.min_request_rate, below=True),
            detail=missing("request_rate")
            or ("requests per second over 5m" if rate is not None else "no requests"),
        )
    )
    ratio = a.one("error_ratio", name)
    checks.append(
        Check(
            "error_ratio",
            ratio,
            t.error_ratio,
            _verdict(ratio, crit=t.error_ratio),
            detail=missing("error_ratio"),
        )
    )
    for q, warn, crit in (
        (50, None, None),
        (95, t.latency_p95_seconds, None),
        (99, None, t.latency_p99_seconds),
    ):
        value = a.one(f"latency_p{q}", name)
        checks.append(
            Check(
                f"latency_p{q}",
                value,
                warn if warn is not None else crit,
                _verdict(value, warn, crit),
                detail=missing(f"latency_p{q}"),
            )
        )

    observations = a.per_feature("feature_observations", name, dw)
    psi_now = a.per_feature("feature_psi", name, dw)
    features = [f.name for f in model.features] or sorted(set(psi_now) | set(observations))
    drift_checks = _drift_checks(model, features, a, missing)
    # The most drifted first.
    drift_checks.sort(key=lambda ch: -(ch.value if ch.value is not None and math.isfinite(ch.value) else -1))
    checks += drift_checks
    missing_ratio = a.per_feature("missing_ratio", name, dw)
    if t.drift_test == "evidence":
        checks += _missing_evidence(model, features, missing_ratio, a, missing)
    for feature in features if t.drift_test == "psi" else ():
        value = missing_ratio.get(feature)
        checks.append(
            Check(
                "missing_ratio",
                value,
                t.missing_ratio,
                _verdict(value, warn=t.missing_ratio),
                feature,
                missing("missing_ratio", dw),
            )
        )

    checks.append(
        _invalid_input_check(a.values.get(("invalid_input", dw, name), []), t, missing("invalid_input", dw))
    )

    checks.append(_prediction_check(model, a, missing))
    if model.task == "classification":
        checks.append(_dropped_check(model, a, missing, "confidence"))
    checks.append(_dropped_check(model, a, missing, "accuracy"))
    ok, _ = _enough(a.one("feedback_count", name, fw), t.min_drift_samples)
    f1 = a.one("f1", name, fw)
    checks.append(
        Check("f1", f1, None, _verdict(f1) if ok else "NO DATA", detail=missing("f1", fw) or "macro F1")
    )
    age = a.one("model_age", name)
    age_days = age / 86400 if age is not None else None
    checks.append(
        Check(
            "model_age",
            age_days,
            t.max_model_age_days,
            _verdict(age_days, warn=t.max_model_age_days),
            detail="days since the served version was trained"
            if age is not None
            else "no training time exported",
        )
    )
    return checks


# How many feature names the invalid-input check names before it says "and N more".
NAMED_INVALID_FEATURES = 5


def _invalid_input_check(samples: list[Sample], t: Thresholds, unanswerable: str) -> Check:
    """The largest per-request share of values the monitor could not use, by feature and reason, naming the
    features behind it: unknown feature names first (a renamed feature), then the others."""
    if not samples:
        return Check("invalid_input", None, t.invalid_ratio, "NO DATA", detail=unanswerable or "no requests")
    seen = sorted(
        (s for s in samples if s.value > 0 and math.isfinite(s.value)),
        key=lambda s: (s.labels.get("reason") != "unknown_feature", -s.value, s.labels.get("feature", "")),
    )
    worst = max((s.value for s in samples if math.isfinite(s.value)), default=0.0)
    if not seen:
        return Check("invalid_input", worst, t.invalid_ratio, "OK", detail="every value was usable")
    named = []
    for s in seen[:NAMED_INVALID_FEATURES]:
        feature, reason = s.labels.get("feature", "?"), s.labels.get("reason", "?")
        if reason == "unknown_feature":
            what = "more unknown names" if feature == c.UNKNOWN_FEATURE else f"unknown feature {feature!r}"
        else:
            what = f"{feature} {reason}"
        named.append(f"{what} ({s.value:.3g}/request)")
    more = len(seen) - len(named)
    detail = "; ".join(named) + (f"; and {more} more" if more > 0 else "")
    return Check(
        "invalid_input", worst, t.invalid_ratio, _verdict(worst, warn=t.invalid_ratio), detail=detail
    )


def registry_check(model: ModelSpec, registry: RegistryState | None, error: str | None) -> Check:
    if registry is None:
        return Check("registry", None, None, "NO DATA", detail=error or "MLflow not asked")
    if registry.watched_version is None:
        return Check(
            "registry", None, None, "WARN", detail=f"alias {registry.watched_alias!r} is not set in MLflow"
        )
    if registry.matches is False:
        return Check(
            "registry",
            None,
            None,
            "WARN",
            detail=f"serving version {', '.join(registry.served_versions)} but {registry.watched_alias} is "
            f"version {registry.watched_version}",
        )
    return Check(
        "registry",
        None,
        None,
        "OK" if registry.matches else "NO DATA",
        detail=(
            f"serving {registry.watched_alias} (version {registry.watched_version})"
            if registry.matches
            else f"{registry.watched_alias} is version {registry.watched_version}; no served version exported"
        ),
    )


# ------------------------------------------------------------------------------------------------------
# The registry
