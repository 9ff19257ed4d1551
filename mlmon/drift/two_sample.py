"""Two-sample statistics for offline drift, fast enough for a million rows a side.

scipy's ``ks_2samp`` and ``wasserstein_distance`` each sort both samples and binary-search two million
points on every call: about 1.5 s per feature per statistic at a million rows a side. Here one numerical
feature costs one sort per sample and one merge, and both statistics come from the merged empirical CDFs:

* the Kolmogorov-Smirnov statistic is the largest ``|F_ref - F_cur|`` over the data points (read at the last
  of each run of equal values, as scipy's ``searchsorted(..., side="right")`` does), and its p-value is
  scipy's own: the exact distribution for samples up to 10,000 values (scipy's ``method="auto"`` rule), the
  ``kstwo`` distribution at ``round(n*m/(n+m))`` beyond (scipy's ``method="asymp"``);
* the Wasserstein-1 distance is the integral of ``|F_ref - F_cur|``: the sum over the merged points of that
  difference times the gap to the next point, which is scipy's ``_cdf_distance`` formula.

Categorical statistics work on counts per category (chi-square test of homogeneity, as
``scipy.stats.chi2_contingency`` without Yates' correction; Jensen-Shannon distance, natural log, as
``scipy.spatial.distance.jensenshannon``). numpy and scipy are imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]

# scipy's ks_2samp computes the exact p-value when both samples have at most this many values.
KS_EXACT_MAX_N = 10_000
# Keys searched per slice of the sorted haystack: small enough that the slice stays in the CPU cache.
_MERGE_CHUNK = 4096


@dataclass(frozen=True)
class NumericalComparison:
    """KS statistic and p-value and the (raw) Wasserstein-1 distance of two samples."""

    ks_statistic: float
    ks_p_value: float
    wasserstein: float


def compare_sorted(reference: Array, current: Array) -> NumericalComparison:
    """KS and Wasserstein-1 of two **sorted**, finite, non-empty float64 samples (see the module docstring)."""
    n, m = reference.size, current.size
    counts_below = _count_at_most(reference, current)  # per current value: reference values <= it
    total = n + m
    # Merged position of each current value: its rank among the current values plus the reference values
    # at or below it; the reference values fill the other slots in order (a tie puts reference first).
    current_slots = np.arange(m, dtype=np.int64) + counts_below
    is_current = np.zeros(total, dtype=bool)
    is_current[current_slots] = True
    merged = np.empty(total, dtype=np.float64)
    merged[current_slots] = current
    merged[~is_current] = reference
    reference_seen = np.cumsum(~is_current, dtype=np.int64)
    del is_current, current_slots, counts_below
    position = np.arange(1, total + 1, dtype=np.int64)
    difference = reference_seen / n
    difference -= (position - reference_seen) / m
    del position, reference_seen
    np.abs(difference, out=difference)
    gaps = np.diff(merged)
    # Inside a run of equal values the gap is 0, so only the CDFs after the whole run count: exactly
    # scipy's integral. For KS the statistic is read at the end of each run.
    wasserstein = float(np.dot(difference[:-1], gaps))
    run_end = gaps != 0
    del gaps
    ks = float(max(difference[-1], difference[:-1][run_end].max(initial=0.0)))
    return NumericalComparison(ks, ks_p_value(ks, n, m, reference, current), wasserstein)


def _count_at_most(haystack: Array, keys: Array) -> Array:
    """``np.searchsorted(haystack, keys, side="right")`` for sorted keys, slice by slice.

    One search over a million-value haystack misses the cache at every step; with sorted keys each slice
    of keys only needs the slice of the haystack between its first and last key, which stays cached.
    Three to five times faster than one call, with identical results."""
    if keys.size <= _MERGE_CHUNK:
        return np.searchsorted(haystack, keys, side="right").astype(np.int64)
    starts = np.arange(0, keys.size, _MERGE_CHUNK)
    lows = np.searchsorted(haystack, keys[starts], side="right")
    ends = np.minimum(starts + _MERGE_CHUNK, keys.size) - 1
    highs = np.searchsorted(haystack, keys[ends], side="right")
    out = np.empty(keys.size, dtype=np.int64)
    for start, low, high in zip(starts.tolist(), lows.tolist(), highs.tolist(), strict=True):
        stop = min(start + _MERGE_CHUNK, keys.size)
        out[start:stop] = np.searchsorted(haystack[low:high], keys[start:stop], side="right") + low
    return out


def ks_p_value(statistic: float, n: int, m: int, reference: Array, current: Array) -> float:
    """The two-sided KS p-value as ``scipy.stats.ks_2samp(method="auto")`` gives it.

    Small samples go to scipy itself (exact distribution; cheap at that size); large ones use the
    asymptotic ``kstwo`` distribution at ``round(n*m/(n+m))``, scipy's own formula for ``"asymp"``."""
    if max(n, m) <= KS_EXACT_MAX_N:
        from scipy.stats import ks_2samp

        return float(ks_2samp(reference, current, method="auto").pvalue)
    from scipy.stats import distributions

    larger, smaller = sorted([float(n), float(m)], reverse=True)
    effective = larger * smaller / (larger + smaller)
    return float(np.clip(distributions.kstwo.sf(statistic, np.round(effective)), 0.0, 1.0))


def chi_square(reference_counts: Sequence[float], current_counts: Sequence[float]) -> tuple[float, float]:
    """Chi-square test of homogeneity of a 2 x K table of counts: (statistic, p-value).

    Equal to ``scipy.stats.chi2_contingency(table, correction=False)``. Categories counted 0 on both sides
    are left out (they carry no information and would divide by zero). With one category left there is
    nothing to test: statistic 0, p-value 1."""
    from scipy.stats import chi2

    table = np.array([reference_counts, current_counts], dtype=np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, float(chi2.sf(statistic, table.shape[1] - 1))


def jensen_shannon(reference_shares: Sequence[float], current_shares: Sequence[float]) -> float:
    """Jensen-Shannon distance (natural log, between 0 and sqrt(ln 2)), as scipy's ``jensenshannon``."""
    p = np.asarray(reference_shares, dtype=np.float64)
    q = np.asarray(current_shares, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    mean = (p + q) / 2.0

    def kl(a: Array) -> float:
        present = a > 0
        return float(np.sum(a[present] * np.log(a[present] / mean[present])))

    return math.sqrt(max((kl(p) + kl(q)) / 2.0, 0.0))


def evidently_zero_fill(shares: Array) -> Array:
    """Evidently's rule for empty bins: each 0 becomes min-nonzero / 1e6 when that minimum is at most 1e-4,
    else 1e-4."""
    filled: Array = np.array(shares, dtype=np.float64)
    nonzero = filled[filled != 0]
    if nonzero.size:
        smallest = float(nonzero.min())
        filled[filled == 0] = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    return filled


def sturges_psi(reference: Array, current: Array) -> tuple[float, Array, Array, Array]:
    """Evidently's PSI of a numerical feature: equal-width bins from numpy's "sturges" rule over both
    samples together, Evidently's zero fill, then sum((cur - ref) * ln(cur / ref)).

    Returns (psi, edges, reference shares, current shares); the shares are before the zero fill."""
    edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
    reference_shares = np.histogram(reference, edges)[0] / reference.size
    current_shares = np.histogram(current, edges)[0] / current.size
    return _filled_psi(reference_shares, current_shares), edges, reference_shares, current_shares


def evidently_category_psi(reference_counts: Sequence[float], current_counts: Sequence[float]) -> float:
    """Evidently's PSI over per-category counts (the union of categories), with its zero fill."""
    reference = np.asarray(reference_counts, dtype=np.float64)
    current = np.asarray(current_counts, dtype=np.float64)
    return _filled_psi(reference / reference.sum(), current / current.sum())


def _filled_psi(reference_shares: Array, current_shares: Array) -> float:
    reference = evidently_zero_fill(reference_shares)
    current = evidently_zero_fill(current_shares)
    return float(np.sum((current - reference) * np.log(current / reference)))
