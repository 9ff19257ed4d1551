"""Offline drift reports: compare reference data (or a reference profile) with current data, per feature.

The default verdict, and why:

* Every feature, numerical or categorical, is judged by the **evidence** (:mod:`mlmon.drift.evidence`), as the
  live alerts judge it: the two-sample chi-square of its bins (the profile's quantile bins, or its top-K
  categories and ``__other__``) against the reference's, with both sample sizes in it, as a Wilson-Hilferty z,
  above the z a budget of false alarms gives for the number of features compared (``false_alarms_per_week``,
  an hour's window), and the PSI of the same bins above ``min_psi``. One scale for both types, and a verdict
  that weighs how many rows it rests on: at 100 rows a side two samples of one distribution are not drift, and
  at 100,000 rows a 0.3-sigma shift and a ten-point move of a category's share are.
* Reported beside it: the Kolmogorov-Smirnov test and the Wasserstein-1 distance normed by the reference
  standard deviation (numerical), chi-square over all categories and the Jensen-Shannon distance
  (categorical). Each judges at a fixed threshold whatever the sample size: KS flags shifts far too small to
  matter at a million rows; the distances flag noise at a hundred.
* Every feature gets the PSI on the reference profile's bins, counted with the rule of
  :meth:`FeatureProfile.bin_of` and clamped with ``PSI_EPSILON``, so the offline PSI equals the PSI the
  Prometheus recording rules compute live on the same data. ``psi_bins="sturges"`` instead reproduces
  Evidently's PSI (equal-width Sturges bins over both samples, Evidently's zero fill), to compare numbers
  with it; the evidence keeps the profile's bins.

``method`` overrides the verdict's statistic for the features it applies to (``ks`` and ``wasserstein``
to numerical ones, ``chisquare`` and ``jensenshannon`` to categorical ones, ``evidence`` and ``psi`` to all);
``threshold`` overrides its threshold. For ``evidence`` drift means z above the threshold (and PSI above
``min_psi``); for ``ks`` and ``chisquare``, p-value below it; for the distances, the statistic above it.

Missing values are never dropped from the story: the missing ratio of each side is reported per feature,
apart from the drift test (which compares the present values), and so are categories that the current
data has and the reference has not. A feature that cannot be compared (on one side only, no values on
one side, text in a numerical column) is listed under ``skipped`` with the reason; it never stops the
report.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal

from mlmon.contract import DEFAULT_BINS, PSI_EPSILON
from mlmon.drift.columns import LeftOut, choose_features, numbers_in_text, require_columns
from mlmon.drift.evidence import (
    ASSUMED_REFERENCE_OBSERVATIONS,
    DEFAULT_FALSE_ALARMS_PER_WEEK,
    DEFAULT_MIN_PSI,
    z_threshold,
)
from mlmon.errors import MlmonError

if TYPE_CHECKING:
    import numpy.typing as npt

    from mlmon.drift.profile import FeatureKind, FeatureProfile, Profile

    Array = npt.NDArray[Any]

Method = Literal["evidence", "ks", "wasserstein", "psi", "chisquare", "jensenshannon"]
PsiBins = Literal["quantile", "sturges"]
METHODS: tuple[Method, ...] = ("evidence", "ks", "wasserstein", "psi", "chisquare", "jensenshannon")
DEFAULT_THRESHOLDS: dict[Method, float] = {
    "evidence": math.nan,  # from the false-alarm budget and the features compared: see drift_report
    "ks": 0.05,
    "chisquare": 0.05,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "psi": 0.1,
}
P_VALUE_METHODS = frozenset({"ks", "chisquare"})
APPLIES_TO: dict[Method, frozenset[str]] = {
    "evidence": frozenset({"numerical", "categorical"}),
    "ks": frozenset({"numerical"}),
    "wasserstein": frozenset({"numerical"}),
    "chisquare": frozenset({"categorical"}),
    "jensenshannon": frozenset({"categorical"}),
    "psi": frozenset({"numerical", "categorical"}),
}
DEFAULT_TOP_K = 20
# The window the evidence threshold assumes offline: a model's default drift_window (mlmon.spec.Thresholds).
EVIDENCE_WINDOW_SECONDS = 3600.0
NOT_FROM_PROFILE = "the reference is a profile, which keeps bins but not the raw values this test needs"


class DriftError(MlmonError):
    """The two sides cannot be compared at all (no feature in common, bad settings)."""


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's comparison. ``statistic``/``p_value`` are those of ``method``, the verdict's test."""

    name: str
    kind: FeatureKind
    method: Method
    statistic: float
    p_value: float | None
    psi: float
    threshold: float
    drift: bool
    missing_ratio_reference: float
    missing_ratio_current: float
    count_reference: int
    count_current: int
    new_categories: tuple[str, ...] = ()
    evidence_z: float | None = None  # the evidence of drift (see mlmon.drift.evidence), whatever the method
    ks_statistic: float | None = None
    ks_p_value: float | None = None
    wasserstein_normed: float | None = None
    chisquare_statistic: float | None = None
    chisquare_p_value: float | None = None
    jensenshannon: float | None = None
    unavailable: Mapping[str, str] = field(default_factory=dict)  # test -> why it could not run
    bin_labels: tuple[str, ...] = ()
    reference_shares: tuple[float, ...] = ()
    current_shares: tuple[float, ...] = ()
    bin_edges: tuple[float, ...] = ()  # numerical: the interior edges between the bins, ascending
    # A text column read as numbers (see mlmon.drift.columns.numbers_in_text): per side, its most frequent
    # text cells (counted as missing) and how many rows held one.
    text_cells: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    text_cell_count: int = 0

    @property
    def bin_ranges(self) -> tuple[str, ...]:
        """A readable name per bin: the value range of a numerical bin (bin i holds edges[i-1] <= x <
        edges[i]), the category of a categorical one."""
        edges = self.bin_edges
        if self.kind != "numerical" or len(edges) != len(self.bin_labels) - 1:
            return self.bin_labels
        if not edges:
            return ("all values",)
        middle = [f"{low:.4g} to {high:.4g}" for low, high in pairwise(edges)]
        return (f"below {edges[0]:.4g}", *middle, f"{edges[-1]:.4g} and above")

    @property
    def severity(self) -> float:
        """How far past (or short of) its threshold the verdict's statistic is; 1 is on the threshold."""
        if self.method in P_VALUE_METHODS:
            p = max(self.p_value if self.p_value is not None else 1.0, 1e-300)
            return -math.log10(p) / -math.log10(self.threshold) if 0 < self.threshold < 1 else 0.0
        return self.statistic / self.threshold if self.threshold > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON keys of one feature (``mlmon drift --json``)."""
        return {
            "name": self.name,
            "type": self.kind,
            "method": self.method,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "psi": self.psi,
            "threshold": self.threshold,
            "drift": self.drift,
            "missing_ratio_reference": self.missing_ratio_reference,
            "missing_ratio_current": self.missing_ratio_current,
            "count_reference": self.count_reference,
            "count_current": self.count_current,
            "new_categories": list(self.new_categories),
            "evidence_z": self.evidence_z,
            "ks_statistic": self.ks_statistic,
            "ks_p_value": self.ks_p_value,
            "wasserstein_normed": self.wasserstein_normed,
            "chisquare_statistic": self.chisquare_statistic,
            "chisquare_p_value": self.chisquare_p_value,
            "jensenshannon": self.jensenshannon,
            "unavailable": dict(self.unavailable),
            "text_cells": {side: dict(cells) for side, cells in self.text_cells.items()},
            "text_cell_count": self.text_cell_count,
            "bin_edges": list(self.bin_edges),
            "bins": [
                {"label": label, "reference": ref, "current": cur}
                for label, ref, cur in zip(
                    self.bin_labels, self.reference_shares, self.current_shares, strict=True
                )
            ],
        }


@dataclass(frozen=True)
class SkippedFeature:
    name: str
    reason: str


@dataclass(frozen=True)
class DriftReport:
    """Every compared feature, most drifted first, and the features that could not be compared."""

    features: tuple[FeatureDrift, ...]
    skipped: tuple[SkippedFeature, ...]
    rows_reference: int
    rows_current: int
    psi_bins: PsiBins = "quantile"
    left_out: tuple[LeftOut, ...] = ()  # identifiers, timestamps and --exclude: not compared, by choice

    @property
    def drifted(self) -> tuple[FeatureDrift, ...]:
        return tuple(f for f in self.features if f.drift)

    @property
    def share_drifted(self) -> float:
        return len(self.drifted) / len(self.features) if self.features else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_reference": self.rows_reference,
            "rows_current": self.rows_current,
            "psi_bins": self.psi_bins,
            "features_compared": len(self.features),
            "features_drifted": len(self.drifted),
            "share_drifted": self.share_drifted,
            "dataset_drift": bool(self.drifted),
            "features": [f.to_dict() for f in self.features],
            "skipped": [{"name": s.name, "reason": s.reason} for s in self.skipped],
            "left_out": [column.to_dict() for column in self.left_out],
        }


@dataclass(frozen=True)
class _Side:
    """One side of one feature, cleaned: present values (sorted floats, or category texts) and missing."""

    values: Array
    missing_ratio: float
    rows: int


def drift_report(
    reference: Mapping[str, Any] | Profile,
    current: Mapping[str, Any],
    *,
    features: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    feature_types: Mapping[str, str] | None = None,
    method: Method | None = None,
    threshold: float | None = None,
    min_psi: float = DEFAULT_MIN_PSI,
    false_alarms_per_week: float = DEFAULT_FALSE_ALARMS_PER_WEEK,
    psi_bins: PsiBins = "quantile",
    bins: int = DEFAULT_BINS,
    top_k: int = DEFAULT_TOP_K,
    progress: Callable[[str], None] | None = None,
    workers: int | None = None,
) -> DriftReport:
    """Compare ``current`` columns with ``reference`` columns (or a reference :class:`Profile`).

    Columns are name -> 1-D array, or :class:`mlmon.data.CategoryColumn` for text (counted without a
    Python loop), as :func:`mlmon.data.read_table` returns them. ``features`` names the features to
    compare; by default every reference column (or profile feature) but ``exclude`` and the identifier and
    timestamp columns :func:`mlmon.drift.columns.choose_features` recognises, which the report lists as
    ``left_out``. A feature is numerical when its reference array is numeric (or the profile
    says so), unless ``feature_types`` says otherwise. ``progress`` is called with each feature's name as
    it finishes. A text column whose cells are numbers but for at most 5% is compared as numerical, its text
    cells counted as missing and listed in ``text_cells`` (unless ``feature_types`` says categorical).
    Features are compared in ``workers`` threads (default: one per CPU); numpy releases the
    GIL while it sorts.

    Example::

        report = drift_report(read_table("train.parquet"), read_table("today.parquet"))
        [f.name for f in report.drifted]
    """
    import numpy as np

    from mlmon.data import CategoryColumn
    from mlmon.drift.profile import Profile

    if method is not None and method not in METHODS:
        raise DriftError(f"unknown method {method!r}", f"use one of {', '.join(METHODS)}")
    if threshold is not None and not (threshold > 0 and math.isfinite(threshold)):
        raise DriftError(f"threshold must be a positive number, got {threshold!r}")
    if psi_bins not in ("quantile", "sturges"):
        raise DriftError(f"unknown PSI binning {psi_bins!r}", "use quantile or sturges")
    profile = reference if isinstance(reference, Profile) else None
    reference_columns: Mapping[str, Any] = {} if profile is not None else reference  # type: ignore[assignment]
    reference_names = list(profile.feature_names) if profile is not None else list(reference_columns)
    names, left_out = _choose_features(profile, reference_columns, current, features, exclude)
    types = dict(feature_types or {})
    # The evidence threshold a live model with these features gets from the same budget (an hour's window),
    # so that the same counts give the same verdict offline and live.
    evidence_z = z_threshold(false_alarms_per_week, max(len(names), 1), EVIDENCE_WINDOW_SECONDS)
    limits = _Limits(threshold, evidence_z, min_psi)
    rows_current = _rows(current)
    rows_reference = profile.rows if profile is not None else _rows(reference_columns)

    skipped: list[SkippedFeature] = []
    jobs: list[tuple[str, Callable[[], FeatureDrift]]] = []
    text_cells: dict[str, tuple[dict[str, dict[str, int]], int]] = {}
    for name in names:
        if name not in reference_names:
            skipped.append(SkippedFeature(name, "not in the reference"))
            continue
        if name not in current:
            skipped.append(SkippedFeature(name, "only in the reference, not in the current data"))
            continue
        current_array = current[name]
        if profile is not None:
            feature_profile = profile.feature(name)
            if feature_profile.kind == "numerical":
                _, current_array, cells = _text_as_numbers({"current": current_array})
                if cells:
                    text_cells[name] = cells
            arguments: tuple[Any, ...] = (feature_profile, current_array, method, limits)
            jobs.append((name, _bind(_compare_to_profile, *arguments)))
        else:
            reference_array = reference_columns[name]
            if not isinstance(reference_array, CategoryColumn):
                reference_array = np.asarray(reference_array)
            declared = types.get(name)
            numeric = not isinstance(reference_array, CategoryColumn) and reference_array.dtype.kind in "iuf"
            if declared is None and not numeric:
                sides = {"reference": reference_array, "current": current_array}
                converted, current_array, cells = _text_as_numbers(sides)
                if converted is not None:
                    reference_array, numeric = converted, True
                    if cells:
                        text_cells[name] = cells
            elif numeric and declared != "categorical":
                _, current_array, cells = _text_as_numbers({"current": current_array})
                if cells:
                    text_cells[name] = cells
            kind: FeatureKind = (
                "numerical" if declared == "numerical" or (declared is None and numeric) else "categorical"
            )
            arguments = (name, kind, reference_array, current_array, method, limits, psi_bins, bins, top_k)
            jobs.append((name, _bind(_compare_columns, *arguments)))
    if features is None:
        chosen_or_left_out = set(names) | {column.name for column in left_out}
        for name in current:
            if name not in reference_names and name not in chosen_or_left_out:
                skipped.append(SkippedFeature(name, "only in the current data, not in the reference"))

    compared: list[FeatureDrift] = []
    if jobs:
        from mlmon.drift.two_sample import import_scipy

        import_scipy()  # here, not lazily in the workers: see import_scipy
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for result in pool.map(_guarded, jobs):
            if isinstance(result, SkippedFeature):
                skipped.append(result)
            else:
                if result.name in text_cells:
                    by_side, count = text_cells[result.name]
                    result = replace(result, text_cells=by_side, text_cell_count=count)
                compared.append(result)
            if progress is not None:
                progress(result.name)
    if not compared and not skipped:
        left = f" (left out: {', '.join(c.name for c in left_out)})" if left_out else ""
        raise DriftError(
            f"no features to compare{left}",
            "pass data with at least one feature column on both sides, or name columns with --feature",
        )
    compared.sort(key=lambda f: (not f.drift, -f.severity, f.name))
    return DriftReport(
        tuple(compared), tuple(skipped), rows_reference, rows_current, psi_bins, tuple(left_out)
    )


def _choose_features(
    profile: Profile | None,
    reference_columns: Mapping[str, Any],
    current: Mapping[str, Any],
    features: Sequence[str] | None,
    exclude: Sequence[str],
) -> tuple[list[str], list[LeftOut]]:
    """The features to compare and the columns left out. A profile's features were chosen when it was built,
    so only the current data's columns that the profile lacks are looked at for identifiers and timestamps
    (they are left out, rather than reported as missing from the reference)."""
    known: Mapping[str, Any] = (
        dict.fromkeys(profile.feature_names) if profile is not None else reference_columns
    )
    extra = {name: values for name, values in current.items() if name not in known}
    require_columns(exclude, [*known, *extra], "--exclude", "either side")
    names, left_out = choose_features(
        known,
        include=features,
        exclude=[name for name in exclude if name in known],
        side="the reference profile" if profile is not None else "the reference data",
        guess=profile is None,
    )
    if features is None and extra:
        _, extra_left_out = choose_features(extra, exclude=[name for name in exclude if name in extra])
        left_out += extra_left_out
    return names, left_out


def _text_as_numbers(
    sides: Mapping[str, Any],
) -> tuple[Any, Any, tuple[dict[str, dict[str, int]], int] | None]:
    """Text columns that hold numbers but for a few cells, read as numbers (see
    :func:`mlmon.drift.columns.numbers_in_text`): (the reference converted, or None where it is not given or
    stays text; the current side, converted where it was text; the text cells per side, at most five each,
    and how many rows held one). The text sides convert together or not at all."""
    import numpy as np

    from mlmon.data import CategoryColumn

    converted: dict[str, Any] = {}
    for side, values in sides.items():
        if isinstance(values, CategoryColumn) or np.asarray(values).dtype.kind == "O":
            numbers = numbers_in_text(values)
            if numbers is None:
                return None, sides["current"], None
            converted[side] = numbers
    if not converted:
        return None, sides["current"], None
    cells = {side: dict(list(n.text_cells.items())[:5]) for side, n in converted.items() if n.text_cells}
    count = sum(n.text_cell_count for n in converted.values())
    reference = converted["reference"].values if "reference" in converted else None
    current = converted["current"].values if "current" in converted else sides["current"]
    return reference, current, ((cells, count) if count else None)


def _bind(function: Callable[..., FeatureDrift], *args: Any) -> Callable[[], FeatureDrift]:
    return lambda: function(*args)


def _guarded(job: tuple[str, Callable[[], FeatureDrift]]) -> FeatureDrift | SkippedFeature:
    """One bad column never stops the report: a problem with its values becomes a skipped feature."""
    name, compare = job
    try:
        return compare()
    except _Skip as skip:
        return SkippedFeature(skip.name, skip.reason)
    except (ValueError, TypeError, ArithmeticError, MemoryError) as exc:
        # Values no reader of mlmon's produces (a library caller's datetimes, complex numbers, objects):
        # the feature is listed with the reason, and the others are still compared.
        return SkippedFeature(name, f"cannot be compared: {type(exc).__name__}: {exc}")


class _Skip(Exception):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.name = name
        self.reason = reason


def _rows(columns: Mapping[str, Any]) -> int:
    for values in columns.values():
        return len(values)
    return 0


# -- numerical ----------------------------------------------------------------------------------------------


def _numbers(name: str, values: Any, side: str) -> _Side:
    """One side's finite values, sorted (a copy: the caller's array stays as it was)."""
    return _sorted_sides(name, [(values, side)])[0][0]


def _sorted_sides(name: str, sides: Sequence[tuple[Any, str]]) -> tuple[list[_Side], Array]:
    """The finite values of each side, each sorted in place in its own slice of one shared buffer (also
    returned).

    Laid out so (reference values, then current values) that the merge of the two needs no further copy.
    Infinities are in no bin for the live monitor either; they count with the missing values here."""
    import numpy as np

    from mlmon.drift.build import ProfileBuildError, as_numbers

    columns: list[tuple[Array, Array | None, int]] = []
    for values, side in sides:
        try:
            numbers = as_numbers(name, values)
        except ProfileBuildError as exc:
            raise _Skip(name, f"{side}: {exc.message}") from None
        if numbers.ndim != 1:
            raise _Skip(name, f"the {side} column is not one-dimensional (shape {numbers.shape})")
        if numbers.size == 0:
            raise _Skip(name, f"no rows in the {side} data")
        is_finite = np.isfinite(numbers)
        count = int(np.count_nonzero(is_finite))
        if count == 0:
            raise _Skip(name, f"no values in the {side} data (every row is missing)")
        columns.append((numbers, None if count == numbers.size else is_finite, count))
    buffer = np.empty(sum(count for _, _, count in columns), dtype=np.float64)
    result, start = [], 0
    for numbers, finite_rows, count in columns:
        part = buffer[start : start + count]
        if finite_rows is None:
            part[:] = numbers
        else:
            np.compress(finite_rows, numbers, out=part)
        part.sort()
        result.append(_Side(part, (numbers.size - count) / numbers.size, int(numbers.size)))
        start += count
    return result, buffer


def _compare_columns(
    name: str,
    kind: FeatureKind,
    reference_values: Any,
    current_values: Any,
    method: Method | None,
    limits: _Limits,
    psi_bins: PsiBins,
    bins: int,
    top_k: int,
) -> FeatureDrift:
    if kind == "numerical":
        return _compare_numerical(name, reference_values, current_values, method, limits, psi_bins, bins)
    return _compare_categorical(name, reference_values, current_values, method, limits, psi_bins, top_k)


def _compare_numerical(
    name: str,
    reference_values: Any,
    current_values: Any,
    method: Method | None,
    limits: _Limits,
    psi_bins: PsiBins,
    bins: int,
) -> FeatureDrift:
    import numpy as np

    from mlmon.drift.build import quantile_edges
    from mlmon.drift.profile import shares
    from mlmon.drift.two_sample import compare_runs, sturges_psi

    sides, both = _sorted_sides(name, [(reference_values, "reference"), (current_values, "current")])
    reference, current = sides
    scale = _overflow_scale(reference.values, current.values)
    if scale == 1.0:
        comparison = compare_runs(both, reference.values.size)
        std = float(np.std(reference.values))
    else:  # KS and the normed Wasserstein distance do not change when every value is scaled alike
        comparison = compare_runs(both * scale, reference.values.size)
        std = float(np.std(reference.values * scale))
    normed = comparison.wasserstein / std if std > 0 else (0.0 if comparison.wasserstein == 0 else math.inf)
    # The profile's rule (mlmon.drift.build): quantile edges of the sorted finite reference values, and
    # bin i holds edges[i-1] <= x < edges[i], i.e. bisect_right, as FeatureProfile.bin_of counts live. The
    # evidence is always judged on these bins, as the live rules judge it.
    quantiles = quantile_edges(reference.values, bins)
    current_counts = _sorted_bin_counts(current.values, quantiles)
    reference_shares = tuple(shares(_sorted_bin_counts(reference.values, quantiles)))
    current_shares = tuple(shares(current_counts))
    psi_value = quantile_psi = _psi(current_shares, reference_shares)
    evidence = _evidence_z(current_counts, reference_shares, reference.values.size)
    labels = tuple(str(i) for i in range(len(quantiles) + 1))
    interior = tuple(quantiles.tolist())
    if psi_bins == "sturges":
        psi_value, edges, ref_shares, cur_shares = sturges_psi(reference.values, current.values)
        labels = tuple(f"{low:.4g}..{high:.4g}" for low, high in pairwise(edges.tolist()))
        reference_shares, current_shares = tuple(ref_shares.tolist()), tuple(cur_shares.tolist())
        interior = tuple(edges[1:-1].tolist())
    statistics: dict[Method, tuple[float, float | None]] = {
        "evidence": (evidence, None),
        "ks": (comparison.ks_statistic, comparison.ks_p_value),
        "wasserstein": (normed, None),
        "psi": (psi_value, None),
    }
    chosen = _choose(method, "numerical", "evidence")
    return _verdict(
        name,
        "numerical",
        chosen,
        statistics[chosen],
        psi_value,
        limits,
        reference,
        current,
        evidence_psi=quantile_psi,
        evidence_z=evidence,
        ks_statistic=comparison.ks_statistic,
        ks_p_value=comparison.ks_p_value,
        wasserstein_normed=normed,
        unavailable=_not_applicable("numerical"),
        bin_labels=labels,
        reference_shares=reference_shares,
        current_shares=current_shares,
        bin_edges=interior,
    )


# np.std squares the values, and the Wasserstein sum multiplies gaps by counts up to n*m: beyond this magnitude
# (about 2.6e120) either can overflow to inf, and inf / inf is NaN.
_LARGEST_SAFE = 2.0**400


def _overflow_scale(*sorted_samples: Array) -> float:
    """1.0, or the power of two (exact, no rounding) that brings values this large below 1."""
    largest = max((max(abs(float(s[0])), abs(float(s[-1]))) for s in sorted_samples if s.size), default=0.0)
    if largest <= _LARGEST_SAFE:
        return 1.0
    return math.ldexp(1.0, -math.frexp(largest)[1])


def _sorted_bin_counts(sorted_values: Array, edges: Array) -> list[int]:
    """Counts per bin of sorted values, bin i holding edges[i-1] <= x < edges[i] (``bisect_right``)."""
    import numpy as np

    below = np.searchsorted(sorted_values, edges, side="left")  # values < each edge
    counts: list[int] = np.diff(np.concatenate([[0], below, [sorted_values.size]])).tolist()
    return counts


# -- categorical --------------------------------------------------------------------------------------------


def _categories(name: str, values: Any, side: str) -> tuple[Counter[str], float, int]:
    from mlmon.data import CategoryColumn
    from mlmon.drift.build import category_texts

    if isinstance(values, CategoryColumn):
        present, missing = values.counts()
        counts: Counter[str] = Counter(present)
        rows = len(values)
    else:
        import numpy as np

        if np.ndim(values) != 1:
            raise _Skip(name, f"the {side} column is not one-dimensional (shape {np.shape(values)})")
        texts = category_texts(values)
        rows = texts.size
        counts = Counter(texts.tolist())
        missing = counts.pop(None, 0)  # type: ignore[call-overload]
    if rows == 0:
        raise _Skip(name, f"no rows in the {side} data")
    if missing == rows:
        raise _Skip(name, f"no values in the {side} data (every row is missing)")
    return counts, missing / rows, rows


def _top_categories(counts: Counter[str], top_k: int) -> list[str]:
    from mlmon.contract import OTHER_BIN

    # The rule of mlmon.drift.build: most frequent first, ties by name; "" and __other__ count as other.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [category for category, _ in ranked if category not in ("", OTHER_BIN)][:top_k]


def _compare_categorical(
    name: str,
    reference_values: Any,
    current_values: Any,
    method: Method | None,
    limits: _Limits,
    psi_bins: PsiBins,
    top_k: int,
) -> FeatureDrift:
    from mlmon.contract import OTHER_BIN
    from mlmon.drift.profile import shares
    from mlmon.drift.two_sample import chi_square, evidently_category_psi, jensen_shannon

    reference_counts, reference_missing, _ = _categories(name, reference_values, "reference")
    current_counts, current_missing, _ = _categories(name, current_values, "current")
    union = sorted(set(reference_counts) | set(current_counts))
    ref_all = [reference_counts.get(c, 0) for c in union]
    cur_all = [current_counts.get(c, 0) for c in union]
    chi2_statistic, chi2_p = chi_square(ref_all, cur_all)
    js = jensen_shannon(ref_all, cur_all)
    top = _top_categories(reference_counts, top_k)
    labels = (*top, OTHER_BIN)
    ref_top = [reference_counts[c] for c in top]
    cur_top = [current_counts.get(c, 0) for c in top]
    reference_shares = tuple(shares([*ref_top, sum(reference_counts.values()) - sum(ref_top)]))
    current_binned = [*cur_top, sum(current_counts.values()) - sum(cur_top)]
    current_shares = tuple(shares(current_binned))
    psi_value = quantile_psi = _psi(current_shares, reference_shares)
    if psi_bins == "sturges":
        psi_value = evidently_category_psi(ref_all, cur_all)
    evidence = _evidence_z(current_binned, reference_shares, sum(reference_counts.values()))
    statistics: dict[Method, tuple[float, float | None]] = {
        "evidence": (evidence, None),
        "chisquare": (chi2_statistic, chi2_p),
        "jensenshannon": (js, None),
        "psi": (psi_value, None),
    }
    chosen = _choose(method, "categorical", "evidence")
    reference_present = sum(reference_counts.values())
    current_present = sum(current_counts.values())
    return FeatureDrift(
        **_common(
            name,
            "categorical",
            chosen,
            statistics[chosen],
            psi_value,
            limits,
            (reference_missing, current_missing, reference_present, current_present),
            evidence_psi=quantile_psi,
        ),
        evidence_z=evidence,
        new_categories=tuple(c for c in union if c not in reference_counts),
        chisquare_statistic=chi2_statistic,
        chisquare_p_value=chi2_p,
        jensenshannon=js,
        unavailable=_not_applicable("categorical"),
        bin_labels=labels,
        reference_shares=reference_shares,
        current_shares=current_shares,
    )


# -- against a profile --------------------------------------------------------------------------------------


def _compare_to_profile(
    profile: FeatureProfile, current_values: Any, method: Method | None, limits: _Limits
) -> FeatureDrift:
    """PSI and chi-square on the profile's own bins; tests needing raw reference values are unavailable."""
    import numpy as np

    from mlmon.drift.profile import shares
    from mlmon.drift.two_sample import chi_square, jensen_shannon

    name = profile.name
    if profile.kind == "numerical":
        current = _numbers(name, current_values, "current")
        edges = np.asarray(profile.edges, dtype=np.float64)
        counts = _sorted_bin_counts(current.values, edges)
        missing, present = current.missing_ratio, int(current.values.size)
        new_categories: tuple[str, ...] = ()
    else:
        current_counts, missing, _ = _categories(name, current_values, "current")
        known = set(profile.categories)
        counts = [current_counts.get(c, 0) for c in profile.categories]
        present = sum(current_counts.values())
        counts.append(present - sum(counts))
        new_categories = tuple(sorted(c for c in current_counts if c not in known))
    current_shares = tuple(shares(counts))
    reference_shares = tuple(profile.reference_ratios)
    psi_value = _psi(current_shares, reference_shares)
    reference_counts = [share * profile.count for share in reference_shares]
    chi2_statistic, chi2_p = chi_square(reference_counts, counts)
    js = jensen_shannon(reference_shares, current_shares)
    # A profile written before counts were kept: its reference is taken as exact, as the live rules take it.
    evidence = _evidence_z(counts, reference_shares, profile.count or ASSUMED_REFERENCE_OBSERVATIONS)
    statistics: dict[Method, tuple[float, float | None]] = {
        "evidence": (evidence, None),
        "chisquare": (chi2_statistic, chi2_p),
        "jensenshannon": (js, None),
        "psi": (psi_value, None),
    }
    unavailable = dict(_not_applicable(profile.kind))
    if profile.kind == "numerical":
        unavailable.update({"ks": NOT_FROM_PROFILE, "wasserstein": NOT_FROM_PROFILE})
        # On bins, chi-square and JS compare the binned shares; KS and Wasserstein fall back to the evidence.
        if method in ("ks", "wasserstein"):
            method = None
    default: Method = "evidence"
    chosen = method if method in statistics else default
    return FeatureDrift(
        **_common(
            name,
            profile.kind,
            chosen,
            statistics[chosen],
            psi_value,
            limits,
            (profile.missing_ratio, missing, profile.count, present),
        ),
        evidence_z=evidence,
        new_categories=new_categories,
        chisquare_statistic=chi2_statistic,
        chisquare_p_value=chi2_p,
        jensenshannon=js,
        unavailable=unavailable,
        bin_labels=profile.bin_labels,
        reference_shares=reference_shares,
        current_shares=current_shares,
        bin_edges=profile.edges,
    )


# -- shared -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Limits:
    """What a verdict is measured against: the user's threshold for the chosen method (None: its default),
    and for the evidence its z threshold and its effect floor (PSI)."""

    threshold: float | None
    evidence_z: float
    min_psi: float


def _evidence_z(
    current_counts: Sequence[float], reference_shares: Sequence[float], reference_count: float
) -> float:
    """The two-sample chi-square of the bins as a z score (mlmon.drift.evidence), as the live rules record it."""
    from mlmon.drift.evidence import chi_square_homogeneity, wilson_hilferty_z

    statistic, degrees = chi_square_homogeneity(current_counts, reference_shares, reference_count)
    return wilson_hilferty_z(statistic, degrees)


def _psi(current_shares: Sequence[float], reference_shares: Sequence[float]) -> float:
    from mlmon.drift.statistics import psi

    return psi(current_shares, reference_shares, PSI_EPSILON)


def _choose(method: Method | None, kind: str, default: Method) -> Method:
    return method if method is not None and kind in APPLIES_TO[method] else default


def _not_applicable(kind: str) -> dict[str, str]:
    return {m: f"not a test for {kind} features" for m in METHODS if kind not in APPLIES_TO[m]}


def _common(
    name: str,
    kind: FeatureKind,
    method: Method,
    result: tuple[float, float | None],
    psi_value: float,
    limits: _Limits,
    sides: tuple[float, float, int, int],
    evidence_psi: float | None = None,
) -> dict[str, Any]:
    """The verdict and the fields every feature has. The evidence is judged with the PSI of the profile's
    bins (``evidence_psi``, where ``psi_value`` is Evidently's) as its effect size."""
    statistic, p_value = result
    if math.isnan(statistic) or (p_value is not None and math.isnan(p_value)):
        # Never a verdict: NaN compares False with every threshold and would read as "no drift".
        raise _Skip(name, f"its {method} statistic is not a number (NaN), so no verdict can be given")
    if method == "evidence":
        limit = limits.threshold if limits.threshold is not None else limits.evidence_z
        effect = psi_value if evidence_psi is None else evidence_psi
        drift = statistic > limit and effect > limits.min_psi
    else:
        limit = limits.threshold if limits.threshold is not None else DEFAULT_THRESHOLDS[method]
        drift = (p_value is not None and p_value < limit) if method in P_VALUE_METHODS else statistic > limit
    return {
        "name": name,
        "kind": kind,
        "method": method,
        "statistic": statistic,
        "p_value": p_value,
        "psi": psi_value,
        "threshold": limit,
        "drift": bool(drift),
        "missing_ratio_reference": sides[0],
        "missing_ratio_current": sides[1],
        "count_reference": sides[2],
        "count_current": sides[3],
    }


def _verdict(
    name: str,
    kind: FeatureKind,
    method: Method,
    result: tuple[float, float | None],
    psi_value: float,
    limits: _Limits,
    reference: _Side,
    current: _Side,
    evidence_psi: float | None = None,
    **details: Any,
) -> FeatureDrift:
    sides = (
        reference.missing_ratio,
        current.missing_ratio,
        int(reference.values.size),
        int(current.values.size),
    )
    common = _common(name, kind, method, result, psi_value, limits, sides, evidence_psi)
    return FeatureDrift(**common, **details)
