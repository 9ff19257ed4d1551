"""ModelMonitor: the metric contract, exactly, and nothing raised into the prediction path."""

from __future__ import annotations

import logging
import math
import subprocess
import threading

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from mlmon import contract
from mlmon.instrument.monitor import ModelMonitor
from tests.helpers import MONITOR_PROFILE

PROFILE = MONITOR_PROFILE


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def monitor(registry: CollectorRegistry) -> ModelMonitor:
    return ModelMonitor(
        "credit-risk", "3", PROFILE, registry=registry, run_id="abc", trained_at=1_700_000_000
    )


MV = {"model": "credit-risk", "version": "3"}


def test_every_series_exists_at_zero_after_start(registry: CollectorRegistry, monitor: ModelMonitor) -> None:
    for bin_ in ("0", "1", "2", "3"):
        assert value(registry, "mlmon_feature_bin_total", **MV, feature="income", bin=bin_) == 0
    for bin_ in ("north", "south", contract.OTHER_BIN):
        assert value(registry, "mlmon_feature_bin_total", **MV, feature="region", bin=bin_) == 0
    assert value(registry, "mlmon_feature_missing_total", **MV, feature="income") == 0
    assert value(registry, "mlmon_requests_total", **MV, status="ok") == 0
    assert value(registry, "mlmon_requests_total", **MV, status="error") == 0
    assert value(registry, "mlmon_prediction_bin_total", **MV, bin="default") == 0
    assert value(registry, "mlmon_feature_reference_ratio", **MV, feature="region", bin="south") == 0.3
    # What each model-level reference rests on, for the evidence of prediction drift, confidence and accuracy.
    assert value(registry, "mlmon_prediction_reference_observations", **MV) == 90
    assert value(registry, "mlmon_reference_confidence_observations", **MV) == 95
    assert value(registry, "mlmon_reference_accuracy_observations", **MV) == 80
    assert value(registry, "mlmon_prediction_reference_ratio", **MV, bin="repaid") == 0.7
    assert value(registry, "mlmon_model_info", **MV, run_id="abc") == 1
    assert value(registry, "mlmon_model_trained_timestamp_seconds", **MV) == 1_700_000_000
    assert value(registry, "mlmon_reference_confidence_mean", **MV) == 0.8
    assert value(registry, "mlmon_reference_accuracy", **MV) == 0.75


def test_observe_bins_with_the_profile_rule(registry: CollectorRegistry, monitor: ModelMonitor) -> None:
    # Edges 10, 20, 30: a value equal to an edge goes to the bin above it (bisect_right), as offline.
    for income in (5, 10, 19.99, 20, 35, "25"):
        monitor.observe({"income": income, "region": "north"}, "repaid", latency_seconds=0.01, confidence=0.9)
    counts = [
        value(registry, "mlmon_feature_bin_total", **MV, feature="income", bin=str(b)) for b in range(4)
    ]
    assert counts == [1, 2, 2, 1]
    assert value(registry, "mlmon_requests_total", **MV, status="ok") == 6
    assert value(registry, "mlmon_request_duration_seconds_count", **MV) == 6
    assert value(registry, "mlmon_prediction_confidence_sum", **MV) == pytest.approx(5.4)
    assert value(registry, "mlmon_prediction_bin_total", **MV, bin="repaid") == 6


def test_bad_values_are_counted_not_raised(
    registry: CollectorRegistry, monitor: ModelMonitor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mlmon.instrument")
    rows = [
        {"income": None, "region": None},
        {"income": math.nan, "region": math.nan},
        {"region": "west"},  # income absent
        {"income": math.inf, "region": "north"},
        {"income": "lots", "region": 7},
        {"income": "lots", "region": "south", "shoe_size": 44},
        {"income": [1, 2], "region": object()},
    ]
    for row in rows:
        monitor.observe(row, prediction="repaid")
    assert value(registry, "mlmon_feature_missing_total", **MV, feature="income") == 3
    assert value(registry, "mlmon_feature_missing_total", **MV, feature="region") == 2
    assert value(registry, "mlmon_invalid_input_total", **MV, feature="income", reason="non_finite") == 1
    assert value(registry, "mlmon_invalid_input_total", **MV, feature="income", reason="wrong_type") == 2
    assert value(registry, "mlmon_invalid_input_total", **MV, feature="income", reason="non_scalar") == 1
    assert (
        value(registry, "mlmon_invalid_input_total", **MV, feature="shoe_size", reason="unknown_feature") == 1
    )
    assert value(registry, "mlmon_feature_bin_total", **MV, feature="region", bin=contract.OTHER_BIN) == 3
    assert monitor.internal_errors == 0
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("not numbers" in w for w in warnings) == 1, "logged once, not per call"
    assert sum("shoe_size" in w for w in warnings) == 1


def test_unknown_feature_names_are_counted_by_name_up_to_a_cap(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that renames a feature is named in the metric, so status and the alert can say which; a
    client sending thousands of made-up names creates at most UNKNOWN_NAMES_CAP series, the rest in
    __unknown__, an absurdly long name is cut, and the log gets one line per counted name and one for the
    cap, not one per made-up name."""
    from mlmon.instrument.monitor import UNKNOWN_NAME_LENGTH, UNKNOWN_NAMES_CAP

    monitor = ModelMonitor("credit", "3", PROFILE, registry=registry)
    monitor.observe({"income": 1.0, "mean_radius": 2.0}, prediction="repaid")
    monitor.observe_batch({"income": [1.0, 2.0], "mean_radius": [2.0, 3.0]}, ["repaid", "repaid"])
    for i in range(500):
        monitor.observe({"income": 1.0, f"junk{i}": 1}, prediction="repaid")
    monitor.observe({"income": 1.0, "x" * 5000: 1}, prediction="repaid")
    unknown = {
        s.labels["feature"]: s.value
        for m in registry.collect()
        if m.name == "mlmon_invalid_input"
        for s in m.samples
        if s.name.endswith("_total") and s.labels["reason"] == "unknown_feature"
    }
    assert unknown["mean_radius"] == 3
    assert len(unknown) == UNKNOWN_NAMES_CAP + 1  # the cap, plus __unknown__ for the rest
    assert unknown["__unknown__"] == 500 + 1 - (UNKNOWN_NAMES_CAP - 1)
    assert all(len(name) <= UNKNOWN_NAME_LENGTH for name in unknown)
    assert sum(unknown.values()) == 3 + 500 + 1
    assert monitor.internal_errors == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == UNKNOWN_NAMES_CAP + 1, warnings  # mean_radius, 19 junk names, then the cap
    assert sum(f"more than {UNKNOWN_NAMES_CAP} unknown feature names" in w for w in warnings) == 1


def test_internal_failure_is_swallowed(monitor: ModelMonitor) -> None:
    class Exploding(dict[str, object]):
        def get(self, *args: object) -> object:
            raise RuntimeError("boom")

    monitor.observe(Exploding(income=1))
    monitor.observe_batch({"income": [1, 2, 3], "region": ["a", "b"]})  # unequal lengths
    monitor.record_feedback(object(), object())
    assert monitor.internal_errors == 2


def test_errors_count_features_but_not_predictions(
    registry: CollectorRegistry, monitor: ModelMonitor
) -> None:
    monitor.observe({"income": 12, "region": "north"}, prediction="default", error=RuntimeError("model down"))
    assert value(registry, "mlmon_requests_total", **MV, status="error") == 1
    assert value(registry, "mlmon_feature_bin_total", **MV, feature="income", bin="1") == 1
    assert value(registry, "mlmon_prediction_bin_total", **MV, bin="default") == 0


def test_track_times_and_counts_errors(registry: CollectorRegistry) -> None:
    ticks = iter([1.0, 1.25, 2.0, 2.5])
    monitor = ModelMonitor("m", "1", PROFILE, registry=registry, clock=lambda: next(ticks))
    with monitor.track({"income": 12}) as t:
        t.prediction = "repaid"
    with pytest.raises(ZeroDivisionError), monitor.track({"income": 12}):
        _ = 1 / 0
    labels = {"model": "m", "version": "1"}
    assert value(registry, "mlmon_request_duration_seconds_sum", **labels) == 0.75
    assert value(registry, "mlmon_requests_total", **labels, status="error") == 1
    assert value(registry, "mlmon_requests_total", **labels, status="ok") == 1


def test_feedback_and_bounded_classes(registry: CollectorRegistry, monitor: ModelMonitor) -> None:
    monitor.record_feedback("default", "default")
    monitor.record_feedback("default", "repaid")
    monitor.record_feedback("default", "some-new-class")
    fb = "mlmon_feedback_total"
    assert value(registry, fb, **MV, predicted="default", actual="default", correct="true") == 1
    assert value(registry, fb, **MV, predicted="default", actual="repaid", correct="false") == 1
    assert value(registry, fb, **MV, predicted="default", actual=contract.OTHER_BIN, correct="false") == 1


def test_label_cap_without_profile(registry: CollectorRegistry) -> None:
    monitor = ModelMonitor("m", "1", None, registry=registry, label_value_cap=3)
    for i in range(10):
        monitor.observe({}, prediction=f"class-{i}")
    labels = {"model": "m", "version": "1"}
    bins = {
        s.labels["bin"] for m in registry.collect() for s in m.samples if m.name == "mlmon_prediction_bin"
    }
    assert bins == {"class-0", "class-1", "class-2", contract.OTHER_BIN}
    assert value(registry, "mlmon_prediction_bin_total", **labels, bin=contract.OTHER_BIN) == 7


def test_batch_equals_rows(registry: CollectorRegistry) -> None:
    rng = np.random.default_rng(0)
    income = rng.normal(20, 8, 2000)
    income[::17] = np.nan
    income[5] = np.inf
    region = rng.choice(["north", "south", "east"], 2000).astype(object)
    region[::29] = None
    predictions = rng.choice(["repaid", "default"], 2000)
    confidences = rng.random(2000)
    errors = rng.random(2000) < 0.05

    one = CollectorRegistry()
    single = ModelMonitor("m", "1", PROFILE, registry=one)
    for i in range(2000):
        single.observe(
            {"income": float(income[i]), "region": region[i]},
            predictions[i],
            error=bool(errors[i]),
            confidence=float(confidences[i]),
        )
    batch = ModelMonitor("m", "1", PROFILE, registry=registry)
    batch.observe_batch({"income": income, "region": region}, predictions, None, errors, confidences)
    assert batch.internal_errors == 0
    single_text = generate_latest(one).decode()
    batch_text = generate_latest(registry).decode()
    assert _samples(batch_text) == _samples(single_text)


def test_threads_lose_nothing(registry: CollectorRegistry, monitor: ModelMonitor) -> None:
    def work() -> None:
        for _ in range(5000):
            monitor.observe({"income": 15, "region": "south"})

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert value(registry, "mlmon_feature_bin_total", **MV, feature="income", bin="1") == 40000


def test_two_models_share_one_registry(registry: CollectorRegistry, monitor: ModelMonitor) -> None:
    other = ModelMonitor("churn", "7", PROFILE, registry=registry)
    other.observe({"income": 1})
    assert (
        value(registry, "mlmon_feature_bin_total", model="churn", version="7", feature="income", bin="0") == 1
    )
    assert value(registry, "mlmon_feature_bin_total", **MV, feature="income", bin="0") == 0


def test_exposition_uses_only_contract_names_and_passes_promtool(
    registry: CollectorRegistry, monitor: ModelMonitor, promtool: str
) -> None:
    monitor.observe({"income": 12, "region": "north"}, "repaid", latency_seconds=0.02, confidence=0.7)
    monitor.record_feedback("repaid", "default")
    text = generate_latest(registry).decode()
    names = {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")
    }
    created = {n for n in names if n.endswith("_created")}
    assert names - created <= contract.contract_series_names()
    # Every contract metric is exposed from the start.
    exposed = {n.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for n in names}
    assert {m.name for m in contract.METRICS} - exposed == set()
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _samples(exposition: str) -> list[str]:
    """Sample lines of an exposition, without comments and creation timestamps (which differ by run), values
    rounded to 9 significant digits: a batch sums confidences in another order than one row at a time."""
    lines = []
    for line in exposition.splitlines():
        if line.startswith("#") or "_created" in line:
            continue
        name, _, number = line.rpartition(" ")
        lines.append(f"{name} {float(number):.9g}")
    return sorted(lines)
