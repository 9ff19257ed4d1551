"""Two-sample statistics for offline drift, fast enough for a million rows a side.

scipy's ``ks_2samp`` and ``wasserstein_distance`` each sort both samples and binary-search two million
points on every call: about 1.5 s per feature per statistic at a million rows a side. Here one numerical
feature costs one sort per sample and one merge of the two sorted samples (a stable sort of two sorted
runs, which numpy's timsort does in one linear pass), and both statistics come from the merged empirical
CDFs:

* walking the merged values, ``e_k = m * (reference values so far) - n * (current values so far)`` is
  ``n * m * (F_ref - F_cur)`` after the k-th value: integers, exact in float64;
* the Kolmogorov-Smirnov statistic is the largest ``|e_k| / (n * m)`` at the last of each run of equal
  values (where scipy's ``searchsorted(..., side="right")`` reads the CDFs), and its p-value is scipy's own:
  the exact distribution for samples up to 10,000 values (scipy's ``method="auto"`` rule), the ``kstwo``
  distribution at ``round(n*m/(n+m))`` beyond (scipy's ``method="asymp"``);
* the Wasserstein-1 distance is the integral of ``|F_ref - F_cur|``: the sum of ``|e_k| / (n * m)`` times
  the gap to the next merged value, which is scipy's ``_cdf_distance`` formula.

Categorical statistics work on counts per category (chi-square test of homogeneity, as
``scipy.stats.chi2_contingency`` without Yates' correction; Jensen-Shannon distance, natural log, as
``scipy.spatial.distance.jensenshannon``). numpy and scipy are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]

# scipy's ks_2samp computes the exact p-value when both samples have at most this many values.
KS_EXACT_MAX_N = 10_000
# scipy's kolmogn uses other formulas up to this n, and scipy's smirnov an approximation above this one.
SMIRNOV_SERIES_MIN_N, SMIRNOV_MAX_COMPUTE_N = 140, 1_000_000


@dataclass(frozen=True)
class NumericalComparison:
    """KS statistic and p-value and the (raw) Wasserstein-1 distance of two samples."""

    ks_statistic: float
    ks_p_value: float
    wasserstein: float


def compare_sorted(reference: Array, current: Array) -> NumericalComparison:
    """KS and Wasserstein-1 of two **sorted**, finite, non-empty float64 samples (see the module docstring)."""
    return compare_runs(np.concatenate([reference, current]), reference.size)


def compare_runs(combined: Array, n: int) -> NumericalComparison:
    """:func:`compare_sorted` of ``combined[:n]`` and ``combined[n:]``, each sorted, finite and non-empty.

    Sorting each sample in place into its half of one buffer saves the copy that joining them would cost;
    ``combined`` is not modified."""
    m = combined.size - n
    # Stable: on equal values the reference comes first; the statistics only read the end of each run.
    order = np.argsort(combined, kind="stable")
    merged = combined[order]
    steps = np.empty(combined.size, dtype=np.float64)
    np.multiply(order < n, float(n + m), out=steps)
    del order
    steps -= float(n)  # +m for a reference value, -n for a current one
    cdf_gap = np.cumsum(steps, out=steps)  # exact: integers far below 2**53 at these sizes
    np.abs(cdf_gap, out=cdf_gap)
    gaps = np.diff(merged)
    del merged
    # KS reads the CDFs at the end of each run of equal values. The largest |e| is usually at a run end
    # already (always, without ties); only otherwise are the run ends picked out.
    top = int(np.argmax(cdf_gap))
    if top == cdf_gap.size - 1 or gaps[top] != 0:
        largest = float(cdf_gap[top])
    else:
        largest = max(float(cdf_gap[-1]), float(cdf_gap[:-1][gaps != 0].max(initial=0.0)))
    ks = largest / n / m
    # Inside a run of equal values the gap is 0, so only the CDFs after the whole run count: exactly
    # scipy's integral, summed as scipy sums it (np.sum's pairwise sum). Not np.dot: BLAS spreads a long
    # dot product over threads that spin while waiting and take the CPU the other features need.
    np.multiply(gaps, cdf_gap[:-1], out=gaps)
    wasserstein = float(np.add.reduce(gaps)) / n / m
    return NumericalComparison(ks, ks_p_value(ks, n, m, combined[:n], combined[n:]), wasserstein)


def import_scipy() -> None:
    """Import, in the calling thread, every scipy module the functions here import lazily.

    Call it before comparing features in threads: two threads importing ``scipy.stats`` and
    ``scipy.stats._ksstats`` at the same moment take the two module locks in opposite orders, and Python
    breaks the cycle by raising ``_DeadlockError`` in one of them."""
    for module in ("scipy.special", "scipy.stats", "scipy.stats._ksstats"):
        # A scipy release without _ksstats: kstwo_sf falls back to the public kstwo.
        with contextlib.suppress(ImportError):
            importlib.import_module(module)


def ks_p_value(statistic: float, n: int, m: int, reference: Array, current: Array) -> float:
    """The two-sided KS p-value as ``scipy.stats.ks_2samp(method="auto")`` gives it.

    Small samples go to scipy itself (exact distribution; cheap at that size); large ones use the
    asymptotic ``kstwo`` distribution at ``round(n*m/(n+m))``, scipy's own formula for ``"asymp"``."""
    if max(n, m) <= KS_EXACT_MAX_N:
        from scipy.stats import ks_2samp

        return float(ks_2samp(reference, current, method="auto").pvalue)
    larger, smaller = sorted([float(n), float(m)], reverse=True)
    effective = round(larger * smaller / (larger + smaller))
    return min(max(kstwo_sf(statistic, effective), 0.0), 1.0)


def kstwo_sf(statistic: float, n: int) -> float:
    """``scipy.stats.kstwo.sf(statistic, n)``, the same number (to about 1e-16), faster.

    ``kstwo.sf`` validates its arguments and then calls scipy's ``_kolmogn(n, x, cdf=False)``; calling that
    directly gives the same bits in a tenth of the time (should a scipy release move it, the public call is
    used). In one band, ``2.2 <= n*x**2 < 370`` for n above 140, ``_kolmogn`` returns ``2 * smirnov(n, x)``,
    which sums up to n terms one at a time in double-double arithmetic: about a second at n = 500,000, for
    exactly the borderline drifts a report meets most. There the same series is summed here with numpy
    (:func:`smirnov_sf`)."""
    x, n = float(statistic), int(n)
    if SMIRNOV_SERIES_MIN_N < n <= SMIRNOV_MAX_COMPUTE_N and 0.0 < x < 0.5:
        t = n * x
        nx_squared = t * x  # computed as scipy computes it, so the bands switch at the same statistic
        if 1.0 < t < n - 1 and 2.2 <= nx_squared < 370.0:
            return min(max(2.0 * smirnov_sf(n, x), 0.0), 1.0)
    try:
        from scipy.stats._ksstats import _kolmogn
    except ImportError:  # pragma: no cover - depends on the scipy release
        from scipy.stats import kstwo

        return float(kstwo.sf(x, n))
    return float(_kolmogn(n, x, cdf=False))


def smirnov_sf(n: int, x: float) -> float:
    """The one-sided Kolmogorov-Smirnov survival function ``P(D+_n >= x)``, as ``scipy.special.smirnov``,
    for ``1 < n*x < n - 1``: the Birnbaum-Tingey sum ``x * sum_v C(n, v) (1 - x - v/n)**(n-v) (x + v/n)**(v-1)``
    over ``0 <= v < n(1 - x)``.

    Each term's logarithm is written so that nothing large cancels (Stirling's formula for the binomial with
    its remainder, and ``log1p`` of the small ratios), which keeps it within about 1e-13 of the exact value;
    the terms are then summed at once. Agrees with scipy's double-double sum to about 1e-16."""
    from scipy.special import gammaln

    nx = n * x
    last = n - math.floor(nx) - 1  # the largest v with 1 - x - v/n > 0
    v = np.arange(1, last + 1, dtype=np.float64)
    rest = n - v
    # log A_v = (n-v) log1p(-nx/(n-v)) + (v-1) log1p(nx/v) - log(v/n) + log(n / (2 pi v (n-v))) / 2
    #           + r(n) - r(v) - r(n-v), with r(k) = log k! - (k log k - k + log(2 pi k) / 2)
    logs = np.log1p(-nx / rest)
    logs *= rest
    second = np.log1p(nx / v)
    second *= v - 1
    logs += second
    del second
    logs -= np.log(v * (1.0 / n))
    logs += 0.5 * np.log(n / (2 * np.pi * v * rest))
    logs -= _stirling_remainder(v, gammaln)
    logs -= _stirling_remainder(rest[::-1], gammaln)[::-1]
    logs += float(_stirling_remainder(np.array([float(n)]), gammaln)[0])
    first = n * math.log1p(-x) - math.log(x)  # v = 0: (1 - x)**n / x
    top = max(float(logs.max(initial=-math.inf)), first)
    logs -= top
    np.exp(logs, out=logs)
    return x * math.exp(top) * (float(logs.sum()) + math.exp(first - top))


def _stirling_remainder(k: Array, gammaln: Any) -> Array:
    """``log(k!) - (k log k - k + log(2 pi k) / 2)`` for ascending k >= 1: exact below 20, the series above."""
    out = np.empty_like(k)
    split = int(np.searchsorted(k, 20.0))
    small = k[:split]
    out[:split] = gammaln(small + 1) - (small * np.log(small) - small + 0.5 * np.log(2 * np.pi * small))
    inverse = 1.0 / k[split:]
    squared = inverse * inverse
    out[split:] = inverse * (1 / 12 - squared * (1 / 360 - squared * (1 / 1260 - squared / 1680)))
    return out


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
