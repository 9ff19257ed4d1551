"""Helpers shared by the tests: access to the real tools (skipped where missing, failed under CI), specs to
render, the CLI run in-process, and a real MLflow store.

Tests that need a binary (promtool, amtool, prometheus) skip with the reason when it is missing on a
developer's machine. CI sets MLMON_REQUIRE_TOOLS=1, which turns each such skip into a failure, so nothing
real is silently skipped there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlmon.drift.profile import FeatureProfile, Profile
from mlmon.render import apply_plan, plan_outputs
from mlmon.spec import Spec

REQUIRE_TOOLS = os.environ.get("MLMON_REQUIRE_TOOLS", "") not in ("", "0")

HOSTILE_NAMES = [
    'quote"d',
    "back\\slash",
    "{{ template }}",
    "{{",
    "hash # comment",
    "colon: space",
    "ünïcødé-模型-🚀",
    "'single'",
    "$dollar ${HOME}",
    "[bold]markup[/]",
    "--- &anchor *alias !tag",
    "a|b.*c(d)",
]

HOSTILE_MODEL_NAMES = [a + " " + b for a, b in zip(HOSTILE_NAMES[0::2], HOSTILE_NAMES[1::2], strict=True)]


def require_tool(name: str, debian_package: str) -> str:
    """The path of a tool; skip the test when it is missing, or fail when CI requires the tools."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found on PATH (Debian: apt-get install {debian_package})"
        if REQUIRE_TOOLS:
            pytest.fail(f"{message}; MLMON_REQUIRE_TOOLS is set, so this is a failure, not a skip")
        pytest.skip(message)
    return path


def require_mlflow_server() -> str:
    """The `mlflow` that can serve (tests.servers.mlflow_server_binary); skip without it, or fail when CI
    requires the tools."""
    from tests.servers import mlflow_server_binary

    binary = mlflow_server_binary()
    if binary is None:
        message = "`mlflow server` needs the full mlflow package (pip install mlflow)"
        if REQUIRE_TOOLS:
            pytest.fail(f"{message}; MLMON_REQUIRE_TOOLS is set, so this is a failure, not a skip")
        pytest.skip(message)
    return binary


def minimal_spec_dict() -> dict[str, Any]:
    return {"models": [{"name": "credit-risk", "targets": ["127.0.0.1:8000"]}]}


def full_spec_dict(secret_dir: Path) -> dict[str, Any]:
    for name in ("slack-url", "pagerduty-key", "smtp-password", "webhook-token"):
        (secret_dir / name).write_text("not-a-real-secret\n")
    return {
        "project": "payments",
        "prometheus": {
            "url": "http://127.0.0.1:9090",
            "scrape_interval": "10s",
            "evaluation_interval": "10s",
            "external_labels": {"env": "prod", "region": "eu-west-1"},
        },
        "alertmanager": {
            "url": "http://127.0.0.1:9093",
            "group_by": ["alertname", "model", "feature"],
            "receivers": [
                {
                    "name": "oncall",
                    "severities": ["critical"],
                    "pagerduty": {"routing_key_file": str(secret_dir / "pagerduty-key")},
                    "slack": {"api_url_file": str(secret_dir / "slack-url"), "channel": "#ml-oncall"},
                },
                {
                    "name": "team",
                    "webhook": {
                        "url": "http://127.0.0.1:5001/alerts",
                        "bearer_token_file": str(secret_dir / "webhook-token"),
                    },
                    "email": {
                        "to": "ml-team@example.org",
                        "from": "alerts@example.org",
                        "smarthost": "smtp.example.org:587",
                        "auth_username": "alerts",
                        "auth_password_file": str(secret_dir / "smtp-password"),
                    },
                },
            ],
        },
        "grafana": {"folder": "ML models", "datasource_name": "Prometheus $prod"},
        "mlflow": {"tracking_uri": "http://127.0.0.1:5000", "metrics": {"val_loss": "min", "auc": "max"}},
        "defaults": {"thresholds": {"psi_critical": 0.3, "drift_window": "2h"}},
        "models": [
            {
                "name": "credit-risk",
                "registered_model": "credit-risk-gbm",
                "alias": "champion",
                "targets": ["127.0.0.1:8000", "127.0.0.1:8001"],
                "features": [
                    {"name": "income", "type": "numerical"},
                    {"name": "region", "type": "categorical"},
                ],
                "thresholds": {"latency_p95_seconds": 0.2, "error_ratio": 0.01},
            },
            {
                "name": "churn",
                "task": "regression",
                "file_sd": ["targets/churn.json"],
                "metrics_path": "/internal/metrics",
                "scrape_interval": "30s",
                "features": ["tenure", "plan"],
                "thresholds": {
                    "drift_window": "30m",
                    "drift_for": "0s",
                    "feedback_window": "1d",
                    "min_drift_samples": 5000,
                },
            },
        ],
    }


def hostile_spec_dict() -> dict[str, Any]:
    return {
        "project": 'evil "project" {{ x }}',
        "alertmanager": {
            "receivers": [{"name": 'hook "{{ x }}" #1', "webhook": {"url": "http://127.0.0.1:5001/a?b=c#d"}}]
        },
        "grafana": {"folder": "{{ folder }} $x"},
        "alerting": {"runbook_base_url": "https://wiki.example.org/{{ runbooks }}"},
        "models": [
            {
                "name": name,
                "registered_model": name,
                "alias": name,
                "targets": [f"127.0.0.1:{8000 + index}"],
                "features": [{"name": HOSTILE_NAMES[-1 - index]}, {"name": f"{name} feature"}],
            }
            # Two hostile names per model: every one is covered, and promtool's tests stay quick.
            for index, name in enumerate(HOSTILE_MODEL_NAMES)
        ],
    }


def render_into(spec: Spec, out: Path) -> Path:
    apply_plan(plan_outputs(spec, out))
    return out


CLI_ENV = {"NO_COLOR": "1", "COLUMNS": "200", "MLMON_DEBUG": ""}


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the mlmon CLI in-process from ``cwd``: (exit code, stdout, stderr). An exception the CLI did not
    turn into an exit code is re-raised, so a traceback a user would see fails the test."""
    from typer.testing import CliRunner

    from mlmon.cli import app

    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, list(args), env={**CLI_ENV, **(env or {})})
    finally:
        os.chdir(old)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def new_run(store: tuple[str, str]) -> str:
    """A new run in the store's experiment (see the ``mlflow_store`` fixture)."""
    from mlflow import MlflowClient

    uri, experiment = store
    return str(MlflowClient(uri).create_run(experiment).info.run_id)


def register(store: tuple[str, str], name: str, run_id: str, alias: str) -> str:
    """Register ``run_id``'s model as a new registered model ``name`` with ``alias``; its version."""
    from mlflow import MlflowClient

    client = MlflowClient(store[0])
    client.create_registered_model(name)
    version = client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


# A small profile of every kind of feature, with reference counts, for the instrument tests.
MONITOR_PROFILE = Profile(
    model="credit-risk",
    features=(
        FeatureProfile("income", "numerical", (0.25, 0.25, 0.25, 0.25), edges=(10.0, 20.0, 30.0), count=100),
        FeatureProfile("region", "categorical", (0.5, 0.3, 0.2), categories=("north", "south"), count=100),
    ),
    prediction=FeatureProfile(
        "__prediction__", "categorical", (0.7, 0.3, 0.0), categories=("repaid", "default"), count=90
    ),
    reference_confidence_mean=0.8,
    reference_accuracy=0.75,
    reference_confidence_rows=95,
    reference_accuracy_rows=80,
)


def require_sqlite_store() -> None:
    """Skip (or, under CI, fail) where MLflow's sqlite store cannot work: it needs sqlalchemy and alembic."""
    import importlib.util

    missing = [name for name in ("sqlalchemy", "alembic") if importlib.util.find_spec(name) is None]
    if missing:
        message = f"MLflow's sqlite store needs {' and '.join(missing)} (pip install sqlalchemy alembic)"
        if REQUIRE_TOOLS:
            pytest.fail(f"{message}; MLMON_REQUIRE_TOOLS is set, so this is a failure, not a skip")
        pytest.skip(message)


def promtool_test(
    promtool: str, folder: Path, rule_files: list[Path], tests: list[Any], timeout: int = 120
) -> None:
    """Run promtool's unit tests ``tests`` (its test-file format) on ``rule_files``, with the 30 s evaluation
    interval mlmon's tests use; fail with promtool's own report."""
    import subprocess

    import yaml

    test_file = folder / "promtool-test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {"rule_files": [str(f) for f in rule_files], "evaluation_interval": "30s", "tests": tests}
        )
    )
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
