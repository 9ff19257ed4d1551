"""`mlmon drift` inputs: folders and globs of files, MLflow artifacts as the reference, prediction logs, and
bad input (mixed schemas, truncated or empty files, bad columns), with the speed-ups checked for agreement."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mlmon.data import CategoryColumn, read_table
from mlmon.drift.build import sorted_quantiles
from mlmon.drift.report import drift_report
from mlmon.drift.two_sample import compare_sorted, kstwo_sf
from tests.helpers import new_run, register, run_cli


def _table(rows: int, seed: int, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    colours = np.array(["red", "green", "blue", None], dtype=object)
    return pa.table(
        {
            "x": rng.normal(size=rows) + shift,
            "n": rng.integers(0, 5, size=rows),
            "colour": pa.array(colours[rng.integers(0, 4 if shift == 0 else 3, size=rows)], type=pa.string()),
        }
    )


def _write(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    elif path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in table.to_pylist()))
    return path


def _report(*args: str) -> dict[str, Any]:
    code, out, err = run_cli("drift", *args, "--json")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def _error(*args: str) -> str:
    code, out, err = run_cli("drift", *args)
    assert code == 1, (out, err)
    assert out == "" and "Traceback" not in err and "\nhint: " in err
    return err.splitlines()[0]


def test_folders_and_globs_read_as_one_table(tmp_path: Path) -> None:
    reference, current = _table(900, 1), _table(600, 2, shift=0.4)
    _write(reference, tmp_path / "ref.parquet")
    _write(current, tmp_path / "cur.parquet")
    # The same rows split into files of three formats, and into a glob's worth of files.
    _write(reference.slice(0, 300), tmp_path / "ref" / "a.csv")
    _write(reference.slice(300, 300), tmp_path / "ref" / "b.parquet")
    _write(reference.slice(600), tmp_path / "ref" / "c.jsonl")
    (tmp_path / "ref" / "notes.txt").write_text("not data, not read")
    for index, start in enumerate(range(0, 600, 200)):
        _write(current.slice(start, 200), tmp_path / "cur" / f"day-{index}.parquet")
    whole = _report(str(tmp_path / "ref.parquet"), str(tmp_path / "cur.parquet"))
    split = _report(str(tmp_path / "ref"), str(tmp_path / "cur" / "day-*.parquet"))
    assert split == whole
    assert whole["rows_reference"] == 900 and whole["rows_current"] == 600
    assert {f["name"] for f in whole["features"]} == {"x", "n", "colour"}


def test_no_file_matches_the_glob(tmp_path: Path) -> None:
    _write(_table(50, 1), tmp_path / "ref.parquet")
    pattern = str(tmp_path / "nothing-*.parquet")
    assert _error(str(tmp_path / "ref.parquet"), pattern) == f"error: no files match {pattern}"
    # A file whose name only looks like a pattern is that file.
    _write(_table(40, 2), tmp_path / "cur[1].csv")
    assert _report(str(tmp_path / "ref.parquet"), str(tmp_path / "cur[1].csv"))["rows_current"] == 40


def test_mixed_schemas_name_the_file_and_the_columns(tmp_path: Path) -> None:
    table = _table(50, 1)
    _write(table, tmp_path / "ref.parquet")
    _write(table, tmp_path / "cur" / "a.parquet")
    _write(
        table.drop_columns(["n"]).append_column("extra", pa.array([1.0] * 50)), tmp_path / "cur" / "b.parquet"
    )
    first = _error(str(tmp_path / "ref.parquet"), str(tmp_path / "cur"))
    assert first == (
        f"error: {tmp_path / 'cur' / 'b.parquet'} has column 'extra', which {tmp_path / 'cur' / 'a.parquet'} "
        "has not and lacks column 'n'"
    )
    _write(table.set_column(0, "x", pa.array(["text"] * 50)), tmp_path / "cur" / "b.parquet")
    second = _error(str(tmp_path / "ref.parquet"), str(tmp_path / "cur"))
    assert second == (
        f"error: column 'x' is numerical in {tmp_path / 'cur' / 'a.parquet'} but text in "
        f"{tmp_path / 'cur' / 'b.parquet'}"
    )


def test_truncated_and_empty_files_in_a_folder_are_named(tmp_path: Path) -> None:
    _write(_table(50, 1), tmp_path / "ref.parquet")
    good = _write(_table(50, 2), tmp_path / "cur" / "a.parquet")
    broken = tmp_path / "cur" / "b.parquet"
    broken.write_bytes(good.read_bytes()[:-40])
    assert _error(str(tmp_path / "ref.parquet"), str(tmp_path / "cur")).startswith(
        f"error: cannot read {broken}: "
    )
    broken.unlink()
    empty = tmp_path / "cur" / "c.csv"
    empty.write_text("")
    assert _error(str(tmp_path / "ref.parquet"), str(tmp_path / "cur")) == (
        f"error: cannot read {empty}: the file is empty"
    )
    # A file with a header and no rows adds nothing, and is no error.
    empty.write_text("x,n,colour\n")
    assert _report(str(tmp_path / "ref.parquet"), str(tmp_path / "cur"))["rows_current"] == 50


def test_a_repeated_column_name_is_named(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("a,b\n1,2\n3,4\n")
    repeated = tmp_path / "repeated.csv"
    repeated.write_text("a,a,b,b\n1,2,3,4\n5,6,7,8\n")
    assert _error(str(good), str(repeated)) == f"error: {repeated} names columns 'a', 'b' more than once"
    pq.write_table(
        pa.table([pa.array([1.0]), pa.array([2.0])], names=["x", "x"]), tmp_path / "repeated.parquet"
    )
    assert _error(str(good), str(tmp_path / "repeated.parquet")).endswith("names column 'x' more than once")


@pytest.mark.parametrize("text", ['a,b\n1,"2\n3,4\n5,6\n', 'a,b\n1,2\n3,"x\n'])
def test_an_unclosed_quote_is_a_truncated_file_not_a_small_sample(tmp_path: Path, text: str) -> None:
    good = tmp_path / "good.csv"
    good.write_text("a,b\n1,2\n3,4\n")
    truncated = tmp_path / "truncated.csv"
    truncated.write_bytes(text.encode())
    error = _error(str(good), str(truncated))
    assert error.startswith(f"error: cannot read {truncated}: a quote in column ") and "never closed" in error


def test_bad_columns_are_listed_and_the_rest_is_reported(tmp_path: Path) -> None:
    rows = 200
    reference = _table(rows, 1).append_column("all_null_cur", pa.array(np.arange(rows, dtype=float)))
    reference = reference.append_column("amount", pa.array(np.arange(rows, dtype=float)))
    reference = reference.append_column("only_ref", pa.array(np.zeros(rows)))
    current = _table(rows, 2).append_column("all_null_cur", pa.array([None] * rows, type=pa.float64()))
    current = current.append_column("amount", pa.array(["12.5"] * (rows - 1) + ["twelve"]))
    current = current.append_column("only_cur", pa.array(np.zeros(rows)))
    _write(reference, tmp_path / "ref.csv")
    _write(current, tmp_path / "cur.csv")
    report = _report(str(tmp_path / "ref.csv"), str(tmp_path / "cur.csv"))
    # A number column with one text cell is compared as numbers, the cell named (tests/test_drift_columns.py).
    assert {f["name"] for f in report["features"]} == {"x", "n", "colour", "amount"}
    amount = next(f for f in report["features"] if f["name"] == "amount")
    assert amount["text_cells"] == {"current": {"twelve": 1}}
    assert {s["name"]: s["reason"] for s in report["skipped"]} == {
        "all_null_cur": "no values in the current data (every row is missing)",
        "only_ref": "only in the reference, not in the current data",
        "only_cur": "only in the current data, not in the reference",
    }
    colour = next(f for f in report["features"] if f["name"] == "colour")
    assert colour["missing_ratio_reference"] > 0.15 and colour["missing_ratio_current"] > 0.15


def test_columns_that_are_not_one_dimensional_are_skipped() -> None:
    values = np.arange(20.0)
    report = drift_report(
        {"ok": values, "matrix": np.ones((20, 2)), "codes": np.ones((20, 3), dtype=np.int64)},
        {"ok": values, "matrix": np.ones((20, 2)), "codes": np.ones((20, 3), dtype=np.int64)},
        feature_types={"codes": "categorical"},
    )
    assert [f.name for f in report.features] == ["ok"]
    assert {s.name: s.reason for s in report.skipped} == {
        "matrix": "the reference column is not one-dimensional (shape (20, 2))",
        "codes": "the reference column is not one-dimensional (shape (20, 3))",
    }


def test_prediction_logs_mixed_with_data_files_are_refused(tmp_path: Path) -> None:
    from mlmon.instrument.prediction_log import PredictionLog

    _write(_table(50, 1), tmp_path / "ref.parquet")
    with PredictionLog(tmp_path / "logs" / "p.jsonl", model="m", version="1") as log:
        log.log({"x": 1.0, "n": 2, "colour": "red"}, 0.5)
    _write(_table(5, 3), tmp_path / "logs" / "other.csv")
    assert _error(str(tmp_path / "ref.parquet"), str(tmp_path / "logs")).startswith(
        f"error: {tmp_path / 'logs'} mixes prediction logs with other data files: "
    )
    (tmp_path / "logs" / "other.csv").unlink()
    report = _report(str(tmp_path / "ref.parquet"), str(tmp_path / "logs" / "*.jsonl"))
    assert report["rows_current"] == 1
    # A service that has answered nothing yet leaves an empty live log beside the others: still a log folder.
    (tmp_path / "logs" / "predictions.jsonl").write_text("")
    for current in (tmp_path / "logs", tmp_path / "logs" / "*.jsonl"):
        assert _report(str(tmp_path / "ref.parquet"), str(current))["rows_current"] == 1


def test_reference_from_mlflow_artifacts(tmp_path: Path, mlflow_store: tuple[str, str]) -> None:
    from mlflow import MlflowClient

    uri = mlflow_store[0]
    reference = _write(_table(400, 1), tmp_path / "data" / "reference.parquet")
    current = str(_write(_table(300, 2, shift=0.5), tmp_path / "cur.parquet"))
    run_id = new_run(mlflow_store)
    MlflowClient(uri).log_artifact(run_id, str(reference), artifact_path="data")
    profile = tmp_path / "profile.json"
    made = run_cli(
        "profile",
        str(reference),
        "-m",
        "m",
        "-o",
        str(profile),
        "--log-to-mlflow",
        run_id,
        "--mlflow-uri",
        uri,
    )
    assert made[0] == 0, made[2]
    register(mlflow_store, "drift-model", run_id, "champion")
    local_data = _report(str(reference), current)
    local_profile = _report(str(profile), current)
    assert _report(f"runs:/{run_id}/data/reference.parquet", current, "--mlflow-uri", uri) == local_data
    assert _report(f"runs:/{run_id}", current, "--mlflow-uri", uri) == local_profile
    assert _report("models:/drift-model@champion", current, "--mlflow-uri", uri) == local_profile
    assert _error(f"runs:/{run_id}/data/nope.parquet", current, "--mlflow-uri", uri) == (
        f"error: artifact 'data/nope.parquet' of MLflow run '{run_id}' not found in MLflow at {uri}"
    )
    assert _error(str(reference), f"runs:/{run_id}/data/reference.parquet").startswith(
        "error: the current data cannot be an MLflow artifact"
    )
    # A run without a profile: the hint says how to log one.
    bare = new_run(mlflow_store)
    code, _, err = run_cli("drift", f"runs:/{bare}", current, "--mlflow-uri", uri)
    assert code == 1 and f"artifact 'mlmon/profile.json' of MLflow run '{bare}' not found" in err
    assert f"`mlmon profile DATA --model NAME --log-to-mlflow {bare}`" in err.split("hint: ", 1)[1]


# -- the fast paths give the same numbers as the plain ones -----------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_encoded_text_columns_give_the_same_report_as_object_arrays(tmp_path: Path, suffix: str) -> None:
    reference = _write(_table(700, 4), tmp_path / f"ref{suffix}")
    current = _write(_table(500, 5, shift=0.2), tmp_path / f"cur{suffix}")
    if suffix == ".parquet":  # row groups with dictionaries of their own, which the reader must unify
        pq.write_table(_table(700, 4), reference, row_group_size=64)
    plain = drift_report(read_table(reference), read_table(current))
    encoded = drift_report(read_table(reference, encode_text=True), read_table(current, encode_text=True))
    assert isinstance(read_table(reference, encode_text=True)["colour"], CategoryColumn)
    assert encoded.to_dict() == plain.to_dict()
    as_texts = np.asarray(read_table(reference, encode_text=True)["colour"])
    assert as_texts.tolist() == read_table(reference)["colour"].tolist()


@pytest.mark.parametrize("n", [141, 5_000, 10_001, 250_000, 2_000_000])
def test_kstwo_sf_is_scipys_kstwo_sf(n: int) -> None:
    # Every band of scipy's kolmogn: n*x**2 from 1e-4 to 1,000, across the series band [2.2, 370).
    squares = [1e-4, 0.01, 0.5, 1.0, 2.19, 2.2, 2.3, 4.0, 9.0, 18.0, 50.0, 150.0, 369.0, 370.0, 1e3]
    edges = [0.0, 0.5 / n, 1.5 / n, 0.4, 0.6, 1.0]
    for statistic in [math.sqrt(square / n) for square in squares] + edges:
        assert kstwo_sf(statistic, n) == pytest.approx(stats.kstwo.sf(statistic, n), rel=1e-12, abs=1e-15)


def test_ks_p_value_between_the_fast_paths_equals_scipy() -> None:
    # n*m/(n+m) * D**2 between 2.2 and 370: scipy's slowest region, where it sums the one-sided series.
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=30_000), rng.normal(size=20_000) + 0.035
    ours = compare_sorted(np.sort(x), np.sort(y))
    expected = stats.ks_2samp(x, y, method="auto")
    assert 2.2 < 12_000 * expected.statistic**2 < 370
    assert ours.ks_statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert ours.ks_p_value == pytest.approx(expected.pvalue, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=60),
    st.integers(min_value=2, max_value=100),
)
def test_sorted_quantiles_are_numpys_bit_for_bit(values: list[float], bins: int) -> None:
    ordered = np.sort(np.array(values))
    probabilities = np.arange(1, bins) / bins
    with np.errstate(all="ignore"):
        expected = np.quantile(ordered, probabilities, method="linear")
        ours = sorted_quantiles(ordered, probabilities)
    assert np.array_equal(ours, expected, equal_nan=True)


# Run in a fresh interpreter, where scipy is not imported yet: any worker thread that imports a scipy module
# fails. Threads importing scipy.stats and scipy.stats._ksstats at once used to end `mlmon drift` with
# _DeadlockError now and then; a failing import makes the same mistake fail every time.
NO_IMPORTS_IN_WORKERS = """
import importlib.abc, sys, threading
import numpy as np

class WorkersImportNothing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.startswith("scipy") and threading.current_thread() is not threading.main_thread():
            raise ImportError(f"{name} imported in a worker thread")
        return None

sys.meta_path.insert(0, WorkersImportNothing())
from mlmon.drift.report import drift_report

rng = np.random.default_rng(0)
sides = []
for n in (20_000, 3_000):  # above and below KS_EXACT_MAX_N: both p-value paths
    columns = {f"x{i}": rng.normal(size=n) for i in range(4)}
    columns |= {f"c{i}": np.array(rng.choice(list("abcd"), n), dtype=object) for i in range(4)}
    sides.append(columns)
report = drift_report(sides[0], sides[1], workers=8)
print(len(report.features), len(report.skipped))
"""


def test_worker_threads_import_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "-c", NO_IMPORTS_IN_WORKERS],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["8", "0"]


@pytest.mark.parametrize(("low", "high"), [(1e308, 1.7e308), (-1e308, 1e308), (-1.7e308, -1e300)])
@pytest.mark.parametrize("method", ["wasserstein", "ks", "psi"])
def test_values_near_the_float_limit_give_the_verdicts_of_ordinary_values(
    low: float, high: float, method: Any
) -> None:
    """The same samples in [0, 1] and stretched onto [low, high]: equal statistics, equal verdicts. Before,
    the normed Wasserstein distance overflowed to NaN (read as no drift) or inf (read as drift)."""
    rng = np.random.default_rng(7)
    reference, same, shifted = rng.uniform(0, 1, 5_000), rng.uniform(0, 1, 5_000), rng.uniform(0.1, 1, 5_000)
    middle, half = low / 2 + high / 2, high / 2 - low / 2  # (high - low) itself can overflow

    def stretched(values: np.ndarray) -> np.ndarray:
        return middle + half * (2 * values - 1)

    for current, drifted in ((same, False), (shifted, True)):
        ordinary = drift_report({"x": reference}, {"x": current}, method=method).features[0]
        large = drift_report({"x": stretched(reference)}, {"x": stretched(current)}, method=method).features[
            0
        ]
        assert ordinary.drift is drifted
        assert large.drift is drifted and math.isfinite(large.statistic), large
        assert large.statistic == pytest.approx(ordinary.statistic, rel=1e-6)


def test_a_file_without_newlines_is_not_read_whole_to_sniff_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telling a prediction log from other JSON lines reads at most the limit of the first line (a 440 MB
    JSON array on one line took 12.9 s and 2.1 GB to sniff; 1.3 s and 189 MB now)."""
    import mlmon.drift.inputs as inputs

    record = json.dumps({"ts": 1.0, "features": {"x": 1.0}, "padding": "x" * 200})
    log = tmp_path / "one.jsonl"
    log.write_text(record + "\n")
    assert inputs.is_prediction_log(log)
    monkeypatch.setattr(inputs, "_FIRST_LINE_LIMIT", 100)
    assert not inputs.is_prediction_log(log)
    monkeypatch.undo()
    array = tmp_path / "array.jsonl"
    array.write_text("[" + "1234567890," * 200_000 + "1]")
    good = tmp_path / "good.jsonl"
    good.write_text('{"a": 1}\n{"a": 2}\n')
    assert _error(str(good), str(array)) == (
        f"error: cannot read {array}: a JSON value runs on for more than 1 MiB: a line that long, or not JSON "
        "lines at all"
    )


def test_a_named_pipe_and_a_file_without_rows_are_said_to_be_what_they_are(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("a\n1\n2\n")
    pipe = tmp_path / "pipe.csv"
    os.mkfifo(pipe)
    assert _error(str(good), str(pipe)) == (
        f"error: cannot read {pipe}: it is not a regular file (a named pipe, a socket or a device)"
    )
    header_only = tmp_path / "header.csv"
    header_only.write_text("a\n")
    code, _, err = run_cli("drift", str(good), str(header_only))
    assert (
        code == 1
        and err == f"error: {header_only} has no rows\nhint: pass a file with at least one row of data\n"
    )
