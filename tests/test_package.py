"""The wheel carries the templates, and an installed mlmon renders from them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_wheel_ships_every_template_and_renders_from_them(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("mlmon-*.whl")
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
