"""The registry readers of `mlmon status` agree: a real MLflow sqlite store read directly, read through
MLflow's client, and served by a real `mlflow server` read over REST must give the same states."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlmon.backends.mlflow.registry import (
    RegistryState,
    _client_lookup,
    _rest_lookup,
    _sqlite_lookup,
    registry_lookup,
)
from mlmon.errors import BackendError
from mlmon.spec import ModelSpec
from tests.helpers import require_mlflow_server
from tests.servers import free_port, mlflow_server

MODELS = (
    ModelSpec("credit", "credit-risk"),  # champion -> 2; version 3 deleted; legacy stages
    ModelSpec("churn", "churn", alias="challenger"),  # watched alias not set
    ModelSpec("ghost", "never-registered"),
    ModelSpec("fraud", "fraud"),  # champion's run logged a NaN and an infinite metric
)


def _fill(tracking_uri: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("registry-test")

    def version(name: str, metrics: dict[str, float]) -> str:
        run = client.create_run(experiment)
        for key, value in metrics.items():
            client.log_metric(run.info.run_id, key, value, step=0)
            client.log_metric(run.info.run_id, key, value + 1, step=1)  # the latest is what counts
        return str(client.create_model_version(name, f"runs:/{run.info.run_id}/m", run.info.run_id).version)

    client.create_registered_model("credit-risk")
    for auc in (0.7, 0.8, 0.9):
        version("credit-risk", {"auc": auc, "loss": 1 - auc})
    client.set_registered_model_alias("credit-risk", "champion", "2")
    client.set_registered_model_alias("credit-risk", "previous", "1")
    client.transition_model_version_stage("credit-risk", "1", "Production")
    client.transition_model_version_stage("credit-risk", "2", "Staging")
    client.delete_model_version("credit-risk", "3")
    client.create_registered_model("churn")
    version("churn", {"auc": 0.6})
    client.set_registered_model_alias("churn", "champion", "1")
    client.create_registered_model("fraud")
    version("fraud", {"auc": math.nan, "lift": math.inf})
    client.set_registered_model_alias("fraud", "champion", "1")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("registry") / "mlflow.db"
    uri = f"sqlite:///{path}"
    _fill(uri)
    return uri


@pytest.fixture(scope="module")
def server(store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = require_mlflow_server()
    with mlflow_server(binary, store, tmp_path_factory.mktemp("server")) as url:
        yield url


def _comparable(state: RegistryState | str) -> object:
    if isinstance(state, str):
        return "error" if "not found" in state else state
    metrics = {k: ("nan" if math.isnan(v) else v) for k, v in state.metrics.items()}
    age = None if state.age_days is None else round(state.age_days, 2)
    return (
        state.registered_model,
        dict(state.aliases),
        state.watched_version,
        metrics,
        age,
        dict(state.stages),
    )


def test_sqlite_read_directly_equals_mlflow_client(store: str) -> None:
    direct = _sqlite_lookup(Path(store[len("sqlite:///") :]), store)(MODELS)
    client = _client_lookup(store)(MODELS)
    assert {k: _comparable(v) for k, v in direct.items()} == {k: _comparable(v) for k, v in client.items()}
    credit = direct["credit"]
    assert isinstance(credit, RegistryState)
    assert credit.aliases == {"champion": "2", "previous": "1"} and credit.watched_version == "2"
    assert credit.metrics == {"auc": pytest.approx(1.8), "loss": pytest.approx(1.2)}
    assert credit.stages == {"1": "Production", "2": "Staging"}
    assert credit.age_days is not None and 0 <= credit.age_days < 0.1
    churn = direct["churn"]
    assert isinstance(churn, RegistryState) and churn.watched_version is None and churn.metrics == {}
    assert "never-registered" in str(direct["ghost"]) and "not found" in str(direct["ghost"])
    fraud = direct["fraud"]
    assert isinstance(fraud, RegistryState)
    # MLflow's SQL store keeps infinity as the largest float; every reader turns it back into infinity.
    assert math.isnan(fraud.metrics["auc"]) and fraud.metrics["lift"] == math.inf


def test_rest_equals_sqlite(store: str, server: str) -> None:
    direct = _sqlite_lookup(Path(store[len("sqlite:///") :]), store)(MODELS)
    rest = _rest_lookup(server)(MODELS)
    assert {k: _comparable(v) for k, v in rest.items()} == {k: _comparable(v) for k, v in direct.items()}
    assert registry_lookup(server).__qualname__.startswith("_rest_lookup")
    # Credentials written into the URL never reach a message.
    with_password = server.replace("http://", "http://alice:s3cret@")
    ghost = _rest_lookup(with_password)(MODELS)["ghost"]
    assert isinstance(ghost, str) and "never-registered" in ghost and "not found" in ghost
    assert "s3cret" not in ghost


def test_missing_store_is_reported_not_created(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'nope.db'}"
    with pytest.raises(BackendError, match="no MLflow store"):
        registry_lookup(uri)(MODELS)
    assert not (tmp_path / "nope.db").exists()


def test_a_file_that_is_not_an_mlflow_store(tmp_path: Path) -> None:
    (tmp_path / "other.db").write_bytes(b"this is not sqlite at all, just text" * 10)
    with pytest.raises(BackendError, match="cannot read the MLflow store"):
        registry_lookup(f"sqlite:///{tmp_path / 'other.db'}")(MODELS)


def test_another_schema_is_named_and_left_untouched(tmp_path: Path) -> None:
    database = tmp_path / "foreign.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE registered_models (id INTEGER)")
    before = database.read_bytes()
    with pytest.raises(BackendError) as info:
        registry_lookup(f"sqlite:///{database}")(MODELS)
    assert (
        "table registered_model_aliases" in info.value.message
        and "registered_models.name" in info.value.message
    )
    assert info.value.hint is not None and "mlflow db upgrade" in info.value.hint
    assert database.read_bytes() == before


def test_unreachable_server_fails_once_quickly() -> None:
    with pytest.raises(BackendError) as info:
        registry_lookup(f"http://127.0.0.1:{free_port()}")(MODELS)
    assert "127.0.0.1" in info.value.message


# --- a registry of its own (MLFLOW_REGISTRY_URI, mlflow.registry_uri) --------------------------------------

SPLIT_MODELS = (ModelSpec("credit", "credit-risk"), ModelSpec("ghost", "never-registered"))


@pytest.fixture(scope="module")
def split_stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(tracking store, registry store): the runs in one sqlite file, the registered models in another."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("split")
    tracking, registry = f"sqlite:///{folder / 'tracking.db'}", f"sqlite:///{folder / 'registry.db'}"
    client = MlflowClient(tracking, registry)
    run = client.create_run(client.create_experiment("split"))
    client.log_metric(run.info.run_id, "auc", 0.91)
    client.create_registered_model("credit-risk")
    client.create_model_version("credit-risk", f"runs:/{run.info.run_id}/m", run.info.run_id)
    client.set_registered_model_alias("credit-risk", "champion", "1")
    return tracking, registry


def test_a_registry_of_its_own_reads_versions_there_and_metrics_from_the_tracking_store(
    split_stores: tuple[str, str],
) -> None:
    tracking, registry = split_stores
    direct = registry_lookup(tracking, registry_uri=registry)
    assert direct.__qualname__.startswith("_sqlite_lookup")
    states = direct(SPLIT_MODELS)
    credit = states["credit"]
    assert isinstance(credit, RegistryState)
    assert credit.watched_version == "1" and credit.metrics == {"auc": pytest.approx(0.91)}
    assert "not found" in str(states["ghost"]) and "registry.db" in str(states["ghost"])
    client = _client_lookup(tracking, registry)(SPLIT_MODELS)
    assert {k: _comparable(v) for k, v in client.items()} == {k: _comparable(v) for k, v in states.items()}
    # Read as one store, the tracking store has no registered model at all.
    assert "not found" in str(registry_lookup(tracking)(SPLIT_MODELS)["credit"])


def test_a_registry_server_of_its_own_over_rest(
    split_stores: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    binary = require_mlflow_server()
    tracking, registry = split_stores
    with (
        mlflow_server(binary, tracking, tmp_path_factory.mktemp("tracking")) as tracking_url,
        mlflow_server(binary, registry, tmp_path_factory.mktemp("registry")) as registry_url,
    ):
        lookup = registry_lookup(tracking_url, registry_uri=registry_url)
        assert lookup.__qualname__.startswith("_rest_lookup")
        rest = lookup(SPLIT_MODELS)
    direct = registry_lookup(tracking, registry_uri=registry)(SPLIT_MODELS)
    assert {k: _comparable(v) for k, v in rest.items()} == {k: _comparable(v) for k, v in direct.items()}
    credit = rest["credit"]
    assert isinstance(credit, RegistryState) and credit.metrics == {"auc": pytest.approx(0.91)}


def test_status_reads_the_registry_named_by_the_spec_or_the_environment(
    split_stores: tuple[str, str], tmp_path: Path
) -> None:
    import json

    import yaml

    from tests.helpers import run_cli

    tracking, registry = split_stores
    spec = {
        "version": 1,
        "prometheus": {"url": f"http://127.0.0.1:{free_port()}"},  # nobody there: MLflow's part stands alone
        "mlflow": {"tracking_uri": tracking, "registry_uri": registry},
        "models": [{"name": "credit", "registered_model": "credit-risk", "targets": ["127.0.0.1:9100"]}],
    }
    (tmp_path / "mlmon.yaml").write_text(yaml.safe_dump(spec))

    def registry_of(*args: str, env: dict[str, str] | None = None) -> tuple[str, dict[str, object]]:
        code, out, err = run_cli("status", "--json", "--timeout", "1", *args, cwd=tmp_path, env=env)
        assert code == 0, err
        report = json.loads(out)
        [model] = report["models"]
        return report["mlflow"]["url"], model["registry"]

    url, state = registry_of()
    assert url == f"{tracking} (registry {registry})"
    assert state["watched_version"] == "1" and state["metrics"] == {"auc": pytest.approx(0.91)}
    # A tracking store named on the command line leaves the spec's registry out...
    spec["mlflow"] = {"tracking_uri": f"sqlite:///{tmp_path / 'elsewhere.db'}", "registry_uri": registry}
    (tmp_path / "mlmon.yaml").write_text(yaml.safe_dump(spec))
    url, state = registry_of("--mlflow-uri", tracking)
    assert url == tracking and state is None
    # ...unless MLFLOW_REGISTRY_URI names one, as MLflow itself reads it.
    url, state = registry_of("--mlflow-uri", tracking, env={"MLFLOW_REGISTRY_URI": registry})
    assert url == f"{tracking} (registry {registry})" and state["watched_version"] == "1"
