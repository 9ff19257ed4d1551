"""The command line: exit codes, stdout versus stderr, and no traceback for a mistake a user can fix."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mlmon.cli import app
from mlmon.render import ALERT_RULES, ALERTMANAGER_CONFIG, ALL_OUTPUTS, CONFLICT_SUFFIX
from mlmon.spec import load_spec
from tests.helpers import CLI_ENV, run_cli

runner = CliRunner()


def test_init_no_input_writes_spec_and_every_file(tmp_path: Path) -> None:
    code, out, err = run_cli(
        "init",
        "--no-input",
        "--model",
        "fraud",
        "--feature",
        "amount",
        "--feature",
        "mcc:categorical",
        cwd=tmp_path,
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "   create  mlmon.yaml"
    assert lines[1:] == [f"   create  monitoring/{path}" for path in ALL_OUTPUTS]
    spec_text = (tmp_path / "mlmon.yaml").read_text()
    assert '- name: "fraud"' in spec_text
    assert '{name: "mcc", type: categorical}' in spec_text

    code, out, _ = run_cli("init", "--no-input", cwd=tmp_path)
    assert code == 0
    assert out.splitlines() == [f"identical  monitoring/{path}" for path in ALL_OUTPUTS]


def test_init_refuses_new_spec_flags_when_spec_exists(tmp_path: Path) -> None:
    run_cli("init", "--no-input", cwd=tmp_path)
    code, _, err = run_cli("init", "--model", "other", cwd=tmp_path)
    assert code == 1
    assert "error: mlmon.yaml exists, so --model would be ignored" in err
    assert "Traceback" not in err


def test_dry_run_and_check_write_nothing(tmp_path: Path) -> None:
    code, out, err = run_cli("init", "--no-input", "--dry-run", cwd=tmp_path)
    assert code == 0
    assert "   create  monitoring/prometheus/prometheus.yml" in out
    assert "dry run: nothing written" in err
    assert list(tmp_path.iterdir()) == []

    code, out, err = run_cli("init", "--no-input", "--check", cwd=tmp_path)
    assert code == 3
    assert "error: the generated files are out of date" in err
    assert list(tmp_path.iterdir()) == []

    run_cli("init", "--no-input", cwd=tmp_path)
    assert run_cli("init", "--check", cwd=tmp_path)[0] == 0


def test_conflict_exits_1_keeps_the_edit_and_force_overwrites(tmp_path: Path) -> None:
    run_cli("init", "--no-input", cwd=tmp_path)
    edited = tmp_path / "monitoring" / ALERTMANAGER_CONFIG
    edited.write_text(edited.read_text() + "# mine\n")
    spec = tmp_path / "mlmon.yaml"
    spec.write_text(spec.read_text().replace("error_ratio: 0.05", "error_ratio: 0.07"))

    code, out, err = run_cli("init", "--dry-run", "--diff", cwd=tmp_path)
    assert code == 0
    assert f"   update  monitoring/{ALERT_RULES}" in out
    assert f" conflict  monitoring/{ALERTMANAGER_CONFIG}" in out
    assert '+          model:mlmon_request_errors:ratio_rate5m{model="my-model"} > 0.07' in out

    code, out, err = run_cli("init", cwd=tmp_path)
    assert code == 1
    assert "were edited since mlmon wrote them" in err
    assert "--force" in err
    assert edited.read_text().endswith("# mine\n")
    assert (tmp_path / "monitoring" / (ALERTMANAGER_CONFIG + CONFLICT_SUFFIX)).exists()
    assert "> 0.07" in (tmp_path / "monitoring" / ALERT_RULES).read_text()

    code, _, _ = run_cli("init", "--force", cwd=tmp_path)
    assert code == 0
    assert not edited.read_text().endswith("# mine\n")


def test_a_hand_merge_in_the_new_copy_is_never_overwritten(tmp_path: Path) -> None:
    run_cli("init", "--no-input", cwd=tmp_path)
    edited = tmp_path / "monitoring" / ALERTMANAGER_CONFIG
    edited.write_text(edited.read_text() + "# mine\n")
    copy = tmp_path / "monitoring" / (ALERTMANAGER_CONFIG + CONFLICT_SUFFIX)
    assert run_cli("init", cwd=tmp_path)[0] == 1
    assert copy.exists()
    assert run_cli("init", cwd=tmp_path)[0] == 1  # mlmon's own untouched copy: rewritten in place
    assert not copy.with_name(copy.name + ".2").exists()
    copy.write_text(copy.read_text() + "# merging\n")  # the hand merge the hint invites
    code, _, err = run_cli("init", cwd=tmp_path)
    assert code == 1
    assert copy.read_text().endswith("# merging\n")
    second = copy.with_name(copy.name + ".2")
    assert second.exists() and f"{ALERTMANAGER_CONFIG}{CONFLICT_SUFFIX} had been edited" in err, err


def test_the_manifest_describes_the_disk_when_a_file_cannot_be_written(tmp_path: Path) -> None:
    run_cli("init", "--no-input", cwd=tmp_path)
    spec = tmp_path / "mlmon.yaml"
    spec.write_text(spec.read_text().replace("error_ratio: 0.05", "error_ratio: 0.07"))
    # The dashboards cannot be written while a plain file stands where their folder goes (root included);
    # the alert rules change and are written.
    grafana = tmp_path / "monitoring" / "grafana"
    shutil.rmtree(grafana)
    grafana.write_text("in the way\n")
    code, _, err = run_cli("init", cwd=tmp_path)
    assert code == 1 and "cannot write" in err and "Traceback" not in err, err
    assert "> 0.07" in (tmp_path / "monitoring" / ALERT_RULES).read_text()
    grafana.unlink()
    # Every other file was written and recorded: the next run, with the threshold back, neither calls the
    # rules edited nor needs --force.
    spec.write_text(spec.read_text().replace("error_ratio: 0.07", "error_ratio: 0.05"))
    code, out, err = run_cli("init", cwd=tmp_path)
    assert code == 0, err
    assert "conflict" not in out + err


def test_an_edit_is_a_conflict_even_when_the_spec_did_not_change(tmp_path: Path) -> None:
    run_cli("init", "--no-input", cwd=tmp_path)
    edited = tmp_path / "monitoring" / ALERT_RULES
    edited.write_text(edited.read_text().replace("for: 5m", "for: 1m"))
    code, out, _ = run_cli("init", cwd=tmp_path)
    assert code == 1
    assert f" conflict  monitoring/{ALERT_RULES}" in out
    assert "for: 1m" in edited.read_text()


def test_credentials_from_the_environment_stay_out_of_every_file(tmp_path: Path) -> None:
    secret_env = {
        "MLFLOW_TRACKING_URI": "postgresql://mlflow:S3cretPW@db.internal:5432/mlflow",
        "MLMON_PROMETHEUS_URL": "https://admin:PromPW@prom.internal:9090",
    }
    code, out, err = run_cli("init", "--no-input", cwd=tmp_path, env=secret_env)
    assert code == 0, err
    assert "left the credentials in --mlflow-uri out of the new spec" in err
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 8
    for path in written:
        text = path.read_text()
        assert "S3cretPW" not in text and "PromPW" not in text, path
    assert (
        'tracking_uri: "postgresql://mlflow@db.internal:5432/mlflow"' in (tmp_path / "mlmon.yaml").read_text()
    )
    assert "S3cretPW" not in out + err


def test_flags_for_a_new_spec_are_refused_when_it_exists(tmp_path: Path) -> None:
    run_cli("init", "--no-input", cwd=tmp_path)
    code, _, err = run_cli(
        "init", "--prometheus-url", "http://10.0.0.1:9090", "--task", "regression", cwd=tmp_path
    )
    assert code == 1
    assert "error: mlmon.yaml exists, so --task, --prometheus-url would be ignored" in err


def test_write_failures_are_plain_errors(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    code, _, err = run_cli("init", "--no-input", "--out", "blocker/monitoring", cwd=tmp_path)
    assert code == 1
    assert err.startswith("error: cannot write blocker/monitoring/")
    assert "Traceback" not in err
    code, _, err = run_cli("render-alerts", "--output", "mlmon.yaml", cwd=tmp_path)
    assert code == 1
    assert "error: mlmon.yaml exists" in err


def test_json_plan(tmp_path: Path) -> None:
    code, out, _ = run_cli("init", "--no-input", "--json", cwd=tmp_path)
    assert code == 0
    plan = json.loads(out)
    assert plan["dry_run"] is False
    assert plan["changes"][0] == {"path": "mlmon.yaml", "action": "create"}
    assert len(plan["changes"]) == 1 + len(ALL_OUTPUTS)


def test_spec_error_is_one_message_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "mlmon.yaml").write_text(
        "models:\n  - name: m\n    targets: [h:1]\n    thresholds: {psi_warnng: 1}\n"
    )
    code, out, err = run_cli("render-alerts", cwd=tmp_path)
    assert code == 1
    assert out == ""
    assert err == (
        "error: mlmon.yaml:4: models[0].thresholds.psi_warnng: unknown key 'psi_warnng'\n"
        "hint: did you mean 'psi_warning'?\n"
    )


def test_render_alerts_to_stdout_and_file(tmp_path: Path) -> None:
    run_cli("init", "--no-input", cwd=tmp_path)
    code, out, _ = run_cli("render-alerts", "--output", "-", cwd=tmp_path)
    assert code == 0
    assert out == (tmp_path / "monitoring" / ALERT_RULES).read_text()
    code, _, _ = run_cli("render-alerts", "--output", "rec.yml", "--kind", "recording", cwd=tmp_path)
    assert code == 0
    assert (tmp_path / "rec.yml").read_text().startswith("# Generated by mlmon")


def test_render_alerts_updates_only_rule_files(tmp_path: Path) -> None:
    run_cli("init", "--no-input", cwd=tmp_path)
    spec = tmp_path / "mlmon.yaml"
    spec.write_text(spec.read_text().replace("psi_critical: 0.2 ", "psi_critical: 0.4 "))
    code, out, _ = run_cli("render-alerts", cwd=tmp_path)
    assert code == 0
    assert out.splitlines() == [
        "identical  monitoring/prometheus/rules/mlmon-recording.yml",
        "   update  monitoring/prometheus/rules/mlmon-alerts.yml",
        "   update  monitoring/prometheus/tests/mlmon-alerts-test.yml",
    ]
    assert run_cli("init", "--check", cwd=tmp_path)[0] == 3, "the dashboard thresholds still wait for init"


def test_usage_error_exits_2(tmp_path: Path) -> None:
    code, _, err = run_cli("init", "--no-such-flag", cwd=tmp_path)
    assert code == 2
    assert "No such option" in err


def test_missing_spec_for_render_alerts(tmp_path: Path) -> None:
    code, _, err = run_cli("render-alerts", cwd=tmp_path)
    assert code == 1
    assert err.startswith("error: mlmon.yaml not found\nhint: run `mlmon init`")


def test_markup_in_names_is_printed_literally(tmp_path: Path) -> None:
    code, out, _ = run_cli("init", "--no-input", "--out", "[bold]x[/red]", "--dry-run", cwd=tmp_path)
    assert code == 0
    assert "create  [bold]x[/red]/prometheus/prometheus.yml" in out


def test_python_dash_m_and_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlmon", "--version"], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0
    assert result.stdout.startswith("mlmon ")


@pytest.mark.parametrize("command", [info.name for info in app.registered_commands])
def test_every_command_is_documented_in_the_readme(command: str) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert f"mlmon {command}" in readme
    code = runner.invoke(app, [command, "--help"], env=CLI_ENV).exit_code
    assert code == 0


def test_init_asks_on_a_terminal_and_writes_the_answers(tmp_path: Path) -> None:
    """On a real terminal (a pty), init asks for what the flags did not say and writes the answers."""
    import os
    import pty
    import select
    import time

    main_fd, child_fd = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlmon", "init", "--model", "fraud"],
        stdin=child_fd,
        stdout=child_fd,
        stderr=child_fd,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    os.close(child_fd)
    answers = [
        ("Project name", "payments"),
        ("host:port", "127.0.0.1:9100, 127.0.0.1:9101"),
        ("Features", "amount, country:categorical"),
    ]
    seen = ""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and process.poll() is None:
            ready, _, _ = select.select([main_fd], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(main_fd, 4096).decode(errors="replace")
                except OSError:  # the child closed the terminal
                    break
            if answers and answers[0][0] in seen:
                os.write(main_fd, (answers.pop(0)[1] + "\n").encode())
        assert process.wait(timeout=30) == 0, seen
    finally:
        if process.poll() is None:
            process.kill()
        os.close(main_fd)
    assert not answers, seen
    assert "Model name" not in seen  # --model answered it
    spec = load_spec(tmp_path / "mlmon.yaml")
    assert spec.project == "payments"
    model = spec.models[0]
    assert model.name == "fraud"
    assert model.targets == ("127.0.0.1:9100", "127.0.0.1:9101")
    assert [(f.name, f.type) for f in model.features] == [("amount", "numerical"), ("country", "categorical")]
    assert (tmp_path / "monitoring" / "prometheus" / "prometheus.yml").exists()


def test_styled_text_colours_cuts_and_strips_terminal_escapes() -> None:
    from mlmon.cli.output import styled_text

    lines = [[("model ", "bold"), ("evil\x1b[2J\nname", ""), ("  CRIT", "bold red")]]
    plain = styled_text(lines, colour=False, width=None)
    assert plain == "model evil [2J name  CRIT\n"
    coloured = styled_text(lines, colour=True, width=None)
    assert coloured == "\x1b[1mmodel \x1b[0mevil [2J name\x1b[1;31m  CRIT\x1b[0m\n"
    assert "\x1b[2J" not in coloured
    assert styled_text(lines, colour=False, width=10) == "model evi…\n"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_json_text_is_the_same_json_as_json_dumps(value: object) -> None:
    from mlmon.cli.output import json_text

    text = json_text(value)
    assert json.loads(text, parse_constant=_not_json) == _nulled(json.loads(json.dumps(value)))


def _not_json(token: str) -> None:
    raise AssertionError(f"{token} is not JSON")


def _nulled(value: object) -> object:
    """What strict JSON can say of a value: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nulled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulled(v) for v in value]
    return value


def test_json_text_puts_each_innermost_object_on_one_line() -> None:
    from mlmon.cli.output import json_text

    report = {"name": "m", "checks": [{"name": "psi", "value": 0.5}, {"name": "é", "tags": []}], "empty": {}}
    assert json_text(report) == (
        "{\n"
        '  "name": "m",\n'
        '  "checks": [\n'
        '    {"name": "psi", "value": 0.5},\n'
        '    {"name": "é", "tags": []}\n'
        "  ],\n"
        '  "empty": {}\n'
        "}"
    )
    assert json_text({1: {"x": [Path("/p")]}, None: [float("nan"), float("-inf"), 1.5]}) == (
        '{\n  "1": {\n    "x": ["/p"]\n  },\n  "null": [null, null, 1.5]\n}'
    )
