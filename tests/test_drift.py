"""`mlmon drift` and mlmon.drift.report: agreement with scipy and the live PSI, bad input, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from typer.testing import CliRunner

from mlmon.cli import app
from mlmon.drift.build import build_profile
from mlmon.drift.report import drift_report
from mlmon.drift.statistics import psi
from mlmon.drift.two_sample import chi_square, compare_sorted, evidently_zero_fill, sturges_psi

runner = CliRunner(env={"NO_COLOR": "1"})


def _samples(n: int, m: int, shift: float, seed: int = 0, decimals: int | None = None) -> tuple:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=n), rng.normal(size=m) + shift
    if decimals is not None:  # ties, the case searchsorted(side="right") exists for
        x, y = np.round(x, decimals), np.round(y, decimals)
    return x, y


@pytest.mark.parametrize(
    ("n", "m", "decimals"), [(300, 450, None), (500, 700, 1), (20_000, 15_000, None), (30_000, 40_000, 0)]
)
def test_ks_and_wasserstein_equal_scipy(n: int, m: int, decimals: int | None) -> None:
    x, y = _samples(n, m, 0.05, decimals=decimals)
    ours = compare_sorted(np.sort(x), np.sort(y))
    expected = stats.ks_2samp(x, y, method="auto")
    assert ours.ks_statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert ours.ks_p_value == pytest.approx(expected.pvalue, abs=1e-12)
    assert ours.wasserstein == pytest.approx(stats.wasserstein_distance(x, y), abs=1e-12)


def test_large_sample_p_value_is_scipys_asymptotic() -> None:
    x, y = _samples(12_000, 11_000, 0.02)
    ours = compare_sorted(np.sort(x), np.sort(y))
    assert ours.ks_p_value == pytest.approx(stats.ks_2samp(x, y, method="asymp").pvalue, abs=1e-12)


def test_chi_square_and_js_equal_scipy() -> None:
    reference, current = [50, 30, 20, 0], [40, 35, 20, 5]
    statistic, p_value = chi_square(reference, current)
    expected = stats.chi2_contingency(np.array([reference, current])[:, :4], correction=False)
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert p_value == pytest.approx(expected.pvalue, abs=1e-12)
    report = drift_report(
        {"c": np.array(["a"] * 50 + ["b"] * 30 + ["d"] * 20, dtype=object)},
        {"c": np.array(["a"] * 40 + ["b"] * 35 + ["d"] * 20 + ["new"] * 5, dtype=object)},
    )
    feature = report.features[0]
    assert feature.jensenshannon == pytest.approx(jensenshannon([50, 30, 20, 0], [40, 35, 20, 5]), abs=1e-12)
    assert feature.chisquare_statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert feature.new_categories == ("new",)
    assert feature.method == "evidence"  # the default verdict; JS and chi-square are reported beside it


def test_quantile_psi_equals_live_psi_over_bin_of() -> None:
    x, y = _samples(5_000, 4_000, 0.3, seed=3)
    y[:100] = np.nan
    report = drift_report({"f": x}, {"f": y})
    profile = build_profile({"f": x}, "m").feature("f")
    counts = np.zeros(len(profile.bin_labels))
    for value in y.tolist():
        index = profile.bin_of(value)
        if index is not None:
            counts[index] += 1
    live = psi((counts / counts.sum()).tolist(), list(profile.reference_ratios))
    feature = report.features[0]
    assert feature.psi == pytest.approx(live, abs=1e-15)
    assert feature.reference_shares == pytest.approx(profile.reference_ratios, abs=0)
    assert feature.missing_ratio_current == 100 / 4_000
    # The evidence, the default verdict: a 0.3-sigma shift over 4,000 and 5,000 rows is drift.
    assert feature.method == "evidence" and feature.drift and feature.statistic > 10
    assert feature.wasserstein_normed == pytest.approx(
        stats.wasserstein_distance(x, y[100:]) / np.std(x), abs=1e-12
    )


def test_sturges_psi_matches_evidently_formula() -> None:
    x, y = _samples(2_000, 1_500, 0.5, seed=5)
    value, _, _, _ = sturges_psi(x, y)
    # Independently: Sturges bins over both, shares, Evidently's fill (min-nonzero/1e6 or 1e-4), then PSI.
    both = np.concatenate([x, y])
    bins_count = int(np.ceil(np.log2(both.size)) + 1)
    edges = np.linspace(both.min(), both.max(), bins_count + 1)
    ref = np.histogram(x, edges)[0] / x.size
    cur = np.histogram(y, edges)[0] / y.size

    def fill(s: np.ndarray) -> np.ndarray:
        low = s[s > 0].min()
        return np.where(s == 0, low / 1e6 if low <= 1e-4 else 1e-4, s)

    expected = float(np.sum((fill(cur) - fill(ref)) * np.log(fill(cur) / fill(ref))))
    assert value == pytest.approx(expected, rel=1e-12)
    assert evidently_zero_fill(np.array([0.5, 0.5, 0.0])).tolist() == [0.5, 0.5, 1e-4]
    assert evidently_zero_fill(np.array([0.99995, 0.00005, 0.0]))[2] == pytest.approx(5e-11)


def test_bad_columns_are_skipped_with_reasons() -> None:
    report = drift_report(
        {
            "ok": np.arange(100.0),
            "only_ref": np.arange(100.0),
            "all_null": np.full(100, np.nan),
            "text": np.arange(100.0),
        },
        {
            "ok": np.arange(100.0),
            "only_cur": np.arange(100.0),
            "all_null": np.arange(100.0),
            "text": np.array(["x"] * 100, dtype=object),
        },
    )
    assert [f.name for f in report.features] == ["ok"]
    reasons = {s.name: s.reason for s in report.skipped}
    assert reasons["only_ref"] == "only in the reference, not in the current data"
    assert reasons["only_cur"] == "only in the current data, not in the reference"
    assert reasons["all_null"] == "no values in the reference data (every row is missing)"
    assert reasons["text"].startswith("current: column 'text' is numerical but holds 'x'")


def _write_csv(path: Path, columns: dict[str, list]) -> Path:
    names = list(columns)
    lines = [",".join(names)] + [
        ",".join("" if v is None else str(v) for v in row) for row in zip(*columns.values(), strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _files(tmp_path: Path, shift: float) -> tuple[Path, Path]:
    x, y = _samples(400, 300, shift, seed=7)
    colours = ["red", "blue", "green"]
    reference = _write_csv(
        tmp_path / "ref.csv", {"x": x.round(4).tolist(), "colour": [colours[i % 3] for i in range(400)]}
    )
    current = _write_csv(
        tmp_path / "cur.csv", {"x": y.round(4).tolist(), "colour": [colours[i % 2] for i in range(300)]}
    )
    return reference, current


def test_cli_json_keys_and_fail_on_drift(tmp_path: Path) -> None:
    reference, current = _files(tmp_path, 1.0)
    result = runner.invoke(app, ["drift", str(reference), str(current), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["share_drifted"] == 1.0
    keys = {"name", "type", "method", "statistic", "p_value", "psi", "threshold", "drift"}
    keys |= {"missing_ratio_reference", "missing_ratio_current"}
    assert keys <= set(data["features"][0])
    assert {f["name"]: f["method"] for f in data["features"]} == {"x": "evidence", "colour": "evidence"}
    failed = runner.invoke(app, ["drift", str(reference), str(current), "--fail-on-drift"])
    assert failed.exit_code == 3
    assert "DRIFT" in failed.stdout and "ref " in failed.stdout
    assert "error: drift in 2 of 2 features" in failed.stderr


def test_cli_no_drift_exits_0_and_method_override(tmp_path: Path) -> None:
    reference, _ = _files(tmp_path, 0.0)
    result = runner.invoke(
        app, ["drift", str(reference), str(reference), "--fail-on-drift", "--method", "ks", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    by_name = {f["name"]: f for f in data["features"]}
    assert by_name["x"]["method"] == "ks" and by_name["x"]["p_value"] == 1.0
    assert by_name["colour"]["method"] == "evidence"  # ks is not a test for categorical features


def test_cli_profile_reference_reports_ks_unavailable(tmp_path: Path) -> None:
    reference, current = _files(tmp_path, 1.0)
    profile_path = tmp_path / "profile.json"
    made = runner.invoke(app, ["profile", str(reference), "-m", "m", "-o", str(profile_path), "--json"])
    assert made.exit_code == 0, made.output
    result = runner.invoke(app, ["drift", str(profile_path), str(current), "--json"])
    assert result.exit_code == 0, result.output
    x = next(f for f in json.loads(result.stdout)["features"] if f["name"] == "x")
    assert x["method"] == "evidence" and x["drift"] is True
    assert "raw values" in x["unavailable"]["ks"]
    direct = json.loads(runner.invoke(app, ["drift", str(reference), str(current), "--json"]).stdout)
    assert x["psi"] == pytest.approx(
        next(f for f in direct["features"] if f["name"] == "x")["psi"], abs=1e-15
    )


def test_cli_prediction_log_as_current(tmp_path: Path) -> None:
    from mlmon.instrument.prediction_log import PredictionLog

    reference, _ = _files(tmp_path, 0.0)
    with PredictionLog(tmp_path / "logs" / "p.jsonl", model="m", version="1") as log:
        for i in range(200):
            log.log({"x": float(i % 7) + 5.0, "colour": "red", "extra": 1}, 0.5)
    result = runner.invoke(app, ["drift", str(reference), str(tmp_path / "logs"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {f["name"] for f in data["features"]} == {"x", "colour"}
    assert data["skipped"] == [{"name": "extra", "reason": "only in the current data, not in the reference"}]
    assert all(f["drift"] for f in data["features"])


def test_cli_errors_are_one_line_with_hint(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    reference, _ = _files(tmp_path, 0.0)
    result = runner.invoke(app, ["drift", str(reference), str(empty)])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot read ") and "hint: " in result.stderr
    assert "Traceback" not in result.stderr
    missing = runner.invoke(app, ["drift", str(tmp_path / "nope.parquet"), str(reference)])
    assert missing.exit_code == 1
    assert missing.stderr.splitlines()[0] == f"error: data file {tmp_path / 'nope.parquet'} not found"
