"""Validate the drift simulation against a real Prometheus evaluating mlmon's generated rules on backfilled data.

``bench/drift_alarms.py`` measures false-alarm rates and detection times by computing, in numpy, what the
recording rules compute. This script checks that it computes the same thing, on one seeded scenario:

1. the simulation draws per-minute counts for a few features of its world (a mean shift, a rise of missing
   values, and an unchanged categorical feature), exactly as ``bench/drift_alarms.py`` does;
2. those counts become the counters a service would export, scraped every 15 seconds, written as OpenMetrics and
   turned into TSDB blocks by ``promtool tsdb create-blocks-from openmetrics``;
3. a real Prometheus serves those blocks, and ``promtool tsdb create-blocks-from rules`` evaluates the recording
   rules ``mlmon init`` generated over the whole scenario against it, one layer of dependent rules at a time
   (a rule reading another's recorded series needs that series backfilled first); Prometheus is restarted on
   the new blocks after each layer;
4. the recorded drift and missing-value z scores and PSI, and the conditions of MlmonFeatureDriftWarning and
   MlmonMissingValuesHigh (their expressions asked of Prometheus at every counting step), are compared with the
   simulation's, minute by minute.

    python bench/drift_validate.py --hours 8 --rate 10

prints the largest differences and the minutes where an alert condition differs, and exits 1 when the z
scores differ by more than 1e-6 (relative) or any condition differs. Servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.drift_alarms import (
    NUMERICAL,
    Change,
    chi2_z,
    degrees_of,
    psi,
    reference_profile,
    step_counts,
    windows,
)
from mlmon import contract as c
from mlmon import rules
from mlmon.demo.processes import ProcessGroup
from mlmon.demo.stack import free_port, http_ok, prometheus_args, wait_for
from mlmon.drift.evidence import MIN_EXPECTED_PER_BIN
from mlmon.drift.profile import FeatureProfile
from mlmon.layout import ALERT_RULES, RECORDING_RULES
from mlmon.plan import apply_plan
from mlmon.render import plan_outputs
from mlmon.spec import Spec, spec_from_dict

MODEL, VERSION, JOB, INSTANCE = "sim", "1", "sim", "127.0.0.1:9"
SCRAPE_SECONDS = 15
WINDOW_MINUTES = 60


def scenario() -> list[tuple[int, Change | None]]:
    """The features simulated, by index into the world's profile, and what happens to each at the onset (the
    middle of the run): x00's mean moves by 0.2 sigma, x01 goes missing in 10% of rows, z0 stays."""
    return [
        (0, Change("mean +0.2 sd", 0, mean=0.2)),
        (1, Change("missing 1% to 10%", 1, missing=0.10)),
        (NUMERICAL, None),
    ]


# -- the service's counters, as OpenMetrics ----------------------------------------------------------------------


def _labels(**extra: str) -> str:
    labels = {"job": JOB, "instance": INSTANCE, "model": MODEL, "version": VERSION, **extra}
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def openmetrics(
    features: Sequence[FeatureProfile], counts: Sequence[tuple[np.ndarray, np.ndarray]], start: int
) -> str:
    """Every 15 seconds, what the service exports: a counter read in minute m holds the counts of minutes 0..m
    (each minute's counts arrive at its start), so the counting step at the end of minute m adds minute m."""
    minutes = counts[0][0].shape[0]
    times = [start + 60 * m + SCRAPE_SECONDS * j + 7.5 for m in range(minutes) for j in range(4)]
    lines: list[str] = []

    def family(name: str, kind: str, series: list[tuple[str, list[float]]]) -> None:
        lines.append(f"# TYPE {name} {kind}")
        sample = f"{name}_total" if kind == "counter" else name
        for labels, values in series:
            lines.extend(f"{sample}{labels} {v!r} {t}" for v, t in zip(values, times, strict=True))

    def per_scrape(per_minute: np.ndarray) -> list[float]:
        return [float(v) for v in np.repeat(np.cumsum(per_minute), 4)]

    def constant(value: float) -> list[float]:
        return [float(value)] * len(times)

    bins, missing, ratios, observations, missing_ratios = [], [], [], [], []
    for feature, (bin_counts, missing_counts) in zip(features, counts, strict=True):
        for b, (label, ratio) in enumerate(zip(feature.bin_labels, feature.reference_ratios, strict=True)):
            bins.append((_labels(feature=feature.name, bin=label), per_scrape(bin_counts[:, b])))
            ratios.append((_labels(feature=feature.name, bin=label), constant(ratio)))
        missing.append((_labels(feature=feature.name), per_scrape(missing_counts)))
        observations.append((_labels(feature=feature.name), constant(feature.count)))
        missing_ratios.append((_labels(feature=feature.name), constant(feature.missing_ratio)))
    family(c.FEATURE_BIN.name.removesuffix("_total"), "counter", bins)
    family(c.FEATURE_MISSING.name.removesuffix("_total"), "counter", missing)
    family(c.FEATURE_REFERENCE_RATIO.name, "gauge", ratios)
    family(c.FEATURE_REFERENCE_OBSERVATIONS.name, "gauge", observations)
    family(c.FEATURE_REFERENCE_MISSING_RATIO.name, "gauge", missing_ratios)
    family(c.MONITOR_START.name, "gauge", [(_labels(), constant(start))])
    return "\n".join(lines) + "\n# EOF\n"


# -- a real Prometheus on the blocks ---------------------------------------------------------------------------


@contextmanager
def prometheus(binary: str, data: Path, config: Path, port: int) -> Iterator[str]:
    """A Prometheus on 127.0.0.1 serving ``data`` (blocks two days old: inside the default 15-day retention),
    started and stopped, by its pid, as the demo starts its own."""
    group = ProcessGroup(data.parent / "logs")
    url = f"http://127.0.0.1:{port}"
    try:
        group.start("prometheus", prometheus_args(binary, config, data, port), url)
        if wait_for(lambda: http_ok(f"{url}/-/ready"), 60, group) is None:
            raise SystemExit(f"Prometheus was not ready in 60 s; see {group.log_dir / 'prometheus.log'}")
        yield url
    finally:
        group.stop()


def rule_layers(groups: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The counting group's recording rules in layers: each rule after every rule whose series it reads."""
    counts = next(g for g in groups if g["name"] == "mlmon.counts")
    recorded = {r["record"] for r in counts["rules"]}
    pattern = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
    level: dict[str, int] = {}
    for rule in counts["rules"]:  # the group lists every rule after those it reads (one group, in order)
        reads = {
            name for name in pattern.findall(rule["expr"]) if name in recorded and name != rule["record"]
        }
        level[rule["record"]] = 1 + max((level[name] for name in reads), default=-1)
    layers: list[list[dict[str, Any]]] = [[] for _ in range(max(level.values()) + 1)]
    for rule in counts["rules"]:
        layers[level[rule["record"]]].append(rule)
    return layers


def backfill(promtool: str, binary: str, work: Path, spec_dir: Path, start: int, end: int) -> str:
    """Blocks of the raw data, then of each rule layer; returns the folder Prometheus serves them from."""
    data, config = work / "data", work / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(work / "input.om"), str(data)],
        check=True,
        capture_output=True,
    )
    groups = yaml.safe_load((spec_dir / RECORDING_RULES).read_text())["groups"]
    interval = next(g for g in groups if g["name"] == "mlmon.counts")["interval"]
    port = free_port()
    for index, layer in enumerate(rule_layers(groups)):
        layer_file = work / "layer" / "mlmon-recording.yml"  # one path too: it is in the same hash
        layer_file.parent.mkdir(exist_ok=True)
        # The group's own name for every layer: Prometheus offsets a group's evaluations within its interval by
        # a hash of its file and name, and the layers must be evaluated at the same moments, as one group is.
        group = {"name": "mlmon.counts", "interval": interval, "rules": layer}
        layer_file.write_text(yaml.safe_dump({"groups": [group]}))
        out = work / f"blocks-{index}"
        with prometheus(binary, data, config, port) as url:
            subprocess.run(
                [
                    promtool,
                    "tsdb",
                    "create-blocks-from",
                    "rules",
                    f"--start={start}",
                    f"--end={end}",
                    f"--url={url}",
                    f"--output-dir={out}",
                    "--quiet",
                    str(layer_file),
                ],
                check=True,
                capture_output=True,
            )
        for block in out.iterdir():
            shutil.move(str(block), data / block.name)
    return str(data)


# -- comparing ------------------------------------------------------------------------------------------------


def query_range(
    url: str, expr: str, start: int, end: int
) -> dict[tuple[tuple[str, str], ...], dict[int, float]]:
    answer = requests.post(
        f"{url}/api/v1/query_range",
        data={"query": expr, "start": start, "end": end, "step": 60},
        timeout=120,
    ).json()
    if answer.get("status") != "success":
        raise SystemExit(f"Prometheus refused {expr[:80]}...: {answer.get('error')}")
    out = {}
    for series in answer["data"]["result"]:
        key = tuple(sorted(series["metric"].items()))
        out[key] = {int(t): float(v) for t, v in series["values"]}
    return out


def by_feature(result: dict[tuple[tuple[str, str], ...], dict[int, float]]) -> dict[str, dict[int, float]]:
    return {dict(key).get("feature", ""): values for key, values in result.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--hours", type=float, default=8.0, help="length of the scenario (onset in the middle)"
    )
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second")
    parser.add_argument("--seed", type=int, default=20261208)
    parser.add_argument("--promtool", default=shutil.which("promtool") or "promtool")
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    parser.add_argument("--keep", type=Path, help="keep the blocks and rule layers in this folder")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    profile = reference_profile(np.random.default_rng(20261207))
    chosen = scenario()
    features = [profile.features[i] for i, _ in chosen]
    minutes = int(args.hours * 60)
    onset = minutes // 2
    counts = [
        step_counts(rng, f, args.rate, minutes, change, onset)
        for f, (_, change) in zip(features, chosen, strict=True)
    ]

    spec: Spec = spec_from_dict(
        {
            "project": "validate",
            "prometheus": {"evaluation_interval": "1m"},
            "models": [
                {
                    "name": MODEL,
                    "targets": ["127.0.0.1:9"],
                    "features": [
                        {"name": f.name, "type": "categorical" if f.kind == "categorical" else "numerical"}
                        for f in features
                    ],
                }
            ],
        }
    )
    model = spec.models[0]
    z_needed = rules.drift_z_threshold(model)
    # A whole number of minutes, a day and more ago: the blocks lie in the past, away from the head block.
    start = (int(time.time()) // 3600 - 48) * 3600
    end = start + 60 * minutes

    work = Path(tempfile.mkdtemp(prefix="mlmon-validate-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    try:
        apply_plan(plan_outputs(spec, work / "spec"))
        (work / "input.om").write_text(openmetrics(features, counts, start))
        started = time.monotonic()
        data = Path(backfill(args.promtool, args.prometheus, work, work / "spec", start, end))
        print(
            f"backfilled {minutes} minutes of {len(features)} features in {time.monotonic() - started:.0f} s"
        )
        alerts = {
            r["alert"]: r
            for g in yaml.safe_load((work / "spec" / ALERT_RULES).read_text())["groups"]
            for r in g["rules"]
        }
        with prometheus(args.prometheus, data, work / "prometheus.yml", free_port()) as url:
            first = start + 60 * WINDOW_MINUTES  # the first full window
            recorded = {
                name: by_feature(query_range(url, expr, first, end))
                for name, expr in (
                    ("z", rules.feature_drift_z("1h")),
                    ("psi", rules.feature_psi("1h")),
                    ("missing_z", rules.feature_missing_z("1h")),
                    ("drift_alert", alerts["MlmonFeatureDriftWarning"]["expr"]),
                    ("missing_alert", alerts["MlmonMissingValuesHigh"]["expr"]),
                )
            }
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    failures = 0
    for feature, (bin_counts, missing_counts) in zip(features, counts, strict=True):
        reference = np.asarray(feature.reference_ratios)
        window_counts = windows(bin_counts)
        observations = window_counts.sum(axis=1)
        window_missing = windows(missing_counts[:, None])[:, 0]
        rows = observations + window_missing
        sim_z = chi2_z(window_counts, observations, reference, feature.count, degrees_of(feature))
        sim_psi = psi(window_counts, observations, reference)
        reference_rows = feature.count / (1 - feature.missing_ratio)
        ratio = window_missing / rows
        pooled = (window_missing + feature.missing_ratio * reference_rows) / (rows + reference_rows)
        sim_missing_z = (ratio - feature.missing_ratio) / np.sqrt(
            pooled * (1 - pooled) * (1 / rows + 1 / reference_rows)
        )
        drift_condition = (
            (sim_z > round(z_needed, 3))
            & (sim_psi > model.thresholds.drift_min_psi)
            & (observations >= model.thresholds.min_drift_samples)
            & (observations >= MIN_EXPECTED_PER_BIN * (degrees_of(feature) + 1))
        )
        missing_condition = (
            (sim_missing_z > round(z_needed, 3))
            & (ratio - feature.missing_ratio > model.thresholds.missing_min_increase)
            & (rows >= model.thresholds.min_drift_samples)
        )
        # The recorded value at the end of minute m (time start + 60 (m + 1)) is the window of minutes m-59..m.
        worst: dict[str, float] = {}
        for name, simulated in (("z", sim_z), ("psi", sim_psi), ("missing_z", sim_missing_z)):
            live = recorded[name].get(feature.name, {})
            worst[name] = 0.0
            for m in range(WINDOW_MINUTES - 1, minutes):
                t = start + 60 * (m + 1)
                if t not in live:
                    print(f"  {feature.name}: {name} missing at minute {m + 1}")
                    failures += 1
                    continue
                difference = abs(live[t] - simulated[m]) / max(abs(simulated[m]), 1.0)
                worst[name] = max(worst[name], difference)
            if worst[name] > 1e-6:
                failures += 1
        differing = []
        for name, simulated in (("drift_alert", drift_condition), ("missing_alert", missing_condition)):
            live = recorded[name].get(feature.name, {})
            for m in range(WINDOW_MINUTES - 1, minutes):
                if (start + 60 * (m + 1) in live) != bool(simulated[m]):
                    differing.append(f"{name} at minute {m + 1}")
        failures += len(differing)
        true_minutes = {
            name: sum(1 for m in range(WINDOW_MINUTES - 1, minutes) if cond[m])
            for name, cond in (("drift", drift_condition), ("missing", missing_condition))
        }
        print(
            f"{feature.name}: largest relative difference z {worst['z']:.1e}, PSI {worst['psi']:.1e}, "
            f"missing z {worst['missing_z']:.1e}; alert conditions true in {true_minutes['drift']} (drift) and "
            f"{true_minutes['missing']} (missing) of {minutes - WINDOW_MINUTES + 1} minutes, "
            f"{len(differing)} differ{': ' + ', '.join(differing[:5]) if differing else ''}"
        )
    print("agree" if failures == 0 else f"{failures} differences")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
