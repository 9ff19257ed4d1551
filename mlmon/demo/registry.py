"""Two versions of the demo model, trained with different hyperparameters, logged to MLflow and registered
under one name with the aliases champion (version 1) and challenger (version 2).

Training needs numpy only; :func:`register_versions` needs MLflow and is the slow part of the demo (a new
sqlite store runs MLflow's schema migrations), so the demo runs it beside the rest.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlmon.demo.model import CreditModel
    from mlmon.drift.profile import Profile

EXPERIMENT = "mlmon-demo"


@dataclass(frozen=True)
class Hyperparameters:
    steps: int
    learning_rate: float
    l2: float


# The challenger trains longer with less regularisation: a little better on validation data, which is what
# compare-runs is there to show before anyone moves the champion alias.
CANDIDATES: tuple[tuple[str, Hyperparameters], ...] = (
    ("champion", Hyperparameters(steps=300, learning_rate=0.5, l2=1e-3)),
    ("challenger", Hyperparameters(steps=800, learning_rate=0.5, l2=1e-4)),
)


@dataclass
class TrainedVersion:
    alias: str
    hyperparameters: Hyperparameters
    model: CreditModel
    profile: Profile
    metrics: dict[str, float]
    training_curve: list[tuple[int, float]]
    model_path: Path
    profile_path: Path
    started_at: float  # when its training started and ended, seconds since the epoch
    trained_at: float
    training_rows: int
    run_id: str = ""
    version: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "version": self.version,
            "run_id": self.run_id,
            "params": self.params(),
            "metrics": self.metrics,
            "model": str(self.model_path),
            "profile": str(self.profile_path),
        }

    def params(self) -> dict[str, str]:
        h = self.hyperparameters
        return {
            "steps": str(h.steps),
            "learning_rate": str(h.learning_rate),
            "l2": str(h.l2),
            "training_rows": str(self.training_rows),
            "algorithm": "logistic regression (numpy)",
        }


def train_versions(
    training: dict[str, Any], validation: dict[str, Any], folder: Path, model_name: str
) -> list[TrainedVersion]:
    """Train every candidate on ``training``, score it on ``validation``, build its reference profile, and
    write model.json and profile.json for each under ``folder``/v1, v2, ..."""
    from mlmon.demo.model import evaluate, reference_profile, train

    versions = []
    for number, (alias, h) in enumerate(CANDIDATES, start=1):
        curve: list[tuple[int, float]] = []
        started_at = time.time()
        model = train(
            training,
            steps=h.steps,
            learning_rate=h.learning_rate,
            l2=h.l2,
            on_step=lambda step, loss, curve=curve: curve.append((step, loss)),  # type: ignore[misc]
        )
        trained_at = time.time()
        metrics = {f"val_{name}": value for name, value in evaluate(model, validation).items()}
        metrics["train_logloss"] = curve[-1][1]
        profile = reference_profile(model, training, model_name)
        out = folder / f"v{number}"
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.json").write_text(model.to_json(), encoding="utf-8")
        (out / "profile.json").write_text(profile.to_json(), encoding="utf-8")
        versions.append(
            TrainedVersion(
                alias,
                h,
                model,
                profile,
                metrics,
                curve,
                out / "model.json",
                out / "profile.json",
                started_at,
                trained_at,
                len(training["outcome"]),
            )
        )
    return versions


def open_store(tracking_uri: str) -> MlflowClient:
    """An MLflow client on ``tracking_uri``, its store created: the slow part of the demo's MLflow work (a
    new sqlite store runs MLflow's schema migrations), so the demo starts it first, beside the training."""
    from mlmon.backends.mlflow.client import mlflow_client, mlflow_errors

    # MLflow configures its loggers when imported, and a new sqlite store logs its schema migrations at
    # INFO: noise in the middle of the demo's progress. So: import, quieten, then open the store.
    importlib.import_module("mlflow")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    client = mlflow_client(tracking_uri, create=True)
    with mlflow_errors("the demo's store", tracking_uri):
        client.search_experiments(max_results=1)
    return client


def register_versions(
    client: MlflowClient, versions: list[TrainedVersion], registered_model: str, artifact_root: Path
) -> None:
    """Log each version as an MLflow run (params, metrics with the training curve, the model file and the
    reference profile), register the runs as versions of ``registered_model`` in order, and point each
    version's alias at it. Fills in ``run_id`` and ``version``."""
    from mlflow.entities import Metric, Param, RunTag

    from mlmon.backends.mlflow.client import mlflow_errors
    from mlmon.drift.mlflow_profile import log_profile_to_mlflow

    tracking_uri = str(client.tracking_uri)
    with mlflow_errors("the demo's runs", tracking_uri):
        experiment_id = client.create_experiment(EXPERIMENT, artifact_location=artifact_root.as_uri())
        client.create_registered_model(
            registered_model,
            description="The mlmon demo's credit-risk model: logistic regression on synthetic applications.",
        )
        for number, version in enumerate(versions, start=1):
            run = client.create_run(
                experiment_id,
                run_name=f"credit-risk-v{number}",
                start_time=int(version.started_at * 1000),
                tags={"mlmon.demo": "true", "candidate": version.alias},
            )
            run_id = run.info.run_id
            ended = int(version.trained_at * 1000)
            # The training curve step by step, so compare-runs can draw it; its last point is the final value.
            metrics = [Metric("train_logloss", loss, ended, step) for step, loss in version.training_curve]
            metrics += [Metric(k, v, ended, 0) for k, v in version.metrics.items() if k != "train_logloss"]
            client.log_batch(
                run_id,
                metrics=metrics,
                params=[Param(k, v) for k, v in version.params().items()],
                tags=[RunTag("mlmon.profile", "mlmon/profile.json")],
            )
            client.log_artifact(run_id, str(version.model_path), artifact_path="model")
            client.set_terminated(run_id, end_time=ended)
            log_profile_to_mlflow(version.profile, run_id, tracking_uri)
            registered = client.create_model_version(
                registered_model, f"{run.info.artifact_uri}/model", run_id=run_id
            )
            client.set_registered_model_alias(registered_model, version.alias, registered.version)
            version.run_id, version.version = run_id, str(registered.version)
