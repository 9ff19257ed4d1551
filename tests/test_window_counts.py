"""Window counts across restarts, rolling deploys, failed scrapes and a Prometheus that starts late, checked
with promtool's own evaluator on the generated recording rules.

Each case is a timeline of scrapes per instance: the counter's value and the start time the monitor exports
beside it, a missing scrape, or a stale marker (what Prometheus writes when a scrape fails or a target
goes away). The expected count is what the processes counted and Prometheus scraped inside the window,
computed here from the same timeline.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mlmon import contract as c
from mlmon import rules
from mlmon.render import ALERT_RULES, RECORDING_RULES
from mlmon.spec import spec_from_dict
from tests.helpers import render_into

WINDOW = "30m"
EVAL_MINUTE = 40  # the window holds the scrapes of minutes 11 to 40
STALE = "stale"


@dataclass(frozen=True)
class Scrape:
    value: float | None  # None: the scrape succeeded without this series (Prometheus marks it stale)
    start: float | None  # the monitor's start time; None for a service that does not export it


Slot = Scrape | str | None  # a scrape, STALE, or None for no sample


def steady(first: int, last: int, per_minute: float, start: float, base: float = 0.0) -> dict[int, Slot]:
    """One process scraped every minute from ``first`` to ``last``, counting ``per_minute``."""
    return {m: Scrape(base + per_minute * (m - first), start) for m in range(first, last + 1)}


def series_values(timeline: dict[int, Slot], pick: str) -> str:
    out = []
    for minute in range(EVAL_MINUTE + 1):
        slot = timeline.get(minute)
        if slot is None:
            out.append("_")
        elif slot == STALE:
            out.append("stale")
        else:
            assert isinstance(slot, Scrape)
            value = slot.value if pick == "value" else slot.start
            if value is None:
                out.append("stale" if pick == "value" else "_")
            else:
                out.append(repr(float(value)))
    return " ".join(out)


def promtool_case(instances: dict[str, dict[int, Slot]], expected: float) -> dict[str, object]:
    labels = 'model="m",version="1",job="mlmon/m"'
    input_series = []
    for instance, timeline in instances.items():
        own = f'{labels},instance="{instance}"'
        input_series.append(
            {
                "series": f'{c.FEATURE_BIN.name}{{{own},feature="f",bin="0"}}',
                "values": series_values(timeline, "value"),
            }
        )
        if any(isinstance(s, Scrape) and s.start is not None for s in timeline.values()):
            input_series.append(
                {"series": f"{c.MONITOR_START.name}{{{own}}}", "values": series_values(timeline, "start")}
            )
    record = rules.feature_bin_count(WINDOW)
    return {
        "interval": "1m",
        "input_series": input_series,
        "promql_expr_test": [
            {
                "expr": record,
                "eval_time": f"{EVAL_MINUTE}m",
                "exp_samples": [
                    {"labels": f'{record}{{model="m",version="1",feature="f",bin="0"}}', "value": expected}
                ],
            }
        ],
    }


def restart_mid_window() -> tuple[dict[str, dict[int, Slot]], float]:
    # Scraped every minute, +10 a minute; restarted at 20m50s, counted 5 before its first scrape at 21m.
    old = steady(0, 20, 10, start=-100)
    new = {m: Scrape(5 + 10 * (m - 21), 1250) for m in range(21, EVAL_MINUTE + 1)}
    return {"a": {**old, **new}}, 10 * 10 + 5 + 10 * 19


def restart_then_a_series_created_later() -> tuple[dict[str, dict[int, Slot]], float]:
    # A series the process creates when first used (feedback for a class pair): the old process had it at
    # 200; the restarted one (first scraped at 21m) creates it at 24m with 5, and Prometheus saw it stale in
    # between. Its last value from the old process must not be taken as this process's previous value.
    old = steady(0, 20, 10, start=-100)
    absent = {m: Scrape(None, 1250) for m in range(21, 24)}
    new = {m: Scrape(5 + 10 * (m - 24), 1250) for m in range(24, EVAL_MINUTE + 1)}
    return {"a": {**old, **absent, **new}}, 10 * 10 + 5 + 10 * 16


def restart_that_passes_the_old_value() -> tuple[dict[str, dict[int, Slot]], float]:
    # Unreachable from 21m (stale), restarted at 22m, first scraped at 26m with 250 counted: more than the old
    # process's 200, so only the start time tells that the counter began again at zero.
    old = steady(0, 20, 10, start=-100)
    new = {m: Scrape(250 + 10 * (m - 26), 1320) for m in range(26, EVAL_MINUTE + 1)}
    return {"a": {**old, 21: STALE, **new}}, 10 * 10 + 250 + 10 * 14


def rolling_deploy() -> tuple[dict[str, dict[int, Slot]], float]:
    # Instance a is replaced by instance b: b starts at 24m30s, a goes away after its scrape at 25m.
    a = {**steady(0, 25, 10, start=-100), 26: STALE}
    b = {m: Scrape(3 + 20 * (m - 25), 1470) for m in range(25, EVAL_MINUTE + 1)}
    return {"a": a, "b": b}, 15 * 10 + 3 + 15 * 20


def failed_scrapes() -> tuple[dict[str, dict[int, Slot]], float]:
    # Three failed scrapes (stale markers at 30m, 31m, 32m); the process counted on, as the scrape at 33m shows.
    timeline: dict[int, Slot] = dict(steady(0, EVAL_MINUTE, 10, start=-100))
    for minute in (30, 31, 32):
        timeline[minute] = STALE
    return {"a": timeline}, 30 * 10


def prometheus_starts_late() -> tuple[dict[str, dict[int, Slot]], float]:
    # Prometheus first sees a process that has run for a day, at 15m: what it counted before is the baseline.
    return {"a": steady(15, EVAL_MINUTE, 10, start=-86_400, base=100_000)}, 25 * 10


def new_replica_scraped_late() -> tuple[dict[str, dict[int, Slot]], float]:
    # A second replica starts at 12m and is first scraped at 17m with 40 counted: all of it is in the window.
    b = {m: Scrape(40 + 10 * (m - 17), 720) for m in range(17, EVAL_MINUTE + 1)}
    return {"a": steady(0, EVAL_MINUTE, 10, start=-100), "b": b}, 30 * 10 + 40 + 23 * 10


def restart_without_start_gauge() -> tuple[dict[str, dict[int, Slot]], float]:
    # A service that does not export the start time: a counter that went down restarted from zero.
    old = {m: Scrape(10.0 * m, None) for m in range(0, 21)}
    new = {m: Scrape(5 + 10.0 * (m - 21), None) for m in range(21, EVAL_MINUTE + 1)}
    return {"a": {**old, **new}}, 10 * 10 + 5 + 10 * 19


CASES = [
    restart_mid_window,
    restart_then_a_series_created_later,
    restart_that_passes_the_old_value,
    rolling_deploy,
    failed_scrapes,
    prometheus_starts_late,
    new_replica_scraped_late,
    restart_without_start_gauge,
]


@pytest.fixture(scope="module")
def recording_rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = spec_from_dict(
        {
            "prometheus": {"evaluation_interval": "1m"},
            "models": [
                {
                    "name": "m",
                    "targets": ["127.0.0.1:1"],
                    "thresholds": {"drift_window": WINDOW, "feedback_window": WINDOW},
                }
            ],
        }
    )
    assert rules.count_step_ms(spec) == 60_000
    return render_into(spec, tmp_path_factory.mktemp("counts")) / RECORDING_RULES


@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
def test_window_count_equals_what_was_scraped(
    case: object, recording_rules_file: Path, promtool: str, tmp_path: Path
) -> None:
    instances, expected = case()  # type: ignore[operator]
    test_file = tmp_path / "counts-test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(recording_rules_file)],
                "evaluation_interval": "1m",
                "tests": [promtool_case(instances, expected)],
            }
        )
    )
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_renamed_feature_fires_the_invalid_input_alert_naming_it(promtool: str, tmp_path: Path) -> None:
    """A client that sends ``mean_radius`` for ``mean radius``: every request brings an unknown feature, which
    the monitor counts under its name. The per-request share is exact, and after the alert's 15m the alert
    fires for that feature only; a model with clean input stays quiet."""
    spec = spec_from_dict(
        {
            "prometheus": {"evaluation_interval": "1m"},
            "models": [
                {"name": name, "targets": ["127.0.0.1:1"], "thresholds": {"drift_window": WINDOW}}
                for name in ("m", "clean")
            ],
        }
    )
    out = render_into(spec, tmp_path / "out")
    [rule] = [
        r
        for group in yaml.safe_load((out / ALERT_RULES).read_text())["groups"]
        for r in group["rules"]
        if r.get("alert") == "MlmonInvalidInput" and '"m"' in r["expr"]
    ]
    start = "1700000000"
    input_series = []
    for model, invalid_per_minute in (("m", 10), ("clean", 0)):
        own = f'model="{model}",version="1",job="mlmon/{model}",instance="a"'
        input_series += [
            {"series": f'{c.REQUESTS.name}{{{own},status="ok"}}', "values": "0+10x40"},
            {"series": f"{c.MONITOR_START.name}{{{own}}}", "values": f"{start}x40"},
        ]
        if invalid_per_minute:
            input_series.append(
                {
                    "series": f'{c.INVALID_INPUT.name}{{{own},feature="mean_radius",reason="unknown_feature"}}',
                    "values": f"0+{invalid_per_minute}x40",
                }
            )
    labels = {"model": "m", "version": "1", "feature": "mean_radius", "reason": "unknown_feature"}
    test = {
        "interval": "1m",
        "input_series": input_series,
        "promql_expr_test": [
            {
                "expr": rules.invalid_input_ratio(WINDOW),
                "eval_time": f"{EVAL_MINUTE}m",
                "exp_samples": [{"labels": rules.invalid_input_ratio(WINDOW) + _braces(labels), "value": 1}],
            },
            {
                "expr": 'ALERTS{alertname="MlmonInvalidInput"}',
                "eval_time": f"{EVAL_MINUTE}m",
                "exp_samples": [
                    {
                        "labels": "ALERTS"
                        + _braces(
                            {
                                **labels,
                                **rule["labels"],
                                "alertname": "MlmonInvalidInput",
                                "alertstate": "firing",
                            }
                        ),
                        "value": 1,
                    }
                ],
            },
        ],
    }
    test_file = tmp_path / "invalid-test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(out / RECORDING_RULES), str(out / ALERT_RULES)],
                "evaluation_interval": "1m",
                "tests": [test],
            }
        )
    )
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _braces(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


@pytest.mark.parametrize("seconds_after_the_boundary", [0, 15, 45])
def test_a_raw_window_read_between_steps_holds_every_step(
    seconds_after_the_boundary: int, promtool: str, tmp_path: Path
) -> None:
    """`mlmon status` without recording rules reads a window as a subquery of steps. Its range is half a step
    short of the window, so a subquery that ends between two step boundaries drops the oldest step once it is
    read more than half a step after one; pinned to the last boundary it holds all 30 (minutes 11 to 40)."""
    eval_seconds = EVAL_MINUTE * 60 + seconds_after_the_boundary
    steady_process = {"a": steady(0, EVAL_MINUTE, 1.0, start=0.0)}
    [series, start] = promtool_case(steady_process, 0)["input_series"]  # type: ignore[misc]
    pinned = rules.raw_window_count(rules.FEATURE_BINS, WINDOW, 60_000, at=float(eval_seconds))
    unpinned = rules.raw_window_count(rules.FEATURE_BINS, WINDOW, 60_000)
    at = f"{EVAL_MINUTE}m{seconds_after_the_boundary}s"
    unpinned_holds = 30 if seconds_after_the_boundary <= 30 else 29
    test_file = tmp_path / "raw-window-test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [series, start],
                        "promql_expr_test": [
                            {"expr": f"sum({pinned})", "eval_time": at, "exp_samples": [{"value": 30}]},
                            {
                                "expr": f"sum({unpinned})",
                                "eval_time": at,
                                "exp_samples": [{"value": unpinned_holds}],
                            },
                        ],
                    }
                ],
            }
        )
    )
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
