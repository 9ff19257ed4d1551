"""The MLflow model registry as `mlmon status` needs it: each model's aliases, the version its watched alias
points to, that version's age and its run's metrics.

Three readers give the same answer:
- a local sqlite store (MLflow's default, ``sqlite:///mlflow.db``) is read directly and read-only: importing
  MLflow's client and opening a sqlite store through it takes several seconds, and status should take well
  under one. The reader checks that the store has the tables and columns it reads (MLflow's schema since
  2.3, when aliases came) and names what is missing otherwise; it never writes, where MLflow's client would
  create or migrate tables;
- a tracking server is read over MLflow's REST API, a few models at a time, and any other store (PostgreSQL,
  MySQL, a plugin) through MLflow's client with short timeouts and no retries: both with the readers of
  ``mlmon compare-runs`` (:mod:`mlmon.backends.mlflow.runs`).
A test reads the same real stores all three ways and compares.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mlmon.errors import BackendError, MlmonError
from mlmon.spec import ModelSpec

if TYPE_CHECKING:
    from mlmon.backends.mlflow.runs import MlflowReader

# MLflow marks a deleted version with this stage in SQL stores and keeps the row.
DELETED_STAGE = "Deleted_Internal"
REST_THREADS = 8


@dataclass(frozen=True)
class RegistryState:
    registered_model: str
    aliases: Mapping[str, str]
    watched_alias: str
    watched_version: str | None
    served_versions: tuple[str, ...]
    matches: bool | None  # None when either side is unknown
    metrics: Mapping[str, float]
    age_days: float | None
    stages: Mapping[str, str] = field(default_factory=dict)  # legacy stages, read-only


# Per model name: its state, or why it could not be read (the registered model is missing, say).
RegistryLookup = Callable[[Sequence[ModelSpec]], Mapping[str, "RegistryState | str"]]


def registry_lookup(
    tracking_uri: str, timeout: float = 5.0, registry_uri: str | None = None
) -> RegistryLookup:
    """The fastest reader for the stores. ``registry_uri`` holds the registered models (the tracking store
    itself by default, as in MLflow); the runs, and so the versions' metrics, are in the tracking store. A
    failure of a whole store raises a BackendError. ``timeout`` bounds each request to a server."""
    from mlmon.backends.mlflow.rest import rest_supported

    registry_uri = registry_uri or tracking_uri
    registry_database, tracking_database = sqlite_path(registry_uri), sqlite_path(tracking_uri)
    if registry_database is not None and tracking_database is not None:
        return _sqlite_lookup(registry_database, registry_uri, tracking_database)
    if rest_supported(registry_uri) and rest_supported(tracking_uri):
        return _rest_lookup(registry_uri, timeout, tracking_uri)
    return _client_lookup(tracking_uri, registry_uri)


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI (relative, or absolute with four slashes)."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :])
    return None


def _state(
    model: ModelSpec,
    aliases: Mapping[str, str],
    stages: Mapping[str, str],
    created_ms: float | None,
    metrics: Mapping[str, float],
) -> RegistryState:
    watched = aliases.get(model.alias)
    age_days = None if created_ms is None or watched is None else (time.time() - created_ms / 1000) / 86400
    return RegistryState(
        model.registered_model,
        dict(aliases),
        model.alias,
        watched,
        (),
        None,
        dict(metrics),
        age_days,
        dict(stages),
    )


def _latest_stages(versions: Sequence[tuple[str, str]]) -> dict[str, str]:
    """{version: stage} for the newest version in each legacy stage, as MLflow's ``latest_versions``."""
    newest: dict[str, int] = {}
    for version, stage in versions:
        if stage and stage not in ("None", DELETED_STAGE):
            newest[stage] = max(newest.get(stage, 0), int(version))
    return {str(v): stage for stage, v in newest.items()}


def _not_registered(model: ModelSpec, where: str) -> str:
    return f"registered model {model.registered_model!r} not found in MLflow at {where}"


# ------------------------------------------------------------------------------------------------------
# sqlite, read directly

_SQLITE_COLUMNS = {
    "registered_models": {"name"},
    "registered_model_aliases": {"name", "alias", "version"},
    "model_versions": {"name", "version", "creation_time", "current_stage", "run_id"},
    "latest_metrics": {"run_uuid", "key", "value", "is_nan"},
}


_REGISTRY_TABLES = ("registered_models", "registered_model_aliases", "model_versions")


def _sqlite_lookup(database: Path, uri: str, runs_database: Path | None = None) -> RegistryLookup:
    """The registry in ``database`` (``uri``), the runs' metrics in ``runs_database`` (default: the same)."""
    runs_database = runs_database or database

    def lookup(models: Sequence[ModelSpec]) -> Mapping[str, RegistryState | str]:
        for path in {database, runs_database}:
            if not path.is_file():
                # MLflow's client would create an empty store here; status only reads.
                raise BackendError(
                    f"no MLflow store at {path}",
                    "point --mlflow-uri, MLFLOW_TRACKING_URI or mlflow.tracking_uri in mlmon.yaml (and "
                    "MLFLOW_REGISTRY_URI or mlflow.registry_uri for a registry of its own) at your store",
                )
        try:
            with _read_only(database) as registry, _read_only(runs_database) as runs:
                for path, connection, tables in (
                    (database, registry, _REGISTRY_TABLES),
                    (runs_database, runs, ("latest_metrics",)),
                ):
                    missing = _missing_schema(connection, tables)
                    if missing:
                        raise BackendError(
                            f"{path} is not an MLflow store of version 2.3 or newer: it lacks {missing}",
                            f"upgrade an older store with `mlflow db upgrade sqlite:///{path}`, or point "
                            "--mlflow-uri at your MLflow store",
                        )
                return _read_sqlite(registry, runs, models, str(database))
        except sqlite3.Error as exc:
            raise BackendError(
                f"cannot read the MLflow store {database}: {exc}", "check that it is an MLflow sqlite store"
            ) from None

    return lookup


class _read_only:
    """A read-only connection that is closed afterwards (sqlite3's own context manager only commits)."""

    def __init__(self, database: Path) -> None:
        self.connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=5)

    def __enter__(self) -> sqlite3.Connection:
        return self.connection

    def __exit__(self, *_: object) -> None:
        self.connection.close()


def _missing_schema(connection: sqlite3.Connection, tables: Sequence[str]) -> str:
    """What the store lacks of the ``tables`` and their columns read here, as text; empty when nothing."""
    missing = []
    for table in tables:
        columns = _SQLITE_COLUMNS[table]
        found = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if not found:
            missing.append(f"table {table}")
        elif not columns <= found:
            missing.append(f"{table}.{', '.join(sorted(columns - found))}")
    return "; ".join(missing)


def _read_sqlite(
    connection: sqlite3.Connection,
    runs_connection: sqlite3.Connection,
    models: Sequence[ModelSpec],
    where: str,
) -> dict[str, RegistryState | str]:
    names = sorted({m.registered_model for m in models})
    marks = ",".join("?" * len(names))
    registered = {
        row[0]
        for row in connection.execute(f"SELECT name FROM registered_models WHERE name IN ({marks})", names)
    }
    aliases: dict[str, dict[str, str]] = {}
    for name, alias, version in connection.execute(
        f"SELECT name, alias, version FROM registered_model_aliases WHERE name IN ({marks})", names
    ):
        aliases.setdefault(name, {})[alias] = str(version)
    versions: dict[str, dict[str, tuple[float | None, str | None, str]]] = {}
    for name, version, created, stage, run_id in connection.execute(
        "SELECT name, version, creation_time, current_stage, run_id FROM model_versions "
        f"WHERE name IN ({marks}) AND current_stage != ?",
        [*names, DELETED_STAGE],
    ):
        versions.setdefault(name, {})[str(version)] = (created, run_id, stage or "")
    runs = {
        info[1]
        for name in names
        for version, info in versions.get(name, {}).items()
        if info[1] and version in aliases.get(name, {}).values()
    }
    from mlmon.backends.mlflow.runs import from_store

    metrics: dict[str, dict[str, float]] = {}
    if runs:
        run_marks = ",".join("?" * len(runs))
        for run_id, key, value, is_nan in runs_connection.execute(
            f"SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE run_uuid IN ({run_marks})",
            sorted(runs),
        ):
            metrics.setdefault(run_id, {})[key] = math.nan if is_nan else from_store(float(value))
    out: dict[str, RegistryState | str] = {}
    for model in models:
        name = model.registered_model
        if name not in registered:
            out[model.name] = _not_registered(model, where)
            continue
        own = aliases.get(name, {})
        created, run_id, _ = versions.get(name, {}).get(own.get(model.alias, ""), (None, None, ""))
        stages = _latest_stages([(v, info[2]) for v, info in versions.get(name, {}).items()])
        out[model.name] = _state(model, own, stages, created, metrics.get(run_id or "", {}))
    return out


# ------------------------------------------------------------------------------------------------------
# A tracking server over REST, or anything else through MLflow's client: the readers compare-runs uses


def _rest_lookup(registry_uri: str, timeout: float = 5.0, tracking_uri: str | None = None) -> RegistryLookup:
    """The registry of the server at ``registry_uri``, the runs of the one at ``tracking_uri`` (default:
    the same)."""
    from mlmon.backends.mlflow.rest import MlflowRestClient
    from mlmon.backends.mlflow.runs import RestReader

    def lookup(models: Sequence[ModelSpec]) -> Mapping[str, RegistryState | str]:
        # Each answer within the timeout, all of them together within 1.5 times it (as status gives
        # Prometheus): a slow server makes status slow once, not once per model.
        registry = MlflowRestClient(
            registry_uri, connect_timeout=timeout, read_timeout=timeout, budget=timeout * 1.5
        )
        tracking = registry
        if tracking_uri not in (None, registry_uri):
            tracking = MlflowRestClient(
                tracking_uri, connect_timeout=timeout, read_timeout=timeout, budget=timeout * 1.5
            )
        # One request first: an unreachable server fails once, not once per model.
        registry.get("registered-models/search", {"max_results": "1"}, what="the model registry")
        reader = RestReader(tracking, registry)
        with ThreadPoolExecutor(REST_THREADS) as pool:
            states = pool.map(lambda model: _reader_state(reader, model), models)
            return dict(zip((model.name for model in models), states, strict=True))

    return lookup


def _client_lookup(tracking_uri: str, registry_uri: str | None = None) -> RegistryLookup:
    def lookup(models: Sequence[ModelSpec]) -> Mapping[str, RegistryState | str]:
        from mlmon.backends.mlflow.client import mlflow_errors
        from mlmon.backends.mlflow.runs import ClientReader

        reader = ClientReader.connect(tracking_uri, registry_uri)
        with mlflow_errors("the model registry", reader.registry_uri):
            reader.client.search_registered_models(max_results=1)
        return {model.name: _reader_state(reader, model) for model in models}

    return lookup


def _reader_state(reader: MlflowReader, model: ModelSpec) -> RegistryState | str:
    """A model's state read through compare-runs' readers; what is missing (the model, a version, a run) as
    the error's message, credentials in URIs redacted."""
    name = model.registered_model
    try:
        registered = reader.registered_model(name)
        watched = registered.aliases.get(model.alias)
        created, metrics = None, {}
        if watched is not None:
            version = reader.model_version(name, watched)
            created = version.creation_timestamp
            if version.run_id:
                metrics = dict(reader.run(version.run_id).metrics)
    except MlmonError as exc:
        return exc.message
    stages = _latest_stages(registered.latest_versions)
    return _state(model, registered.aliases, stages, created, metrics)
