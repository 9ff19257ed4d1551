"""Which MLflow stores a command reads: the same rules for `mlmon status` and `mlmon compare-runs`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlmon.spec import Spec

# mlmon.spec's default, repeated so that a run without a spec does not import the spec module (and PyYAML).
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def tracking_uri_for(spec: Spec | None, given: str | None) -> str:
    """``--mlflow-uri`` (or MLFLOW_TRACKING_URI), else the spec's ``mlflow.tracking_uri``, else MLflow's
    default local store."""
    return given or (spec.mlflow.tracking_uri if spec is not None else DEFAULT_TRACKING_URI)


def registry_uri_for(spec: Spec | None, *, tracking_given: bool) -> str | None:
    """The model registry: MLFLOW_REGISTRY_URI, else the spec's ``mlflow.registry_uri`` unless the tracking
    store was named on the command line (the spec's registry belongs with the spec's tracking store), else
    None: the tracking store itself, as in MLflow."""
    if os.environ.get("MLFLOW_REGISTRY_URI"):
        return os.environ["MLFLOW_REGISTRY_URI"]
    return spec.mlflow.registry_uri if spec is not None and not tracking_given else None
