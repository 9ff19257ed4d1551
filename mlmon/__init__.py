"""mlmon: monitoring for machine-learning models on Prometheus, Alertmanager, Grafana and MLflow.

The library under the ``mlmon`` command. Every command is a thin layer over a function of it::

    from mlmon.spec import load_spec
    from mlmon.render import plan_outputs, apply_plan

    spec = load_spec("mlmon.yaml")
    plan = plan_outputs(spec, "monitoring")   # reads only
    apply_plan(plan)                          # atomic writes; never overwrites a file you edited

A model service imports :mod:`mlmon.instrument`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
