"""What each entry point imports: `mlmon --help` answers without loading the heavy packages the commands use, and a
model service that imports ``mlmon.instrument`` and counts rows loads none of the CLI's packages. Checked in a fresh
interpreter, by ``sys.modules``, so that the promise does not rest on habit."""

from __future__ import annotations

import json
import subprocess
import sys

# What the commands need and `--help` must not pay for (seconds of import between them).
HEAVY = ("mlflow", "sqlalchemy", "alembic", "pyarrow", "scipy", "pandas", "numpy", "jinja2", "requests")
# What the CLI needs and a model service must not pay for.
CLI_ONLY = (
    "mlflow",
    "sqlalchemy",
    "alembic",
    "pyarrow",
    "scipy",
    "pandas",
    "jinja2",
    "typer",
    "rich",
    "requests",
)


def imported_by(code: str, candidates: tuple[str, ...]) -> list[str]:
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {candidates!r} if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    found: list[str] = json.loads(result.stdout.splitlines()[-1])
    return found


def test_help_loads_no_heavy_package() -> None:
    for argv in (["--help"], ["status", "--help"], ["drift", "--help"], ["compare-runs", "--help"]):
        code = (
            "import contextlib, io, sys\n"
            f"sys.argv = ['mlmon', *{argv!r}]\n"
            "from mlmon.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            "        main()\n"
            "    except SystemExit:\n"
            "        pass"
        )
        assert imported_by(code, HEAVY) == [], argv


def test_a_model_service_loads_none_of_the_cli() -> None:
    code = (
        "from prometheus_client import CollectorRegistry\n"
        "from mlmon.drift.profile import FeatureProfile, Profile\n"
        "from mlmon.instrument import ModelMonitor\n"
        "profile = Profile('m', (FeatureProfile('x', 'numerical', (0.5, 0.5), edges=(0.0,), count=10),))\n"
        "monitor = ModelMonitor('m', '1', profile, registry=CollectorRegistry())\n"
        "monitor.observe({'x': 1.0}, latency_seconds=0.01)\n"
        "monitor.record_feedback('a', 'a')"
    )
    assert imported_by(code, CLI_ONLY) == []
