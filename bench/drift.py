"""Compute time and peak memory of `mlmon drift` on 1,000,000 against 1,000,000 rows, 20 numerical and 5
categorical features, side by side with a plain scipy baseline (ks_2samp + wasserstein_distance per numerical
feature, chisquare per categorical one). The columns are built in memory: the file read is not timed.

    python bench/drift.py              # prints a Markdown table for the README
    python bench/drift.py --rows 200000 --shifted 5
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections import Counter
from typing import Any

import numpy as np


def make_columns(rows: int, shifted: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Normal numerical features (the first ``shifted`` moved by 0.2 sigma) and 8-category text features."""
    rng = np.random.default_rng(seed)
    reference: dict[str, Any] = {}
    current: dict[str, Any] = {}
    for i in range(20):
        reference[f"num{i}"] = rng.normal(size=rows)
        current[f"num{i}"] = rng.normal(size=rows) + (0.2 if i < shifted else 0.0)
    labels = np.array([f"category_{k}" for k in range(8)], dtype=object)
    for i in range(5):
        reference[f"cat{i}"] = labels[rng.integers(0, 8, size=rows)]
        current[f"cat{i}"] = labels[rng.integers(0, 8, size=rows)]
    return reference, current


def run_mlmon(reference: dict[str, Any], current: dict[str, Any]) -> Any:
    from mlmon.drift.report import drift_report

    return drift_report(reference, current)


def run_scipy(reference: dict[str, Any], current: dict[str, Any]) -> None:
    from scipy import stats

    for name, values in reference.items():
        if values.dtype.kind == "f":
            stats.ks_2samp(values, current[name])
            stats.wasserstein_distance(values, current[name])
        else:
            ref, cur = Counter(values.tolist()), Counter(current[name].tolist())
            keys = sorted(ref)
            expected = np.array([ref[k] for k in keys], dtype=float)
            observed = np.array([cur.get(k, 0) for k in keys], dtype=float)
            stats.chisquare(observed, expected / expected.sum() * observed.sum())


def measure(function: Any, *args: Any) -> tuple[float, float]:
    """Seconds and tracemalloc peak (GB) of one call; the timed run is separate from the traced one, since
    tracing slows allocation-heavy code."""
    start = time.perf_counter()
    function(*args)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    function(*args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shifted", type=int, default=0, help="numerical features with a 0.2-sigma shift")
    parser.add_argument("--skip-scipy", action="store_true")
    options = parser.parse_args()
    reference, current = make_columns(options.rows, options.shifted, seed=0)
    run_mlmon(reference, current)  # warm-up: imports, scipy's lazy modules
    results = {"mlmon": measure(run_mlmon, reference, current)}
    if not options.skip_scipy:
        results["scipy baseline"] = measure(run_scipy, reference, current)
    print(
        f"{options.rows:,} vs {options.rows:,} rows, 20 numerical ({options.shifted} shifted) + 5 categorical"
    )
    print("| tool | compute (s) | peak extra memory (GB) | vs mlmon |")
    print("|---|---|---|---|")
    base = results["mlmon"][0]
    for tool, (seconds, peak) in results.items():
        print(f"| {tool} | {seconds:.2f} | {peak:.2f} | {seconds / base:.1f}x |")


if __name__ == "__main__":
    main()
