"""`mlmon profile`: reading data files, building reference profiles, and storing them in MLflow.

Everything runs for real: files written with pyarrow into tmp_path, a local MLflow sqlite store, the CLI
through CliRunner. The central promise is that the bins counted by the live monitor
(``FeatureProfile.bin_of``) reproduce the reference shares stored in the profile, to the last bit.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmon.backends.mlflow.client import MLFLOW_HTTP_DEFAULTS
from mlmon.contract import OTHER_BIN
from mlmon.data import DataError, read_table
from mlmon.demo.stack import free_port
from mlmon.drift.build import PREDICTION_NAME, ProfileBuildError, build_profile, quantile_edges
from mlmon.drift.mlflow_profile import PROFILE_ARTIFACT_PATH, load_profile_from_mlflow, log_profile_to_mlflow
from mlmon.drift.profile import FeatureProfile, Profile, ProfileError, load_profile, shares
from mlmon.errors import BackendError
from tests.helpers import new_run, register, run_cli

# --- data ---------------------------------------------------------------------------------------------


def reference_table(rows: int = 500, seed: int = 7) -> pa.Table:
    """Reference data with every kind of column a profile meets: numbers with gaps, text with gaps,
    integer codes, labels, predictions and confidences."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 1, rows).round(2)
    region = rng.choice(["north", "south", "east", "west", "far-north"], rows, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    label = rng.integers(0, 2, rows)
    return pa.table(
        {
            "income": pa.array([None if i % 10 == 3 else float(v) for i, v in enumerate(income)]),
            "region": pa.array([None if i % 8 == 5 else str(v) for i, v in enumerate(region)]),
            "zip_code": pa.array(rng.integers(100, 106, rows)),
            "label": pa.array(label),
            "predicted": pa.array(np.where(rng.uniform(size=rows) < 0.8, label, 1 - label)),
            "confidence": pa.array(rng.uniform(0.5, 1.0, rows).round(4)),
        }
    )


def write_data(table: pa.Table, path: Path) -> Path:
    """Write ``table`` in the format the suffix of ``path`` names."""
    if path.suffix == ".csv":
        pacsv.write_csv(table, path)
    elif path.suffix in (".parquet", ".pq"):
        pq.write_table(table, path)
    else:  # JSON lines: pyarrow has no JSON writer, so one json.dumps per row.
        path.write_text("".join(json.dumps(row) + "\n" for row in table.to_pylist()), encoding="utf-8")
    return path


def assert_user_error(code: int, err: str, *fragments: str) -> None:
    """Exit 1, one `error:` line naming what is wrong, a hint, and no traceback."""
    assert code == 1, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert any(line.startswith("hint: ") for line in err.splitlines()), err


def count_with_bin_of(feature: FeatureProfile, values: Sequence[Any]) -> tuple[list[float], float]:
    """The reference shares and missing ratio the live monitor would count for ``values`` (an infinite value
    is in no bin and not missing: the monitor counts it as invalid input)."""
    counts = [0] * len(feature.bin_labels)
    missing = 0
    for value in values:
        index = feature.bin_of(value)
        if index is not None:
            counts[index] += 1
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            missing += 1
    return shares(counts), missing / len(values)


def as_a_service_sends(values: np.ndarray[Any, Any], feature: FeatureProfile) -> list[Any]:
    """Reference values as a model service passes them: integer codes as ints, though files give floats."""
    if feature.kind == "categorical" and values.dtype == np.float64:
        return [None if math.isnan(v) else int(v) for v in values.tolist()]
    return values.tolist()


# --- read_table -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json"])
def test_every_format_reads_to_the_same_columns(tmp_path: Path, suffix: str) -> None:
    table = reference_table(rows=50)
    columns = read_table(write_data(table, tmp_path / f"data{suffix}"))

    assert list(columns) == table.column_names
    income = columns["income"]
    assert income.dtype == np.float64
    assert np.isnan(income[3]) and not np.isnan(income[0])
    np.testing.assert_array_equal(income, np.array(table["income"].to_pylist(), dtype=float))
    assert columns["zip_code"].dtype == np.float64
    region = columns["region"]
    assert region.dtype == object
    assert region.tolist() == table["region"].to_pylist()
    assert region[5] is None


def test_columns_selects_and_orders(tmp_path: Path) -> None:
    path = write_data(reference_table(rows=20), tmp_path / "data.parquet")
    columns = read_table(path, columns=["region", "income"])
    assert list(columns) == ["region", "income"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_missing_columns_are_named_with_the_available_ones(tmp_path: Path, suffix: str) -> None:
    path = write_data(pa.table({"a": [1.0, 2.0], "b": ["x", "y"]}), tmp_path / f"data{suffix}")
    with pytest.raises(DataError) as caught:
        read_table(path, columns=["a", "nope", "gone"])
    assert caught.value.message == f"{path} has no columns 'nope', 'gone'"
    assert caught.value.hint == "its columns are: a, b"


def test_csv_empty_cells_and_null_markers_are_missing_in_text_and_numbers(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("n,t,flag\n1.5,x,true\n,,\nNA,NULL,false\n2,y,true\n")
    columns = read_table(path)
    np.testing.assert_array_equal(columns["n"], [1.5, np.nan, np.nan, 2.0])
    assert columns["t"].tolist() == ["x", None, None, "y"]
    # Booleans read as Python spells them, which is what bin_of sees when a service sends a bool.
    assert columns["flag"].tolist() == ["True", None, "False", "True"]


def test_all_null_column_reads_as_numerical_nan(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,empty\n1,\n2,\n")
    empty = read_table(path)["empty"]
    assert empty.dtype == np.float64 and np.isnan(empty).all()


def test_json_lines_nested_values_read_as_json_text(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"tags": ["a", "b"], "x": 1}\n{"tags": null, "x": 2}\n')
    assert read_table(path)["tags"].tolist() == ['["a", "b"]', None]


def test_data_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data file .*missing\.csv not found"):
        read_table(tmp_path / "missing.csv")


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("a\n1\n")
    with pytest.raises(DataError) as caught:
        read_table(path)
    assert caught.value.message == f"cannot read {path}: unknown file type '.txt'"
    assert caught.value.hint is not None and ".parquet" in caught.value.hint


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_zero_byte_file_is_empty(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"data{suffix}"
    path.write_bytes(b"")
    with pytest.raises(DataError) as caught:
        read_table(path)
    assert caught.value.message == f"cannot read {path}: the file is empty"


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_file_without_rows(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"data{suffix}"
    if suffix == ".jsonl":
        path.write_text("\n\n")
    else:
        write_data(pa.table({"a": pa.array([], pa.float64())}), path)
    with pytest.raises(DataError) as caught:
        read_table(path)
    assert caught.value.message == f"{path} has no rows"


def test_truncated_parquet_names_the_file_and_the_reason(tmp_path: Path) -> None:
    whole = write_data(reference_table(rows=100), tmp_path / "whole.parquet").read_bytes()
    path = tmp_path / "cut.parquet"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError) as caught:
        read_table(path)
    assert caught.value.message.startswith(f"cannot read {path}: ")
    assert "magic bytes not found" in caught.value.message


def test_ragged_csv_names_the_file_and_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,2\n1,2,3\n")
    with pytest.raises(DataError) as caught:
        read_table(path)
    assert caught.value.message == f"cannot read {path}: CSV parse error: Expected 2 columns, got 3: 1,2,3"


def test_json_array_is_not_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text('[{"a": 1}, {"a": 2}]')
    with pytest.raises(DataError) as caught:
        read_table(path)
    assert caught.value.message.startswith(f"cannot read {path}: JSON parse error")
    assert caught.value.hint is not None and "one JSON object per line" in caught.value.hint


def test_truncated_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"a": 1}\n{"a": ')
    with pytest.raises(DataError, match=r"cannot read .*data\.jsonl: JSON parse error"):
        read_table(path)


def test_text_that_is_not_utf8_names_the_column(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,\xff\xfe\n")
    with pytest.raises(DataError) as caught:
        read_table(path)
    assert caught.value.message.startswith(f"column 'b' of {path} is not text mlmon can read")


def test_text_that_is_not_utf8_in_the_second_file_names_that_file(tmp_path: Path) -> None:
    from mlmon.data import read_tables

    good, bad = tmp_path / "a.csv", tmp_path / "b.csv"
    good.write_bytes(b"a,b\n1,fine\n")
    bad.write_bytes(b"a,b\n2,\xff\xfe\n")
    with pytest.raises(DataError) as caught:
        read_tables([good, bad])
    assert caught.value.message.startswith(f"column 'b' of {bad} is not text mlmon can read")


# --- binning --------------------------------------------------------------------------------------------


def test_quantile_edges_are_the_linear_quantiles() -> None:
    values = np.arange(1.0, 101.0)
    assert quantile_edges(values, 4).tolist() == [25.75, 50.5, 75.25]


def test_few_distinct_values_give_fewer_bins_and_a_constant_one_bin() -> None:
    few = build_profile({"x": np.array([1.0, 1.0, 2.0, 2.0, 3.0, 3.0] * 10)}, "m").feature("x")
    assert len(few.edges) < 9
    assert 0.0 not in few.reference_ratios[:1]  # no empty bin under the minimum

    constant = build_profile({"x": np.full(40, 7.5)}, "m").feature("x")
    assert constant.edges == ()
    assert constant.reference_ratios == (1.0,)
    assert constant.bin_of(-1e9) == constant.bin_of(1e9) == 0


def test_bin_of_reproduces_the_stored_shares_for_every_reference_value(tmp_path: Path) -> None:
    path = write_data(reference_table(rows=3000, seed=11), tmp_path / "data.parquet")
    columns = read_table(path)
    profile = build_profile(columns, "m", feature_types={"zip_code": "categorical"}, prediction="predicted")

    for feature in profile.features:
        ratios, missing = count_with_bin_of(feature, as_a_service_sends(columns[feature.name], feature))
        assert ratios == list(feature.reference_ratios), feature.name
        assert missing == feature.missing_ratio, feature.name
    assert profile.prediction is not None
    ratios, _ = count_with_bin_of(
        profile.prediction, as_a_service_sends(columns["predicted"], profile.prediction)
    )
    assert ratios == list(profile.prediction.reference_ratios)
    # After the round trip through JSON the same counting gives the same shares (edges are exact floats).
    loaded = Profile.from_json(profile.to_json())
    assert loaded == profile


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=60).filter(
        lambda xs: any(math.isfinite(x) for x in xs)
    ),
    st.integers(min_value=2, max_value=12),
)
def test_bin_of_agrees_with_the_profile_on_hostile_numbers(values: list[float], bins: int) -> None:
    profile = build_profile({"x": np.array(values, dtype=float)}, "m", bins=bins)
    feature = profile.feature("x")

    ratios, missing = count_with_bin_of(feature, values)
    assert ratios == list(feature.reference_ratios)
    assert missing == feature.missing_ratio
    assert list(feature.edges) == sorted(set(feature.edges))
    assert len(feature.edges) <= bins - 1
    # Infinities and overflowing sums must not leak into the file: JSON has no infinity.
    assert Profile.from_json(profile.to_json()) == profile


def test_quantile_edges_between_values_of_opposite_sign_near_the_float_limit_stay_finite() -> None:
    # Found by the test above: the interpolation's difference of the neighbours overflowed to an infinite edge.
    values = [4.668547241342594e304, -1.7972262801381815e308]
    feature = build_profile({"x": np.array(values)}, "m", bins=3).feature("x")
    assert all(math.isfinite(edge) for edge in feature.edges)
    assert values[1] < feature.edges[0] < feature.edges[-1] < values[0]
    ratios, _ = count_with_bin_of(feature, values)
    assert ratios == list(feature.reference_ratios)


def test_categorical_top_k_breaks_ties_by_text_and_puts_the_rest_in_other() -> None:
    values = np.array(["b", "a", "b", "a", "c", "d", "b", "a", None, OTHER_BIN, "", ""], dtype=object)
    feature = build_profile({"c": values}, "m", top_k=3).feature("c")

    # a and b tie at 3: text order decides. "" and __other__ never become categories of their own.
    assert feature.categories == ("a", "b", "c")
    assert feature.bin_labels == ("a", "b", "c", OTHER_BIN)
    assert feature.reference_ratios == (3 / 11, 3 / 11, 1 / 11, 4 / 11)
    assert feature.missing_ratio == 1 / 12
    assert feature.stats == {"count": 11.0, "distinct": 6.0}
    ratios, _ = count_with_bin_of(feature, values.tolist())
    assert ratios == list(feature.reference_ratios)


def test_mixed_python_objects_are_binned_as_the_live_monitor_bins_them() -> None:
    values = [1, True, 1.0, float("nan"), None, "a", "1", 1, ("t",)]
    feature = build_profile({"c": np.array(values, dtype=object)}, "m").feature("c")
    # int 1, float 1.0 and text "1" are one category, as the live monitor labels them
    assert feature.categories == ("1", "('t',)", "True", "a")
    ratios, missing = count_with_bin_of(feature, values)
    assert ratios == list(feature.reference_ratios)
    assert missing == feature.missing_ratio == 2 / 9


def test_integer_codes_declared_categorical_match_the_ints_a_service_sends() -> None:
    codes = np.array([101.0, 102.0, np.nan, 101.0, 103.0])  # as a CSV column with a gap reads
    feature = build_profile({"zip": codes}, "m", feature_types={"zip": "categorical"}).feature("zip")
    assert feature.kind == "categorical"
    assert feature.categories == ("101", "102", "103")
    assert feature.bin_of(101) == 0
    assert feature.bin_of(104) == 3


def test_types_are_inferred_from_the_dtype_and_can_be_overridden() -> None:
    columns = {
        "n": np.array([1, 2, 3]),
        "f": np.array([0.5, 1.5, 2.5]),
        "t": np.array(["1", "2", "x"], dtype=object),
        "b": np.array([True, False, True]),
        "s": np.array(["1.5", None, "2.5"], dtype=object),
    }
    profile = build_profile(columns, "m", feature_types={"n": "categorical", "s": "numerical"})
    kinds = {f.name: f.kind for f in profile.features}
    assert kinds == {
        "n": "categorical",
        "f": "numerical",
        "t": "categorical",
        "b": "categorical",
        "s": "numerical",
    }
    assert profile.feature("b").categories == ("True", "False")
    assert profile.feature("s").stats["mean"] == 2.0


def test_numerical_statistics() -> None:
    feature = build_profile({"x": np.array([4.0, np.nan, 1.0, 3.0, 2.0])}, "m").feature("x")
    assert feature.count == 4
    assert feature.missing_ratio == 0.2
    assert feature.stats == {
        "count": 4.0,
        "mean": 2.5,
        "std": math.sqrt(1.25),
        "min": 1.0,
        "max": 4.0,
        "p01": 1.03,
        "p50": 2.5,
        "p99": 3.9699999999999998,
    }


def test_prediction_accuracy_and_confidence_for_a_classifier() -> None:
    columns = {
        "x": np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
        "y": np.array([1.0, 0.0, 1.0, np.nan, 1.0]),  # a label column with a gap reads as float
        "p": np.array(["1", "0", "0", "1", None], dtype=object),
        "conf": np.array([0.9, 0.8, np.nan, 0.6, 0.7]),
    }
    profile = build_profile(columns, "m", target="y", prediction="p", confidence="conf")

    assert profile.feature_names == ("x",)
    assert profile.prediction is not None
    assert profile.prediction.name == PREDICTION_NAME
    assert profile.prediction.categories == ("0", "1")  # a tie at 2: text order decides
    assert profile.prediction.missing_ratio == 0.2
    assert profile.reference_accuracy == 2 / 3  # rows 1-3 have both; "1" == 1.0 counts as a match
    assert profile.reference_confidence_mean == pytest.approx(0.75, abs=1e-15)


def test_prediction_of_a_regressor_has_quantile_bins_and_no_accuracy() -> None:
    columns = {"x": np.arange(20.0), "y": np.arange(20.0), "score": np.linspace(0, 1, 20)}
    profile = build_profile(columns, "m", target="y", prediction="score", task="regression", bins=4)
    assert profile.task == "regression"
    assert profile.prediction is not None and profile.prediction.kind == "numerical"
    assert profile.prediction.reference_ratios == (0.25, 0.25, 0.25, 0.25)
    assert profile.reference_accuracy is None


# --- determinism ----------------------------------------------------------------------------------------


def test_same_data_gives_the_same_bytes_whatever_the_row_order(tmp_path: Path) -> None:
    table = reference_table(rows=5000, seed=3)
    shuffled = table.take(np.random.default_rng(0).permutation(table.num_rows))
    options: dict[str, Any] = {
        "target": "label",
        "prediction": "predicted",
        "confidence": "confidence",
        "feature_types": {"zip_code": "categorical"},
    }

    first = build_profile(read_table(write_data(table, tmp_path / "a.csv")), "m", **options).to_json()
    again = build_profile(read_table(write_data(table, tmp_path / "b.parquet")), "m", **options).to_json()
    mixed = build_profile(read_table(write_data(shuffled, tmp_path / "c.jsonl")), "m", **options).to_json()
    assert first == again == mixed
    assert json.loads(first)["schema_version"] == 1


def test_sums_do_not_depend_on_row_order() -> None:
    # (0.1 + 0.2) + 0.3 != 0.1 + (0.2 + 0.3) in floating point: a naive mean would differ by row order.
    forward = {"x": np.array([0.1, 0.2, 0.3]), "conf": np.array([0.1, 0.2, 0.3])}
    backward = {name: values[::-1].copy() for name, values in forward.items()}
    assert (
        build_profile(forward, "m", confidence="conf").to_json()
        == build_profile(backward, "m", confidence="conf").to_json()
    )


# --- build errors ---------------------------------------------------------------------------------------


COLUMNS = {"a": np.array([1.0, 2.0]), "b": np.array(["x", "y"], dtype=object), "y": np.array([0, 1])}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"features": ["a", "zz"]}, "unknown feature column 'zz'"),
        ({"target": "zz"}, "unknown target column 'zz'"),
        ({"prediction": "zz"}, "unknown prediction column 'zz'"),
        ({"confidence": "zz"}, "unknown confidence column 'zz'"),
        ({"features": ["a", "y"], "target": "y"}, "column 'y' is the target; it cannot also be a feature"),
        ({"features": ["a", "a"]}, "feature 'a' is listed more than once"),
        ({"features": []}, "no features left to profile"),
        ({"feature_types": {"zz": "categorical"}}, "a type is given for 'zz', which is not a feature"),
        (
            {"feature_types": {"a": "ordinal"}},
            "feature 'a': type must be numerical or categorical, got 'ordinal'",
        ),
        ({"feature_types": {"b": "numerical"}}, "column 'b' is numerical but holds 'x' (row 1)"),
        ({"bins": 1}, "bins must be between 2 and 100, got 1"),
        ({"bins": 101}, "bins must be between 2 and 100, got 101"),
        ({"top_k": 0}, "top_k must be between 1 and 99, got 0"),
        ({"task": "ranking"}, "task must be one of classification, regression, got 'ranking'"),
        (
            {"prediction": "b", "task": "regression"},
            "prediction column 'b' is not numerical, as a regression's prediction must be",
        ),
    ],
)
def test_build_errors_name_the_column_or_setting(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ProfileBuildError) as caught:
        build_profile(COLUMNS, "m", **options)
    assert caught.value.message == message


def test_unknown_column_hint_lists_the_columns() -> None:
    with pytest.raises(ProfileBuildError) as caught:
        build_profile(COLUMNS, "m", target="label")
    assert caught.value.hint == "the data has columns: a, b, y"


@pytest.mark.parametrize(
    ("columns", "options", "name"),
    [
        ({"a": np.array([np.nan, np.nan]), "b": np.array([1.0, 2.0])}, {}, "a"),
        ({"a": np.array([None, None], dtype=object), "b": np.array([1.0, 2.0])}, {}, "a"),
        ({"a": np.array([1.0, 2.0]), "y": np.array([None, None], dtype=object)}, {"target": "y"}, "y"),
        ({"a": np.array([1.0, 2.0]), "p": np.array([np.nan, np.nan])}, {"prediction": "p"}, "p"),
        ({"a": np.array([1.0, 2.0]), "c": np.array([np.nan, np.nan])}, {"confidence": "c"}, "c"),
    ],
)
def test_all_null_columns_are_refused_by_name(
    columns: dict[str, Any], options: dict[str, Any], name: str
) -> None:
    with pytest.raises(ProfileBuildError) as caught:
        build_profile(columns, "m", **options)
    assert caught.value.message == f"column {name!r} has no values (every row is missing)"


def test_every_column_taken_by_a_role_leaves_no_features() -> None:
    with pytest.raises(ProfileBuildError, match="no features left"):
        build_profile({"y": np.array([0, 1]), "p": np.array([0, 1])}, "m", target="y", prediction="p")


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ProfileBuildError, match="column 'b' is not a 1-D column of 3 values"):
        build_profile({"a": np.zeros(3), "b": np.zeros(2)}, "m")


# --- the command line -----------------------------------------------------------------------------------


def test_cli_writes_the_profile_and_prints_a_summary(tmp_path: Path) -> None:
    table = reference_table()
    data = write_data(table, tmp_path / "ref.csv")
    code, out, err = run_cli(
        "profile", str(data), "--model", "credit", "--categorical", "zip_code", "--target", "label",
        "--prediction", "predicted", "--confidence", "confidence", "-o", str(tmp_path / "p.json"),
    )  # fmt: skip
    assert code == 0, err
    profile = load_profile(tmp_path / "p.json")
    expected = build_profile(
        read_table(data),
        "credit",
        feature_types={"zip_code": "categorical"},
        target="label",
        prediction="predicted",
        confidence="confidence",
    )
    assert (tmp_path / "p.json").read_text() == expected.to_json()
    assert profile.feature_names == ("income", "region", "zip_code")
    lines = out.splitlines()
    assert lines[0].split() == ["feature", "type", "bins", "missing"]
    assert lines[1].split() == ["income", "numerical", "10", "10.0%"]
    assert lines[2].split() == ["region", "categorical", "6", "12.4%"]
    assert lines[3].split() == ["zip_code", "categorical", "7", "0.0%"]
    assert lines[4].split() == ["predicted", "(prediction)", "categorical", "3", "0.0%"]
    assert err == f"wrote {tmp_path / 'p.json'}: 500 rows, 3 features\n"


def test_cli_json_summary_and_default_output_file(tmp_path: Path) -> None:
    write_data(reference_table(rows=100), tmp_path / "ref.jsonl")
    code, out, err = run_cli(
        "profile", "ref.jsonl", "-m", "m", "-f", "income", "--features", "region", "--prediction", "predicted",
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, err
    assert err == ""
    summary = json.loads(out)
    assert summary["output"] == "profile.json"
    assert summary["rows"] == 100
    assert [f["name"] for f in summary["features"]] == ["income", "region"]
    assert summary["prediction"] == {
        "name": "predicted",
        "kind": "categorical",
        "bins": 3,
        "missing_ratio": 0.0,
    }
    assert summary["mlflow_artifact"] is None
    assert load_profile(tmp_path / "profile.json").feature_names == ("income", "region")


def test_cli_regression_with_custom_bins(tmp_path: Path) -> None:
    data = write_data(reference_table(rows=200), tmp_path / "ref.parquet")
    code, out, err = run_cli(
        "profile", str(data), "-m", "m", "--task", "regression", "--prediction", "confidence", "--bins", "4",
        "--top-k", "2", "-o", str(tmp_path / "p.json"), "--json",
    )  # fmt: skip
    assert code == 0, err
    profile = load_profile(tmp_path / "p.json")
    assert profile.bins == 4
    assert profile.feature("income").edges and len(profile.feature("income").edges) == 3
    assert profile.feature("region").categories == ("north", "south")
    assert profile.prediction is not None and profile.prediction.kind == "numerical"
    assert json.loads(out)["prediction"]["bins"] == 4


@pytest.mark.parametrize(
    ("make", "args", "fragments"),
    [
        ("missing", [], ["data file", "nope.csv not found"]),
        ("txt", [], ["unknown file type '.txt'"]),
        ("empty", [], ["the file is empty"]),
        ("header", [], ["has no rows"]),
        ("ok", ["--feature", "salary"], ["has no column 'salary'"]),
        ("ok", ["--target", "truth"], ["unknown target column 'truth'"]),
        ("ok", ["--prediction", "guess"], ["unknown prediction column 'guess'"]),
        ("ok", ["--feature", "income", "--target", "truth"], ["has no column 'truth'"]),
        ("ok", ["--categorical", "colour"], ["a type is given for 'colour', which is not a feature"]),
        ("nulls", [], ["column 'blank' has no values"]),
    ],
)
def test_cli_bad_input_is_one_plain_error(
    tmp_path: Path, make: str, args: list[str], fragments: list[str]
) -> None:
    data = {
        "missing": tmp_path / "nope.csv",
        "txt": tmp_path / "data.txt",
        "empty": tmp_path / "empty.csv",
        "header": tmp_path / "header.csv",
        "ok": tmp_path / "ok.csv",
        "nulls": tmp_path / "nulls.csv",
    }[make]
    contents = {
        "txt": "a\n1\n",
        "empty": "",
        "header": "a,b\n",
        "ok": "income,region\n1,x\n",
        "nulls": "a,blank\n1,\n",
    }
    if make in contents:
        data.write_text(contents[make])
    code, out, err = run_cli("profile", str(data), "-m", "m", "-o", str(tmp_path / "p.json"), *args)
    assert_user_error(code, err, *fragments)
    assert out == ""
    assert not (tmp_path / "p.json").exists()


def test_cli_unwritable_output_is_one_plain_error(tmp_path: Path) -> None:
    data = write_data(reference_table(rows=10), tmp_path / "ref.csv")
    (tmp_path / "taken").mkdir()
    code, _, err = run_cli("profile", str(data), "-m", "m", "-o", str(tmp_path / "taken"))
    assert_user_error(code, err, f"cannot write {tmp_path / 'taken'}: Is a directory")


@pytest.mark.parametrize(
    "args",
    [
        ["--bins", "1"],
        ["--bins", "101"],
        ["--top-k", "0"],
        ["--task", "ranking"],
        ["--bins", "ten"],
    ],
)
def test_cli_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    data = write_data(reference_table(rows=10), tmp_path / "ref.csv")
    code, _, err = run_cli("profile", str(data), "-m", "m", *args)
    assert code == 2, err
    assert "Traceback" not in err


def test_cli_requires_a_model(tmp_path: Path) -> None:
    data = write_data(reference_table(rows=10), tmp_path / "ref.csv")
    code, _, err = run_cli("profile", str(data))
    assert code == 2
    assert "--model" in err


def test_cli_does_not_import_heavy_libraries_at_start_up() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mlmon.cli; print(sorted(m for m in ('numpy', 'pyarrow', 'mlflow') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- MLflow -----------------------------------------------------------------------------------------


def test_log_to_mlflow_then_load_by_alias_version_and_run(
    tmp_path: Path, mlflow_store: tuple[str, str]
) -> None:
    uri = mlflow_store[0]
    run_id = new_run(mlflow_store)
    data = write_data(reference_table(rows=300), tmp_path / "ref.csv")
    out = tmp_path / "credit-profile.json"  # any local name: the artifact is always mlmon/profile.json
    code, stdout, err = run_cli(
        "profile", str(data), "-m", "credit", "--target", "label", "--prediction", "predicted", "-o", str(out),
        "--log-to-mlflow", run_id, "--mlflow-uri", uri, "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["mlflow_artifact"] == f"runs:/{run_id}/{PROFILE_ARTIFACT_PATH}"
    code, _, err = run_cli(
        "profile", str(data), "-m", "credit", "--target", "label", "--prediction", "predicted", "-o", str(out),
        "--log-to-mlflow", run_id, "--mlflow-uri", uri,
    )  # fmt: skip
    assert code == 0, err
    assert err.splitlines()[-1] == f"logged to MLflow as runs:/{run_id}/{PROFILE_ARTIFACT_PATH}"

    from mlflow import MlflowClient

    downloaded = MlflowClient(uri).download_artifacts(run_id, PROFILE_ARTIFACT_PATH, str(tmp_path))
    assert Path(downloaded).read_text() == out.read_text()

    version = register(mlflow_store, "credit-model", run_id, "champion")
    expected = load_profile(out)
    for profile_uri in (
        "models:/credit-model@champion",
        f"models:/credit-model/{version}",
        f"runs:/{run_id}",
        f"runs:/{run_id}/{PROFILE_ARTIFACT_PATH}",
    ):
        assert load_profile_from_mlflow(profile_uri, uri) == expected, profile_uri

    # A service hands the model URI straight to its monitor.
    from prometheus_client import CollectorRegistry

    from mlmon.instrument import ModelMonitor

    monitor = ModelMonitor(
        "credit-model",
        version,
        "models:/credit-model@champion",
        registry=CollectorRegistry(),
        tracking_uri=uri,
    )
    assert monitor.profile == expected


def test_log_to_unknown_run_is_a_plain_error(tmp_path: Path, mlflow_store: tuple[str, str]) -> None:
    data = write_data(reference_table(rows=20), tmp_path / "ref.csv")
    code, _, err = run_cli(
        "profile", str(data), "-m", "m", "-o", str(tmp_path / "p.json"), "--log-to-mlflow", "no-such-run",
        "--mlflow-uri", mlflow_store[0],
    )  # fmt: skip
    assert_user_error(code, err, "MLflow run 'no-such-run' not found in MLflow at sqlite:///")
    # The run is checked before anything is written: a mistyped run id leaves no file to wonder about.
    assert "wrote" not in err
    assert not (tmp_path / "p.json").exists()


def test_dead_tracking_server_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in MLFLOW_HTTP_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    data = write_data(reference_table(rows=20), tmp_path / "ref.csv")
    started = time.monotonic()
    code, _, err = run_cli(
        "profile", str(data), "-m", "m", "-o", str(tmp_path / "p.json"), "--log-to-mlflow", "abc",
        "--mlflow-uri", f"http://user:s3cret@127.0.0.1:{free_port()}",
    )  # fmt: skip
    # MLflow's own defaults retry for minutes; mlmon's give up at once on a refused connection.
    assert time.monotonic() - started < 30
    assert_user_error(code, err, "cannot connect (Connection refused)", "http://user:***@127.0.0.1:")
    assert "s3cret" not in err
    # The run is looked up over mlmon's own REST client; MLflow's, where it is used, gets the short defaults.
    from mlmon.backends.mlflow.client import mlflow_client

    mlflow_client(f"http://127.0.0.1:{free_port()}")
    assert {name: os.environ[name] for name in MLFLOW_HTTP_DEFAULTS} == MLFLOW_HTTP_DEFAULTS


def test_load_errors_name_what_is_missing(mlflow_store: tuple[str, str]) -> None:
    uri = mlflow_store[0]
    bare_run = new_run(mlflow_store)
    register(mlflow_store, "bare-model", bare_run, "staging")
    cases = {
        "models:/bare-model@champion": "alias 'champion' of registered model 'bare-model' not found",
        "models:/no-model/1": "version 1 of registered model 'no-model' not found",
        "runs:/no-such-run": "MLflow run 'no-such-run' not found",
        "models:/bare-model@staging": f"artifact 'mlmon/profile.json' of MLflow run '{bare_run}' not found",
    }
    for profile_uri, message in cases.items():
        with pytest.raises(BackendError) as caught:
            load_profile_from_mlflow(profile_uri, uri)
        assert caught.value.message.startswith(message), caught.value.message
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    client.create_registered_model("runless-model")
    client.create_model_version("runless-model", source="file:///nowhere/model")
    with pytest.raises(BackendError, match="model version runless-model/1 has no source run"):
        load_profile_from_mlflow("models:/runless-model/1", uri)
    with pytest.raises(ProfileError, match=r"cannot load a profile from 's3://bucket/profile\.json'"):
        load_profile_from_mlflow("s3://bucket/profile.json", uri)


def test_an_artifact_that_is_not_a_profile(tmp_path: Path, mlflow_store: tuple[str, str]) -> None:
    from mlflow import MlflowClient

    run_id = new_run(mlflow_store)
    junk = tmp_path / "profile.json"
    junk.write_text('{"schema_version": 99}')
    MlflowClient(mlflow_store[0]).log_artifact(run_id, str(junk), artifact_path="mlmon")
    with pytest.raises(ProfileError, match=r"runs:/.* is not a valid mlmon profile: schema_version 99"):
        load_profile_from_mlflow(f"runs:/{run_id}", mlflow_store[0])


def test_log_profile_to_mlflow_as_a_library_call(mlflow_store: tuple[str, str]) -> None:
    run_id = new_run(mlflow_store)
    profile = build_profile({"x": np.arange(10.0)}, "lib")
    assert log_profile_to_mlflow(profile, run_id, mlflow_store[0]) == f"runs:/{run_id}/mlmon/profile.json"
    assert load_profile_from_mlflow(f"runs:/{run_id}", mlflow_store[0]) == profile


def test_no_command_creates_the_store_it_was_asked_to_read(tmp_path: Path) -> None:
    """A mistyped sqlite path used to leave an empty MLflow database behind and read as an empty store."""
    data = tmp_path / "data.csv"
    data.write_text("x\n1\n2\n3\n")
    typo = tmp_path / "mlfow.db"
    uri = f"sqlite:///{typo}"
    commands = [
        ["compare-runs", "--model", "churn-model", "--mlflow-uri", uri],
        ["drift", "models:/churn-model@champion", str(data), "--mlflow-uri", uri],
        ["profile", str(data), "--model", "m", "-o", str(tmp_path / "p.json"), "--log-to-mlflow", "0" * 32],
    ]
    for command in commands:
        code, out, err = run_cli(*command, cwd=tmp_path, env={"MLFLOW_TRACKING_URI": uri})
        assert code == 1, (command, out, err)
        assert f"error: no MLflow store at {typo} " in err, (command, err)
        assert "Traceback" not in err and "\nhint: " in err
        assert not typo.exists(), command


def test_profile_logs_to_the_spec_tracking_store_without_a_flag(
    tmp_path: Path, mlflow_store: tuple[str, str]
) -> None:
    """Settings precedence: no --mlflow-uri and no MLFLOW_TRACKING_URI, so ./mlmon.yaml's mlflow.tracking_uri
    (not the default sqlite:///mlflow.db in the working folder, which must not appear)."""
    from mlflow import MlflowClient

    uri = mlflow_store[0]
    run_id = new_run(mlflow_store)
    (tmp_path / "mlmon.yaml").write_text(
        yaml.safe_dump(
            {"mlflow": {"tracking_uri": uri}, "models": [{"name": "m", "targets": ["127.0.0.1:1"]}]}
        )
    )
    data = write_data(reference_table(rows=100), tmp_path / "ref.csv")
    code, stdout, err = run_cli(
        "profile", str(data), "-m", "m", "-o", str(tmp_path / "p.json"), "--log-to-mlflow", run_id, "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["mlflow_artifact"] == f"runs:/{run_id}/{PROFILE_ARTIFACT_PATH}"
    assert [a.path for a in MlflowClient(uri).list_artifacts(run_id, "mlmon")] == [PROFILE_ARTIFACT_PATH]
    assert not (tmp_path / "mlflow.db").exists()
