"""`mlmon demo` for real: a real MLflow sqlite store, real Prometheus and Alertmanager, the real service.

The live run happens once per module; its JSON is checked from several sides. Other tests cover the path
without Prometheus, the workspace safety rules, interruption, and stopping a kept stack by process id.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlmon.demo.processes import PROCESSES_FILE, ProcessGroup, recorded_processes_alive, stop_recorded
from tests.helpers import CLI_ENV, require_tool, run_cli
from tests.servers import poll

SHIFTED = ["debt_ratio", "income"]  # the features make_credit_data(shift=...) moves


def run_demo(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-m", "mlmon", "demo", "--json", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **CLI_ENV, **(env or {})},
        timeout=300,
        check=False,
    )
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout), done.stderr


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def live_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], str]:
    require_tool("prometheus", "prometheus")
    require_tool("prometheus-alertmanager", "prometheus-alertmanager")
    workspace = tmp_path_factory.mktemp("demo") / "workspace"
    return run_demo("--workspace", str(workspace))


def test_live_demo_finds_the_two_shifted_features(live_demo: tuple[int, dict[str, Any], str]) -> None:
    code, summary, err = live_demo
    assert code == 0, err
    assert summary["live"] is True and summary["missing_tools"] == []
    assert summary["drifted_features"] == SHIFTED
    assert summary["drifted_features_source"] == "status"
    assert summary["latency_verdict"] == "OK"
    # The offline report on the drifted data agrees with what Prometheus computed live.
    assert sorted(summary["offline_drift"]["drifted_features"]) == SHIFTED
    assert {f for f, psi in summary["live_psi"].items() if psi > 0.25} == set(SHIFTED)


def test_live_demo_fires_and_routes_the_drift_alert(live_demo: tuple[int, dict[str, Any], str]) -> None:
    _, summary, _ = live_demo
    assert summary["alert_fired"] is True
    critical = {a["feature"] for a in summary["alerts_firing"] if a["name"] == "MlmonFeatureDriftCritical"}
    assert critical == set(SHIFTED)
    delivered = {
        a["feature"]
        for a in summary["alerts_delivered"]
        if a["name"] == "MlmonFeatureDriftCritical" and a["status"] == "firing"
    }
    assert delivered == set(SHIFTED)


def test_live_demo_status_shows_registry_and_verdicts(live_demo: tuple[int, dict[str, Any], str]) -> None:
    _, summary, _ = live_demo
    assert summary["versions"] == {"champion": "1", "challenger": "2"}
    status = summary["status"]
    assert status["schema_version"] == 1 and status["prometheus"]["ok"] and status["mlflow"]["ok"]
    (model,) = status["models"]
    assert model["name"] == "credit-risk" and model["verdict"] == "CRIT"
    registry = model["registry"]
    assert registry["aliases"] == {"champion": "1", "challenger": "2"}
    assert registry["watched_alias"] == "champion" and registry["watched_version"] == "1"
    assert registry["served_versions"] == ["1"] and registry["matches"] is True
    psi = {c["feature"]: c["verdict"] for c in model["checks"] if c["name"] == "feature_psi"}
    assert {f for f, verdict in psi.items() if verdict == "CRIT"} == set(SHIFTED)
    assert {f for f, verdict in psi.items() if verdict == "OK"} == {"age", "region", "employment"}
    by_name = {c["name"]: c for c in model["checks"] if c["feature"] is None}
    assert by_name["targets_up"]["verdict"] == "OK"
    assert 0 < by_name["error_ratio"]["value"] < 0.05  # some requests failed on purpose, under the threshold


def test_live_demo_compares_champion_and_challenger(live_demo: tuple[int, dict[str, Any], str]) -> None:
    _, summary, _ = live_demo
    columns = summary["compare"]["columns"]
    assert [(c["version"], c["aliases"]) for c in columns] == [("1", ["champion"]), ("2", ["challenger"])]
    # Only the rows that differ: the two versions share their learning rate and training data.
    assert {row["name"] for row in summary["compare"]["params"]} == {"steps", "l2"}
    metrics = {row["name"] for row in summary["compare"]["metrics"]}
    assert {"val_auc", "val_logloss", "train_logloss"} <= metrics


def test_live_demo_leaves_mlflow_and_files_a_user_can_reuse(
    live_demo: tuple[int, dict[str, Any], str],
) -> None:
    from mlmon.drift.mlflow_profile import load_profile_from_mlflow
    from mlmon.spec import load_spec

    _, summary, _ = live_demo
    workspace = Path(summary["workspace"])
    profile = load_profile_from_mlflow("models:/credit-risk@champion", summary["tracking_uri"])
    assert set(profile.feature_names) == {"income", "age", "debt_ratio", "region", "employment"}
    spec = load_spec(workspace / "mlmon.yaml")
    service_port = summary["service_url"].rsplit(":", 1)[1]
    assert spec.models[0].targets == (f"127.0.0.1:{service_port}",)
    assert spec.prometheus.url == summary["prometheus_url"]
    config = (workspace / "monitoring" / "prometheus" / "prometheus.yml").read_text()
    assert f'"127.0.0.1:{service_port}"' in config
    assert (workspace / "data" / "drifted.csv").is_file() and (workspace / "data" / "reference.csv").is_file()


def test_live_demo_stops_every_process_it_started(live_demo: tuple[int, dict[str, Any], str]) -> None:
    _, summary, _ = live_demo
    assert summary["kept"] is False
    names = {p["name"] for p in summary["processes"]}
    assert {"service", "prometheus", "alertmanager", "status", "compare-runs"} <= names
    assert [p["name"] for p in summary["processes"] if alive(p["pid"])] == []


def test_without_prometheus_runs_mlflow_scaffolding_and_offline_drift(tmp_path: Path) -> None:
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    code, summary, err = run_demo("--workspace", str(tmp_path / "ws"), env={"PATH": str(empty_path)})
    assert code == 0, err
    assert summary["live"] is False
    assert summary["missing_tools"] == ["prometheus", "alertmanager"]
    assert "apt-get install prometheus prometheus-alertmanager" in summary["install_hint"]
    assert "apt-get install prometheus prometheus-alertmanager" in err
    assert summary["drifted_features"] == SHIFTED and summary["drifted_features_source"] == "offline"
    offline = {f["name"]: f["drift"] for f in summary["offline_drift"]["features"]}
    assert offline == {"income": True, "debt_ratio": True, "age": False, "region": False, "employment": False}
    assert summary["versions"] == {"champion": "1", "challenger": "2"}
    assert [c["aliases"] for c in summary["compare"]["columns"]] == [["champion"], ["challenger"]]
    assert (tmp_path / "ws" / "monitoring" / "prometheus" / "rules" / "mlmon-alerts.yml").is_file()
    assert summary["status"] is None and summary["latency_verdict"] is None
    assert [p["name"] for p in summary["processes"]] == ["compare-runs"]
    assert not alive(summary["processes"][0]["pid"])


def test_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    code, out, err = run_cli("demo", "--workspace", str(tmp_path))
    assert code == 1 and out == ""
    assert "was not made by `mlmon demo`: not touching it" in err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_sigterm_stops_the_processes_it_started(tmp_path: Path) -> None:
    require_tool("prometheus", "prometheus")
    workspace = tmp_path / "ws"
    demo = subprocess.Popen(
        [sys.executable, "-m", "mlmon", "demo", "--json", "--workspace", str(workspace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **CLI_ENV},
    )
    recorded = workspace / PROCESSES_FILE
    try:
        poll(
            lambda: [p for p in recorded_processes_alive(recorded) if p["name"] == "prometheus"] or None,
            120,
            "the demo to start Prometheus",
        )
        started = recorded_processes_alive(recorded)  # Alertmanager too, when it has started
        demo.send_signal(signal.SIGTERM)
        _, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 130
    assert b"interrupted: stopped the processes the demo started" in err
    assert [p["name"] for p in started if alive(p["pid"])] == []


def test_stop_signals_only_processes_that_still_run_the_recorded_command(tmp_path: Path) -> None:
    group = ProcessGroup(tmp_path / "logs")
    sleeper = group.start(
        "sleeper", [sys.executable, "-c", "print('up', flush=True); import time; time.sleep(60)"]
    )
    # Until the child has exec'd, its command line is still the parent's.
    poll(lambda: True if sleeper.log.read_text() == "up\n" else None, 30, "the sleeper to start")
    group.record(tmp_path / PROCESSES_FILE)
    recorded = json.loads((tmp_path / PROCESSES_FILE).read_text())
    # The test's own process id, recorded with another command line: a reused id must not be signalled.
    recorded.append({"name": "impostor", "pid": os.getpid(), "args": ["prometheus"], "url": None, "log": ""})
    (tmp_path / PROCESSES_FILE).write_text(json.dumps(recorded))

    stopped = stop_recorded(tmp_path / PROCESSES_FILE)
    assert [p["name"] for p in stopped] == ["sleeper"]
    sleeper.popen.wait(timeout=10)
    assert sleeper.popen.returncode == -signal.SIGTERM
    code, _, err = run_cli("demo", "--stop", "--workspace", str(tmp_path))
    assert code == 0 and "no demo process is running" in err
