"""Window counts through what production does to a service, against a real Prometheus with mlmon's rules:
a replica (FastAPI under uvicorn) restarted mid-window, a rolling deploy (one replica stops, another starts under a new instance
label), and a target whose /metrics answers 500 for more than three scrape intervals. After each, every count
of the window (requests, feature observations, missing values, feedback) equals what the test sent, the PSI,
missing ratio and accuracy equal the offline numbers from the same rows, and the critical drift alert that
fired before the first restart never resolved.

Before a process is stopped the test waits until Prometheus has scraped its last counts: what a process
counted after its last successful scrape is the one thing Prometheus cannot know (see the README's bound).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from mlmon.demo.model import FEATURES, make_credit_data, reference_profile, train
from mlmon.drift.profile import Profile, shares
from mlmon.drift.statistics import psi
from mlmon.render import PROMETHEUS_CONFIG
from mlmon.spec import spec_from_dict
from tests.helpers import render_into
from tests.live_service import Traffic, by_label, is_missing, offline_counts, query, send_traffic
from tests.servers import free_port, poll, prometheus, running

pytestmark = pytest.mark.slow
pytest.importorskip("uvicorn", reason="install the test extra (fastapi, uvicorn)")
pytest.importorskip("fastapi", reason="install the test extra (fastapi, uvicorn)")

MODEL = "credit-risk"
WINDOW = "5m"
TOLERANCE = 1e-9
REPOSITORY = Path(__file__).resolve().parent.parent
DRIFT_ALERT = "MlmonFeatureDriftCritical"


class FlakyMetricsProxy:
    """A scrape target in front of a service's /metrics that can be told to answer 500."""

    def __init__(self, upstream: int) -> None:
        self.failing = False
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if proxy.failing:
                    body, status = b"injected failure\n", 500
                else:
                    try:
                        answer = requests.get(f"http://127.0.0.1:{upstream}{self.path}", timeout=5)
                        body, status = answer.content, answer.status_code
                    except requests.RequestException:  # A is restarting: down, as Prometheus would see it
                        body, status = b"upstream down\n", 503
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    @contextmanager
    def serving(self) -> Iterator[FlakyMetricsProxy]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(timeout=10)


def _firing_since(url: str) -> dict[str, float]:
    """Per feature, when the firing critical drift alert became active (changes if it resolves and refires)."""
    firing = {
        a["metric"]["feature"] for a in query(url, f'ALERTS{{alertname="{DRIFT_ALERT}",alertstate="firing"}}')
    }
    since = by_label(query(url, f'ALERTS_FOR_STATE{{alertname="{DRIFT_ALERT}"}}'), "feature")
    return {feature: since[feature] for feature in firing if feature in since}


def test_counts_and_alerts_survive_restart_deploy_and_failed_scrapes(
    prometheus_binary: str, tmp_path: Path
) -> None:
    reference = make_credit_data(20_000, seed=1)
    model = train(reference)
    profile = reference_profile(model, reference, MODEL)
    (tmp_path / "model.json").write_text(model.to_json())
    (tmp_path / "profile.json").write_text(profile.to_json())
    port_a, port_b, port_c = free_port(), free_port(), free_port()
    proxy = FlakyMetricsProxy(port_a)
    spec = spec_from_dict(
        {
            "prometheus": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "models": [
                {
                    "name": MODEL,
                    # A behind the proxy; C is down until the deploy starts it.
                    "targets": [f"127.0.0.1:{p}" for p in (proxy.port, port_b, port_c)],
                    "features": [{"name": f} for f in FEATURES],
                    "thresholds": {"drift_window": WINDOW, "feedback_window": WINDOW, "drift_for": "2s"},
                }
            ],
        }
    )
    out = render_into(spec, tmp_path / "monitoring")
    wsgi = [sys.executable, "-m", "mlmon.demo.service", "--model", str(tmp_path / "model.json")]
    wsgi += ["--profile", str(tmp_path / "profile.json"), "--name", MODEL, "--version", "1"]
    # A and C are FastAPI under uvicorn, B is the WSGI demo service: both middlewares live through the same
    # restart, deploy and failed scrapes.
    uvicorn = [sys.executable, "-m", "uvicorn", "tests.fastapi_service:app", "--host", "127.0.0.1"]
    uvicorn += ["--no-access-log"]
    uvicorn_env = os.environ | {
        "MLMON_DEMO_MODEL": str(tmp_path / "model.json"),
        "MLMON_DEMO_PROFILE": str(tmp_path / "profile.json"),
        "MLMON_DEMO_NAME": MODEL,
        "MLMON_DEMO_VERSION": "1",
    }

    def start(port: int, name: str) -> ExitStack:
        process = ExitStack()
        if name == "b":
            command, env = [*wsgi, "--port", str(port)], None
        else:
            command, env = [*uvicorn, "--port", str(port)], uvicorn_env
        process.enter_context(running(command, tmp_path / f"{name}.log", cwd=REPOSITORY, env=env))
        poll(
            lambda: True if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok else None,
            30,
            f"{name} ready",
            tmp_path / f"{name}.log",
        )
        return process

    traffic = Traffic()
    batches = iter(range(100))

    def send(ports: list[int], drifted: bool = True, rows: int = 250) -> None:
        batch = next(batches)
        data = make_credit_data(rows, seed=100 + batch, shift=1.5 if drifted else 0.0)
        send_traffic(ports, traffic, data, weight_first=0.5, seed=batch)

    with ExitStack() as stack:
        stack.enter_context(proxy.serving())
        url = stack.enter_context(
            prometheus(prometheus_binary, out / PROMETHEUS_CONFIG, tmp_path / "prometheus")
        )
        replica_a, replica_b = start(port_a, "a"), start(port_b, "b")
        stack.callback(lambda: replica_a.close())
        stack.callback(lambda: replica_b.close())

        def counted_all(what: str) -> None:
            """Wait until the window's request and feedback counts hold everything sent (so every process's
            last counts were scraped and counted), then check every other count and statistic."""

            seen: list[tuple[float, float]] = []  # what the window held at each look, for the failure message

            def settled() -> bool | None:
                counted = by_label(query(url, f"model_status:mlmon_requests:count{WINDOW}"), "status")
                feedback = query(url, f"model:mlmon_feedback:count{WINDOW}")
                total = float(feedback[0]["value"][1]) if feedback else 0.0
                sent = (traffic.requests, len(traffic.feedback))
                seen.append((sum(counted.values()), total))
                return True if seen[-1] == sent else None

            try:
                poll(
                    settled,
                    90,
                    f"{what}: the window to count {traffic.requests} requests and {len(traffic.feedback)} "
                    "feedbacks",
                    tmp_path / "prometheus" / "prometheus.log",
                )
            except AssertionError as exc:
                looks = sorted(set(seen), key=seen.index)[-10:]
                missed = query(url, "sum by (rule_group) (prometheus_rule_group_iterations_missed_total) > 0")
                failed = query(url, "sum by (rule_group) (prometheus_rule_evaluation_failures_total) > 0")
                raise AssertionError(
                    f"{exc}\nthe window held (requests, feedbacks), last distinct: {looks}"
                    f"\nrule groups with missed iterations: {missed}; with failed evaluations: {failed}"
                ) from None
            _assert_window_equals_truth(url, profile, traffic, what)

        send([port_a, port_b], drifted=False)
        send([port_a, port_b])
        counted_all("before any restart")
        firing = poll(
            lambda: _firing_since(url) or None,
            60,
            f"{DRIFT_ALERT} firing",
            tmp_path / "prometheus" / "prometheus.log",
        )
        assert "income" in firing

        # 1. Replica A restarts mid-window: its counters start again from zero.
        replica_a.close()
        replica_a = start(port_a, "a-restarted")
        send([port_a, port_b])
        counted_all("after a restart of A")

        # 2. Rolling deploy: B stops, C starts under another instance label.
        replica_b.close()
        replica_c = start(port_c, "c")
        stack.callback(replica_c.close)
        send([port_a, port_c])
        counted_all("after B was replaced by C")

        # 3. A's /metrics answers 500 for more than three scrape intervals while it keeps counting.
        proxy.failing = True
        send([port_a, port_c])
        time.sleep(4.5)
        proxy.failing = False
        send([port_a, port_c])
        counted_all("after failed scrapes of A")

        # The critical drift alert that fired before the first restart never resolved: same active-since.
        still = _firing_since(url)
        assert {f: still.get(f) for f in firing} == firing, (firing, still)


def _assert_window_equals_truth(url: str, profile: Profile, traffic: Traffic, what: str) -> None:
    observations = by_label(query(url, f"model_feature:mlmon_feature_observations:count{WINDOW}"), "feature")
    missing = by_label(query(url, f"model_feature:mlmon_feature_missing:count{WINDOW}"), "feature")
    live_psi = by_label(query(url, f"model_feature:mlmon_feature_psi:{WINDOW}"), "feature")
    for feature in profile.features:
        values = [row.get(feature.name) for row in traffic.features]
        counts, missing_offline = offline_counts(feature, values)
        assert observations[feature.name] == sum(counts), (what, feature.name)
        assert missing[feature.name] == missing_offline == sum(1 for v in values if is_missing(v)), (
            what,
            feature.name,
        )
        expected = psi(shares(counts), feature.reference_ratios)
        assert abs(live_psi[feature.name] - expected) <= TOLERANCE, (what, feature.name, live_psi, expected)
    pairs = Counter(traffic.feedback)
    assert float(query(url, f"model:mlmon_feedback:count{WINDOW}")[0]["value"][1]) == sum(pairs.values()), (
        what
    )
    accuracy = sum(n for (p, a), n in pairs.items() if p == a) / sum(pairs.values())
    live_accuracy = float(query(url, f"model:mlmon_feedback_accuracy:ratio_{WINDOW}")[0]["value"][1])
    assert abs(live_accuracy - accuracy) <= TOLERANCE, what
