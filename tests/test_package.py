"""The wheel carries the templates, and an installed mlmon renders from them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent


def build_wheel(out: Path) -> Path:
    """The wheel of the checkout, built into ``out``."""
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("mlmon-*.whl")
    return wheel


def test_wheel_ships_every_template_and_renders_from_them(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist")
    sources = sorted(p.relative_to(ROOT / "templates").as_posix() for p in (ROOT / "templates").rglob("*.j2"))
    assert sources, "no templates found in the checkout"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for name in sources:
            assert f"mlmon/templates/{name}" in names, name
            assert archive.read(f"mlmon/templates/{name}") == (ROOT / "templates" / name).read_bytes()
        archive.extractall(tmp_path / "site")

    # Rendered from the unpacked wheel, not from the checkout.
    script = (
        "import mlmon.render as r, mlmon.spec as s;"
        "print(r.builtin_templates_dir());"
        "spec = s.spec_from_dict({'models': [{'name': 'm', 'targets': ['127.0.0.1:1']}]});"
        "print(len(r.render_outputs(spec)))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r}); {script}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    templates_dir, count = result.stdout.split()
    assert Path(templates_dir) == tmp_path / "site" / "mlmon" / "templates"
    assert int(count) == 8


def test_the_light_install_serves_a_model_and_the_command_says_what_it_lacks(tmp_path: Path) -> None:
    """`pip install mlmon` into a fresh venv: the instrument counts and exposes metrics, loading a profile
    from MLflow names the extra it needs, and the `mlmon` command names the one it needs, without tracebacks."""
    wheel = build_wheel(tmp_path / "dist")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    python, mlmon = venv / "bin" / "python", venv / "bin" / "mlmon"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    installed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    names = {line.split("==")[0].lower().replace("_", "-") for line in installed.splitlines()}
    assert {"prometheus-client", "numpy", "mlmon"} <= names
    assert not names & {"mlflow-skinny", "typer", "rich", "scipy", "pyarrow", "sqlalchemy", "jinja2"}, names

    service = (
        "from prometheus_client import CollectorRegistry, generate_latest\n"
        "from mlmon.drift.profile import FeatureProfile, Profile\n"
        "from mlmon.errors import MlmonError\n"
        "from mlmon.instrument import ModelMonitor\n"
        "registry = CollectorRegistry()\n"
        "profile = Profile('m', (FeatureProfile('x', 'numerical', (0.5, 0.5), edges=(0.0,), count=10),))\n"
        "ModelMonitor('m', '1', profile, registry=registry).observe({'x': 1.0}, latency_seconds=0.01)\n"
        "print('mlmon_feature_bin_total' in generate_latest(registry).decode())\n"
        "try:\n"
        "    ModelMonitor('m', '1', 'models:/m@champion')\n"
        "except MlmonError as exc:\n"
        "    print(exc.hint)\n"
    )
    result = subprocess.run(
        [str(python), "-c", service], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "True",
        "pip install 'mlmon[mlflow]' (or 'mlmon[cli]' for the command line)",
    ]

    command = subprocess.run([str(mlmon), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert command.returncode == 1 and "Traceback" not in command.stderr
    assert "hint: pip install 'mlmon[cli]'" in command.stderr
