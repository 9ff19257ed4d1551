"""`mlmon status`: what Prometheus and the MLflow registry say about every model, as a StatusReport.

Prometheus is asked a fixed number of questions whatever the number of models: the list of recording
rules, then together four instant queries (see PER_FEATURE_CHECKS; each part tagged with an
``mlmon_check`` label and aggregated ``by (model)``), one range query for the sparklines and the firing
alerts. Where a recording rule is loaded, its series is read; where it is not, the rule's expression is
evaluated instead, so status works on a Prometheus that only scrapes.

Each check gets a verdict against the model's thresholds (the same ones the alert rules use), and each
model the worst verdict of its checks and of its firing alerts. The report is plain data: the CLI renders
it, and ``StatusReport.to_json`` gives the documented JSON.

Three modules: ``ask`` (the questions, their PromQL and the requests), ``judge`` (verdicts from the answers,
without a server), ``report`` (the report and its JSON); ``gather_status`` here puts them together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from mlmon import rules as r
from mlmon.backends.mlflow.registry import RegistryLookup, RegistryState
from mlmon.errors import MlmonError
from mlmon.spec import ModelSpec, PrometheusConfig, Spec, Thresholds, duration_seconds
from mlmon.status.ask import (
    CHECK_LABEL,
    PER_FEATURE_CHECKS,
    WINDOW_LABEL,
    Answers,
    QueryPlan,
    alerts_by_model,
    ask_prometheus,
    plan_queries,
    seasonal_key,
    sparkline_history,
)
from mlmon.status.judge import judge_model, registry_check
from mlmon.status.report import (
    ESSENTIAL_CHECKS,
    AlertState,
    BackendState,
    Check,
    ModelStatus,
    StatusReport,
    Verdict,
)

if TYPE_CHECKING:
    from mlmon.backends.prometheus import PrometheusClient

__all__ = [
    "CHECK_LABEL",
    "PER_FEATURE_CHECKS",
    "WINDOW_LABEL",
    "AlertState",
    "BackendState",
    "Check",
    "ModelStatus",
    "StatusReport",
    "Verdict",
    "gather_status",
    "seasonal_key",
]

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

    from mlmon.backends.prometheus import PrometheusError

    models = list(spec.models) if spec else []
    evaluation_interval = (spec.prometheus if spec else PrometheusConfig()).evaluation_interval
    if spec is not None:
        models = _only(models, only)  # the spec names every model: an unknown name fails before any request
    answers, alerts, sparklines = Answers(), {}, {}
    plan = QueryPlan([], {})
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
                    plan = plan_queries(drift[:1], feedback[:1], loaded, evaluation_interval)
                    answers = ask_prometheus(prometheus, plan, pool)()
                    thresholds = Thresholds(drift_window=drift[0], feedback_window=feedback[0])
                    models = [ModelSpec(n, n, thresholds=thresholds) for n in sorted(answers.models())]
                    models = _only(models, only)
                    if registry is not None and models:
                        from_registry = pool.submit(registry, models)
                    asked = None
                else:
                    plan = plan_queries(
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
                    asked = ask_prometheus(prometheus, plan, pool)
                from_alerts = pool.submit(alerts_by_model, prometheus)
                from_history = None
                if history and models:
                    from_history = pool.submit(
                        sparkline_history, prometheus, models, loaded, window, evaluation_interval
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
            judge_model(model, answers, plan.unanswerable)
            if prom_state.ok
            else [
                Check(name, None, None, "NO DATA", detail="Prometheus unreachable")
                for name in sorted(ESSENTIAL_CHECKS)
            ]
        )
        if registry is not None:
            checks.append(registry_check(model, registry_state, registry_error))
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
