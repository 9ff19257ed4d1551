"""Shared fixtures: specs to render, the real tools, a real MLflow store. Helpers that tests import live in
tests/helpers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlmon.spec import Spec, spec_from_dict
from tests.helpers import (
    full_spec_dict,
    hostile_spec_dict,
    minimal_spec_dict,
    require_sqlite_store,
    require_tool,
)


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool", "prometheus")


@pytest.fixture(scope="session")
def amtool() -> str:
    return require_tool("amtool", "prometheus-alertmanager")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return require_tool("prometheus", "prometheus")


@pytest.fixture
def minimal_spec() -> Spec:
    return spec_from_dict(minimal_spec_dict())


@pytest.fixture
def full_spec(tmp_path: Path) -> Spec:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    return spec_from_dict(full_spec_dict(secrets))


@pytest.fixture
def hostile_spec() -> Spec:
    return spec_from_dict(hostile_spec_dict())


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real local MLflow sqlite store with one experiment: (tracking URI, experiment id)."""
    require_sqlite_store()
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    experiment = MlflowClient(uri).create_experiment("mlmon", artifact_location=(root / "artifacts").as_uri())
    yield uri, experiment
