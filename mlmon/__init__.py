"""mlmon: monitoring for machine-learning models on Prometheus, Alertmanager, Grafana and MLflow.

The library under the ``mlmon`` command. Every command is a thin layer over a function here::

    from mlmon import load_spec, plan_init, apply_plan

    spec = load_spec("mlmon.yaml")
    plan = plan_init(spec, "monitoring")
    apply_plan(plan)
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
