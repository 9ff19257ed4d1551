"""What `mlmon status` asks Prometheus, and how: the questions per check and window, their PromQL over recorded
series (or, where a rule is not loaded, over raw metrics), the few requests they go in, and the answers by
check, window and model.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlmon import contract as c
from mlmon import rules as r
from mlmon.errors import MlmonError
from mlmon.spec import ModelSpec, PrometheusConfig, Spec, Thresholds, duration_seconds

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from mlmon.backends.prometheus import PrometheusClient, Sample, Series

from mlmon.status.report import AlertState

CHECK_LABEL = "mlmon_check"
WINDOW_LABEL = "mlmon_window"
SPARKLINE_POINTS = 30


# ------------------------------------------------------------------------------------------------------
# What to ask Prometheus


@dataclass(frozen=True)
class Question:
    """One part of a query: a check's values, aggregated by model (and feature)."""

    check: str
    recorded: str  # PromQL over recorded series
    needs: tuple[str, ...]  # the recording rules it reads
    raw: str | None  # the same without recording rules; None when it cannot be written without them
    window: str = ""
    inlinable: bool = True  # False: the recorded form cannot be rewritten over raw metrics (an offset)


def _by(labels: str, expr: str, how: str = "max") -> str:
    return f"{how} by ({labels}) ({expr})"


def _rate_questions() -> list[Question]:
    w = r.RATE_WINDOW
    requests = f"rate({c.REQUESTS.name}[{w}])"
    errors = f'rate({c.REQUESTS.name}{{status="error"}}[{w}])'
    questions = [
        Question("targets_up", _by(c.TARGET_MODEL_LABEL, "up", "sum"), (), None),
        Question("targets_total", _by(c.TARGET_MODEL_LABEL, "up", "count"), (), None),
        Question("request_rate", _by("model", r.requests_rate(), "sum"), (r.requests_rate(),), None),
        Question(
            "error_ratio",
            f"({_by('model', r.errors_rate(), 'sum')} or {_by('model', r.requests_rate(), 'sum')} * 0)"
            f" / {_by('model', r.requests_rate(), 'sum')}",
            (r.errors_rate(), r.requests_rate()),
            f"(sum by (model) ({errors}) or sum by (model) ({requests}) * 0) / sum by (model) ({requests})",
        ),
        Question("model_age", _by("model", r.model_age(), "min"), (r.model_age(),), None),
        Question("served_version", _by("model, version", c.MODEL_INFO.name), (), None),
        # What each model's targets call themselves: a service exporting another name than the spec's
        # (bc_typo for bc-typo) would otherwise leave every check at NO DATA without saying why.
        Question(
            "exported_model",
            _by(
                f"{c.TARGET_MODEL_LABEL}, exported_model",
                f'label_replace({c.MODEL_INFO.name}, "exported_model", "$1", "model", "(.*)")',
                "count",
            ),
            (),
            None,
        ),
        Question("reference_confidence", _by("model", c.REFERENCE_CONFIDENCE_MEAN.name), (), None),
        Question("reference_accuracy", _by("model", c.REFERENCE_ACCURACY.name), (), None),
    ]
    for q in (50, 95, 99):
        name = r.latency_quantile(q)
        raw = (
            f"histogram_quantile({q / 100}, sum by (model, le) (rate({c.REQUEST_DURATION.name}_bucket[{w}])))"
        )
        questions.append(Question(f"latency_p{q}", _by("model", name), (name,), raw))
    return questions


def _drift_questions(w: str) -> list[Question]:
    mf = "model, feature"
    return [
        Question("feature_psi", _by(mf, r.feature_psi(w)), (r.feature_psi(w),), None, w),
        Question("feature_drift_z", _by(mf, r.feature_drift_z(w)), (r.feature_drift_z(w),), None, w),
        Question("missing_z", _by(mf, r.feature_missing_z(w)), (r.feature_missing_z(w),), None, w),
        Question(
            "missing_rise",
            _by(mf, f"{r.feature_missing_ratio(w)} - {r.feature_reference_missing_ratio()}"),
            (r.feature_missing_ratio(w), r.feature_reference_missing_ratio()),
            None,
            w,
        ),
        Question(
            "feature_observations",
            _by(mf, r.feature_observations(w), "sum"),
            (r.feature_observations(w),),
            None,
            w,
        ),
        Question(
            "missing_ratio", _by(mf, r.feature_missing_ratio(w)), (r.feature_missing_ratio(w),), None, w
        ),
        Question(
            "invalid_input",
            _by("model, feature, reason", r.invalid_input_ratio(w)),
            (r.invalid_input_ratio(w),),
            None,
            w,
        ),
        Question("prediction_psi", _by("model", r.prediction_psi(w)), (r.prediction_psi(w),), None, w),
        Question(
            "prediction_observations",
            _by("model", r.prediction_observations(w), "sum"),
            (r.prediction_observations(w),),
            None,
            w,
        ),
        Question(
            "confidence",
            f"{_by('model', r.confidence_mean(w) + ' * ' + r.confidence_count(w), 'sum')}"
            f" / {_by('model', r.confidence_count(w), 'sum')}",
            (r.confidence_mean(w), r.confidence_count(w)),
            None,
            w,
        ),
        Question(
            "confidence_count", _by("model", r.confidence_count(w), "sum"), (r.confidence_count(w),), None, w
        ),
        # The evidence behind the prediction-drift and confidence alerts (drift_test: evidence).
        Question(
            "prediction_drift_z", _by("model", r.prediction_drift_z(w)), (r.prediction_drift_z(w),), None, w
        ),
        Question("confidence_z", _by("model", r.confidence_drop_z(w)), (r.confidence_drop_z(w),), None, w),
    ]


def seasonal_key(window: str, period: str) -> str:
    """The window under which the answers against a seasonal baseline are filed."""
    return f"{window} offset {period}"


def _seasonal_questions(w: str, period: str) -> list[Question]:
    """For models with ``drift_baseline: seasonal``: their evidence and PSI against the same window one period
    earlier, and the observations of that earlier window, filed under :func:`seasonal_key` with the checks the
    reference baseline uses (so they go in the same requests)."""
    mf, key = "model, feature", seasonal_key(w, period)
    psi, z = r.feature_seasonal_psi(w, period), r.feature_seasonal_z(w, period)
    earlier = f"{r.feature_observations(w)} offset {period}"
    return [
        Question("feature_psi", _by(mf, psi), (psi,), None, key, inlinable=False),
        Question("feature_drift_z", _by(mf, z), (z,), None, key, inlinable=False),
        Question(
            "feature_observations",
            _by(mf, earlier, "sum"),
            (r.feature_observations(w), z),
            None,
            key,
            inlinable=False,
        ),
    ]


def _feedback_questions(w: str, step_ms: int, at: float | None) -> list[Question]:
    return [
        Question(
            "accuracy",
            f"{_by('model', r.feedback_counts(w) + '{correct=' + chr(34) + 'true' + chr(34) + '}', 'sum')}"
            f" / {_by('model', r.feedback_count(w), 'sum')}",
            (r.feedback_counts(w), r.feedback_count(w)),
            f"sum by (model) ({r.raw_window_count(r.FEEDBACK, w, step_ms, '{correct=' + chr(34) + 'true' + chr(34) + '}', at)})"
            f" / sum by (model) ({r.raw_window_count(r.FEEDBACK, w, step_ms, at=at)})",
            w,
        ),
        Question("feedback_count", _by("model", r.feedback_count(w), "sum"), (r.feedback_count(w),), None, w),
        Question("accuracy_z", _by("model", r.accuracy_drop_z(w)), (r.accuracy_drop_z(w),), None, w),
        Question("f1", _by("model", r.macro_f1(w)), (r.macro_f1(w),), None, w),
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
class QueryPlan:
    """The questions, each as the PromQL that will be sent, and the checks that cannot be answered."""

    parts: list[tuple[Question, str]]
    unanswerable: dict[tuple[str, str], str]  # (check, window) -> why


def plan_queries(
    drift_windows: Iterable[str],
    feedback_windows: Iterable[str],
    loaded: set[str],
    evaluation_interval: str,
    seasonal: Iterable[tuple[str, str]] = (),
) -> QueryPlan:
    drift_windows, feedback_windows = set(drift_windows), set(feedback_windows)
    inline = _Inliner(drift_windows | feedback_windows, evaluation_interval, at=time.time())
    plan = QueryPlan([], {})
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
class Answers:
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
_Part = tuple[Question, str]
_Refused = dict[tuple[str, str], str]


def _query_groups(plan: QueryPlan) -> list[list[_Part]]:
    per_feature: dict[str, list[_Part]] = {check: [] for check in PER_FEATURE_CHECKS}
    rest: list[_Part] = []
    for part in plan.parts:
        per_feature.get(part[0].check, rest).append(part)
    return [group for group in (rest, *per_feature.values()) if group]


def ask_prometheus(client: PrometheusClient, plan: QueryPlan, pool: Executor) -> Callable[[], Answers]:
    """Send the plan's queries (see PER_FEATURE_CHECKS) on ``pool``; the returned function waits for them
    and gathers the answers (the first failure of a server, not of a query, is raised from it)."""
    asked = [pool.submit(_ask_group, client, group) for group in _query_groups(plan)]

    def answers() -> Answers:
        gathered = Answers()
        for future in asked:
            samples, refused = future.result()
            gathered.add(samples)
            plan.unanswerable.update(refused)
        return gathered

    return answers


def _ask_group(client: PrometheusClient, parts: list[_Part]) -> tuple[list[Sample], _Refused]:
    """One query joining ``parts``; if Prometheus refuses it, part by part, so that one bad part (a rule
    renamed by hand, say) costs only its own check."""
    from mlmon.backends.prometheus import PrometheusError

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


def sparkline_history(
    client: PrometheusClient,
    models: Sequence[ModelSpec],
    loaded: set[str],
    window: str,
    evaluation_interval: str,
) -> dict[str, dict[str, tuple[tuple[float, float], ...]]]:
    """Traffic, p95 latency and the worst feature drift of every model over ``window``, in one range query."""
    from mlmon.backends.prometheus import PrometheusError

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


def alerts_by_model(client: PrometheusClient) -> dict[str, list[AlertState]]:
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
