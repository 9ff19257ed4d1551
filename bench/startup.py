"""Start-up time of `mlmon --help` and `mlmon init --no-input`, side by side with the floor under them.

Each command runs as a whole process, as a user runs it, N times after one warm-up run; the table gives the
median and the fastest run. The floor: Python alone, and Python importing typer and rich (what any Typer +
rich CLI pays before doing anything). `mlflow --help` is there for scale when the mlflow CLI is installed.

    python bench/startup.py            # prints a Markdown table for the README
    python bench/startup.py --runs 50
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(args: list[str], runs: int, cwd: Path) -> tuple[float, float]:
    subprocess.run(
        args, cwd=cwd, capture_output=True, check=True
    )  # warm-up: page cache, Jinja bytecode cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, cwd=cwd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    options = parser.parse_args()
    mlmon = shutil.which("mlmon") or str(Path(sys.executable).with_name("mlmon"))
    cases = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("python -c 'import typer, rich.console'", [sys.executable, "-c", "import typer, rich.console"]),
        ("mlmon --help", [mlmon, "--help"]),
        ("mlmon init --no-input (re-run, all identical)", [mlmon, "init", "--no-input"]),
    ]
    mlflow = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    if Path(mlflow).exists():
        cases.append(("mlflow --help", [mlflow, "--help"]))
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        print(f"| command ({options.runs} runs) | median ms | fastest ms |")
        print("|---|---:|---:|")
        for label, args in cases:
            median, fastest = measure(args, options.runs, cwd)
            print(f"| `{label}` | {median * 1000:.0f} | {fastest * 1000:.0f} |")


if __name__ == "__main__":
    main()
