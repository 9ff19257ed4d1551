"""Which columns `mlmon drift` and `mlmon profile` compare: identifiers and timestamps left out and named,
--feature and --exclude, numbers with a few text cells, and strict JSON whatever the values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlmon.data import CategoryColumn
from mlmon.drift.columns import choose_features, not_a_feature, numbers_in_text
from tests.helpers import run_cli

ROWS = 2000


def _prediction_table(path: Path, seed: int, *, text_cells: dict[int, str] | None = None) -> Path:
    """An ordinary prediction table: a request id, an ISO timestamp, epoch seconds, a store id with few
    values, and three features drawn from one distribution whatever the seed."""
    rng = np.random.default_rng(seed)
    amounts = [f"{value:.2f}" for value in rng.normal(100, 10, ROWS)]
    for row, text in (text_cells or {}).items():
        amounts[row] = text
    lines = ["request_id,timestamp,ts,store_id,income,region,amount"]
    for i in range(ROWS):
        lines.append(
            f"req-{seed}-{i},2026-12-0{seed % 9 + 1}T10:{i % 60:02d}:00Z,{1_764_000_000 + 86_400 * seed + i},"
            f"{rng.integers(0, 20)},{rng.normal(50_000, 1_000):.1f},{rng.choice(['n', 's', 'e'])},{amounts[i]}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tables(tmp_path: Path) -> tuple[Path, Path]:
    return _prediction_table(tmp_path / "reference.csv", 1), _prediction_table(tmp_path / "current.csv", 2)


def _drift_json(*args: str) -> dict[str, Any]:
    code, out, err = run_cli("drift", *args, "--json")
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


def test_identifiers_and_timestamps_are_left_out_and_named(tables: tuple[Path, Path]) -> None:
    reference, current = tables
    report = _drift_json(str(reference), str(current))
    assert report["left_out"] == [
        {"name": "request_id", "reason": "an identifier: named like one, most values distinct"},
        {"name": "timestamp", "reason": "timestamps"},
        {"name": "ts", "reason": "timestamps: named like a time, values like epoch seconds"},
    ]
    assert sorted(f["name"] for f in report["features"]) == ["amount", "income", "region", "store_id"]
    assert report["features_drifted"] == 0
    assert report["skipped"] == []

    code, _out, err = run_cli("drift", str(reference), str(current))
    assert code == 0, err
    assert "left out: request_id (an identifier: named like one, most values distinct); timestamp" in err
    assert "name a column with --feature to compare it" in err
    assert "0 of 4 features drifted" in err


def test_feature_names_the_columns_and_exclude_leaves_one_out(tables: tuple[Path, Path]) -> None:
    reference, current = tables
    report = _drift_json(str(reference), str(current), "--feature", "request_id", "--feature", "income")
    assert sorted(f["name"] for f in report["features"]) == ["income", "request_id"]
    request_id = next(f for f in report["features"] if f["name"] == "request_id")
    assert len(request_id["new_categories"]) == ROWS  # every id is new
    assert report["left_out"] == []

    report = _drift_json(str(reference), str(current), "--exclude", "region")
    assert {"name": "region", "reason": "--exclude"} in report["left_out"]
    assert "region" not in [f["name"] for f in report["features"]]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--exclude", "regoin"], "error: --exclude 'regoin': no such column in either side"),
        (["--feature", "incme"], "error: --feature 'incme': no such column in the reference data"),
        (["--feature", "income", "--exclude", "income"], "'income' named by both --feature and --exclude"),
    ],
)
def test_a_column_that_is_not_there_is_named(tables: tuple[Path, Path], args: list[str], said: str) -> None:
    reference, current = tables
    code, _out, err = run_cli("drift", str(reference), str(current), *args)
    assert code == 1
    assert said in err
    assert "hint:" in err
    assert "Traceback" not in err


def test_numbers_with_a_few_text_cells_are_compared_as_numbers_and_the_cells_named(tmp_path: Path) -> None:
    reference = _prediction_table(tmp_path / "reference.csv", 1, text_cells={5: "unknown", 9: "?"})
    current = _prediction_table(tmp_path / "current.csv", 2, text_cells={1: "unknown", 2: "unknown"})
    report = _drift_json(str(reference), str(current))
    amount = next(f for f in report["features"] if f["name"] == "amount")
    assert amount["type"] == "numerical"
    assert amount["drift"] is False
    assert amount["text_cells"] == {"reference": {"?": 1, "unknown": 1}, "current": {"unknown": 2}}
    assert amount["text_cell_count"] == 4
    assert amount["missing_ratio_current"] == pytest.approx(2 / ROWS)
    assert amount["new_categories"] == []

    code, _, err = run_cli("drift", str(reference), str(current))
    assert code == 0
    assert (
        "warning: amount: 4 cells are not a number and counted as missing "
        "(reference: '?' x1, 'unknown' x1; current: 'unknown' x2)" in err
    )

    # Declared categorical, the column is compared as text, as before.
    report = _drift_json(str(reference), str(current), "--categorical", "amount")
    amount = next(f for f in report["features"] if f["name"] == "amount")
    assert amount["type"] == "categorical"
    assert amount["text_cell_count"] == 0


def test_text_that_is_mostly_text_stays_categorical() -> None:
    texts = ["1", "2", "other", "none", *["3"] * 16]
    assert numbers_in_text(CategoryColumn.from_texts(texts)) is None  # 10% text
    found = numbers_in_text(CategoryColumn.from_texts(["1.5", None, "x", *["2"] * 30]))
    assert found is not None
    assert found.text_cells == {"x": 1}
    assert np.isnan(found.values[1]) and np.isnan(found.values[2]) and found.values[0] == 1.5
    assert numbers_in_text(CategoryColumn.from_texts(["a", "b"])) is None


@pytest.mark.parametrize(
    ("name", "values", "reason"),
    [
        ("user_id", [f"u{i}" for i in range(50)], "an identifier: named like one, most values distinct"),
        ("orderID", list(range(50)), "an identifier: named like one, most values distinct"),
        ("", list(range(50)), "an identifier: named like one, most values distinct"),  # pandas' index
        ("comment", [f"text {i}" for i in range(50)], "an identifier: every value distinct"),
        (
            "created_at",
            [1.7e9 + i for i in range(50)],
            "timestamps: named like a time, values like epoch seconds",
        ),
        ("day", ["2026-12-07"] * 50, "timestamps"),
        ("seen", ["2026-12-07 10:00:00.123+01:00"] * 50, "timestamps"),
        # Features, whatever they look like:
        ("store_id", [i % 5 for i in range(50)], None),
        ("paid", list(range(50)), None),
        ("income", [50_000.5 + i for i in range(50)], None),
        ("response_time", [0.2 + i for i in range(50)], None),
        ("ts", [0.5, 1.5, 2.5], None),  # not epoch-like
        ("colour", ["red", "blue"] * 25, None),
        ("code", [f"c{i}" for i in range(10)], None),  # every value distinct, but too few rows to say
    ],
)
def test_what_is_not_a_feature(name: str, values: list[Any], reason: str | None) -> None:
    column = CategoryColumn.from_texts(values) if isinstance(values[0], str) else np.asarray(values)
    assert not_a_feature(name, column) == reason


def test_choose_features_keeps_the_order_and_never_guesses_named_columns() -> None:
    columns = {"b": np.arange(50.0), "id": np.arange(50), "a": np.arange(50.0)}
    assert choose_features(columns) == (["b", "a"], [_left_out("id")])
    assert choose_features(columns, include=["id"]) == (["id"], [])
    assert choose_features(columns, reserved=["a"]) == (["b"], [_left_out("id")])


def _left_out(name: str) -> Any:
    from mlmon.drift.columns import LeftOut

    return LeftOut(name, "an identifier: named like one, most values distinct")


def test_profile_leaves_identifiers_and_timestamps_out(tmp_path: Path) -> None:
    data = _prediction_table(tmp_path / "reference.csv", 1, text_cells={3: "n/a?"})
    code, out, err = run_cli("profile", str(data), "-m", "m", "-o", str(tmp_path / "p.json"), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert [f["name"] for f in summary["features"]] == ["amount", "income", "region", "store_id"]
    assert [c["name"] for c in summary["left_out"]] == ["request_id", "timestamp", "ts"]
    assert summary["text_cells"] == {"amount": {"n/a?": 1}}
    assert next(f for f in summary["features"] if f["name"] == "amount")["kind"] == "numerical"

    code, _, err = run_cli("profile", str(data), "-m", "m", "-o", str(tmp_path / "p.json"))
    assert code == 0, err
    assert (
        "warning: amount: 1 cell is not a number and counted as missing ('n/a?' x1); --categorical amount "
        "profiles the column as text" in err
    )
    assert "left out: request_id (an identifier: named like one, most values distinct); timestamp" in err

    code, out, err = run_cli(
        "profile", str(data), "-m", "m", "-o", str(tmp_path / "p.json"), "--json", "--feature", "ts"
    )
    assert code == 0, err
    assert [f["name"] for f in json.loads(out)["features"]] == ["ts"]


# -- strict JSON whatever the values --------------------------------------------------------------------------

numbers = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.integers(-(10**6), 10**6).map(float)
cells = st.one_of(st.none(), st.text(max_size=8), st.sampled_from(["1e308", "-1e308", "nan", "inf", "1"]))


def _not_json(token: str) -> None:
    raise AssertionError(f"{token} is not JSON")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    reference=st.lists(st.tuples(numbers, cells), min_size=1, max_size=40),
    current=st.lists(st.tuples(numbers, cells), min_size=1, max_size=40),
)
def test_drift_json_is_always_strict_json(
    tmp_path: Path, reference: list[tuple[float, str | None]], current: list[tuple[float, str | None]]
) -> None:
    paths = []
    for side, rows in (("reference", reference), ("current", current)):
        path = tmp_path / f"{side}.parquet"
        x, text = zip(*rows, strict=True)
        pq.write_table(pa.table({"x": pa.array(x, pa.float64()), "t": pa.array(text, pa.string())}), path)
        paths.append(str(path))
    code, out, err = run_cli("drift", *paths, "--json")
    assert code in (0, 1), err
    if code == 1:
        assert out == "" and err.startswith("error: ")
        return
    report = json.loads(out, parse_constant=_not_json)
    for feature in report["features"]:
        assert isinstance(feature["drift"], bool)
        if feature["statistic"] is None:  # an infinite distance (written as null) is drift, never "ok"
            assert feature["drift"] is True, feature
