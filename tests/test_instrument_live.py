"""Proof against the real thing: two instrumented replicas, a real Prometheus with mlmon's generated config
and rules, reference-like then shifted traffic. What Prometheus records must equal what Python computes
offline from the same observations and bins, and every recording rule and dashboard query must return data.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from mlmon.demo.model import FEATURES, make_credit_data, reference_profile, train
from mlmon.drift.profile import Profile, shares
from mlmon.drift.statistics import psi
from mlmon.render import GRAFANA_DASHBOARD, PROMETHEUS_CONFIG, RECORDING_RULES
from mlmon.spec import spec_from_dict
from tests.helpers import render_into
from tests.live_service import Traffic, by_label, is_missing, offline_counts, query, send_traffic
from tests.servers import free_port, poll, prometheus, running

MODEL = "credit-risk"
WINDOW = "5m"
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, prometheus_binary: str) -> Any:
    """Two replicas of the demo service and a Prometheus scraping them every second."""
    tmp = tmp_path_factory.mktemp("live")
    reference = make_credit_data(20_000, seed=1)
    model = train(reference)
    profile = reference_profile(model, reference, MODEL)
    (tmp / "model.json").write_text(model.to_json())
    (tmp / "profile.json").write_text(profile.to_json())

    ports = [free_port(), free_port()]
    spec = spec_from_dict(
        {
            "prometheus": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "models": [
                {
                    "name": MODEL,
                    "targets": [f"127.0.0.1:{p}" for p in ports],
                    "features": [{"name": f} for f in FEATURES],
                    "thresholds": {"drift_window": WINDOW, "feedback_window": WINDOW},
                }
            ],
        }
    )
    out = render_into(spec, tmp / "monitoring")
    service = [sys.executable, "-m", "mlmon.demo.service", "--model", str(tmp / "model.json")]
    service += ["--profile", str(tmp / "profile.json"), "--version", "1", "--run-id", "run-1"]
    service += ["--trained-at", str(time.time() - 3 * 86400)]
    with (
        running([*service, "--port", str(ports[0])], tmp / "replica-0.log"),
        running([*service, "--port", str(ports[1])], tmp / "replica-1.log"),
        prometheus(prometheus_binary, out / PROMETHEUS_CONFIG, tmp / "prometheus") as url,
    ):
        poll(
            lambda: True if len(query(url, f'up{{mlmon_model="{MODEL}"}} == 1')) == 2 else None,
            60,
            "both replicas scraped",
            tmp / "prometheus" / "prometheus.log",
        )
        yield url, ports, profile, out


@pytest.fixture(scope="module")
def observed(stack: Any) -> tuple[str, Profile, Traffic, Path]:
    url, ports, profile, out = stack
    traffic = Traffic()
    send_traffic(
        ports, traffic, make_credit_data(600, seed=2), weight_first=0.8, seed=10
    )  # like the reference
    send_traffic(
        ports, traffic, make_credit_data(600, seed=3, shift=1.5), weight_first=0.2, seed=11
    )  # drifted
    expected_observations = sum(1 for row in traffic.features if not is_missing(row["age"]))

    def settled() -> bool | None:
        # Scraped the final counters, and the rules evaluated since.
        requests_seen = query(url, f'sum(mlmon_requests_total{{model="{MODEL}"}})')
        observations = query(url, f'model_feature:mlmon_feature_observations:count{WINDOW}{{feature="age"}}')
        if not requests_seen or float(requests_seen[0]["value"][1]) != traffic.requests:
            return None
        if not observations or float(observations[0]["value"][1]) != expected_observations:
            return None
        feedback = query(url, f"model:mlmon_feedback:count{WINDOW}")
        return True if feedback and float(feedback[0]["value"][1]) == len(traffic.feedback) else None

    poll(settled, 60, "the rules to see all traffic")
    # The alert groups run on their own clock: wait for one evaluation after the counts settled.
    poll(lambda: True if query(url, "ALERTS") else None, 30, "the alert rules to evaluate the settled counts")
    return url, profile, traffic, out


def test_feature_psi_and_missing_ratio_equal_offline(observed: tuple[str, Profile, Traffic, Path]) -> None:
    url, profile, traffic, _ = observed
    live_psi = by_label(query(url, f"model_feature:mlmon_feature_psi:{WINDOW}"), "feature")
    live_missing = by_label(query(url, f"model_feature:mlmon_feature_missing:ratio_{WINDOW}"), "feature")
    assert set(live_psi) == set(FEATURES)
    for feature in profile.features:
        counts, missing = offline_counts(feature, [row.get(feature.name) for row in traffic.features])
        expected = psi(shares(counts), feature.reference_ratios)
        assert abs(live_psi[feature.name] - expected) <= TOLERANCE, (
            feature.name,
            live_psi[feature.name],
            expected,
        )
        assert abs(live_missing[feature.name] - missing / len(traffic.features)) <= TOLERANCE, feature.name
    # The shifted features drifted, the others did not: the test data means what it says.
    assert live_psi["income"] > 0.25 and live_psi["debt_ratio"] > 0.1
    assert live_psi["region"] < 0.05 and live_psi["age"] < 0.05
    assert 0 < live_missing["income"] < 0.1


def test_prediction_psi_confidence_and_accuracy_equal_offline(
    observed: tuple[str, Profile, Traffic, Path],
) -> None:
    url, profile, traffic, _ = observed
    assert profile.prediction is not None
    counts, _ = offline_counts(profile.prediction, traffic.predictions)
    live = float(query(url, f"model:mlmon_prediction_psi:{WINDOW}")[0]["value"][1])
    assert abs(live - psi(shares(counts), profile.prediction.reference_ratios)) <= TOLERANCE

    live_confidence = float(query(url, f"model:mlmon_prediction_confidence:mean_{WINDOW}")[0]["value"][1])
    assert abs(live_confidence - sum(traffic.confidences) / len(traffic.confidences)) <= TOLERANCE

    pairs = Counter(traffic.feedback)
    total = sum(pairs.values())
    accuracy = sum(n for (p, a), n in pairs.items() if p == a) / total
    live_accuracy = float(query(url, f"model:mlmon_feedback_accuracy:ratio_{WINDOW}")[0]["value"][1])
    assert abs(live_accuracy - accuracy) <= TOLERANCE

    precision = by_label(query(url, f"model_class:mlmon_feedback_precision:ratio_{WINDOW}"), "class")
    recall = by_label(query(url, f"model_class:mlmon_feedback_recall:ratio_{WINDOW}"), "class")
    f1 = by_label(query(url, f"model_class:mlmon_feedback_f1:ratio_{WINDOW}"), "class")
    expected_f1 = []
    for cls in ("default", "repaid"):
        tp = pairs[(cls, cls)]
        predicted = sum(n for (p, _), n in pairs.items() if p == cls)
        actual = sum(n for (_, a), n in pairs.items() if a == cls)
        p_, r_ = tp / predicted, tp / actual
        expected_f1.append(2 * p_ * r_ / (p_ + r_))
        assert abs(precision[cls] - p_) <= TOLERANCE, cls
        assert abs(recall[cls] - r_) <= TOLERANCE, cls
        assert abs(f1[cls] - expected_f1[-1]) <= TOLERANCE, cls
    macro = float(query(url, f"model:mlmon_feedback_f1:macro_{WINDOW}")[0]["value"][1])
    assert abs(macro - sum(expected_f1) / 2) <= TOLERANCE


def test_requests_errors_and_model_info(observed: tuple[str, Profile, Traffic, Path]) -> None:
    url, _, traffic, _ = observed
    status = by_label(query(url, f'sum by (status) (mlmon_requests_total{{model="{MODEL}"}})'), "status")
    failed = sum(1 for i in range(600) if i % 40 == 7) * 2
    assert status == {"ok": traffic.requests - failed, "error": failed}
    info = query(url, f'mlmon_model_info{{model="{MODEL}"}}')
    assert {r["metric"]["run_id"] for r in info} == {"run-1"} and len(info) == 2
    age_days = float(query(url, "model:mlmon_model_age:seconds")[0]["value"][1]) / 86400
    assert 2.99 < age_days < 3.1


def test_every_recording_rule_returns_data(observed: tuple[str, Profile, Traffic, Path]) -> None:
    url, _, _, out = observed
    groups = yaml.safe_load((out / RECORDING_RULES).read_text())["groups"]
    records = [rule["record"] for group in groups for rule in group["rules"]]
    empty = [record for record in records if not query(url, record)]
    assert empty == []


def test_every_dashboard_query_returns_data(observed: tuple[str, Profile, Traffic, Path]) -> None:
    url, _, _, out = observed
    dashboard = json.loads((out / GRAFANA_DASHBOARD).read_text())
    # Every dashboard variable, as Grafana would expand it; an unknown one is a KeyError.
    variables = {"model": ".*", "window": WINDOW, "feedback_window": WINDOW}
    checked, empty = 0, []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = re.sub(r"\$\{?(\w+)\}?", lambda m: variables[m.group(1)], target["expr"])
            checked += 1
            if not query(url, expr):
                empty.append((panel["title"], target["refId"], expr))
    assert checked >= 20
    assert empty == []


def test_drift_alert_is_pending_or_firing(observed: tuple[str, Profile, Traffic, Path]) -> None:
    url, _, _, _ = observed

    # Window alerts are evaluated once per counting step (5 s for a 5m window), after the counts they read:
    # the first evaluation that sees the final counts may come up to a step after them.
    def income_alerted() -> bool | None:
        alerts = query(url, f'ALERTS{{alertname="MlmonFeatureDriftCritical",model="{MODEL}"}}')
        return True if "income" in {a["metric"]["feature"] for a in alerts} else None

    poll(income_alerted, 30, "MlmonFeatureDriftCritical for income")


def test_metrics_endpoint_passes_promtool(stack: Any, promtool: str) -> None:
    _, ports, _, _ = stack
    text = requests.get(f"http://127.0.0.1:{ports[0]}/metrics", timeout=10).text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
