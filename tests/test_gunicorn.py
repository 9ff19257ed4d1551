"""gunicorn with two workers and PROMETHEUS_MULTIPROC_DIR, with mlmon's hooks in gunicorn.conf.py, scraped
by a real Prometheus: a worker killed with SIGKILL loses none of its counts, and after promoting version 2
and ``kill -HUP`` to the master, /metrics and Prometheus see exactly one served version once the last old
worker has exited, while the counts version 1 made stay."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from mlmon.demo.model import make_credit_data, reference_profile, rows, train
from tests.servers import free_port, poll, prometheus, running

pytestmark = pytest.mark.slow

CONF = """\
from pathlib import Path

from mlmon.instrument.gunicorn import child_exit, on_starting  # noqa: F401

bind = "127.0.0.1:{port}"
workers = 2
graceful_timeout = 5
# Read again on every reload: the version the registry's alias points at, as a deploy would write it.
raw_env = ["MLMON_DEMO_VERSION=" + Path({version_file!r}).read_text().strip()]
"""


def _workers(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def _scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _served_versions(port: int) -> set[str]:
    return {labels["version"] for labels, _ in _scrape(port).get("mlmon_model_info", [])}


def _requests_by_version(port: int) -> dict[str, float]:
    counts: dict[str, float] = {}
    for labels, value in _scrape(port).get("mlmon_requests_total", []):
        counts[labels["version"]] = counts.get(labels["version"], 0) + value
    return counts


def _send(port: int, batch: list[dict[str, Any]]) -> None:
    with requests.Session() as session:
        for row in batch:
            body = json.dumps({"features": row})  # NaN for a missing value, as the other tests send it
            answer = session.post(f"http://127.0.0.1:{port}/predict", data=body, timeout=10)
            assert answer.status_code == 200, answer.text


def _prometheus_versions(url: str) -> set[str]:
    answer = requests.get(f"{url}/api/v1/query", params={"query": "mlmon_model_info"}, timeout=5).json()
    return {r["metric"]["version"] for r in answer["data"]["result"]}


def _prometheus_requests(url: str) -> dict[str, float]:
    query = "sum by (version) (mlmon_requests_total)"
    answer = requests.get(f"{url}/api/v1/query", params={"query": query}, timeout=5).json()
    return {r["metric"]["version"]: float(r["value"][1]) for r in answer["data"]["result"]}


def test_worker_kill_and_reload_to_a_new_version(prometheus_binary: str, tmp_path: Path) -> None:
    reference = make_credit_data(2000, seed=3)
    model = train(reference)
    (tmp_path / "model.json").write_text(model.to_json())
    (tmp_path / "profile.json").write_text(reference_profile(model, reference, "bc").to_json())
    version_file = tmp_path / "version"
    version_file.write_text("1")
    port = free_port()
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(CONF.format(port=port, version_file=str(version_file)))
    multiproc = tmp_path / "multiproc"
    # A file an earlier run left behind: on_starting must remove it, or its counts would be added.
    multiproc.mkdir()
    (multiproc / "counter_99999.db").write_bytes(b"stale")
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "MLMON_DEMO_MODEL": str(tmp_path / "model.json"),
        "MLMON_DEMO_PROFILE": str(tmp_path / "profile.json"),
        "MLMON_DEMO_NAME": "bc",
    }
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "bc", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                ],
            }
        )
    )
    traffic = rows(make_credit_data(180, seed=4))
    log = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "-c", str(conf), "mlmon.demo.service:from_environment()"]
    with (
        running(command, log, cwd=tmp_path, env=env) as master,
        prometheus(prometheus_binary, prom_config, tmp_path) as prom,
    ):
        first = poll(
            lambda: _workers(master.pid) if len(_workers(master.pid)) == 2 else None, 60, "2 workers", log
        )
        assert not (multiproc / "counter_99999.db").exists()
        _send(port, traffic[:60])
        assert _requests_by_version(port) == {"1": 60}

        # SIGKILL one worker: gunicorn replaces it; its counts stay in its file, its gauges leave with it.
        killed = min(first)
        os.kill(killed, signal.SIGKILL)
        poll(
            lambda: True if killed not in _workers(master.pid) and len(_workers(master.pid)) == 2 else None,
            60,
            "the killed worker replaced",
            log,
        )
        _send(port, traffic[60:120])
        assert _requests_by_version(port) == {"1": 120}
        assert _served_versions(port) == {"1"}
        assert not list(multiproc.glob(f"gauge_livemax_{killed}.db"))

        # Promote version 2 and reload: new workers serve it, old ones finish and exit.
        old = _workers(master.pid)
        version_file.write_text("2")
        os.kill(master.pid, signal.SIGHUP)
        poll(
            lambda: True if not (_workers(master.pid) & old) and len(_workers(master.pid)) == 2 else None,
            60,
            "the old workers replaced after the reload",
            log,
        )
        # The last old worker has exited: from the next scrape on, one served version.
        assert _served_versions(port) == {"2"}
        _send(port, traffic[120:])
        assert _requests_by_version(port) == {"1": 120, "2": 60}

        # Prometheus sees the same: version 1's info series went stale with the scrape that lost it.
        poll(lambda: True if _prometheus_versions(prom) == {"2"} else None, 30, "Prometheus: version 2 only")
        poll(
            lambda: True if _prometheus_requests(prom) == {"1": 120.0, "2": 60.0} else None,
            30,
            "Prometheus: 120 requests for version 1, 60 for version 2",
        )
