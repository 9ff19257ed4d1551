"""How strong the evidence of drift is, given how many observations each side rests on.

PSI is an effect size: it says how far two distributions are apart, not how sure one can be that they are apart.
At 100 rows a side two samples of one distribution show a PSI near (bins - 1) / n, and at a million rows a change
too small to matter is certain. So mlmon judges drift in two steps, live (recording rules) and offline
(``mlmon drift``) alike, on the same bin counts:

1. **Evidence**: the two-sample chi-square statistic of the current window's bin counts against the reference
   profile's (Pearson's test of homogeneity on the 2 x B table), which weighs both sample sizes: the reference's
   own sampling error is part of it, so a large window is not held to a reference it cannot be sure of::

       X2 = n_ref * n_cur * sum_i (p_cur_i - p_ref_i)^2 / (n_ref * p_ref_i + n_cur * p_cur_i)

   with B - 1 degrees of freedom (B the bins the reference has values in), turned into a z score by the
   Wilson-Hilferty cube root, ``z = ((X2 / k)^(1/3) - (1 - 2 / (9k))) / sqrt(2 / (9k))``: a number on one scale
   whatever the bins, which PromQL can compute (it has no chi-square quantile function).
2. **Size**: the PSI of the same shares, which must reach a floor (``drift_min_psi``), so that a statistically
   clear but tiny change at high traffic can be held back; severity comes from the PSI (warning above the floor,
   critical above ``psi_critical``).

The z threshold comes from the false-alarm budget (see :func:`z_threshold`), set so that the false alerts of all of
a model's features and windows together stay within it; ``bench/drift_alarms.py`` measures the rates that
result, per traffic rate, in a seeded simulation of the rules.

Missing values are judged the same way: the two-proportion z of the window's missing ratio against the
reference's, both sample sizes in it (:func:`proportion_z`). So are the model's own signals: the predictions'
bins by the same chi-square as a feature's, accuracy from feedback by the two-proportion z against the
reference accuracy and the rows it was measured on, and the mean confidence by :func:`mean_drop_z`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# The defaults of a model's thresholds in mlmon.yaml (mlmon.spec.Thresholds) and of `mlmon drift`.
DEFAULT_FALSE_ALARMS_PER_WEEK = 0.05
DEFAULT_MIN_PSI = 0.01

# A chi-square statistic of fewer than this many observations in the window is not judged: with ten bins an
# expected count below five per bin makes the chi-square tail too heavy to trust.
MIN_EXPECTED_PER_BIN = 5
# A profile written before reference counts were kept: its reference is taken as exact (a very large sample).
ASSUMED_REFERENCE_OBSERVATIONS = 1e9


def chi_square_homogeneity(
    current_counts: Sequence[float], reference_shares: Sequence[float], reference_count: float
) -> tuple[float, int]:
    """The two-sample chi-square statistic of ``current_counts`` against a reference of ``reference_count``
    observations with ``reference_shares``, and its degrees of freedom (bins with a reference share, less one;
    a bin the reference never saw still adds its current count to the statistic).

    >>> chi_square_homogeneity([50, 50], [0.5, 0.5], 1000)
    (0.0, 1)
    """
    n_current = float(sum(current_counts))
    if n_current <= 0 or reference_count <= 0:
        return 0.0, max(0, sum(1 for share in reference_shares if share > 0) - 1)
    total = 0.0
    for count, reference in zip(current_counts, reference_shares, strict=True):
        current = count / n_current
        pooled = reference_count * reference + n_current * current
        if pooled > 0:
            total += (current - reference) ** 2 / pooled
    degrees = sum(1 for share in reference_shares if share > 0) - 1
    return reference_count * n_current * total, max(degrees, 0)


def wilson_hilferty_z(statistic: float, degrees: int) -> float:
    """A chi-square statistic with ``degrees`` degrees of freedom as a standard normal z score (the
    Wilson-Hilferty cube-root approximation; within a few hundredths of the exact quantile for 3 or more degrees
    of freedom in the tail that matters here). Zero degrees of freedom give 0: one bin cannot move.

    >>> round(wilson_hilferty_z(21.666, 9), 2)  # the chi-square 0.99 quantile with 9 degrees of freedom
    2.32
    """
    if degrees <= 0:
        return 0.0
    scale = 2.0 / (9.0 * degrees)
    cube_root = float(max(statistic, 0.0) / degrees) ** (1.0 / 3.0)
    return float((cube_root - (1.0 - scale)) / math.sqrt(scale))


def proportion_z(
    current_part: float, current_total: float, reference_ratio: float, reference_total: float
) -> float:
    """The two-proportion z of a current ratio (``current_part`` of ``current_total``) against a reference
    ratio over ``reference_total`` observations, with the pooled variance: positive when the current ratio is
    higher.

    >>> round(proportion_z(100, 1000, 0.01, 10_000), 1)
    20.3
    """
    if current_total <= 0 or reference_total <= 0:
        return 0.0
    ratio = current_part / current_total
    pooled = (current_part + reference_ratio * reference_total) / (current_total + reference_total)
    variance = pooled * (1 - pooled) * (1 / current_total + 1 / reference_total)
    if variance <= 0:
        return 0.0
    return (ratio - reference_ratio) / math.sqrt(variance)


def mean_drop_z(
    current_mean: float,
    current_count: float,
    reference_mean: float,
    reference_count: float,
    current_variance: float | None = None,
) -> float:
    """How sure a mean of values in [0, 1] (confidence) is below the reference's: ``(reference - current) /
    sqrt(v_cur / n_cur + v_ref / n_ref)``. The rules know counts, sums and histogram buckets, not squares, so
    each variance is the largest it can be: the current one from its buckets (``current_variance``, see
    :func:`histogram_variance_bound`), at most m (1 - m) (Bhatia-Davis), the reference's m (1 - m). The z errs
    towards fewer alerts.

    >>> round(mean_drop_z(0.80, 1000, 0.90, 5000), 1)
    7.5
    """
    if current_count <= 0 or reference_count <= 0:
        return 0.0
    largest = current_mean * (1 - current_mean)
    spread = largest if current_variance is None else max(min(current_variance, largest), 0.0)
    variance = spread / current_count + reference_mean * (1 - reference_mean) / reference_count
    if variance <= 0:
        return 0.0
    return (reference_mean - current_mean) / math.sqrt(variance)


def histogram_variance_bound(cumulative: Sequence[float], bounds: Sequence[float], mean: float) -> float:
    """The largest variance of values whose histogram has ``cumulative`` counts at upper ``bounds`` (every
    value at its bucket's upper bound gives the largest mean square) and whose mean is ``mean``.

    >>> round(histogram_variance_bound([0, 10], [0.5, 1.0], 0.8), 4)  # ten values in (0.5, 1]: at most 1 - 0.64
    0.36
    """
    total = cumulative[-1]
    if total <= 0:
        return 0.0
    previous, squares = 0.0, 0.0
    for count, bound in zip(cumulative, bounds, strict=True):
        squares += (count - previous) * bound**2
        previous = count
    return squares / total - mean**2


# Alerts are evaluated once a counting step on a window that slides by one step, and at low traffic the
# chi-square's tail is heavier than its asymptotic one (few expected counts per bin). So a window-length of
# evaluations gives more false alarms than one independent test would: bench/drift_alarms.py measured 10 to 17
# times as many at 0.05 requests/s (z 3 to 4), 4 to 9 times at 1/s, fewer than one test at 10/s. The budget
# is divided by this factor, taken from the worst rate measured.
EVALUATION_FACTOR = 20.0
# Per feature, two tests share the budget: drift of the values, and a rise of the missing ratio; per model,
# three more: drift of the predictions, a drop of the mean confidence, a drop of accuracy.
TESTS_PER_FEATURE = 2
MODEL_TESTS = 3
# A model whose spec lists no features gets its budget split as if it had this many.
ASSUMED_FEATURES = 20
WEEK_SECONDS = 7 * 24 * 3600


def z_threshold(false_alarms_per_week: float, features: int, window_seconds: float) -> float:
    """The z above which drift is evidence enough, so that a model with ``features`` features, judged over a
    window of ``window_seconds``, raises at most ``false_alarms_per_week`` false drift, missing-value,
    prediction-drift, confidence and accuracy alerts a week, all together (Bonferroni over the tests, times
    the independent windows of a week, divided by :data:`EVALUATION_FACTOR`).

    >>> round(z_threshold(0.05, 25, 3600), 2)
    5.0
    """
    from statistics import NormalDist  # here: importing it costs a few milliseconds every command would pay

    tests = max(features, 1) * TESTS_PER_FEATURE + MODEL_TESTS
    windows_per_week = WEEK_SECONDS / window_seconds
    alpha = false_alarms_per_week / (tests * windows_per_week * EVALUATION_FACTOR)
    return float(NormalDist().inv_cdf(1.0 - min(alpha, 0.5)))
