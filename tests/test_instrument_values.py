"""Whatever a model service hands the monitor, every number that reaches a counter or a histogram is a finite
Python float, bad values are counted as invalid by reason, the rest of the row is still counted, and /metrics
stays valid for promtool."""

from __future__ import annotations

import math
import subprocess
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from mlmon.drift.profile import FeatureProfile, Profile
from mlmon.instrument import ModelMonitor
from mlmon.instrument.values import finite_number

PROFILE = Profile(
    model="m",
    features=(
        FeatureProfile("x", "numerical", (0.5, 0.5), edges=(0.5,), count=100),
        FeatureProfile("y", "numerical", (0.5, 0.5), edges=(0.5,), count=100),
    ),
)

ODD_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.booleans(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.fractions(),
    st.floats(width=32).map(np.float32),
    st.floats(width=16).map(np.float16),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(np.int64),
    st.complex_numbers(),
    st.text(max_size=5),
    st.just(None),
    st.lists(st.floats(), max_size=3),
    st.lists(st.floats(), min_size=2, max_size=3).map(np.array),
)


def _samples(registry: CollectorRegistry, name: str) -> dict[str, float]:
    return {
        str(sorted(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == name
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.float32(0.9), float(np.float32(0.9))),
        (np.float16(0.5), 0.5),
        (Decimal("0.1"), 0.1),
        (Fraction(1, 4), 0.25),
        (True, 1.0),
        (np.int64(3), 3.0),
        (10**400, "overflow"),
        (math.inf, "non_finite"),
        (math.nan, None),
        (np.array([1.0, 2.0]), "non_scalar"),
        ([1.0], "non_scalar"),
        (complex(1, 1), "wrong_type"),
        ("text", "wrong_type"),
    ],
)
def test_finite_number(value: Any, expected: Any) -> None:
    got = finite_number(value)
    assert got == expected and type(got) is type(expected)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=ODD_VALUES, latency=ODD_VALUES, confidence=ODD_VALUES)
def test_odd_values_never_reach_a_sum_nor_stop_the_row(x: Any, latency: Any, confidence: Any) -> None:
    registry = CollectorRegistry()
    monitor = ModelMonitor("m", "1", PROFILE, registry=registry)
    monitor.observe({"x": x, "y": 0.5}, prediction=None, latency_seconds=latency, confidence=confidence)
    assert monitor.internal_errors == 0
    # The good feature of the row is counted whatever the bad one was.
    assert sum(v for k, v in _samples(registry, "mlmon_feature_bin_total").items() if "'y'" in k) == 1
    for name in ("mlmon_request_duration_seconds_sum", "mlmon_prediction_confidence_sum"):
        for value in _samples(registry, name).values():
            assert type(value) is float and math.isfinite(value), (name, value)
    good_latency = isinstance(finite_number(latency), float)
    counted = _samples(registry, "mlmon_request_duration_seconds_count")
    assert sum(counted.values()) == (1 if good_latency else 0)
    invalid = _samples(registry, "mlmon_invalid_input_total")
    latency_invalid = sum(v for k, v in invalid.items() if "__latency__" in k)
    assert latency_invalid == (0 if good_latency or latency is None else 1)  # None: no latency given
    generate_latest(registry)  # /metrics still renders


def test_float32_confidence_keeps_a_float_sum() -> None:
    registry = CollectorRegistry()
    monitor = ModelMonitor("m", "1", PROFILE, registry=registry)
    for _ in range(1000):
        monitor.observe({"x": 0.2}, confidence=np.float32(0.9))
    total = _samples(registry, "mlmon_prediction_confidence_sum")
    assert list(total.values()) == [pytest.approx(1000 * float(np.float32(0.9)), rel=1e-12)]
    assert all(type(v) is float for v in total.values())


def test_metrics_stay_valid_for_promtool_after_hostile_values(promtool: str) -> None:
    registry = CollectorRegistry()
    monitor = ModelMonitor("m", "1", PROFILE, registry=registry)
    hostile = [math.nan, math.inf, -math.inf, 10**400, np.array([1, 2]), complex(1, 2), "x", None, [1]]
    for value in hostile:
        monitor.observe({"x": value, "y": value}, latency_seconds=value, confidence=value)
    monitor.observe_batch({"x": hostile, "y": [0.5] * len(hostile)}, latencies=hostile, confidences=hostile)
    assert monitor.internal_errors == 0
    text = generate_latest(registry).decode()
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    invalid = _samples(registry, "mlmon_invalid_input_total")
    reasons = {k for k in invalid if "__latency__" in k}
    assert any("'overflow'" in k or "'wrong_type'" in k for k in reasons) and any(
        "'nan'" in k for k in reasons
    )
