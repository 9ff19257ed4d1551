"""Seeded simulation of mlmon's live drift alerts: false alarms per model per week, false alarms after a deploy,
and the time to detect real changes, at 0.05, 1, 10 and 100 requests per second.

The world is the one of the drift-alert issue: a reference of 10,000 rows, 20 numerical features N(0, 1) and 5
categorical ones with ten categories of shares .30 .20 .15 .10 .08 .06 .05 .03 .02 .01, 1% missing values,
Poisson arrivals. The profile is built from that reference with mlmon's own ``build_profile`` (quantile bins, so
the population's true shares of the bins differ from the reference's by its sampling error, as in production).

What is simulated is what the recording rules count: per counting step (1 minute), the observations of each
feature per bin, drawn from the true bin probabilities of the world at that minute; a window is the sum of its
last 60 steps, exactly as ``mlmon.counts`` and the window rules sum them. Each rule is then evaluated at every
step with Prometheus' alert semantics (``for``, ``keep_firing_for``), and an alert is counted each time a
feature's alert starts firing. The rules:

* ``psi``: today's default, PSI over the window above ``psi_warning`` (0.1) for ``drift_for`` (15m), once the
  window holds ``min_drift_samples`` (100) observations; keep_firing_for 5m.
* ``evidence``: today's default (``drift_test: evidence``, mlmon.drift.evidence): the two-sample chi-square of
  the window's bin counts against the reference's (both sample sizes), as a Wilson-Hilferty z, above the z of
  the model's false-alarm budget (0.05 a week for 25 features: 4.99), with the PSI above ``drift_min_psi``
  (0.01), for 15m, once the window holds 100 observations and 5 per bin; missing values by the two-proportion
  z above the same threshold and a rise of more than 0.02, for 5m. The last column of each table is the share
  of 0.5-sigma shifts that reach critical (PSI above 0.2) within one window, and the median minutes. ``--z`` and ``--psi-floor`` try other values.

    python bench/drift_alarms.py --weeks 60 --deploys 400 --trials 100

prints one table per rule: false alerts per model-week with no drift, the share of deploys with a false alert in
their first two hours, and for each change the share of trials alerted within one window of the onset and the
median minutes to the first alert.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlmon import contract as c
from mlmon.contract import PSI_EPSILON
from mlmon.drift.build import build_profile
from mlmon.drift.evidence import MIN_EXPECTED_PER_BIN, z_threshold
from mlmon.drift.profile import FeatureProfile, Profile

Array = npt.NDArray[np.float64]
REFERENCE_ROWS = 10_000
NUMERICAL, CATEGORICAL = 20, 5
SHARES = np.array([0.30, 0.20, 0.15, 0.10, 0.08, 0.06, 0.05, 0.03, 0.02, 0.01])
CATEGORIES = [f"c{i}" for i in range(len(SHARES))]
MISSING = 0.01
STEP_MINUTES, WINDOW_STEPS = 1, 60
DAY_STEPS = 24 * 60
WEEK_STEPS = 7 * DAY_STEPS
RATES = (0.05, 1.0, 10.0, 100.0)


@dataclass(frozen=True)
class Rule:
    """One alert rule, evaluated on a window's counts at every step."""

    name: str
    for_steps: (
        int  # consecutive true evaluations before firing, beyond the first (for: 15m at 1m steps -> 15)
    )
    keep_steps: int  # keep_firing_for, in steps
    min_samples: int
    fires: Callable[[Array, Array, FeatureProfile], npt.NDArray[np.bool_]]  # (window counts, observations)


def psi(window_counts: Array, observations: Array, reference: Array) -> Array:
    """PSI of each window (rows) against the reference shares, clamped as the rules clamp."""
    with np.errstate(invalid="ignore", divide="ignore"):
        current = np.clip(window_counts / observations[:, None], PSI_EPSILON, None)
    expected = np.clip(reference, PSI_EPSILON, None)
    return np.sum((current - expected) * np.log(current / expected), axis=1)


def chi2_z(
    window_counts: Array, observations: Array, reference: Array, reference_rows: float | Array, degrees: int
) -> Array:
    """Two-sample chi-square of each window's counts against the reference's (n_R shares, n_C counts), as a
    z score by the Wilson-Hilferty cube-root approximation, with ``degrees`` degrees of freedom (the
    reference's bins with values, less one). ``reference`` and ``reference_rows`` may differ per window (rows),
    as for a seasonal baseline, whose reference is the same window a period earlier."""
    n_r = np.broadcast_to(np.asarray(reference_rows, dtype=np.float64), observations.shape)
    n_c = observations[:, None]
    current = window_counts / np.where(n_c > 0, n_c, 1)
    pooled = n_r[:, None] * reference + n_c * current
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(pooled > 0, (current - reference) ** 2 / pooled, 0.0)
    x2 = n_r * observations * terms.sum(axis=1)
    k = degrees
    return ((x2 / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))


def degrees_of(feature: FeatureProfile) -> int:
    return int(np.count_nonzero(np.asarray(feature.reference_ratios) > 0)) - 1


def psi_rule(threshold: float = 0.1, for_minutes: int = 15, min_samples: int = 100) -> Rule:
    def fires(counts: Array, observations: Array, feature: FeatureProfile) -> npt.NDArray[np.bool_]:
        return psi(counts, observations, np.asarray(feature.reference_ratios)) > threshold

    return Rule("psi", for_minutes, 5, min_samples, fires)


def evidence_rule(z: float, psi_floor: float, for_minutes: int = 15, min_samples: int = 100) -> Rule:
    def fires(counts: Array, observations: Array, feature: FeatureProfile) -> npt.NDArray[np.bool_]:
        reference = np.asarray(feature.reference_ratios)
        strong = chi2_z(counts, observations, reference, feature.count, degrees_of(feature)) > z
        enough = observations >= MIN_EXPECTED_PER_BIN * np.count_nonzero(reference > 0)
        return strong & enough & (psi(counts, observations, reference) > psi_floor)

    return Rule("evidence", for_minutes, 5, min_samples, fires)


# -- the world --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What happens to one feature at the onset (the others stay as they were)."""

    name: str
    feature: int  # index into the profile's features: numerical first, then categorical
    mean: float = 0.0
    scale: float = 1.0
    top_share: float | None = None
    missing: float | None = None
    ramp_minutes: int = 0  # the mean moves linearly to ``mean`` over this many minutes (0: at once)
    cycle: float = 0.0  # a daily cycle of the mean, this many sigma either way, from the first step on


def reference_profile(rng: np.random.Generator) -> Profile:
    columns: dict[str, object] = {}
    for i in range(NUMERICAL):
        values = rng.normal(size=REFERENCE_ROWS)
        values[rng.random(REFERENCE_ROWS) < MISSING] = np.nan
        columns[f"x{i:02d}"] = values
    for i in range(CATEGORICAL):
        texts = rng.choice(np.array(CATEGORIES, dtype=object), size=REFERENCE_ROWS, p=SHARES)
        texts[rng.random(REFERENCE_ROWS) < MISSING] = None
        columns[f"z{i}"] = texts
    return build_profile(columns, "sim", feature_types={f"z{i}": "categorical" for i in range(CATEGORICAL)})


def bin_probabilities(feature: FeatureProfile, change: Change | None) -> Array:
    """The true probability of each of the feature's bins (present values only) in the world, changed or not."""
    if feature.kind == "numerical":
        mean, scale = (change.mean, change.scale) if change else (0.0, 1.0)
        cdf = stats.norm.cdf((np.asarray(feature.edges) - mean) / scale)
        return np.diff(np.concatenate([[0.0], cdf, [1.0]]))
    shares = SHARES.copy()
    if change is not None and change.top_share is not None:
        shares = np.concatenate([[change.top_share], shares[1:] * (1 - change.top_share) / (1 - shares[0])])
    by_category = dict(zip(CATEGORIES, shares, strict=True))
    known = [by_category.get(c, 0.0) for c in feature.categories]
    return np.array([*known, max(0.0, 1.0 - sum(known))])


def numerical_means(change: Change | None, steps: int, onset: int) -> Array:
    """The mean of a numerical feature at each step: the daily cycle, plus the change from the onset on."""
    t = np.arange(steps)
    means = np.zeros(steps)
    if change is None:
        return means
    means += change.cycle * np.sin(2 * np.pi * t / DAY_STEPS)
    since = np.maximum(t - onset, 0)
    moved = np.minimum(since / change.ramp_minutes, 1.0) if change.ramp_minutes else np.ones(steps)
    return means + np.where(t >= onset, change.mean * moved, 0.0)


def step_counts(
    rng: np.random.Generator,
    feature: FeatureProfile,
    rate: float,
    steps: int,
    change: Change | None,
    onset: int,
) -> tuple[Array, Array]:
    """Per step: observations per bin, and missing values, of one feature over ``steps`` minutes."""
    rows = rng.poisson(rate * 60 * STEP_MINUTES, size=steps)
    before, after = bin_probabilities(feature, None), bin_probabilities(feature, change)
    missing_after = change.missing if change is not None and change.missing is not None else MISSING
    missing_rate = np.where(np.arange(steps) >= onset, missing_after, MISSING)
    missing = rng.binomial(rows, missing_rate)
    present = rows - missing
    if feature.kind == "numerical" and change is not None and (change.ramp_minutes or change.cycle):
        # The mean moves from step to step: each step gets its own bin probabilities.
        scale = np.where(np.arange(steps) >= onset, change.scale, 1.0)
        edges = np.asarray(feature.edges)
        cdf = stats.norm.cdf(
            (edges[None, :] - numerical_means(change, steps, onset)[:, None]) / scale[:, None]
        )
        probabilities = np.diff(
            np.concatenate([np.zeros((steps, 1)), cdf, np.ones((steps, 1))], axis=1), axis=1
        )
        return rng.multinomial(present, probabilities).astype(np.float64), missing.astype(np.float64)
    counts = np.empty((steps, before.size))
    counts[:onset] = rng.multinomial(present[:onset], before) if onset > 0 else 0
    if onset < steps:
        counts[onset:] = rng.multinomial(present[onset:], after)
    return counts, missing.astype(np.float64)


def windows(per_step: Array, length: int = WINDOW_STEPS) -> Array:
    """Window sums of the last ``length`` steps at each step (a shorter window right after the start)."""
    cumulative = np.cumsum(per_step, axis=0)
    shifted = np.zeros_like(cumulative)
    shifted[length:] = cumulative[:-length]
    return cumulative - shifted


def alert_starts(condition: npt.NDArray[np.bool_], rule: Rule) -> list[int]:
    """The steps at which the alert starts firing, with Prometheus' ``for`` and ``keep_firing_for``."""
    starts, pending, firing, kept = [], 0, False, 0
    for step, true in enumerate(condition.tolist()):
        if true:
            pending += 1
            kept = rule.keep_steps
            if not firing and pending > rule.for_steps:
                firing = True
                starts.append(step)
        elif firing and kept > 0:
            kept -= 1
        else:
            firing, pending = False, 0
    return starts


def feature_alerts(
    rng: np.random.Generator,
    feature: FeatureProfile,
    rule: Rule,
    rate: float,
    steps: int,
    change: Change | None = None,
    onset: int = 0,
    warm: bool = True,
) -> list[int]:
    """Alert starts of one feature. ``warm``: the window is full from the first step (a service that has run
    for a while); otherwise it starts empty, as after a deploy."""
    lead = WINDOW_STEPS if warm else 0
    counts, _ = step_counts(rng, feature, rate, steps + lead, change, onset + lead)
    window_counts = windows(counts)[lead:]
    observations = window_counts.sum(axis=1)
    condition = rule.fires(window_counts, observations, feature) & (observations >= rule.min_samples)
    return alert_starts(condition, rule)


def missing_alert_starts(
    rng: np.random.Generator,
    feature: FeatureProfile,
    rate: float,
    steps: int,
    change: Change,
    onset: int,
    kind: str,
) -> list[int]:
    """Today's MlmonMissingValuesHigh (ratio above 0.1 for 15m), or the two-proportion z test (``z``)."""
    counts, missing = step_counts(rng, feature, rate, steps + WINDOW_STEPS, change, onset + WINDOW_STEPS)
    window_missing = windows(missing[:, None])[WINDOW_STEPS:, 0]
    window_rows = window_missing + windows(counts)[WINDOW_STEPS:].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = window_missing / window_rows
    if kind == "psi":
        condition = (ratio > 0.1) & (window_rows >= 100)
        return alert_starts(condition, Rule("missing", 15, 5, 100, lambda *_: condition))
    n_r, p_r = float(REFERENCE_ROWS), feature.missing_ratio
    pooled = (n_r * p_r + window_missing) / (n_r + window_rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (ratio - p_r) / np.sqrt(pooled * (1 - pooled) * (1 / window_rows + 1 / n_r))
    condition = (z > ARGS.z) & (ratio - p_r > 0.02) & (window_rows >= 100)
    return alert_starts(condition, Rule("missing", 5, 5, 100, lambda *_: condition))


# -- the measurements ---------------------------------------------------------------------------------------


def false_alerts_per_week(profile: Profile, rule: Rule, rate: float, weeks: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    total = 0
    for _ in range(weeks):
        for feature in profile.features:
            total += len(feature_alerts(rng, feature, rule, rate, WEEK_STEPS))
    return total / weeks


def deploys_with_false_alerts(profile: Profile, rule: Rule, rate: float, deploys: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    alerted = 0
    for _ in range(deploys):
        if any(feature_alerts(rng, f, rule, rate, 120, warm=False) for f in profile.features):
            alerted += 1
    return alerted / deploys


def detection(
    profile: Profile, rule: Rule, rate: float, change: Change, trials: int, seed: int, horizon: int
) -> tuple[float, float]:
    """Share of trials alerted within one window of the onset, and the median minutes to the first alert."""
    rng = np.random.default_rng(seed)
    feature = profile.features[change.feature]
    delays = []
    for _ in range(trials):
        if change.missing is not None:
            starts = missing_alert_starts(rng, feature, rate, horizon, change, 0, rule.name)
        else:
            starts = feature_alerts(rng, feature, rule, rate, horizon, change, onset=0)
        delays.append(starts[0] if starts else math.inf)
    within = sum(d <= WINDOW_STEPS for d in delays) / trials
    return within, float(np.median(delays))


# -- the seasonal baseline ------------------------------------------------------------------------------------


def seasonal_alerts(
    rng: np.random.Generator,
    feature: FeatureProfile,
    rate: float,
    steps: int,
    change: Change | None,
    onset: int,
    z: float,
    psi_floor: float,
    for_minutes: int = 15,
) -> list[int]:
    """Alert starts of one feature judged against the same window one day earlier (``drift_baseline:
    seasonal``): the chi-square of both windows' counts, both sample sizes, and the PSI between them; each
    window needs 100 observations and 5 per bin. The service has run for a day and a window before step 0."""
    lead = DAY_STEPS + WINDOW_STEPS
    counts, _ = step_counts(rng, feature, rate, steps + lead, change, onset + lead)
    window_counts = windows(counts)
    current, baseline = window_counts[lead:], window_counts[WINDOW_STEPS : WINDOW_STEPS + steps]
    n_current, n_baseline = current.sum(axis=1), baseline.sum(axis=1)
    shares = baseline / np.where(n_baseline > 0, n_baseline, 1)[:, None]
    degrees = degrees_of(feature)
    needed = max(100, MIN_EXPECTED_PER_BIN * (degrees + 1))
    condition = (
        (chi2_z(current, n_current, shares, n_baseline, degrees) > z)
        & (psi(current, n_current, shares) > psi_floor)
        & (n_current >= needed)
        & (n_baseline >= needed)
    )
    return alert_starts(condition, Rule("seasonal", for_minutes, 5, 100, lambda *_: condition))


CYCLE = 0.2  # the daily cycle of the seasonal world, in sigma either way, in the first feature


def seasonal_false_alerts_per_week(
    profile: Profile, rate: float, weeks: int, seed: int, seasonal: bool
) -> float:
    """False alerts per model-week in a world where the first feature's mean follows a daily cycle of
    +-CYCLE sigma, judged against a seasonal baseline or against the reference."""
    rng = np.random.default_rng(seed)
    rule = evidence_rule(ARGS.z, ARGS.psi_floor)
    total = 0
    for _ in range(weeks):
        for index, feature in enumerate(profile.features):
            change = Change("cycle", index, cycle=CYCLE) if index == 0 else None
            if seasonal:
                total += len(
                    seasonal_alerts(rng, feature, rate, WEEK_STEPS, change, 0, ARGS.z, ARGS.psi_floor)
                )
            else:
                total += len(feature_alerts(rng, feature, rule, rate, WEEK_STEPS, change))
    return total / weeks


def seasonal_detection(
    profile: Profile, rate: float, change: Change, trials: int, seed: int, horizon: int, within_windows: int
) -> tuple[float, float]:
    """Share of trials alerted within ``within_windows`` windows of the onset, at a random time of day, and the
    median minutes, against the seasonal baseline, with the daily cycle in the changed feature."""
    rng = np.random.default_rng(seed)
    feature = profile.features[change.feature]
    delays = []
    for _ in range(trials):
        onset = int(rng.integers(0, DAY_STEPS))
        starts = seasonal_alerts(rng, feature, rate, onset + horizon, change, onset, ARGS.z, ARGS.psi_floor)
        after = [start - onset for start in starts if start >= onset]
        delays.append(after[0] if after else math.inf)
    within = sum(d <= within_windows * WINDOW_STEPS for d in delays) / trials
    return within, float(np.median(delays))


# -- the model's own signals: accuracy from feedback, mean confidence ----------------------------------------

FEEDBACK_WINDOW_STEPS = 6 * 60  # feedback_window: 6h
ACCURACY, ACCURACY_DROPPED = 0.85, 0.78  # a drop of 0.07, above accuracy_drop (0.05)


def accuracy_alert_starts(
    rng: np.random.Generator, rate: float, steps: int, dropped: bool, kind: str
) -> list[int]:
    """MlmonAccuracyDrop over a 6h feedback window with one feedback event per request: accuracy more than 0.05
    below the reference's (measured on REFERENCE_ROWS rows, with its own sampling error) on 100 events, for
    30m; with evidence, also the two-proportion z of the drop above the threshold. The accuracy drops (or not)
    at step 0, after a full window."""
    lead = FEEDBACK_WINDOW_STEPS
    events = rng.poisson(rate * 60 * STEP_MINUTES, size=steps + lead)
    p = np.where(np.arange(steps + lead) >= lead, ACCURACY_DROPPED if dropped else ACCURACY, ACCURACY)
    correct = rng.binomial(events, p).astype(np.float64)
    reference = rng.binomial(REFERENCE_ROWS, ACCURACY) / REFERENCE_ROWS
    n = windows(events.astype(np.float64)[:, None], lead)[lead:, 0]
    hits = windows(correct[:, None], lead)[lead:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = hits / n
        pooled = (hits + reference * REFERENCE_ROWS) / (n + REFERENCE_ROWS)
        z = (reference - accuracy) / np.sqrt(pooled * (1 - pooled) * (1 / n + 1 / REFERENCE_ROWS))
    condition = (accuracy < reference - 0.05) & (n >= 100)
    if kind == "evidence":
        condition &= z > ARGS.z
    return alert_starts(condition, Rule("accuracy", 30, 5, 100, lambda *_: condition))


def confidence_alert_starts(
    rng: np.random.Generator, rate: float, steps: int, dropped: bool, kind: str
) -> list[int]:
    """MlmonConfidenceDrop over the 1h drift window: the mean confidence more than 0.1 below the reference's
    (the mean of REFERENCE_ROWS confidences) on 100 predictions, for 30m; with evidence, also the mean-drop z
    above the threshold, the window's variance bounded by its histogram buckets (as the rules bound it), the
    reference's by m (1 - m). Confidences are drawn one by one, Beta(9, 1), and Beta(3.545, 1) once dropped."""
    lead = WINDOW_STEPS
    n_step = rng.poisson(rate * 60 * STEP_MINUTES, size=steps + lead)
    step_of = np.repeat(np.arange(steps + lead), n_step)
    a = np.where((step_of >= lead) & dropped, 3.545, 9.0)
    values = rng.beta(a, 1.0)
    sums = np.bincount(step_of, weights=values, minlength=steps + lead)
    bounds = np.asarray(c.CONFIDENCE_BUCKETS)
    bucket = np.searchsorted(bounds, values, side="left")  # le: the first bound at or above the value
    per_bucket = np.bincount(step_of * bounds.size + bucket, minlength=(steps + lead) * bounds.size)
    per_bucket = per_bucket.reshape(steps + lead, bounds.size).astype(np.float64)
    reference = float(np.mean(rng.beta(9.0, 1.0, size=REFERENCE_ROWS)))
    n = windows(n_step.astype(np.float64)[:, None])[lead:, 0]
    in_buckets = windows(per_bucket)[lead:]
    with np.errstate(invalid="ignore", divide="ignore"):
        current = windows(sums[:, None])[lead:, 0] / n
        squares = (in_buckets * bounds**2).sum(axis=1) / n
        variance = np.clip(np.minimum(squares - current**2, current * (1 - current)), 0, None)
        z = (reference - current) / np.sqrt(variance / n + reference * (1 - reference) / REFERENCE_ROWS)
    condition = (current < reference - 0.1) & (n >= 100)
    if kind == "evidence":
        condition &= z > ARGS.z
    return alert_starts(condition, Rule("confidence", 30, 5, 100, lambda *_: condition))


def model_signals_table() -> None:
    print(
        "\nmodel signals, per request (and feedback event) rate: accuracy from feedback (6h window; 0.85, "
        "dropping to 0.78) and mean confidence (1h window; 0.9, dropping to 0.78); old: the drop alone"
    )
    header = [
        "rate/s",
        "rule",
        "accuracy: false/week",
        "accuracy drop (<6h30m, median min)",
        "confidence: false/week",
        "confidence drop (<1h30m, median min)",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for rate in ARGS.feedback_rates:
        for kind in ("psi", "evidence"):
            cells = [f"{rate:g}", "old" if kind == "psi" else "evidence"]
            for starts, window in (
                (accuracy_alert_starts, FEEDBACK_WINDOW_STEPS),
                (confidence_alert_starts, WINDOW_STEPS),
            ):
                rng = np.random.default_rng(ARGS.seed + 8)
                false = (
                    sum(len(starts(rng, rate, WEEK_STEPS, False, kind)) for _ in range(ARGS.weeks))
                    / ARGS.weeks
                )
                delays = []
                for _ in range(ARGS.trials):
                    found = starts(rng, rate, 2 * window, True, kind)
                    delays.append(found[0] if found else math.inf)
                within = sum(d <= window + 30 for d in delays) / len(delays)  # a window and `for` (30m)
                cells += [f"{false:.2f}", f"{within:.0%}, {float(np.median(delays)):g}"]
            print("| " + " | ".join(cells) + " |", flush=True)


def offline_table() -> None:
    """``mlmon drift`` on two samples of one world, 100,000 rows a side: how many undrifted features it flags,
    and the largest z it saw, against the threshold of the same budget."""
    from mlmon.drift.report import drift_report

    rng = np.random.default_rng(ARGS.seed + 9)
    categories = np.array(CATEGORIES, dtype=object)
    flagged = total = 0
    largest, threshold = 0.0, z_threshold(0.05, NUMERICAL + CATEGORICAL, 3600)
    rows = 100_000

    def sample() -> dict[str, object]:
        numerical = {f"x{i:02d}": rng.normal(size=rows) for i in range(NUMERICAL)}
        return numerical | {f"z{i}": rng.choice(categories, size=rows, p=SHARES) for i in range(CATEGORICAL)}

    for _ in range(ARGS.offline_reports):
        report = drift_report(
            sample(), sample(), feature_types={f"z{i}": "categorical" for i in range(CATEGORICAL)}
        )
        flagged += len(report.drifted)
        total += len(report.features)
        largest = max(largest, *(f.evidence_z or 0.0 for f in report.features))
    print(
        f"\noffline (mlmon drift, 100,000 rows a side, no drift): {flagged} of {total} features flagged; "
        f"largest z {largest:.2f} against the threshold {threshold:.2f}"
    )


SEASONAL_SHIFT = Change("cycle and mean +0.3 sd", 0, mean=0.3, cycle=CYCLE)
SEASONAL_GRADUAL = Change(
    "cycle and mean +1 sd over 7 days", 0, mean=1.0, ramp_minutes=7 * 24 * 60, cycle=CYCLE
)


def seasonal_table(profile: Profile) -> None:
    print(
        f"\nseasonal world: the first feature's mean follows a daily cycle of +-{CYCLE} sd; "
        f"drift_baseline seasonal (the same window a day earlier) against the reference"
    )
    header = [
        "rate/s",
        "reference baseline: false/week",
        "seasonal: false/week",
        f"seasonal: {SEASONAL_SHIFT.name} (<2 windows, median min)",
        f"seasonal: {SEASONAL_GRADUAL.name} (median hours)",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for rate in ARGS.rates:
        reference = seasonal_false_alerts_per_week(profile, rate, ARGS.seasonal_weeks, ARGS.seed + 5, False)
        seasonal = seasonal_false_alerts_per_week(profile, rate, ARGS.seasonal_weeks, ARGS.seed + 5, True)
        within, median = seasonal_detection(
            profile, rate, SEASONAL_SHIFT, ARGS.trials, ARGS.seed + 6, 6 * 60, 2
        )
        trials = max(ARGS.trials // 5, 5)
        _, gradual = seasonal_detection(
            profile, rate, SEASONAL_GRADUAL, trials, ARGS.seed + 7, 3 * DAY_STEPS, 2
        )
        cells = [
            f"{rate:g}",
            f"{reference:.2f}",
            f"{seasonal:.2f}",
            f"{within:.0%}, {median:g}",
            f"{gradual / 60:.1f}",
        ]
        print("| " + " | ".join(cells) + " |", flush=True)


GRADUAL = Change("mean +1 sd over 7 days", 0, mean=1.0, ramp_minutes=7 * 24 * 60)
CHANGES = (
    Change("mean +0.2 sd", 0, mean=0.2),
    Change("mean +0.5 sd", 0, mean=0.5),
    Change("variance x1.5", 0, scale=math.sqrt(1.5)),
    Change("top share .30 to .40", NUMERICAL, top_share=0.40),
    Change("missing 1% to 10%", 0, missing=0.10),
)


def main() -> None:
    print(
        f"drift alarm simulation: {ARGS.weeks} weeks, {ARGS.deploys} deploys, {ARGS.trials} trials per change"
    )
    profile = reference_profile(np.random.default_rng(ARGS.seed))
    rules = [psi_rule(), evidence_rule(ARGS.z, ARGS.psi_floor)] if ARGS.only in ("all", "features") else []
    for rule in rules:
        settings = f" (z > {ARGS.z:.3f}, PSI > {ARGS.psi_floor})" if rule.name == "evidence" else ""
        print(f"\nrule {rule.name}{settings}")
        header = ["rate/s", "false/week", "deploys alerted"] + [
            f"{c.name} (<1 window, median min)" for c in CHANGES
        ]
        header += ["gradual: median hours", "mean +0.5 sd critical"]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for rate in ARGS.rates:
            cells = [
                f"{rate:g}",
                f"{false_alerts_per_week(profile, rule, rate, ARGS.weeks, ARGS.seed):.2f}",
                f"{deploys_with_false_alerts(profile, rule, rate, ARGS.deploys, ARGS.seed + 1):.1%}",
            ]
            for change in CHANGES:
                within, median = detection(profile, rule, rate, change, ARGS.trials, ARGS.seed + 2, 6 * 60)
                cells.append(f"{within:.0%}, {median:g}")
            trials = max(ARGS.trials // 5, 5)
            _, median = detection(profile, rule, rate, GRADUAL, trials, ARGS.seed + 3, 3 * 24 * 60)
            cells.append(f"{median / 60:.1f}")
            critical = psi_rule(0.25) if rule.name == "psi" else evidence_rule(ARGS.z, 0.2)
            within, median = detection(
                profile, critical, rate, CHANGES[1], ARGS.trials, ARGS.seed + 4, 6 * 60
            )
            cells.append(f"{within:.0%}, {median:g}")
            print("| " + " | ".join(cells) + " |", flush=True)
    if ARGS.only in ("all", "seasonal"):
        seasonal_table(profile)
    if ARGS.only in ("all", "model"):
        model_signals_table()
    if ARGS.only in ("all", "offline"):
        offline_table()


def _arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--weeks", type=int, default=10, help="simulated weeks per rate, for the false-alarm rate"
    )
    parser.add_argument("--deploys", type=int, default=400, help="simulated deploys per rate")
    parser.add_argument("--trials", type=int, default=100, help="trials per change and rate")
    parser.add_argument("--rates", type=lambda s: [float(r) for r in s.split(",")], default=list(RATES))
    parser.add_argument(
        "--feedback-rates",
        type=lambda s: [float(r) for r in s.split(",")],
        default=[0.005, 0.02, 0.05, 1.0, 10.0],
        help="rates of the model-signal table (sparse feedback is where accuracy alerts go wrong)",
    )
    parser.add_argument(
        "--z", type=float, default=z_threshold(0.05, NUMERICAL + CATEGORICAL, 3600), help="the evidence's z"
    )
    parser.add_argument("--psi-floor", type=float, default=0.01, help="the evidence's effect-size floor")
    parser.add_argument(
        "--seasonal-weeks", type=int, default=10, help="simulated weeks per rate in the seasonal world"
    )
    parser.add_argument(
        "--only",
        choices=("all", "features", "seasonal", "model", "offline"),
        default="all",
        help="which tables to print",
    )
    parser.add_argument("--offline-reports", type=int, default=40, help="offline reports of 25 features each")
    parser.add_argument("--seed", type=int, default=20261207)
    return parser.parse_args(argv)


ARGS = _arguments([])

if __name__ == "__main__":
    ARGS = _arguments()
    main()
