"""The status report: checks, verdicts, alerts and backends, as plain data, and its documented JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from mlmon.backends.mlflow.registry import RegistryState

if TYPE_CHECKING:
    pass

SCHEMA_VERSION = 1

Verdict = Literal["OK", "WARN", "CRIT", "NO DATA"]
# How bad a verdict is. NO DATA ranks with OK: a model without feedback is not unhealthy for it; a model
# without any data at all gets NO DATA as its own verdict (see ModelStatus).
_SEVERITY: dict[str, int] = {"OK": 0, "NO DATA": 0, "WARN": 1, "CRIT": 2}
_ALERT_VERDICT: dict[str, Verdict] = {"critical": "CRIT", "warning": "WARN"}
# Checks whose absence means Prometheus has never seen the model.
ESSENTIAL_CHECKS = frozenset({"targets_up", "request_rate"})


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
        if all(check.verdict == "NO DATA" for check in self.checks if check.name in ESSENTIAL_CHECKS):
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
