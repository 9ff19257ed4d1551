"""The drift simulation behind the README's false-alarm and detection figures computes what the generated rules
compute: bench/drift_validate.py backfills a seeded scenario into a real Prometheus, evaluates the recording rules
over it with promtool, and compares z scores, PSI and alert conditions minute by minute."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_simulation_agrees_with_prometheus_on_backfilled_data(
    prometheus_binary: str, promtool: str
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "drift_validate.py"),
            "--hours",
            "3",
            "--rate",
            "10",
            "--prometheus",
            prometheus_binary,
            "--promtool",
            promtool,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "agree"
    # The scenario is not idle: the shifted feature's drift alert and the other's missing-value alert hold.
    assert "x00: " in result.stdout and "0 differ" in result.stdout
    shifted = next(line for line in lines if line.startswith("x00: "))
    missing = next(line for line in lines if line.startswith("x01: "))
    assert "true in 0 (drift)" not in shifted and "and 0 (missing)" not in missing
