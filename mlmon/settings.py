"""Settings every command resolves the same way, and every default written once.

Precedence: a command-line flag, then its environment variable (MLFLOW_TRACKING_URI, MLFLOW_REGISTRY_URI, ...:
Typer reads them into the flag), then the spec (./mlmon.yaml, or --spec), then the defaults below. Light: a
run without a spec does not import the spec module (and PyYAML)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlmon.spec import Spec

DEFAULT_SPEC_FILE = "mlmon.yaml"
# MLflow's local store, which `mlmon demo` and a new mlmon.yaml use too.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"
DEFAULT_ALERTMANAGER_URL = "http://127.0.0.1:9093"


def optional_spec(path: Path | None) -> Spec | None:
    """The spec named by --spec (which must exist), else ./mlmon.yaml when there is one, else none."""
    if path is None:
        path = Path(DEFAULT_SPEC_FILE)
        if not path.is_file():
            return None
    from mlmon.spec import load_spec

    return load_spec(path)


def tracking_uri(given: str | None, spec_path: Path | None = None) -> str:
    """The tracking store of a command that reads a spec only when it needs MLflow (`profile`, `drift`):
    ``given`` (--mlflow-uri or MLFLOW_TRACKING_URI), else the spec's, else the default."""
    return given or tracking_uri_for(optional_spec(spec_path), None)


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
