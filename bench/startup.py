"""Start-up time of `mlmon --help` and `mlmon init --no-input`, side by side with the floor under them.

Each command runs as a whole process, as a user runs it, N times after one warm-up run, the cases interleaved;
the table gives the median and the fastest run. The floor: Python alone, and Python importing typer and rich (what any Typer +
rich CLI pays before doing anything). `mlflow --help` is there for scale when the mlflow CLI is installed.

    python bench/startup.py            # prints a Markdown table for the README
    python bench/startup.py --runs 50
    python bench/startup.py --instructions   # one run each under valgrind: instructions, not seconds

Wall time on a shared virtual machine moves by a factor of two or three from hour to hour. Instructions
executed (valgrind's callgrind counts them) do not, so ``--instructions`` compares each command with the floor
in a way that holds whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure_all(cases: list[tuple[str, list[str]]], runs: int, cwd: Path) -> dict[str, list[float]]:
    """Round-robin over the cases, so that a busy moment of the machine slows all of them alike."""
    for _, args in cases:  # warm-up: page cache, Jinja bytecode cache, the manifest of a first init
        subprocess.run(args, cwd=cwd, capture_output=True, check=True)
    times: dict[str, list[float]] = {label: [] for label, _ in cases}
    for _ in range(runs):
        for label, args in cases:
            start = time.perf_counter()
            subprocess.run(args, cwd=cwd, capture_output=True, check=True)
            times[label].append(time.perf_counter() - start)
    return times


def count_instructions(cases: list[tuple[str, list[str]]], cwd: Path) -> dict[str, int]:
    """Instructions each case executes, counted by valgrind's callgrind (after one warm-up run)."""
    counts = {}
    for label, args in cases:
        subprocess.run(args, cwd=cwd, capture_output=True, check=True)
        with tempfile.TemporaryDirectory() as out:
            # Children too (the first-run case goes through sh and rm): every process's count is summed.
            valgrind = [
                "valgrind",
                "--tool=callgrind",
                "--trace-children=yes",
                f"--callgrind-out-file={out}/cg.%p",
            ]
            result = subprocess.run(
                [*valgrind, *args],
                cwd=cwd,
                capture_output=True,
                text=True,
                check=True,
            )
        counts[label] = sum(int(n) for n in re.findall(r"Collected : (\d+)", result.stderr))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--instructions", action="store_true", help="count instructions with valgrind")
    options = parser.parse_args()
    mlmon = shutil.which("mlmon") or str(Path(sys.executable).with_name("mlmon"))
    cases = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("python -c 'import typer, rich.console'", [sys.executable, "-c", "import typer, rich.console"]),
        ("mlmon --help", [mlmon, "--help"]),
        ("mlmon init --no-input (re-run, nothing changed)", [mlmon, "init", "--no-input"]),
        (
            "mlmon init --no-input (first run: writes the spec and renders everything; via sh -c and rm -rf)",
            [
                "sh",
                "-c",
                f'rm -rf fresh && "{mlmon}" init --no-input --spec fresh/mlmon.yaml --out fresh/monitoring',
            ],
        ),
    ]
    mlflow = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    if Path(mlflow).exists():
        cases.append(("mlflow --help", [mlflow, "--help"]))
    if options.instructions:
        cases = [case for case in cases if case[0] != "mlflow --help"]  # minutes under valgrind
        with tempfile.TemporaryDirectory() as folder:
            counts = count_instructions(cases, Path(folder))
        floor = counts["python -c 'import typer, rich.console'"]
        print("| command | million instructions | x typer+rich floor |")
        print("|---|---:|---:|")
        for label, count in counts.items():
            print(f"| `{label}` | {count / 1e6:.0f} | {count / floor:.2f} |")
        return
    with tempfile.TemporaryDirectory() as folder:
        times = measure_all(cases, options.runs, Path(folder))
    print(f"| command ({options.runs} runs each, interleaved) | median ms | fastest ms |")
    print("|---|---:|---:|")
    for label, values in times.items():
        print(f"| `{label}` | {statistics.median(values) * 1000:.0f} | {min(values) * 1000:.0f} |")


if __name__ == "__main__":
    main()
