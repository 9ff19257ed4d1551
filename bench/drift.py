"""Compute time and peak memory of `mlmon drift` on 1,000,000 against 1,000,000 rows, 20 numerical and 5
categorical features, side by side with a plain scipy baseline (ks_2samp + wasserstein_distance per numerical
feature, chi-square per categorical one) and, when a Python with Evidently is given, Evidently's
DataDriftPreset.

The data is written once to Parquet files. Each measurement runs in a fresh subprocess that imports the tool
and reads the files the way the tool would (neither is timed), then times the computation alone. Memory is the peak resident set size
during the computation minus the resident set size once the data was loaded (the kernel's high-water mark is
reset in between through /proc/self/clear_refs), so numpy's and pyarrow's C allocations count, which
tracemalloc does not see. Tools run interleaved, round after round, and the table shows medians.

    python bench/drift.py                                  # mlmon and scipy, 3 rounds, a Markdown table
    python bench/drift.py --evidently-python /tmp/venv-evidently/bin/python   # one Evidently run
    python bench/drift.py --rows 200000 --shifted 5 --rounds 5

Evidently is heavy and pins its own versions of pandas and numpy: install it in a separate virtual
environment (``python -m venv /tmp/venv-evidently && /tmp/venv-evidently/bin/pip install evidently 'pandas<3'
pyarrow``); this script runs only its own worker function in that interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

NUMERICAL, CATEGORICAL, CATEGORIES = 20, 5, 8
TOOLS = ("mlmon", "scipy baseline", "evidently DataDriftPreset")


# -- data ---------------------------------------------------------------------------------------------------


def write_data(folder: Path, rows: int, shifted: int, seed: int) -> None:
    """Normal numerical features (the first ``shifted`` moved by 0.2 sigma) and 8-category text features."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    labels = np.array([f"category_{k}" for k in range(CATEGORIES)], dtype=object)
    for side in ("reference", "current"):
        columns: dict[str, Any] = {}
        for i in range(NUMERICAL):
            shift = 0.2 if side == "current" and i < shifted else 0.0
            columns[f"num{i}"] = rng.normal(size=rows) + shift
        for i in range(CATEGORICAL):
            columns[f"cat{i}"] = pa.array(labels[rng.integers(0, CATEGORIES, size=rows)], type=pa.string())
        pq.write_table(pa.table(columns), folder / f"{side}.parquet")


# -- the tools, each run in its own process -----------------------------------------------------------------


def load_mlmon(folder: Path) -> tuple[Any, Any]:
    import scipy.stats  # noqa: F401  (imported by the first feature otherwise, and timed with it)

    import mlmon.drift.report  # noqa: F401
    from mlmon.data import read_table

    return tuple(
        read_table(folder / f"{side}.parquet", encode_text=True) for side in ("reference", "current")
    )


def run_mlmon(data: tuple[Any, Any]) -> None:
    from mlmon.drift.report import drift_report

    drift_report(*data)


def load_scipy(folder: Path) -> tuple[Any, Any]:
    import scipy.stats  # noqa: F401

    from mlmon.data import read_table

    return tuple(read_table(folder / f"{side}.parquet") for side in ("reference", "current"))


def run_scipy(data: tuple[Any, Any]) -> None:
    from collections import Counter

    import numpy as np
    from scipy import stats

    reference, current = data
    for name, values in reference.items():
        if values.dtype.kind == "f":
            stats.ks_2samp(values, current[name])
            stats.wasserstein_distance(values, current[name])
        else:
            ref, cur = Counter(values.tolist()), Counter(current[name].tolist())
            keys = sorted(set(ref) | set(cur))
            table = np.array([[ref.get(k, 0) for k in keys], [cur.get(k, 0) for k in keys]], dtype=float)
            stats.chi2_contingency(table, correction=False)


def load_evidently(folder: Path) -> tuple[Any, Any]:
    import evidently.presets  # noqa: F401
    import pandas as pd

    return tuple(pd.read_parquet(folder / f"{side}.parquet") for side in ("reference", "current"))


def run_evidently(data: tuple[Any, Any]) -> None:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference, current = data
    Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)


WORKERS: dict[str, tuple[Callable[[Path], Any], Callable[[Any], None]]] = {
    "mlmon": (load_mlmon, run_mlmon),
    "scipy baseline": (load_scipy, run_scipy),
    "evidently DataDriftPreset": (load_evidently, run_evidently),
}


def _memory_kb() -> dict[str, int]:
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def worker(tool: str, folder: Path) -> None:
    """Load, reset the peak-RSS mark, compute once, print seconds and memory as one JSON line."""
    load, run = WORKERS[tool]
    started = time.perf_counter()
    data = load(folder)
    read_seconds = time.perf_counter() - started
    loaded = _memory_kb()["VmRSS"]
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current RSS
    started, cpu_started = time.perf_counter(), time.process_time()
    run(data)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    peak = _memory_kb()["VmHWM"]
    result = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "extra_gb": (peak - loaded) * 1024 / 1e9,
        "read_seconds": read_seconds,
    }
    print(json.dumps(result))


# -- the driver ---------------------------------------------------------------------------------------------


def measure(python: str, tool: str, folder: Path) -> dict[str, float] | str:
    command = [python, str(Path(__file__).resolve()), "--worker", tool, "--data", str(folder)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit {done.returncode}"
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shifted", type=int, default=0, help="numerical features with a 0.2-sigma shift")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per tool, interleaved")
    parser.add_argument("--skip-scipy", action="store_true")
    parser.add_argument("--evidently-python", help="a Python with evidently installed (its own venv)")
    parser.add_argument(
        "--evidently-rounds", type=int, default=1, help="measurements of Evidently (minutes each; default 1)"
    )
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        worker(options.worker, options.data)
        return

    pythons = {"mlmon": sys.executable}
    if not options.skip_scipy:
        pythons["scipy baseline"] = sys.executable
    if options.evidently_python:
        pythons["evidently DataDriftPreset"] = options.evidently_python
    results: dict[str, list[dict[str, float]]] = {tool: [] for tool in pythons}
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="mlmon-bench-drift-") as name:
        folder = Path(name)
        write_data(folder, options.rows, options.shifted, seed=0)
        for round_number in range(options.rounds):
            for tool, python in pythons.items():
                if tool in failures:
                    continue
                if tool.startswith("evidently") and round_number >= options.evidently_rounds:
                    continue
                outcome = measure(python, tool, folder)
                if isinstance(outcome, str):
                    failures[tool] = outcome
                    continue
                results[tool].append(outcome)
                print(
                    f"round {round_number + 1} {tool}: {outcome['seconds']:.2f} s "
                    f"({outcome['cpu_seconds']:.2f} s CPU), +{outcome['extra_gb']:.2f} GB",
                    file=sys.stderr,
                )
    rows = f"{options.rows:,}"
    print(
        f"{rows} vs {rows} rows, {NUMERICAL} numerical ({options.shifted} shifted) + {CATEGORICAL} categorical; "
        f"median of {options.rounds} interleaved runs ({options.evidently_rounds} for Evidently), "
        f"{os.cpu_count()} CPUs"
    )
    # CPU time (all threads) is steadier than wall time on a machine other work shares.
    print(
        "| tool | compute (s) | CPU (s) | peak memory beyond the loaded data (GB) | time vs mlmon | read (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    base = statistics.median(r["seconds"] for r in results["mlmon"]) if results["mlmon"] else float("nan")
    for tool in TOOLS:
        if tool in failures:
            print(f"| {tool} | failed: {failures[tool]} | | | | |")
        elif results.get(tool):
            seconds = statistics.median(r["seconds"] for r in results[tool])
            cpu = statistics.median(r["cpu_seconds"] for r in results[tool])
            memory = statistics.median(r["extra_gb"] for r in results[tool])
            read = statistics.median(r["read_seconds"] for r in results[tool])
            print(
                f"| {tool} | {seconds:.2f} | {cpu:.2f} | {memory:.2f} | {seconds / base:.1f}x | {read:.2f} |"
            )
        else:
            print(f"| {tool} | not run | | | | |")


if __name__ == "__main__":
    main()
