"""`mlmon compare-runs` and mlmon.compare: the pure comparison, then a real sqlite store, then a real server."""

from __future__ import annotations

import base64
import dataclasses
import http.server
import json
import math
import re
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from mlmon.backends.mlflow.rest import EndpointMissing
from mlmon.backends.mlflow.runs import ClientReader, MlflowRunSource, RestReader, RunRecord, Selection
from mlmon.cli import app
from mlmon.compare import DirectionRules, compare, format_number, metric_direction
from mlmon.compare_formats import comparison_json
from mlmon.errors import CompareError
from mlmon.sparklines import sparkline
from tests.helpers import CLI_ENV, REQUIRE_TOOLS, require_sqlite_store, run_cli
from tests.servers import free_port, mlflow_server_binary, mlflow_server_started, wait_for_mlflow

T0 = 1_767_261_600_000  # 2026-01-01 10:00 UTC, in milliseconds


def run(*args: str) -> tuple[int, str, str]:
    return run_cli("compare-runs", *args)


# --- the pure comparison --------------------------------------------------------------------------------


def record(key: str, **kwargs: object) -> RunRecord:
    return RunRecord(key=key, name=key, run_id=key, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("val_loss", ("min", "name")),
        ("rmse", ("min", "name")),
        ("test/MAE", ("min", "name")),
        ("p95-latency", ("min", "name")),
        ("logloss", ("min", "name")),
        ("error_rate", ("min", "name")),
        ("accuracy", ("max", "default")),
        ("f1", ("max", "default")),
        ("maestro_score", ("max", "default")),  # "mae" only as a word
    ],
)
def test_metric_direction_from_the_name(name: str, expected: tuple[str, str]) -> None:
    assert metric_direction(name) == expected


def test_direction_rules_flags_then_spec_then_name() -> None:
    rules = DirectionRules(flags={"val_loss": "max"}, spec={"val_loss": "min", "score": "min"})
    assert rules.direction("val_loss") == ("max", "flag")
    assert rules.direction("score") == ("min", "spec")
    assert rules.direction("rmse") == ("min", "name")
    assert rules.direction("auc") == ("max", "default")
    records = [
        record("a", metrics={"score": 1.0, "auc": 0.5}),
        record("b", metrics={"score": 2.0, "auc": 0.6}),
    ]
    comparison = compare(records, directions=DirectionRules(spec={"score": "min"}, spec_source="team.yaml"))
    assert [cell.best for cell in comparison.section("metrics")[1].cells] == [True, False]
    assert comparison.legend[2:] == (
        "↑ higher is better (the default for other names): auc",
        "↓ lower is better (set in team.yaml under mlflow.metrics): score",
    )


def test_only_differing_rows_with_deltas_and_best_marks() -> None:
    records = [
        record(
            "a", params={"lr": "0.1", "depth": "6"}, metrics={"rmse": 2.0, "acc": 0.5}, tags={"team": "x"}
        ),
        record(
            "b", params={"lr": "0.05", "depth": "6"}, metrics={"rmse": 1.5, "acc": 0.8}, tags={"team": "x"}
        ),
    ]
    comparison = compare(records)
    assert [(row.section, row.name) for row in comparison.rows] == [
        ("params", "lr"),
        ("metrics", "acc"),
        ("metrics", "rmse"),
    ]
    assert comparison.hidden_rows == 2
    rmse = comparison.section("metrics")[1]
    assert rmse.direction == "min"
    assert [cell.best for cell in rmse.cells] == [False, True]
    assert rmse.cells[1].delta == -0.5 and rmse.cells[1].delta_percent == -25.0
    assert rmse.cells[0].delta is None  # the baseline has no delta against itself
    lr = comparison.section("params")[0]
    assert lr.cells[1].delta == pytest.approx(-0.05) and lr.cells[1].best is False
    assert len(compare(records, show_all=True).rows) == 5


def test_baseline_by_name_and_unknown_baseline() -> None:
    records = [record("a", metrics={"m": 1.0}), record("b", metrics={"m": 4.0})]
    comparison = compare(records, baseline="b")
    assert comparison.baseline == 1
    assert comparison.rows[0].cells[0].delta == -3.0
    assert comparison.rows[0].cells[0].delta_percent == -75.0
    zero = compare([record("a", metrics={"m": 0.0}), record("b", metrics={"m": 2.0})])
    assert (zero.rows[0].cells[1].delta, zero.rows[0].cells[1].delta_percent) == (2.0, None)
    with pytest.raises(CompareError, match="baseline 'zzz' is none of the compared runs"):
        compare(records, baseline="zzz")
    with pytest.raises(CompareError, match="no runs to compare"):
        compare([])


def test_missing_nan_and_infinite_values() -> None:
    records = [
        record("a", metrics={"loss": math.nan, "acc": 0.5, "only_a": 1.0}),
        record("b", metrics={"loss": math.inf, "acc": -math.inf}),
        record("c", metrics={"loss": 0.3, "acc": 0.7}),
    ]
    rows = {row.name: row for row in compare(records).rows}
    assert rows["only_a"].cells[1].value is None
    assert [cell.best for cell in rows["loss"].cells] == [False, False, False]  # one finite value: no winner
    assert rows["loss"].cells[2].delta is None  # NaN baseline
    assert [cell.best for cell in rows["acc"].cells] == [False, False, True]
    assert rows["acc"].cells[1].delta == -math.inf and rows["acc"].cells[1].delta_percent is None


def test_nan_equals_nan_so_the_row_is_hidden() -> None:
    records = [record("a", metrics={"m": math.nan}), record("b", metrics={"m": math.nan})]
    assert compare(records).rows == ()


def test_glob_filters_keep_and_drop() -> None:
    metrics = {"val_loss": 1.0, "val_acc": 0.5, "train_loss": 2.0}
    records = [record("a", metrics=metrics), record("b", metrics={k: v + 1 for k, v in metrics.items()})]
    kept = compare(records, metrics=["val_*"])
    assert [row.name for row in kept.rows] == ["val_acc", "val_loss"]
    dropped = compare(records, metrics=["*", "!*_loss"])
    assert [row.name for row in dropped.rows] == ["val_acc"]


def test_history_is_read_once_for_the_shown_metrics_only() -> None:
    asked: list[dict[str, list[str]]] = []

    def history(wanted: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], list[float]]:
        asked.append({key: list(run_ids) for key, run_ids in wanted.items()})
        return {
            (run_id, key): [3.0, 2.0, float(len(run_id))]
            for key, run_ids in wanted.items()
            for run_id in run_ids
        }

    records = [
        record("a", metrics={"m": 1.0, "same": 1.0}),
        record("bb", metrics={"m": 2.0, "same": 1.0, "only_b": 1.0}),
    ]
    comparison = compare(records, history=history)
    assert asked == [
        {"m": ["a", "bb"], "only_b": ["bb"]}
    ]  # one call; never for a hidden row or a missing value
    assert comparison.rows[0].cells[0].history == (3.0, 2.0, 1.0)
    assert comparison.rows[0].cells[1].history == (3.0, 2.0, 2.0)
    assert comparison.rows[1].cells[0].history == ()


def test_sparkline_and_number_formats() -> None:
    assert sparkline([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]) == "▁▂▃▄▅▆▇█"
    assert sparkline([1.0]) == ""
    assert sparkline([1.0, math.nan, 2.0]) == "▁ █"
    assert len(sparkline([float(i) for i in range(1000)])) == 16
    assert sparkline([2.0, 2.0]) == "▄▄"
    assert [format_number(x) for x in (0.87654, 12345.678, 3.0, 0.000123456, math.nan, -math.inf)] == [
        "0.8765",
        "12346",
        "3",
        "0.0001235",
        "NaN",
        "-inf",
    ]
    assert [format_number(x) for x in (-2.5, 1e15, 1e20, -1e-7, math.inf, 0.0, -0.0, 12.34567)] == [
        "-2.500",
        "1e+15",
        "1e+20",
        "-1e-07",
        "inf",
        "0",
        "0",
        "12.35",
    ]


def test_deltas_and_sameness_at_the_edges() -> None:
    from mlmon.compare import Cell, format_delta

    records = [
        record("a", metrics={"m": math.inf, "n": math.inf, "o": 2.0, "p": math.nan}, params={"lr": "0.10"}),
        record("b", metrics={"m": math.inf, "n": -math.inf, "o": 1.0, "p": 1.0}, params={"lr": "0.1"}),
        record("c", metrics={"m": 1.0, "n": math.nan, "o": 2.0, "p": math.nan}, params={"lr": "0.10"}),
    ]
    rows = {row.name: row for row in compare(records).rows}
    assert [(c.delta, c.delta_percent) for c in rows["m"].cells[1:]] == [(None, None), (-math.inf, None)]
    assert [(c.delta, c.delta_percent) for c in rows["n"].cells[1:]] == [(-math.inf, None), (None, None)]
    assert [(c.delta, c.delta_percent) for c in rows["o"].cells[1:]] == [(-1.0, -50.0), (0.0, 0.0)]
    # "0.10" and "0.1": the same number, another text
    assert rows["lr"].differs and rows["lr"].cells[1].delta == 0.0
    assert rows["p"].differs  # NaN, 1 and NaN: two values
    assert [format_delta(cell) for cell in rows["o"].cells] == ["", "-1 (-50.0%)", ""]
    assert format_delta(Cell(1.0, 0.25, 12.5)) == "+0.25 (+12.5%)"
    assert format_delta(Cell(1.0, math.inf)) == "+inf"


# --- a real local sqlite store ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    uri: str
    base: str
    better: str
    other_experiment: str
    odd: str


def fill_store(uri: str, artifacts: Path) -> Store:
    """Two experiments, four runs with fixed times, and a registered model with three versions."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(uri)
    exp = client.create_experiment("churn", artifact_location=(artifacts / "churn").as_uri())
    other = client.create_experiment("churn-2", artifact_location=(artifacts / "churn-2").as_uri())

    def new_run(
        experiment: str, name: str, start: int, params: dict[str, str], metrics: dict[str, list[float]]
    ) -> str:
        run_id = str(client.create_run(experiment, start_time=T0 + start, run_name=name).info.run_id)
        client.log_batch(
            run_id,
            metrics=[
                Metric(key, value, T0 + start + step, step)
                for key, values in metrics.items()
                for step, value in enumerate(values)
            ],
            params=[Param(key, value) for key, value in params.items()],
            tags=[RunTag("team", "risk")],
        )
        client.set_terminated(run_id, end_time=T0 + start + 65_000)
        return run_id

    base = new_run(exp, "base", 0, {"lr": "0.1", "depth": "6"}, {"rmse": [0.9, 0.7, 0.5], "r2": [0.8]})
    better = new_run(
        exp, "better", 60_000, {"lr": "0.05", "depth": "6"}, {"rmse": [0.8, 0.5, 0.4], "r2": [0.9]}
    )
    odd = new_run(exp, "odd", 120_000, {"lr": "0.2", "depth": "8"}, {"rmse": [math.nan], "r2": [math.inf]})
    elsewhere = new_run(other, "elsewhere", 180_000, {"lr": "0.1", "depth": "4"}, {"rmse": [0.6]})

    client.create_registered_model("churn-model")
    for run_id in (base, better, odd):
        client.create_model_version("churn-model", source=f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias("churn-model", "champion", "1")
    client.set_registered_model_alias("churn-model", "challenger", "2")
    client.set_model_version_tag("churn-model", "2", "validated", "yes")
    client.set_model_version_tag("churn-model", "1", "validated", "no")
    with warnings.catch_warnings():  # stages are deprecated in MLflow, still set on older registries
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage("churn-model", "3", "Staging")
    client.create_registered_model("unaliased")
    client.create_model_version("unaliased", source=f"runs:/{base}/model", run_id=base)
    return Store(uri, base, better, elsewhere, odd)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    require_sqlite_store()
    root = tmp_path_factory.mktemp("mlflow")
    return fill_store(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts")


def test_two_runs_as_markdown_exactly(store: Store) -> None:
    code, stdout, err = run(store.base, store.better, "--mlflow-uri", store.uri, "--format", "markdown")
    assert code == 0, err
    assert stdout == (
        "| | base (baseline) | better |\n"
        "|---|---|---|\n"
        "| status | FINISHED | FINISHED |\n"
        "| started | 2026-01-01 10:00 UTC | 2026-01-01 10:01 UTC |\n"
        "| duration | 1m 05s | 1m 05s |\n"
        "| **params** | | |\n"
        "| lr | 0.1 | 0.05 (-0.05 (-50.0%)) |\n"
        "| **metrics** | | |\n"
        "| r2 ↑ | 0.8 | **0.9** ★ (+0.1 (+12.5%)) |\n"
        "| rmse ↓ | 0.5 `█▄▁` | **0.4** ★ (-0.1 (-20.0%)) `█▃▁` |\n"
        "\n"
        "<sub>Δ: difference from the baseline base, absolute and in percent</sub><br>\n"
        "<sub>★ best value of each metric</sub><br>\n"
        "<sub>↑ higher is better (the default for other names): r2</sub><br>\n"
        "<sub>↓ lower is better (its name has one of: loss, error, rmse, mae, mse, logloss, latency): "
        "rmse</sub><br>\n"
    )


def test_table_shows_headers_sections_and_best(store: Store) -> None:
    code, stdout, err = run(store.base, store.better, "--mlflow-uri", store.uri)
    assert code == 0, err
    assert "base (baseline)" in stdout and "better" in stdout
    assert "2026-01-01 10:01 UTC" in stdout and "1m 05s" in stdout
    assert "0.4 -0.1 (-20.0%) ★ █▃▁" in stdout
    assert "depth" not in stdout  # the same in both runs
    assert err == "2 rows are the same in every run (--all shows them)\n"
    code, stdout, _ = run(store.base, store.better, "--mlflow-uri", store.uri, "--all")
    assert code == 0 and "depth" in stdout and "team" in stdout and "mlflow.runName" in stdout


def test_json_keys_and_full_values(store: Store) -> None:
    code, stdout, err = run(
        store.base, store.odd, store.other_experiment, "--mlflow-uri", store.uri, "--format", "json"
    )
    assert code == 0, err
    data = json.loads(stdout)
    assert list(data) == ["baseline", "columns", "params", "metrics", "tags", "hidden_rows", "legend"]
    assert data["baseline"] == store.base
    assert list(data["columns"][0]) == [
        "key", "name", "run_id", "experiment_id", "model", "version", "aliases", "stage", "status",
        "start_time", "duration_seconds", "baseline",
    ]  # fmt: skip
    assert data["columns"][0]["start_time"] == "2026-01-01T10:00:00+00:00"
    assert data["columns"][0]["duration_seconds"] == 65.0
    assert data["columns"][0]["experiment_id"] != data["columns"][2]["experiment_id"]
    metrics = {row["name"]: row for row in data["metrics"]}
    assert metrics["rmse"]["direction"] == "min"
    assert metrics["rmse"]["values"][store.odd] == {
        "value": "NaN", "delta": None, "delta_percent": None, "best": False, "history": ["NaN"],
    }  # fmt: skip
    assert metrics["r2"]["values"][store.odd]["value"] == "Infinity"
    assert metrics["r2"]["values"][store.other_experiment]["value"] is None
    assert metrics["rmse"]["values"][store.base]["history"] == [0.9, 0.7, 0.5]
    assert metrics["rmse"]["values"][store.other_experiment]["delta"] == pytest.approx(0.1)


def test_csv_is_tidy_and_untruncated(store: Store) -> None:
    code, stdout, err = run(
        store.base, store.better, "--mlflow-uri", store.uri, "-f", "csv", "--metrics", "rmse"
    )
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0] == "section,name,column,run_id,version,value,delta,delta_percent,best"
    assert (
        f"metrics,rmse,{store.better},{store.better},,0.4,-0.09999999999999998,-19.999999999999996,true"
        in lines
    )
    assert not any(line.startswith("metrics,r2") for line in lines)


def test_missing_and_nan_show_in_table(store: Store) -> None:
    code, stdout, err = run(store.base, store.odd, store.other_experiment, "--mlflow-uri", store.uri, "--all")
    assert code == 0, err
    r2_line = next(line for line in stdout.splitlines() if line.strip().startswith("r2"))
    # MLflow's SQL store saves infinity as the largest float; mlmon shows it as inf again.
    assert r2_line.split() == ["r2", "↑", "0.8", "inf", "+inf", "-"]
    rmse_line = next(line for line in stdout.splitlines() if line.strip().startswith("rmse"))
    assert "NaN" in rmse_line


def test_unknown_run_is_named(store: Store) -> None:
    code, stdout, err = run(store.base, "no-such-run", "--mlflow-uri", store.uri)
    assert code == 1 and stdout == ""
    assert err.startswith("error: run 'no-such-run' not found in MLflow at sqlite:///")
    assert "hint: check the id" in err and "Traceback" not in err


def test_single_run_gets_a_hint(store: Store) -> None:
    code, stdout, err = run(store.base, "--mlflow-uri", store.uri)
    assert code == 0
    assert "rmse" in stdout
    assert err == "hint: only one run to compare: name more run ids, or use --experiment or --model\n"


def test_experiment_with_filter_sort_and_top(store: Store) -> None:
    code, stdout, err = run(
        "--experiment", "churn", "--filter", "params.depth = '6'", "--sort-by", "metrics.rmse ASC",
        "--mlflow-uri", store.uri, "-f", "json",
    )  # fmt: skip
    assert code == 0, err
    assert [column["name"] for column in json.loads(stdout)["columns"]] == ["better", "base"]
    code, stdout, err = run(
        "--experiment", "churn", "--sort-by", "attributes.start_time DESC", "--top", "2", "--mlflow-uri",
        store.uri, "-f", "json",
    )  # fmt: skip
    assert code == 0, err
    assert [column["name"] for column in json.loads(stdout)["columns"]] == ["odd", "better"]
    code, _, err = run("--experiment", "nope", "--mlflow-uri", store.uri)
    assert code == 1 and err.startswith("error: experiment 'nope' not found in MLflow at sqlite:///")
    code, _, err = run("--experiment", "churn", "--filter", "params.depth = '99'", "--mlflow-uri", store.uri)
    assert code == 1 and err.startswith("error: no runs match")


def test_model_alone_compares_aliased_versions(store: Store) -> None:
    code, stdout, err = run("--model", "churn-model", "--mlflow-uri", store.uri, "-f", "json")
    assert code == 0, err
    data = json.loads(stdout)
    assert [(c["version"], c["aliases"], c["name"]) for c in data["columns"]] == [
        ("1", ["champion"], "base"),
        ("2", ["challenger"], "better"),
    ]
    assert data["baseline"] == "churn-model/1"
    assert [row["name"] for row in data["tags"]] == ["validated"]  # the version's own tags
    assert {row["name"] for row in data["params"]} == {"lr"}
    code, stdout, err = run("--model", "churn-model", "--mlflow-uri", store.uri, "-f", "markdown")
    assert code == 0, err
    assert stdout.startswith("| | v1 @champion (baseline) | v2 @challenger |\n")
    assert "| run | base | better |\n" in stdout


def test_model_versions_and_aliases(store: Store) -> None:
    code, stdout, err = run(
        "--model", "churn-model", "--versions", "3", "1", "--baseline", "champion", "--mlflow-uri", store.uri,
        "-f", "json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(stdout)
    assert [c["version"] for c in data["columns"]] == ["3", "1"]
    assert [c["stage"] for c in data["columns"]] == ["Staging", None]  # legacy stages, read-only
    assert data["baseline"] == "churn-model/1"
    code, stdout, err = run("--model", "churn-model", "--versions", "3", "1", "--mlflow-uri", store.uri)
    assert code == 0, err
    assert "v3 (baseline)" in stdout and "v1 @champion" in stdout
    lines = stdout.splitlines()
    assert lines[1].split() == ["run", "odd", "base"] and lines[2].split() == ["stage", "Staging", "-"]
    code, stdout, err = run(
        "--model",
        "churn-model",
        "--aliases",
        "challenger",
        "champion",
        "--mlflow-uri",
        store.uri,
        "-f",
        "json",
    )
    assert code == 0, err
    assert [c["version"] for c in json.loads(stdout)["columns"]] == ["2", "1"]


def test_unknown_version_alias_and_model_are_named(store: Store) -> None:
    code, _, err = run("--model", "churn-model", "--versions", "1", "42", "--mlflow-uri", store.uri)
    assert code == 1
    assert err.startswith("error: version 42 of registered model 'churn-model' not found in MLflow")
    code, _, err = run("--model", "churn-model", "--aliases", "shadow", "--mlflow-uri", store.uri)
    assert code == 1
    assert err.startswith("error: alias 'shadow' of registered model 'churn-model' not found in MLflow")
    assert "hint: the model's aliases: challenger, champion" in err
    code, _, err = run("--model", "unaliased", "--mlflow-uri", store.uri)
    assert code == 1 and err == (
        "error: registered model 'unaliased' has no aliased versions\nhint: name versions with --versions 1 2\n"
    )
    code, _, err = run("--model", "nope", "--mlflow-uri", store.uri)
    assert code == 1 and err.startswith("error: registered model 'nope' not found in MLflow")


def test_alias_errors_name_the_registry_that_was_asked(store: Store, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    tracking = f"sqlite:///{tmp_path / 'tracking.db'}"
    MlflowClient(tracking).search_experiments()  # a tracking store of its own, without the model
    args = ["compare-runs", "--model", "churn-model", "--aliases", "shadow", "--mlflow-uri", tracking]
    result = CliRunner(env={**CLI_ENV, "MLFLOW_REGISTRY_URI": store.uri}).invoke(app, args)
    assert result.exit_code == 1
    assert (
        f"error: alias 'shadow' of registered model 'churn-model' not found in MLflow at {store.uri}\n"
        in result.stderr
    )


def test_many_runs_are_transposed(store: Store) -> None:
    args = [store.base, store.better, "--mlflow-uri", store.uri, "--transpose", "-f", "markdown"]
    code, stdout, err = run(*args)
    assert code == 0, err
    assert (
        stdout.splitlines()[0]
        == "| run | status | started | duration | params.lr | metrics.r2 ↑ | metrics.rmse ↓ |"
    )
    assert stdout.splitlines()[2].startswith(
        "| base (baseline) | FINISHED | 2026-01-01 10:00 UTC | 1m 05s | 0.1 |"
    )


def test_direction_flag_flips_the_best_mark(store: Store) -> None:
    args = [store.base, store.better, "--mlflow-uri", store.uri, "-f", "json", "--direction", "rmse=max"]
    code, stdout, err = run(*args)
    assert code == 0, err
    rmse = next(row for row in json.loads(stdout)["metrics"] if row["name"] == "rmse")
    assert rmse["direction"] == "max"
    assert rmse["values"][store.base]["best"] is True
    code, _, err = run(store.base, store.better, "--mlflow-uri", store.uri, "--direction", "rmse=lower")
    assert code == 2 and "'rmse=lower' is not NAME=min or NAME=max" in err


def write_spec(folder: Path, store_uri: str, metrics: str) -> Path:
    spec = folder / "mlmon.yaml"
    spec.write_text(
        "version: 1\n"
        f"mlflow:\n  tracking_uri: {store_uri}\n  metrics: {metrics}\n"
        "models:\n  - name: churn\n    targets: [127.0.0.1:8000]\n",
        encoding="utf-8",
    )
    return spec


def test_spec_directions_and_tracking_uri(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_spec(tmp_path, store.uri, "{rmse: max, r2: min}")
    code, stdout, err = run(store.base, store.better, "--spec", str(spec), "-f", "json")
    assert code == 0, err
    data = json.loads(stdout)
    rmse, r2 = (next(row for row in data["metrics"] if row["name"] == name) for name in ("rmse", "r2"))
    assert (rmse["direction"], rmse["direction_rule"], rmse["values"][store.base]["best"]) == (
        "max",
        "spec",
        True,
    )
    assert r2["values"][store.base]["best"] is True
    assert data["legend"][2:] == [
        f"↑ higher is better (set in {spec} under mlflow.metrics): rmse",
        f"↓ lower is better (set in {spec} under mlflow.metrics): r2",
    ]
    # --direction still wins over the spec.
    code, stdout, err = run(
        store.base, store.better, "--spec", str(spec), "-f", "json", "--direction", "rmse=min"
    )
    rmse = next(row for row in json.loads(stdout)["metrics"] if row["name"] == "rmse")
    assert (rmse["direction"], rmse["direction_rule"]) == ("min", "flag")
    assert "↓ lower is better (set with --direction): rmse" in json.loads(stdout)["legend"]
    # Without --spec, ./mlmon.yaml is read when there is one, and gives the tracking URI too.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLMON_SPEC", raising=False)
    code, stdout, err = run(store.base, store.better, "-f", "json")
    assert code == 0, err
    assert "set in mlmon.yaml under mlflow.metrics" in json.loads(stdout)["legend"][-1]


def test_spec_is_optional_unless_named(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no mlmon.yaml here
    monkeypatch.delenv("MLMON_SPEC", raising=False)
    code, stdout, err = run(store.base, store.better, "--mlflow-uri", store.uri, "-f", "json")
    assert code == 0, err
    assert json.loads(stdout)["legend"][-1].startswith("↓ lower is better (its name has one of")
    code, _, err = run(store.base, "--mlflow-uri", store.uri, "--spec", str(tmp_path / "missing.yaml"))
    assert code == 1 and "missing.yaml not found" in err
    (tmp_path / "mlmon.yaml").write_text(
        "version: 1\nmlflow:\n  metrics: {rmse: sideways}\n", encoding="utf-8"
    )
    code, _, err = run(store.base, "--mlflow-uri", store.uri)
    assert code == 1 and err.startswith("error: mlmon.yaml:") and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "name run ids, or use --experiment or --model"),
        (["--experiment", "a", "--model", "b"], "use one of run ids, --experiment or --model"),
        (["--versions", "1"], "--versions and --aliases need --model"),
        (["abc", "--top", "3"], "--filter, --sort-by and --top need --experiment"),
        (["--model", "m", "3"], "say whether 3 are --versions or --aliases"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert message in " ".join(err.replace("│", " ").split())


def test_unreachable_server_fails_fast_with_a_hint() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    code, stdout, err = run("abc123", "--mlflow-uri", uri)
    assert time.monotonic() - started < 5
    assert code == 1 and stdout == ""
    assert err.startswith(f"error: MLflow at {uri} failed on run 'abc123'")
    assert "hint: check --mlflow-uri / MLFLOW_TRACKING_URI and that the server is up" in err


class FakeMlflow(http.server.BaseHTTPRequestHandler):
    """Answers like an MLflow server for one run, and records the headers it was sent."""

    seen: ClassVar[list[dict[str, str]]] = []
    answers: ClassVar[dict[str, tuple[int, bytes]]] = {}

    def do_GET(self) -> None:
        FakeMlflow.seen.append({**dict(self.headers), "path": self.path.split("?")[0]})
        status, body = FakeMlflow.answers.get(self.path.split("?")[0], (404, b"<html>not here</html>"))
        self.send_response(status)
        if status in (301, 302, 307, 308):
            self.send_header("Location", body.decode())  # a redirect's answer is where it points
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_mlflow() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeMlflow)
    FakeMlflow.seen.clear()
    FakeMlflow.answers.clear()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def one_run(run_id: str) -> bytes:
    info = {
        "run_id": run_id,
        "run_name": run_id,
        "experiment_id": "0",
        "status": "FINISHED",
        "start_time": T0,
    }
    data = {
        "metrics": [{"key": "loss", "value": "NaN", "timestamp": T0, "step": 0}],
        "params": [],
        "tags": [],
    }
    return json.dumps({"run": {"info": info, "data": data}}).encode()


def test_rest_reader_credentials_and_odd_answers(fake_mlflow: str, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeMlflow.answers["/api/2.0/mlflow/runs/get"] = (200, one_run("r1"))
    # An MLflow older than 2.9 has no bulk history endpoint: histories are read run by run.
    points = [
        {"key": "loss", "value": value, "timestamp": T0, "step": step} for step, value in enumerate([1, 0.5])
    ]
    FakeMlflow.answers["/api/2.0/mlflow/metrics/get-history"] = (
        200,
        json.dumps({"metrics": points}).encode(),
    )
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0ken")
    code, stdout, err = run("r1", "--mlflow-uri", f"http://{fake_mlflow}", "-f", "json")
    assert code == 0, err
    assert json.loads(stdout)["metrics"][0]["values"]["r1"] == {
        "value": "NaN", "delta": None, "delta_percent": None, "best": False, "history": [1.0, 0.5],
    }  # fmt: skip
    assert all(headers["Authorization"] == "Bearer t0ken" for headers in FakeMlflow.seen)
    # Credentials in the URL go into a Basic header, as MLflow's client sends them, and never into messages.
    code, _, err = run("r1", "--mlflow-uri", f"http://me:S3cret@{fake_mlflow}", "-f", "json")
    assert code == 0, err
    assert FakeMlflow.seen[-1]["Authorization"] == "Basic " + base64.b64encode(b"me:S3cret").decode()
    FakeMlflow.answers["/api/2.0/mlflow/runs/get"] = (401, b"Unauthorized")
    code, _, err = run("r1", "--mlflow-uri", f"http://me:S3cret@{fake_mlflow}")
    assert code == 1 and "S3cret" not in err
    assert err.startswith(f"error: MLflow at http://me:***@{fake_mlflow} refused run 'r1': HTTP 401")
    assert "MLFLOW_TRACKING_TOKEN" in err
    # A redirect is not followed: it would carry the credentials along.
    FakeMlflow.answers["/api/2.0/mlflow/runs/get"] = (302, f"http://{fake_mlflow}/elsewhere".encode())
    FakeMlflow.answers["/elsewhere"] = (200, one_run("r1"))
    code, _, err = run("r1", "--mlflow-uri", f"http://me:S3cret@{fake_mlflow}")
    assert code == 1 and "HTTP 302" in err and "S3cret" not in err
    assert "/elsewhere" not in [seen["path"] for seen in FakeMlflow.seen]
    FakeMlflow.answers["/api/2.0/mlflow/runs/get"] = (200, b"<html>a login page</html>")
    code, _, err = run("r1", "--mlflow-uri", f"http://{fake_mlflow}")
    assert code == 1 and "is this an MLflow tracking server?" in err
    code, _, err = run("--experiment", "x", "--mlflow-uri", f"http://{fake_mlflow}/")
    assert code == 1 and "HTTP 404 for" in err and "is this an MLflow tracking server?" in err


def test_password_in_the_uri_is_masked() -> None:
    uri = f"http://user:S3cretPW@127.0.0.1:{free_port()}"
    code, _, err = run("abc123", "--mlflow-uri", uri)
    assert code == 1 and "S3cretPW" not in err and "user:***@127.0.0.1" in err


def test_markup_in_mlflow_strings_is_escaped(tmp_path: Path) -> None:
    require_sqlite_store()
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("x", artifact_location=(tmp_path / "a").as_uri())
    ids = []
    for value in ("[bold]a[/]", "b|c"):
        run_id = client.create_run(exp, run_name=f"[red]{value}").info.run_id
        client.log_param(run_id, "p", value)
        ids.append(run_id)
    code, stdout, err = run(*ids, "--mlflow-uri", uri)
    assert code == 0, err
    assert "[red][bold]a[/] (baseline)" in stdout and "[bold]a[/]" in stdout
    code, stdout, err = run(*ids, "--mlflow-uri", uri, "--transpose")
    assert code == 0, err
    assert stdout.splitlines()[1].split()[:2] == ["[red][bold]a[/]", "(baseline)"]
    assert "[bold]a[/]" in stdout.splitlines()[1] and "b|c" in stdout.splitlines()[2]
    code, stdout, _ = run(*ids, "--mlflow-uri", uri, "-f", "markdown")
    assert "| p | [bold]a[/] | b\\|c |" in stdout


def test_terminal_escapes_in_mlflow_strings_never_reach_the_terminal(tmp_path: Path) -> None:
    require_sqlite_store()
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("x", artifact_location=(tmp_path / "a").as_uri())
    ids = []
    for index, value in enumerate(("\x1b[2Jwiped", "\x1b]0;title\x07set")):
        run_id = client.create_run(exp, run_name=f"run\x1b[31m{index}").info.run_id
        client.log_param(run_id, "p", value)
        ids.append(run_id)
    for layout in ((), ("--transpose",)):
        code, stdout, err = run(*ids, "--mlflow-uri", uri, *layout)
        assert code == 0, err
        assert "\x1b" not in stdout and "\x07" not in stdout
        assert " [2Jwiped" in stdout and "run [31m0" in stdout
        # In colour, only mlmon's own codes: bold for the header, nothing from the strings themselves.
        result = CliRunner(env={**CLI_ENV, "NO_COLOR": "", "FORCE_COLOR": "1"}).invoke(
            app, ["compare-runs", *ids, "--mlflow-uri", uri, *layout]
        )
        assert result.exit_code == 0, result.stderr
        assert "\x1b[1m" in result.stdout and "\x07" not in result.stdout
        assert set(re.findall(r"\x1b\[[0-9;]*m", result.stdout)) <= {
            "\x1b[1m",
            "\x1b[2m",
            "\x1b[0m",
            "\x1b[1;32m",
        }
        assert re.sub(r"\x1b\[[0-9;]*m", "", result.stdout).count("\x1b") == 0


def test_start_up_does_not_import_mlflow() -> None:
    code = "import sys, mlmon.cli; print('mlflow' in sys.modules, 'mlmon.compare' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False False"


# --- a real MLflow tracking server ------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerProcess:
    url: str
    log: Path
    store_uri: str  # the server's own sqlite store, which MLflow's client can open directly


@pytest.fixture(scope="module", autouse=True)
def mlflow_server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess | None]:
    """Start `mlflow server` as the module begins: it takes ~15 s to boot, time the sqlite tests overlap.

    It is stopped by the process id tests.servers started (see mlflow_server_started).
    """
    binary = mlflow_server_binary()
    if binary is None:
        yield None
        return
    root = tmp_path_factory.mktemp("mlflow-server")
    store = f"sqlite:///{root / 'mlflow.db'}"
    with mlflow_server_started(binary, store, root) as (url, log):
        yield ServerProcess(url, log, store)


@dataclass(frozen=True)
class ServerStore:
    url: str
    store_uri: str
    runs: Store


@pytest.fixture(scope="module")
def mlflow_server(
    mlflow_server_process: ServerProcess | None, tmp_path_factory: pytest.TempPathFactory
) -> ServerStore:
    """The running server, filled once through its REST API with the same data as the sqlite tests use."""
    if mlflow_server_process is None:
        message = "`mlflow server` needs the full mlflow package (pip install mlflow)"
        if REQUIRE_TOOLS:
            pytest.fail(f"{message}; MLMON_REQUIRE_TOOLS is set, so this is a failure, not a skip")
        pytest.skip(message)
    url, log = mlflow_server_process.url, mlflow_server_process.log
    wait_for_mlflow(url, log)
    runs = fill_store(url, tmp_path_factory.mktemp("server-artifacts"))
    return ServerStore(url, mlflow_server_process.store_uri, runs)


@pytest.mark.slow
def test_against_a_real_tracking_server(mlflow_server: ServerStore) -> None:
    url, store = mlflow_server.url, mlflow_server.runs
    code, stdout, err = run("--model", "churn-model", "--mlflow-uri", url, "-f", "json")
    assert code == 0, err
    data = json.loads(stdout)
    assert [(c["version"], c["aliases"]) for c in data["columns"]] == [
        ("1", ["champion"]),
        ("2", ["challenger"]),
    ]
    rmse = next(row for row in data["metrics"] if row["name"] == "rmse")
    assert rmse["values"]["churn-model/2"]["best"] is True
    assert rmse["values"]["churn-model/1"]["history"] == [0.9, 0.7, 0.5]
    code, stdout, err = run(store.base, store.better, "--mlflow-uri", url, "-f", "markdown")
    assert code == 0, err
    assert "| rmse ↓ | 0.5 `█▄▁` | **0.4** ★ (-0.1 (-20.0%)) `█▃▁` |" in stdout
    code, _, err = run(store.base, "nope-run", "--mlflow-uri", url)
    assert code == 1 and err.startswith(f"error: run 'nope-run' not found in MLflow at {url}")
    code, _, err = run("--model", "churn-model", "--versions", "1", "42", "--mlflow-uri", url)
    assert code == 1 and err.startswith(
        "error: version 42 of registered model 'churn-model' not found in MLflow"
    )
    code, _, err = run("--model", "churn-model", "--aliases", "shadow", "--mlflow-uri", url)
    assert code == 1 and "hint: the model's aliases: challenger, champion" in err
    code, _, err = run("--experiment", "nope", "--mlflow-uri", url)
    assert code == 1 and err.startswith(f"error: experiment 'nope' not found in MLflow at {url}")
    code, _, err = run("--experiment", "churn", "--filter", "params.lr ~ 1", "--mlflow-uri", url)
    assert code == 1 and err.startswith(f"error: MLflow at {url} failed on the runs of experiment 'churn'")
    code, stdout, err = run(store.base, store.odd, store.other_experiment, "--mlflow-uri", url, "--all")
    assert code == 0, err
    r2_line = next(line for line in stdout.splitlines() if line.strip().startswith("r2"))
    assert r2_line.split() == ["r2", "↑", "0.8", "inf", "+inf", "-"]


SELECTIONS = {
    "runs": lambda runs: Selection(run_ids=(runs.base, runs.odd, runs.other_experiment, runs.better)),
    "experiment": lambda runs: Selection(
        experiment="churn", filter="params.depth = '6'", sort_by=("metrics.rmse",)
    ),
    "top": lambda runs: Selection(experiment="churn", sort_by=("attributes.start_time DESC",), top=2),
    "aliased versions": lambda runs: Selection(model="churn-model"),
    "versions": lambda runs: Selection(model="churn-model", versions=("3", "1", "2")),
    "aliases": lambda runs: Selection(model="churn-model", aliases=("challenger", "@champion")),
}


@pytest.mark.slow
@pytest.mark.parametrize("selection", list(SELECTIONS))
def test_rest_and_mlflow_client_give_the_same_comparison(mlflow_server: ServerStore, selection: str) -> None:
    """The REST reader on the server and MLflow's client on the server's own sqlite file: the same data."""
    wanted = SELECTIONS[selection](mlflow_server.runs)
    rest = MlflowRunSource.connect(mlflow_server.url)
    local = MlflowRunSource.connect(mlflow_server.store_uri)
    assert isinstance(rest.reader, RestReader) and isinstance(local.reader, ClientReader)
    results = []
    for source in (rest, local):
        records = source.select(wanted)
        comparison = compare(records, show_all=True, history=source.metric_histories)
        results.append((records_json(records), comparison_json(comparison)))
    assert results[0] == results[1]
    assert results[0][1]["columns"]  # something was compared


def records_json(records: Sequence[RunRecord]) -> str:
    """Records as comparable text: NaN is not equal to itself, its JSON spelling is."""
    return json.dumps([dataclasses.asdict(record) for record in records], sort_keys=True)


@pytest.mark.slow
def test_requests_one_search_page_and_one_history_request_per_metric(mlflow_server: ServerStore) -> None:
    runs = mlflow_server.runs
    source = MlflowRunSource.connect(mlflow_server.url)
    assert isinstance(source.reader, RestReader)
    records = source.experiment_runs("churn")
    assert (len(records), source.search_pages, source.reader.requests_made) == (3, 1, 2)  # by name, search
    comparison = compare(records, metrics=["rmse", "r2"], history=source.metric_histories)
    assert source.reader.requests_made == 4  # one bulk history request per shown metric, all runs in it
    rmse = next(row for row in comparison.rows if row.name == "rmse")
    by_run = {record.run_id: cell.history for record, cell in zip(records, rmse.cells, strict=True)}
    assert by_run[runs.base] == (0.9, 0.7, 0.5) and by_run[runs.better] == (0.8, 0.5, 0.4)
    assert math.isnan(by_run[runs.odd][0])
    # An MLflow without the bulk endpoint is read run by run, with the same result.
    assert source.reader._history(runs.better, "rmse") == [0.8, 0.5, 0.4]
    with pytest.raises(EndpointMissing):
        source.reader.tracking.get("metrics/no-such-endpoint", {}, what="nothing")


def test_small_changes_keep_two_significant_digits_in_percent() -> None:
    from mlmon.compare import format_percent

    assert [format_percent(p) for p in (3.44, -0.0256, 0.0, 100.0, -0.00001234)] == [
        "+3.4%",
        "-0.026%",
        "+0.0%",
        "+100.0%",
        "-0.000012%",
    ]


def test_histories_are_read_only_where_they_are_shown(fake_mlflow: str) -> None:
    FakeMlflow.answers["/api/2.0/mlflow/runs/get"] = (200, one_run("r1"))
    FakeMlflow.answers["/api/2.0/mlflow/metrics/get-history"] = (200, b'{"metrics": []}')
    uri = f"http://{fake_mlflow}"

    def reads_histories(*args: str) -> bool:
        FakeMlflow.seen.clear()
        code, _, err = run("r1", "--mlflow-uri", uri, "--sparklines", *args)
        assert code == 0, err
        return any("get-history" in seen["path"] for seen in FakeMlflow.seen)

    assert reads_histories("-f", "json")
    assert reads_histories()  # runs as columns: a sparkline beside each metric
    # Runs as rows and CSV have no place for a history: --sparklines asks for nothing there.
    assert not reads_histories("--transpose")
    assert not reads_histories("-f", "csv")
