"""`mlmon status`: what Prometheus and the MLflow registry say about every model, as a StatusReport.

Prometheus is asked a fixed number of questions whatever the number of models: the list of recording
rules, then together four instant queries (see PER_FEATURE_CHECKS; each part tagged with an
``mlmon_check`` label and aggregated ``by (model)``), one range query for the sparklines and the firing
alerts. Where a recording rule is loaded, its series is read; where it is not, the rule's expression is
evaluated instead, so status works on a Prometheus that only scrapes.

Each check gets a verdict against the model's thresholds (the same ones the alert rules use), and each
model the worst verdict of its checks and of its firing alerts. The report is plain data: the CLI renders
it, and ``to_json`` gives the documented JSON.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from mlmon import contract as c
from mlmon import rules as r
from mlmon.errors import MlmonError
from mlmon.escape import number
from mlmon.registry import RegistryLookup, RegistryState
from mlmon.spec import ModelSpec, PrometheusConfig, Spec, Thresholds, duration_seconds

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from mlmon.promapi import PrometheusClient, Sample, Series

SCHEMA_VERSION = 1

Verdict = Literal["OK", "WARN", "CRIT", "NO DATA"]
# How bad a verdict is. NO DATA ranks with OK: a model without feedback is not unhealthy for it; a model
# without any data at all gets NO DATA as its own verdict (see ModelStatus).
_SEVERITY: dict[str, int] = {"OK": 0, "NO DATA": 0, "WARN": 1, "CRIT": 2}
_ALERT_VERDICT: dict[str, Verdict] = {"critical": "CRIT", "warning": "WARN"}

CHECK_LABEL = "mlmon_check"
WINDOW_LABEL = "mlmon_window"
SPARKLINE_POINTS = 30


# ------------------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    threshold: float | None
    verdict: Verdict
    feature: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class AlertState:
    name: str
    severity: str
    state: str
    active_since: datetime | None
    feature: str | None
    summary: str


@dataclass(frozen=True)
class ModelStatus:
    name: str
    checks: tuple[Check, ...]
    alerts: tuple[AlertState, ...] = ()
    registry: RegistryState | None = None
    registry_error: str | None = None
    history: Mapping[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        """The worst check or firing alert; NO DATA when Prometheus knows nothing about the model."""
        if all(check.verdict == "NO DATA" for check in self.checks if check.name in _ESSENTIAL):
            return "NO DATA"
        verdicts: list[Verdict] = [check.verdict for check in self.checks]
        verdicts += [_ALERT_VERDICT.get(a.severity, "WARN") for a in self.alerts if a.state == "firing"]
        return max(verdicts, key=lambda v: _SEVERITY[v], default="OK")


@dataclass(frozen=True)
class BackendState:
    url: str
    ok: bool
    error: str | None = None
    hint: str | None = None


@dataclass(frozen=True)
class StatusReport:
    generated_at: datetime
    window: str
    prometheus: BackendState
    mlflow: BackendState
    models: tuple[ModelStatus, ...]

    def worst(self) -> Verdict:
        return max((m.verdict for m in self.models), key=lambda v: _SEVERITY[v], default="OK")

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "generated_at": self.generated_at.isoformat(),
            "window": self.window,
            "prometheus": _backend_json(self.prometheus),
            "mlflow": _backend_json(self.mlflow),
            "models": [_model_json(m) for m in self.models],
        }


def _backend_json(b: BackendState) -> dict[str, Any]:
    return {"url": b.url, "ok": b.ok, "error": b.error, "hint": b.hint}


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: they become null, and the verdict says why."""
    return value if value is not None and math.isfinite(value) else None


def _model_json(m: ModelStatus) -> dict[str, Any]:
    registry: dict[str, Any] | None = None
    if m.registry is not None:
        g = m.registry
        registry = {
            "registered_model": g.registered_model,
            "aliases": dict(g.aliases),
            "watched_alias": g.watched_alias,
            "watched_version": g.watched_version,
            "served_versions": list(g.served_versions),
            "matches": g.matches,
            "metrics": {k: _finite(v) for k, v in g.metrics.items()},
            "age_days": _finite(g.age_days),
            "stages": dict(g.stages),
        }
    return {
        "name": m.name,
        "verdict": m.verdict,
        "checks": [
            {
                "name": ch.name,
                "feature": ch.feature,
                "value": _finite(ch.value),
                "threshold": ch.threshold,
                "verdict": ch.verdict,
                "detail": ch.detail,
            }
            for ch in m.checks
        ],
        "alerts": [
            {
                "name": a.name,
                "severity": a.severity,
                "state": a.state,
                "active_since": a.active_since.isoformat() if a.active_since else None,
                "feature": a.feature,
                "summary": a.summary,
            }
            for a in m.alerts
        ],
        "registry": registry,
        "registry_error": m.registry_error,
    }


# ------------------------------------------------------------------------------------------------------
# What to ask Prometheus

# Checks whose absence means Prometheus has never seen the model.
_ESSENTIAL = frozenset({"targets_up", "request_rate"})


@dataclass(frozen=True)
class _Question:
    """One part of a query: a check's values, aggregated by model (and feature)."""

    check: str
    recorded: str  # PromQL over recorded series
    needs: tuple[str, ...]  # the recording rules it reads
    raw: str | None  # the same without recording rules; None when it cannot be written without them
    window: str = ""
    inlinable: bool = True  # False: the recorded form cannot be rewritten over raw metrics (an offset)


def _by(labels: str, expr: str, how: str = "max") -> str:
    return f"{how} by ({labels}) ({expr})"


def _rate_questions() -> list[_Question]:
    w = r.RATE_WINDOW
    requests = f"rate({c.REQUESTS.name}[{w}])"
    errors = f'rate({c.REQUESTS.name}{{status="error"}}[{w}])'
    questions = [
        _Question("targets_up", _by(c.TARGET_MODEL_LABEL, "up", "sum"), (), None),
        _Question("targets_total", _by(c.TARGET_MODEL_LABEL, "up", "count"), (), None),
        _Question("request_rate", _by("model", r.requests_rate(), "sum"), (r.requests_rate(),), None),
        _Question(
            "error_ratio",
            f"({_by('model', r.errors_rate(), 'sum')} or {_by('model', r.requests_rate(), 'sum')} * 0)"
            f" / {_by('model', r.requests_rate(), 'sum')}",
            (r.errors_rate(), r.requests_rate()),
            f"(sum by (model) ({errors}) or sum by (model) ({requests}) * 0) / sum by (model) ({requests})",
        ),
        _Question("model_age", _by("model", r.model_age(), "min"), (r.model_age(),), None),
        _Question("served_version", _by("model, version", c.MODEL_INFO.name), (), None),
        # What each model's targets call themselves: a service exporting another name than the spec's
        # (bc_typo for bc-typo) would otherwise leave every check at NO DATA without saying why.
        _Question(
            "exported_model",
            _by(
                f"{c.TARGET_MODEL_LABEL}, exported_model",
                f'label_replace({c.MODEL_INFO.name}, "exported_model", "$1", "model", "(.*)")',
                "count",
            ),
            (),
            None,
        ),
        _Question("reference_confidence", _by("model", c.REFERENCE_CONFIDENCE_MEAN.name), (), None),
        _Question("reference_accuracy", _by("model", c.REFERENCE_ACCURACY.name), (), None),
    ]
    for q in (50, 95, 99):
        name = r.latency_quantile(q)
        raw = (
            f"histogram_quantile({q / 100}, sum by (model, le) (rate({c.REQUEST_DURATION.name}_bucket[{w}])))"
        )
        questions.append(_Question(f"latency_p{q}", _by("model", name), (name,), raw))
    return questions


def _drift_questions(w: str) -> list[_Question]:
    mf = "model, feature"
    return [
        _Question("feature_psi", _by(mf, r.feature_psi(w)), (r.feature_psi(w),), None, w),
        _Question("feature_drift_z", _by(mf, r.feature_drift_z(w)), (r.feature_drift_z(w),), None, w),
        _Question("missing_z", _by(mf, r.feature_missing_z(w)), (r.feature_missing_z(w),), None, w),
        _Question(
            "missing_rise",
            _by(mf, f"{r.feature_missing_ratio(w)} - {r.feature_reference_missing_ratio()}"),
            (r.feature_missing_ratio(w), r.feature_reference_missing_ratio()),
            None,
            w,
        ),
        _Question(
            "feature_observations",
            _by(mf, r.feature_observations(w), "sum"),
            (r.feature_observations(w),),
            None,
            w,
        ),
        _Question(
            "missing_ratio", _by(mf, r.feature_missing_ratio(w)), (r.feature_missing_ratio(w),), None, w
        ),
        _Question(
            "invalid_input",
            _by("model, feature, reason", r.invalid_input_ratio(w)),
            (r.invalid_input_ratio(w),),
            None,
            w,
        ),
        _Question("prediction_psi", _by("model", r.prediction_psi(w)), (r.prediction_psi(w),), None, w),
        _Question(
            "prediction_observations",
            _by("model", r.prediction_observations(w), "sum"),
            (r.prediction_observations(w),),
            None,
            w,
        ),
        _Question(
            "confidence",
            f"{_by('model', r.confidence_mean(w) + ' * ' + r.confidence_count(w), 'sum')}"
            f" / {_by('model', r.confidence_count(w), 'sum')}",
            (r.confidence_mean(w), r.confidence_count(w)),
            None,
            w,
        ),
        _Question(
            "confidence_count", _by("model", r.confidence_count(w), "sum"), (r.confidence_count(w),), None, w
        ),
        # The evidence behind the prediction-drift and confidence alerts (drift_test: evidence).
        _Question(
            "prediction_drift_z", _by("model", r.prediction_drift_z(w)), (r.prediction_drift_z(w),), None, w
        ),
        _Question("confidence_z", _by("model", r.confidence_drop_z(w)), (r.confidence_drop_z(w),), None, w),
    ]


def seasonal_key(window: str, period: str) -> str:
    """The window under which the answers against a seasonal baseline are filed."""
    return f"{window} offset {period}"


def _seasonal_questions(w: str, period: str) -> list[_Question]:
    """For models with ``drift_baseline: seasonal``: their evidence and PSI against the same window one period
    earlier, and the observations of that earlier window, filed under :func:`seasonal_key` with the checks the
    reference baseline uses (so they go in the same requests)."""
    mf, key = "model, feature", seasonal_key(w, period)
    psi, z = r.feature_seasonal_psi(w, period), r.feature_seasonal_z(w, period)
    earlier = f"{r.feature_observations(w)} offset {period}"
    return [
        _Question("feature_psi", _by(mf, psi), (psi,), None, key, inlinable=False),
        _Question("feature_drift_z", _by(mf, z), (z,), None, key, inlinable=False),
        _Question(
            "feature_observations",
            _by(mf, earlier, "sum"),
            (r.feature_observations(w), z),
            None,
            key,
            inlinable=False,
        ),
    ]


def _feedback_questions(w: str, step_ms: int, at: float | None) -> list[_Question]:
    return [
        _Question(
            "accuracy",
            f"{_by('model', r.feedback_counts(w) + '{correct=' + chr(34) + 'true' + chr(34) + '}', 'sum')}"
            f" / {_by('model', r.feedback_count(w), 'sum')}",
            (r.feedback_counts(w), r.feedback_count(w)),
            f"sum by (model) ({r.raw_window_count(r.FEEDBACK, w, step_ms, '{correct=' + chr(34) + 'true' + chr(34) + '}', at)})"
            f" / sum by (model) ({r.raw_window_count(r.FEEDBACK, w, step_ms, at=at)})",
            w,
        ),
        _Question(
            "feedback_count", _by("model", r.feedback_count(w), "sum"), (r.feedback_count(w),), None, w
        ),
        _Question("accuracy_z", _by("model", r.accuracy_drop_z(w)), (r.accuracy_drop_z(w),), None, w),
        _Question("f1", _by("model", r.macro_f1(w)), (r.macro_f1(w),), None, w),
    ]


class _Inliner:
    """Writes a PromQL expression over recorded series as one over raw metrics, by replacing each recorded
    name with its rule's expression. A recorded name used with a selector (``name{...}``) cannot be
    replaced that way; such expressions have no raw form."""

    def __init__(self, windows: Iterable[str], evaluation_interval: str, at: float | None = None) -> None:
        # ``at``: an instant query's moment, to which each window's subquery is pinned (see
        # rules.pinned_subquery); None for a range query, whose every point needs its own window.
        self.at = at
        # Recording rules depend only on the windows and the evaluation interval (which sets the counting
        # step, and so each window's subquery step): one stand-in model per window yields them all.
        stand_ins = tuple(
            ModelSpec(f"w{i}", f"w{i}", thresholds=Thresholds(drift_window=w, feedback_window=w))
            for i, w in enumerate(sorted(set(windows)))
        )
        self.rules: dict[str, str] = {}
        self.steps: dict[str, str] = {}  # a recorded name's evaluation interval, where its group has one
        stand_in = Spec(
            project="status",
            models=stand_ins,
            prometheus=PrometheusConfig(evaluation_interval=evaluation_interval),
        )
        self.step_ms = r.count_step_ms(stand_in)
        for group in r.recording_rules(stand_in):
            for rule in group.rules:
                if isinstance(rule, r.RecordingRule):
                    if group.interval:
                        self.steps[rule.record] = group.interval
                    # `group_left NAME` would read `group_left (EXPR)` once NAME is inlined: PromQL takes
                    # the parenthesis for group_left's label list. An explicit empty list keeps the meaning.
                    self.rules[rule.record] = re.sub(
                        r"\b(group_left|group_right)(\s+)(?![\s(])", r"\1 ()\2", rule.expr
                    )
        names = sorted(self.rules, key=len, reverse=True)
        self._pattern = re.compile(
            r"(?<![\w:])(" + "|".join(map(re.escape, names)) + r")(?![\w:])(\s*\{|\[([^\]:]+)\])?"
        )

    def __call__(self, expr: str, depth: int = 0) -> str | None:
        if depth > 10:
            return None
        failed = False

        def replace(match: re.Match[str]) -> str:
            nonlocal failed
            name, suffix, range_ = match.groups()
            if range_:
                # A sum over a window of recorded steps becomes a subquery evaluated at the same steps.
                step = self.steps.get(name, "1m")
                pin = r.pinned_subquery(round(duration_seconds(step) * 1000), self.at)
                return f"({self.rules[name]})[{range_}:{step}]{pin}"
            if suffix:
                failed = True
                return match.group(0)
            return "(" + self.rules[name] + ")"

        out = self._pattern.sub(replace, expr)
        if failed:
            return None
        return out if out == expr else self(out, depth + 1)


def _tagged(expr: str, check: str, window: str) -> str:
    tagged = f'label_replace({expr}, "{CHECK_LABEL}", "{check}", "", "")'
    if window:
        tagged = f'label_replace({tagged}, "{WINDOW_LABEL}", "{window}", "", "")'
    return tagged


@dataclass
class _Plan:
    """The questions, each as the PromQL that will be sent, and the checks that cannot be answered."""

    parts: list[tuple[_Question, str]]
    unanswerable: dict[tuple[str, str], str]  # (check, window) -> why


def _plan(
    drift_windows: Iterable[str],
    feedback_windows: Iterable[str],
    loaded: set[str],
    evaluation_interval: str,
    seasonal: Iterable[tuple[str, str]] = (),
) -> _Plan:
    drift_windows, feedback_windows = set(drift_windows), set(feedback_windows)
    inline = _Inliner(drift_windows | feedback_windows, evaluation_interval, at=time.time())
    plan = _Plan([], {})
    questions = _rate_questions()
    for w in sorted(drift_windows, key=duration_seconds):
        questions += _drift_questions(w)
    for w in sorted(feedback_windows, key=duration_seconds):
        questions += _feedback_questions(w, inline.step_ms, inline.at)
    for w, period in sorted(set(seasonal)):
        questions += _seasonal_questions(w, period)
    for q in questions:
        if all(name in loaded for name in q.needs):
            plan.parts.append((q, q.recorded))
            continue
        raw = q.raw or (inline(q.recorded) if q.inlinable else None)
        if raw is None:
            missing = ", ".join(n for n in q.needs if n not in loaded)
            plan.unanswerable[(q.check, q.window)] = (
                f"recording rule {missing} is not loaded in Prometheus: load prometheus/rules/mlmon-recording.yml"
            )
        else:
            plan.parts.append((q, raw))
    return plan


# ------------------------------------------------------------------------------------------------------
# Gathering


@dataclass
class _Answers:
    """The queries' samples, by check, window and model."""

    values: dict[tuple[str, str, str], list[Sample]] = field(default_factory=dict)

    def add(self, samples: Iterable[Sample]) -> None:
        for s in samples:
            check = s.labels.get(CHECK_LABEL, "")
            model = s.labels.get("model") or s.labels.get(c.TARGET_MODEL_LABEL, "")
            self.values.setdefault((check, s.labels.get(WINDOW_LABEL, ""), model), []).append(s)

    def one(self, check: str, model: str, window: str = "") -> float | None:
        samples = self.values.get((check, window, model))
        return samples[0].value if samples else None

    def per_feature(self, check: str, model: str, window: str) -> dict[str, float]:
        return {s.labels.get("feature", ""): s.value for s in self.values.get((check, window, model), [])}

    def labels(self, check: str, model: str, label: str) -> list[str]:
        return sorted({s.labels.get(label, "") for s in self.values.get((check, "", model), [])})

    def models(self) -> set[str]:
        return {model for (check, _, model) in self.values if check == "served_version" and model}


# Checks with a series per feature: each is asked in a query of its own, sent with the others at once.
# Joined with `or` into one query they cost Prometheus more than apart: `or` matches every series of its
# left side against the right one, so a chain of parts re-reads the first parts' series again and again
# (50 models x 20 features: about 200 ms joined, about 30 ms as four concurrent queries). Grouped by check,
# not by window, so that the number of requests stays four however many windows the spec has.
PER_FEATURE_CHECKS = (
    "feature_psi",
    "feature_drift_z",
    "feature_observations",
    "missing_ratio",
    "missing_z",
    "invalid_input",
)
_Part = tuple[_Question, str]
_Refused = dict[tuple[str, str], str]


def _query_groups(plan: _Plan) -> list[list[_Part]]:
    per_feature: dict[str, list[_Part]] = {check: [] for check in PER_FEATURE_CHECKS}
    rest: list[_Part] = []
    for part in plan.parts:
        per_feature.get(part[0].check, rest).append(part)
    return [group for group in (rest, *per_feature.values()) if group]


def _ask(client: PrometheusClient, plan: _Plan, pool: Executor) -> Callable[[], _Answers]:
    """Send the plan's queries (see PER_FEATURE_CHECKS) on ``pool``; the returned function waits for them
    and gathers the answers (the first failure of a server, not of a query, is raised from it)."""
    asked = [pool.submit(_ask_group, client, group) for group in _query_groups(plan)]

    def answers() -> _Answers:
        gathered = _Answers()
        for future in asked:
            samples, refused = future.result()
            gathered.add(samples)
            plan.unanswerable.update(refused)
        return gathered

    return answers


def _ask_group(client: PrometheusClient, parts: list[_Part]) -> tuple[list[Sample], _Refused]:
    """One query joining ``parts``; if Prometheus refuses it, part by part, so that one bad part (a rule
    renamed by hand, say) costs only its own check."""
    from mlmon.promapi import PrometheusError

    try:
        return client.query("\nor\n".join(_tagged(expr, q.check, q.window) for q, expr in parts)), {}
    except PrometheusError as exc:
        if not _is_query_error(exc):
            raise
        if len(parts) == 1:
            q = parts[0][0]
            return [], {(q.check, q.window): f"Prometheus refused the query: {exc.message}"}
    samples: list[Sample] = []
    refused: _Refused = {}
    for q, expr in parts:
        try:
            samples += client.query(_tagged(expr, q.check, q.window))
        except PrometheusError as exc:
            if not _is_query_error(exc):
                raise
            refused[(q.check, q.window)] = f"Prometheus refused the query: {exc.message}"
    return samples, refused


def _is_query_error(exc: MlmonError) -> bool:
    """Prometheus refused the query itself (HTTP 400 or 422), as opposed to being unreachable or broken."""
    return getattr(exc, "status_code", None) in (400, 422)


def _history(
    client: PrometheusClient,
    models: Sequence[ModelSpec],
    loaded: set[str],
    window: str,
    evaluation_interval: str,
) -> dict[str, dict[str, tuple[tuple[float, float], ...]]]:
    """Traffic, p95 latency and the worst feature drift of every model over ``window``, in one range query."""
    from mlmon.promapi import PrometheusError

    drift_windows = sorted({m.thresholds.drift_window for m in models}, key=duration_seconds)
    inline = _Inliner(drift_windows, evaluation_interval)
    wanted = [
        ("traffic", r.requests_rate(), "sum"),
        ("latency_p95", r.latency_quantile(95), "max"),
        *((f"drift@{w}", r.feature_psi(w), "max") for w in drift_windows),
    ]
    parts = []
    for name, recorded, how in wanted:
        expr: str | None = _by("model", recorded, how)
        if recorded not in loaded:
            expr = inline(expr or "")
        if expr:
            parts.append(_tagged(expr, name, ""))
    seconds = duration_seconds(window)
    end = time.time()
    step = max(1.0, seconds / SPARKLINE_POINTS)
    try:
        series: list[Series] = client.query_range("\nor\n".join(parts), end - seconds, end, step)
    except PrometheusError:
        return {}  # sparklines are a nicety: the checks already answered stand without them
    out: dict[str, dict[str, tuple[tuple[float, float], ...]]] = {}
    for s in series:
        check = s.labels.get(CHECK_LABEL, "")
        out.setdefault(s.labels.get("model", ""), {})["drift" if check.startswith("drift@") else check] = (
            s.points
        )
    return out


def _alerts(client: PrometheusClient) -> dict[str, list[AlertState]]:
    by_model: dict[str, list[AlertState]] = {}
    for a in client.alerts():
        name = a.labels.get("alertname", "")
        model = a.labels.get("model") or a.labels.get(c.TARGET_MODEL_LABEL)
        if not model:
            continue
        by_model.setdefault(model, []).append(
            AlertState(
                name=name,
                severity=a.labels.get("severity", ""),
                state=a.state,
                active_since=a.active_at,
                feature=a.labels.get("feature"),
                summary=a.annotations.get("summary", ""),
            )
        )
    return by_model


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
    a: _Answers,
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
    model: ModelSpec, features: list[str], a: _Answers, missing: Callable[[str, str], str]
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


def _prediction_check(model: ModelSpec, a: _Answers, missing: Callable[[str, str], str]) -> Check:
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


def _dropped_check(model: ModelSpec, a: _Answers, missing: Callable[[str, str], str], check: str) -> Check:
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


def _checks(model: ModelSpec, a: _Answers, plan: _Plan) -> list[Check]:
    t, name = model.thresholds, model.name
    dw, fw = t.drift_window, t.feedback_window
    checks: list[Check] = []

    def missing(check: str, window: str = "") -> str:
        return plan.unanswerable.get((check, window), "")

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


def _registry_check(model: ModelSpec, registry: RegistryState | None, error: str | None) -> Check:
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

# ------------------------------------------------------------------------------------------------------
# Entry point


def _windows_from_rules(loaded: set[str], recorded: Callable[[str], str]) -> tuple[str, ...]:
    """The windows of a recorded series (``r.feature_psi``, ``r.accuracy``) loaded in Prometheus, to watch
    models found there without a spec."""
    prefix = recorded("")
    return tuple(sorted({n[len(prefix) :] for n in loaded if n.startswith(prefix)}, key=duration_seconds))


def gather_status(
    spec: Spec | None,
    *,
    prometheus: PrometheusClient | None,
    prometheus_url: str,
    registry: RegistryLookup | None,
    mlflow_uri: str,
    only: Sequence[str] = (),
    window: str = "1h",
    history: bool = True,
) -> StatusReport:
    """Ask Prometheus and the registry about every model of ``spec`` (or, without one, every model
    Prometheus knows), and judge each check. A backend that fails is marked, not fatal. ``history`` asks
    for the sparklines' range query (the JSON has no sparklines, so it does not)."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from mlmon.promapi import PrometheusError

    models = list(spec.models) if spec else []
    evaluation_interval = (spec.prometheus if spec else PrometheusConfig()).evaluation_interval
    if spec is not None:
        models = _only(models, only)  # the spec names every model: an unknown name fails before any request
    answers, alerts, sparklines = _Answers(), {}, {}
    plan = _Plan([], {})
    prom_state = BackendState(
        prometheus_url, ok=prometheus is not None, error=None if prometheus else "not asked"
    )
    registry_states: Mapping[str, RegistryState | str] = {}
    mlflow_state = BackendState(mlflow_uri, ok=registry is not None, error=None if registry else "not asked")
    # The questions that do not depend on each other's answers go out together: Prometheus evaluates the
    # queries side by side and answers the alerts and the range query meanwhile, and the registry is read.
    # Enough workers for every request at once: eight queries, the alerts, the range query and the registry.
    with ThreadPoolExecutor(max_workers=len(PER_FEATURE_CHECKS) + 5) as pool:
        from_registry: Future[Mapping[str, RegistryState | str]] | None = None
        if registry is not None and models:
            from_registry = pool.submit(registry, models)
        if prometheus is not None:
            try:
                loaded = prometheus.rule_names("record")
                if not models:
                    # Without a spec: the models Prometheus knows from mlmon_model_info, default thresholds,
                    # and the first recorded drift and feedback windows.
                    drift = _windows_from_rules(loaded, r.feature_psi) or (Thresholds.drift_window,)
                    feedback = _windows_from_rules(loaded, r.accuracy) or drift
                    plan = _plan(drift[:1], feedback[:1], loaded, evaluation_interval)
                    answers = _ask(prometheus, plan, pool)()
                    thresholds = Thresholds(drift_window=drift[0], feedback_window=feedback[0])
                    models = [ModelSpec(n, n, thresholds=thresholds) for n in sorted(answers.models())]
                    models = _only(models, only)
                    if registry is not None and models:
                        from_registry = pool.submit(registry, models)
                    asked = None
                else:
                    plan = _plan(
                        (m.thresholds.drift_window for m in models),
                        (m.thresholds.feedback_window for m in models),
                        loaded,
                        evaluation_interval,
                        (
                            (m.thresholds.drift_window, m.thresholds.seasonal_period)
                            for m in models
                            if m.thresholds.drift_baseline == "seasonal"
                        ),
                    )
                    asked = _ask(prometheus, plan, pool)
                from_alerts = pool.submit(_alerts, prometheus)
                from_history = None
                if history and models:
                    from_history = pool.submit(
                        _history, prometheus, models, loaded, window, evaluation_interval
                    )
                if asked is not None:
                    answers = asked()
                alerts = from_alerts.result()
                if from_history is not None:
                    sparklines = from_history.result()
            except PrometheusError as exc:
                prom_state = BackendState(prometheus_url, ok=False, error=exc.message, hint=exc.hint)
        if from_registry is not None:
            try:
                registry_states = from_registry.result()
            except MlmonError as exc:
                mlflow_state = BackendState(mlflow_uri, ok=False, error=exc.message, hint=exc.hint)

    statuses = []
    for model in models:
        served = tuple(answers.labels("served_version", model.name, "version"))
        state = registry_states.get(model.name)
        registry_state = None
        registry_error = mlflow_state.error if not mlflow_state.ok else None
        if isinstance(state, RegistryState):
            matches = (
                None
                if not served or state.watched_version is None
                else set(served) == {state.watched_version}
            )
            registry_state = RegistryState(
                state.registered_model,
                state.aliases,
                state.watched_alias,
                state.watched_version,
                served,
                matches,
                state.metrics,
                state.age_days,
                state.stages,
            )
        elif isinstance(state, str):
            registry_error = state
        checks = (
            _checks(model, answers, plan)
            if prom_state.ok
            else [
                Check(name, None, None, "NO DATA", detail="Prometheus unreachable")
                for name in sorted(_ESSENTIAL)
            ]
        )
        if registry is not None:
            checks.append(_registry_check(model, registry_state, registry_error))
        statuses.append(
            ModelStatus(
                model.name,
                tuple(checks),
                tuple(sorted(alerts.get(model.name, []), key=lambda a: (a.state != "firing", a.name))),
                registry_state,
                registry_error,
                sparklines.get(model.name, {}),
            )
        )
    return StatusReport(datetime.now(timezone.utc), window, prom_state, mlflow_state, tuple(statuses))


def _only(models: list[ModelSpec], only: Sequence[str]) -> list[ModelSpec]:
    """The models named in ``only`` (all without it); a name that is not among them is an error."""
    if not only:
        return models
    unknown = [n for n in only if n not in {m.name for m in models}]
    if unknown:
        known = ", ".join(m.name for m in models) or "none"
        raise MlmonError(f"no model named {', '.join(map(repr, unknown))}", f"known models: {known}")
    return [m for m in models if m.name in only]


def threshold_text(value: float | None) -> str:
    return "" if value is None else number(value)
