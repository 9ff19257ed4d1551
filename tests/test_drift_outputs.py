"""`mlmon drift --html` and `--log-to-mlflow`: the HTML report in a real headless Chromium, the metrics and
artifacts in a real local MLflow store."""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import numpy as np

from mlmon.data import CategoryColumn
from mlmon.drift.html import render_html
from mlmon.drift.mlflow_report import drift_metrics, metric_name
from mlmon.drift.report import drift_report
from tests.helpers import HOSTILE_NAMES, new_run, require_tool, run_cli

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]
# Chromium logs each console message of the page, a Content-Security-Policy violation included, like this.
CONSOLE_LINE = re.compile(r":CONSOLE[:(]")


def _write_csv(path: Path, columns: dict[str, list[object]]) -> Path:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    pacsv.write_csv(pa.table(columns), path)
    return path


def _sides(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(11)
    regions = np.array(["north", "south", "<b>east</b>", 'we"st'], dtype=object)
    reference = _write_csv(
        tmp_path / "reference.csv",
        {
            "income": rng.normal(50_000, 10_000, 2_000).round(2).tolist(),
            "age": rng.integers(18, 80, 2_000).tolist(),
            "region": regions[rng.integers(0, 4, 2_000)].tolist(),
        },
    )
    current = _write_csv(
        tmp_path / "current.csv",
        {
            "income": rng.normal(56_000, 10_000, 1_500).round(2).tolist(),
            "age": rng.integers(18, 80, 1_500).tolist(),
            "region": [*regions[rng.integers(0, 3, 1_400)].tolist(), *["<script>alert(1)</script>"] * 100],
        },
    )
    return reference, current


def _hostile_report() -> tuple[object, list[str]]:
    """A report whose feature names and categories are all the hostile names of the test suite."""
    rng = np.random.default_rng(5)
    names = list(HOSTILE_NAMES)
    reference: dict[str, object] = {name: rng.normal(size=300) for name in names[:6]}
    current: dict[str, object] = {name: rng.normal(size=200) + 0.5 for name in names[:6]}
    for name in names[6:]:
        reference[name] = CategoryColumn.from_texts([names[i % len(names)] for i in range(300)])
        current[name] = CategoryColumn.from_texts([names[(i * 7) % len(names)] + "!" for i in range(200)])
    return drift_report(reference, current), names


def test_html_is_self_contained_and_escapes_every_name() -> None:
    report, names = _hostile_report()
    page = render_html(report, reference='<ref "a">.csv', current="cur & co.parquet")  # type: ignore[arg-type]
    assert "<script" not in page.lower() and "src=" not in page and "href=" not in page
    # The only URL is the SVG namespace, an identifier that is never fetched.
    assert set(re.findall(r"https?://[^\s\"']+", page)) == {"http://www.w3.org/2000/svg"}
    assert "default-src 'none'" in page
    for name in names:
        assert html.escape(name, quote=True) in page
        if any(c in name for c in '<>&"'):
            assert f">{name}<" not in page
    assert "&lt;ref &quot;a&quot;&gt;.csv" in page and "cur &amp; co.parquet" in page
    assert page.count('<svg class="chart"') == len(report.features)  # type: ignore[attr-defined]


def _chromium(page: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """Chromium's DOM of a page after it loaded, and the console lines it logged."""
    binary = require_tool("chromium", "chromium")
    profile = tmp_path / "chromium-profile"
    done = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, [line for line in done.stderr.splitlines() if CONSOLE_LINE.search(line)]


def test_chromium_reports_console_errors_and_blocked_loads(tmp_path: Path) -> None:
    """The console check below would see an error: a script's console.error and a fetch the CSP blocks."""
    probe = tmp_path / "probe.html"
    probe.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><meta http-equiv='Content-Security-Policy' "
        "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
        "<img src='http://127.0.0.1:9/x.png'><script>console.error('mlmon-probe')</script></body></html>"
    )
    _, console = _chromium(probe, tmp_path)
    assert any("mlmon-probe" in line for line in console), console
    assert any("Content Security Policy" in line for line in console), console


def test_html_report_renders_in_chromium_with_a_chart_per_feature(tmp_path: Path) -> None:
    reference, current = _sides(tmp_path)
    page = tmp_path / "out" / "drift.html"
    code, out, err = run_cli("drift", str(reference), str(current), "--html", str(page), "--json")
    assert code == 0, err
    report = json.loads(out)
    dom, console = _chromium(page, tmp_path)
    assert console == []
    assert dom.count('<svg class="chart"') == report["features_compared"] == 3
    # Two bars per bin: reference and current, for every bin of every feature.
    bins = sum(len(f["bins"]) for f in report["features"])
    assert dom.count('<rect class="reference"') == dom.count('<rect class="current"') == bins
    assert "2 of 3 features drifted" in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom and "<script>" not in dom
    assert f"{page.name}" not in out  # --json keeps stdout to the report alone


def test_metric_names_fit_mlflow_and_stay_apart() -> None:
    used: set[str] = set()
    assert metric_name("income", used) == "income"
    assert metric_name('quote"d {{x}}', used) == "quote_d __x__"
    assert metric_name("quote'd {{x}}", used) == "quote_d __x___2"
    assert metric_name("a..b", used) == "a_b"
    assert metric_name("", used) == "_"
    from mlflow.utils.validation import _validate_metric_name

    for name in HOSTILE_NAMES:
        _validate_metric_name(f"drift.{metric_name(name, used)}.psi")


def test_log_to_mlflow_logs_metrics_and_the_report(
    tmp_path: Path,
    mlflow_store: tuple[str, str],
) -> None:
    from mlflow import MlflowClient

    uri = mlflow_store[0]
    run_id = new_run(mlflow_store)
    reference, current = _sides(tmp_path)
    code, out, err = run_cli(
        "drift", str(reference), str(current), "--log-to-mlflow", run_id, "--mlflow-uri", uri, "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    client = MlflowClient(uri)
    logged = client.get_run(run_id).data.metrics
    assert logged["drift.share_drifted"] == report["share_drifted"]
    assert logged["drift.features_compared"] == 3
    for feature in report["features"]:
        name = feature["name"]
        assert logged[f"drift.{name}.psi"] == feature["psi"]
        assert logged[f"drift.{name}.statistic"] == feature["statistic"]
        assert logged[f"drift.{name}.drift"] == (1.0 if feature["drift"] else 0.0)
        assert logged[f"drift.{name}.missing_ratio_current"] == feature["missing_ratio_current"]
    artifacts = {a.path for a in client.list_artifacts(run_id, "mlmon/drift")}
    assert artifacts == {"mlmon/drift/report.html", "mlmon/drift/report.json"}
    folder = Path(client.download_artifacts(run_id, "mlmon/drift", str(tmp_path / "down")))
    assert json.loads((folder / "report.json").read_text()) == report
    assert (folder / "report.html").read_text().count('<svg class="chart"') == 3


def test_drift_metrics_leave_out_missing_p_values() -> None:
    report, _ = _hostile_report()
    metrics = drift_metrics(report)  # type: ignore[arg-type]
    assert not any(key.endswith(".p_value") for key in metrics)  # the default verdicts have none
    assert len(metrics) == 3 + 5 * len(report.features)  # type: ignore[attr-defined]


def test_log_to_an_unknown_run_is_a_clear_error_before_any_work(
    tmp_path: Path,
    mlflow_store: tuple[str, str],
) -> None:
    code, out, err = run_cli(
        "drift",
        str(tmp_path / "never-read.csv"),
        str(tmp_path / "never-read.csv"),
        "--log-to-mlflow",
        "0123456789abcdef",
        "--mlflow-uri",
        mlflow_store[0],
    )
    assert code == 1 and out == ""
    assert err.splitlines()[0].startswith(
        "error: MLflow run '0123456789abcdef' not found in MLflow at sqlite:"
    )
    assert "Traceback" not in err
