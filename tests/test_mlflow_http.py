"""`mlmon profile` and `mlmon drift` against a real `mlflow server` on 127.0.0.1: the registry lookups, the
run check and the drift metrics go through mlmon's bounded REST client, the artifacts through MLflow's."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import require_mlflow_server, run_cli
from tests.servers import mlflow_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tracking_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = require_mlflow_server()
    root = tmp_path_factory.mktemp("mlflow-http")
    with mlflow_server(binary, f"sqlite:///{root / 'mlflow.db'}", root) as url:
        yield url


def _data(path: Path, seed: int, shift: float = 0.0) -> Path:
    rng = np.random.default_rng(seed)
    lines = ["request_id,income,region"]
    for i in range(500):
        lines.append(f"r{seed}-{i},{rng.normal(50 + shift, 5):.3f},{rng.choice(['n', 's', 'e'])}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_profile_to_a_run_then_drift_against_the_registered_version(
    tracking_url: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_url)
    experiment = client.create_experiment("http-drift")
    run_id = client.create_run(experiment).info.run_id
    reference, current = _data(tmp_path / "ref.csv", 1), _data(tmp_path / "cur.csv", 2, shift=5.0)

    code, out, err = run_cli(
        "profile", str(reference), "-m", "credit", "-o", str(tmp_path / "p.json"),
        "--log-to-mlflow", run_id, "--mlflow-uri", tracking_url,
    )  # fmt: skip
    assert code == 0, err
    assert f"logged to MLflow as runs:/{run_id}/mlmon/profile.json" in err
    client.create_registered_model("credit")
    version = client.create_model_version("credit", source=f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias("credit", "champion", version.version)

    for reference_uri in ("models:/credit@champion", f"models:/credit/{version.version}", f"runs:/{run_id}"):
        code, out, err = run_cli("drift", reference_uri, str(current), "--mlflow-uri", tracking_url, "--json")
        assert code == 0, err
        report = json.loads(out)
        assert sorted(f["name"] for f in report["features"]) == ["income", "region"]
        assert next(f for f in report["features"] if f["name"] == "income")["drift"] is True  # +1 sigma

    code, out, err = run_cli(
        "drift", str(reference), str(current), "--log-to-mlflow", run_id, "--mlflow-uri", tracking_url
    )
    assert code == 0, err
    metrics = client.get_run(run_id).data.metrics
    assert metrics["drift.features_compared"] == 2
    assert metrics["drift.features_drifted"] >= 1
    assert metrics["drift.income.drift"] == 1
    assert not any(math.isnan(value) for key, value in metrics.items() if key.endswith(".psi"))
    artifacts = {a.path for a in client.list_artifacts(run_id, "mlmon/drift")}
    assert artifacts == {"mlmon/drift/report.html", "mlmon/drift/report.json"}


def test_what_is_missing_is_named(tracking_url: str, tmp_path: Path) -> None:
    current = _data(tmp_path / "cur.csv", 2)
    cases = {
        "models:/no-such-model@champion": "alias 'champion' of registered model 'no-such-model' not found in MLflow",
        "models:/no-such-model/3": "version 3 of registered model 'no-such-model' not found in MLflow",
        "runs:/0123456789abcdef0123456789abcdef": "MLflow run '0123456789abcdef0123456789abcdef' not found",
    }
    for reference_uri, said in cases.items():
        code, out, err = run_cli("drift", reference_uri, str(current), "--mlflow-uri", tracking_url)
        assert code == 1 and out == ""
        assert said in err, err
        assert "Traceback" not in err
    code, _, err = run_cli(
        "drift", str(current), str(current), "--log-to-mlflow", "nope", "--mlflow-uri", tracking_url
    )
    assert code == 1 and "MLflow run 'nope' not found" in err
