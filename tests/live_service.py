"""Helpers of the tests that drive instrumented services and a real Prometheus: the traffic they send, what it
should count offline, and Prometheus' answers by label."""

from __future__ import annotations

import json
import math
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from mlmon.demo.model import rows
from mlmon.drift.profile import FeatureProfile


class Traffic:
    """What the test sent, to compute the expected numbers offline."""

    def __init__(self) -> None:
        self.features: list[dict[str, Any]] = []  # every request's features, failed ones included
        self.predictions: list[str] = []  # successful predictions only
        self.confidences: list[float] = []
        self.feedback: list[tuple[str, str]] = []
        self.requests = 0


def query(url: str, expr: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", (expr, answer)
    return list(answer["data"]["result"])


def by_label(results: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in results}


def send_traffic(
    ports: list[int], traffic: Traffic, data: dict[str, Any], weight_first: float, seed: int
) -> None:
    """Send each row to a replica, the first with probability ``weight_first``: the replicas see different
    mixes, so only a correct aggregation across them gives the offline numbers."""
    chooser = random.Random(seed)
    jobs = []
    for i, row in enumerate(rows(data)):
        port = ports[0] if chooser.random() < weight_first else ports[1]
        fail = i % 40 == 7
        jobs.append((port, row, fail, str(data["outcome"][i])))

    def call(
        job: tuple[int, dict[str, Any], bool, str],
    ) -> tuple[dict[str, Any], bool, dict[str, Any], str, int]:
        port, row, fail, actual = job
        session = requests.Session()
        body = json.dumps({"features": row, "fail": fail})  # NaN goes out as NaN: Python's json reads it back
        answer = session.post(f"http://127.0.0.1:{port}/predict", data=body, timeout=10)
        return row, fail, answer.json(), actual, port

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, jobs))
    feedback_jobs = []
    for row, fail, answer, actual, port in results:
        traffic.requests += 1
        traffic.features.append(row)
        if fail:
            assert "error" in answer
            continue
        traffic.predictions.append(answer["prediction"])
        traffic.confidences.append(answer["confidence"])
        if len(traffic.predictions) % 3 == 0:  # delayed ground truth for a third of the predictions
            feedback_jobs.append((port, answer["prediction"], actual))
            traffic.feedback.append((answer["prediction"], actual))
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda j: requests.post(
                    f"http://127.0.0.1:{j[0]}/feedback", json={"predicted": j[1], "actual": j[2]}, timeout=10
                ),
                feedback_jobs,
            )
        )


def offline_counts(feature: FeatureProfile, values: list[Any]) -> tuple[list[int], int]:
    counts = [0] * len(feature.bin_labels)
    missing = 0
    for value in values:
        index = feature.bin_of(value)
        if index is None:
            missing += 1
        else:
            counts[index] += 1
    return counts, missing


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
