"""Building a reference profile from data: the bins, the reference share of each bin, the statistics.

The bins built here are the ones the live monitor counts with :meth:`FeatureProfile.bin_of`, and the
reference shares are counted with exactly that rule (``numpy.searchsorted(edges, x, side="right")`` is
``bisect_right``), so a service fed the reference data would export the reference shares to the last bit.

Example::

    from mlmon.data import read_table
    from mlmon.drift.build import build_profile

    columns = read_table("reference.parquet")
    profile = build_profile(columns, model="credit-risk", target="label", prediction="predicted")
    Path("profile.json").write_text(profile.to_json())
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from mlmon.contract import DEFAULT_BINS, DEFAULT_LABEL_VALUE_CAP, OTHER_BIN
from mlmon.drift.columns import LeftOut
from mlmon.drift.profile import FeatureKind, FeatureProfile, Profile, category_label, shares
from mlmon.errors import MlmonError

Task = Literal["classification", "regression"]
Array = npt.NDArray[Any]

TASKS: tuple[Task, ...] = ("classification", "regression")
FEATURE_KINDS: tuple[FeatureKind, ...] = ("numerical", "categorical")
# The name Profile.from_dict gives the prediction's profile, so a profile reads back equal to the one built.
PREDICTION_NAME = "__prediction__"
MIN_BINS, MAX_BINS = 2, 100
DEFAULT_TOP_K = 20
# Top-K categories plus __other__ must stay within the monitor's cap on values of one label.
MAX_TOP_K = DEFAULT_LABEL_VALUE_CAP - 1
NUMERICAL_STAT_QUANTILES = {"p01": 0.01, "p50": 0.5, "p99": 0.99}


class ProfileBuildError(MlmonError):
    """The data or the settings cannot make a profile (an unknown or empty column, a bad bin count)."""


def build_profile(
    columns: Mapping[str, Any],
    model: str,
    features: Sequence[str] | None = None,
    feature_types: Mapping[str, str] | None = None,
    target: str | None = None,
    prediction: str | None = None,
    confidence: str | None = None,
    bins: int = DEFAULT_BINS,
    top_k: int = DEFAULT_TOP_K,
    task: Task = "classification",
) -> Profile:
    """Build the reference profile of ``model`` from reference data.

    ``columns`` maps column names to equal-length 1-D arrays (what :func:`mlmon.data.read_table` returns).
    ``features`` defaults to every column except ``target``, ``prediction`` and ``confidence``. A feature
    is numerical when its array has a numeric dtype and categorical otherwise (text, booleans, objects);
    ``feature_types`` overrides that per feature (``{"zip_code": "categorical"}`` for integer codes).

    Numerical features get quantile bins (see :func:`quantile_edges`); categorical ones their ``top_k``
    most frequent categories plus ``__other__``. The prediction is profiled like a feature: class labels
    as categories for classification, quantile bins for regression. ``reference_confidence_mean`` comes
    from ``confidence``; ``reference_accuracy`` from ``target`` and ``prediction`` for classification.

    Features come out sorted by name, as the file stores them. The result depends only on the data, not on
    row order: the same rows in any order give the same ``Profile.to_json()`` bytes.

    Raises :class:`ProfileBuildError`, naming the column, for an unknown column, a column with no values,
    a feature that is also the target or prediction, no features, ``bins`` outside 2..100, or ``top_k``
    outside 1..99.
    """
    _check_settings(model, bins, top_k, task)
    arrays, rows = _as_arrays(columns)
    roles = {"target": target, "prediction": prediction, "confidence": confidence}
    for role, name in roles.items():
        if name is not None:
            _require_column(arrays, name, role)
    names = _feature_names(arrays, features, roles)
    kinds = _feature_kinds(arrays, names, feature_types or {})
    confidence_mean, confidence_rows = _confidence_mean(arrays, confidence)
    accuracy, accuracy_rows = _accuracy(arrays, target, prediction, task)
    return Profile(
        model=model,
        # Sorted by name, as the file stores them, so a profile reads back equal to the one built.
        features=tuple(
            profile_feature(name, arrays[name], kinds[name], bins, top_k) for name in sorted(names)
        ),
        prediction=_prediction_profile(arrays, prediction, task, bins, top_k),
        rows=rows,
        bins=bins,
        task=task,
        reference_confidence_mean=confidence_mean,
        reference_accuracy=accuracy,
        reference_confidence_rows=confidence_rows,
        reference_accuracy_rows=accuracy_rows,
    )


def profile_feature(name: str, values: Any, kind: FeatureKind, bins: int, top_k: int) -> FeatureProfile:
    """The profile of one column: its bins, their reference shares, its missing ratio and statistics.

    Numerical statistics (count, mean, std with ddof=0, min, max, p01, p50, p99) describe the finite values;
    infinities are in no bin, as the live monitor counts them (as invalid input, apart). Categorical
    statistics are the count of non-missing values and the number of distinct categories."""
    if kind == "numerical":
        return _numerical_profile(name, as_numbers(name, values), bins)
    return _categorical_profile(name, category_texts(values), top_k)


def quantile_edges(sorted_values: Array, bins: int) -> Array:
    """Interior bin edges: the 1/B, ..., (B-1)/B quantiles of the (sorted, finite) reference values.

    Equal quantiles collapse into one edge, so a column with few distinct values gets fewer bins. An edge
    at the minimum is dropped too: no reference value lies below it, so the bin under it would always
    have a reference share of 0. A constant column thus has no edge and one bin.
    """
    probabilities = np.arange(1, bins) / bins
    edges: Array = np.unique(sorted_quantiles(sorted_values, probabilities))
    above_minimum: Array = edges[edges > sorted_values[0]]
    return above_minimum


def sorted_quantiles(sorted_values: Array, probabilities: Array) -> Array:
    """``numpy.quantile(sorted_values, probabilities, method="linear")``, bit for bit, for sorted values.

    numpy partitions a copy of the whole array first; on values already sorted the two neighbours of each
    quantile are just read, which turns tens of milliseconds per million values into microseconds. The
    interpolation is numpy's own (``_lerp``: from the lower neighbour below 0.5, from the upper one above)."""
    count = sorted_values.size
    virtual = (count - 1) * np.asarray(probabilities, dtype=np.float64)
    previous = np.floor(virtual)
    gamma = virtual - previous
    lower_index = previous.astype(np.intp)
    upper_index = lower_index + 1
    # numpy takes the last value for quantiles at or beyond it (the upper neighbour would not exist).
    at_end = virtual >= count - 1
    lower_index[at_end] = upper_index[at_end] = count - 1
    lower, upper = sorted_values[lower_index], sorted_values[upper_index]
    with np.errstate(over="ignore"):
        difference = upper - lower
    interpolated: Array = np.where(gamma >= 0.5, upper - difference * (1 - gamma), lower + difference * gamma)
    # Neighbours of opposite sign near float64's limit: their difference overflows (numpy's quantile gives
    # inf there, an edge no value lies above). A weighted sum of the two stays within them.
    overflowed = ~np.isfinite(difference)
    if overflowed.any():
        weighted = lower * (1 - gamma) + upper * gamma
        interpolated = np.where(overflowed, weighted, interpolated)
    return interpolated


def as_numbers(name: str, values: Any) -> Array:
    """A column as float64 with NaN for missing (the array itself when it is float64 already: callers do not
    write to it); text that is not a number is an error naming the column."""
    array = np.asarray(values)
    if array.dtype.kind in "biuf":
        return array.astype(np.float64, copy=False)
    numbers = np.empty(len(array), dtype=np.float64)
    for index, value in enumerate(array.tolist()):
        try:
            numbers[index] = math.nan if value is None else float(value)
        except (TypeError, ValueError):
            raise ProfileBuildError(
                f"column {name!r} is numerical but holds {value!r} (row {index + 1})",
                f"declare {name!r} categorical, or clean the data",
            ) from None
    return numbers


def category_texts(values: Any) -> Array:
    """A column as the category text of each row (an object array of str, None where missing).

    Text is what the live monitor's ``FeatureProfile.bin_of`` compares: ``str(value)``. Numeric arrays are
    the exception: whole numbers read as ``"3"``, not ``"3.0"``, because files hand integer codes over as
    float64 (a CSV column with a gap) while a service sends them as ints.
    """
    array = np.asarray(values)
    if array.dtype.kind in "iu":
        distinct, inverse = np.unique(array, return_inverse=True)
        return np.array([str(v) for v in distinct.tolist()], dtype=object)[inverse.reshape(-1)]
    if array.dtype.kind == "f":
        return _float_texts(array)
    if array.dtype.kind == "b":
        return np.where(array, "True", "False").astype(object)
    return _object_texts(array)


def _object_texts(array: Array) -> Array:
    values = array.tolist()
    try:
        distinct = set(values)
    except TypeError:  # unhashable values (lists)
        distinct = {None, ()}
    # The usual case, str or None as read_table returns them, needs no per-row Python work.
    if all(v is None or type(v) is str for v in distinct):
        return array.astype(object, copy=False)
    # Row by row: a set would merge 1, 1.0 and True, which the live monitor tells apart.
    return np.array([_value_text(v) for v in values], dtype=object)


def _float_texts(array: Array) -> Array:
    texts = np.full(len(array), None, dtype=object)
    present = ~np.isnan(array)
    distinct, inverse = np.unique(array[present], return_inverse=True)
    labels = np.array([_number_text(v) for v in distinct.tolist()], dtype=object)
    texts[present] = labels[inverse.reshape(-1)]
    return texts


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _value_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else category_label(value)


def _refuse_hidden_characters(what: str, name: str) -> None:
    """The live monitor and the rules must see the very name a person reads (see :mod:`mlmon.names`)."""
    from mlmon.names import hidden_characters, visible

    problem = hidden_characters(name)
    if problem is not None:
        raise ProfileBuildError(
            f"{what} '{visible(name)}' {problem}",
            "rename it in the data (or name the features to profile with --feature)",
        )


def _check_settings(model: str, bins: int, top_k: int, task: str) -> None:
    if not model:
        raise ProfileBuildError("the model name is empty", "name the model the profile belongs to")
    _refuse_hidden_characters("model name", model)
    if not MIN_BINS <= bins <= MAX_BINS:
        raise ProfileBuildError(
            f"bins must be between {MIN_BINS} and {MAX_BINS}, got {bins}",
            f"the default of {DEFAULT_BINS} quantile bins suits most features",
        )
    if not 1 <= top_k <= MAX_TOP_K:
        raise ProfileBuildError(
            f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}",
            f"top-K categories plus {OTHER_BIN} must stay within {DEFAULT_LABEL_VALUE_CAP} label values",
        )
    if task not in TASKS:
        raise ProfileBuildError(f"task must be one of {', '.join(TASKS)}, got {task!r}")


def _as_arrays(columns: Mapping[str, Any]) -> tuple[dict[str, Array], int]:
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    if not arrays:
        raise ProfileBuildError("the data has no columns", "profile a file with a header and rows")
    lengths = {name: array.shape[0] if array.ndim == 1 else -1 for name, array in arrays.items()}
    rows = max(lengths.values())
    for name, length in lengths.items():
        if length != rows:
            raise ProfileBuildError(
                f"column {name!r} is not a 1-D column of {rows} values",
                "pass one equal-length 1-D array per column",
            )
    if rows == 0:
        raise ProfileBuildError("the data has no rows", "profile at least one row of reference data")
    return arrays, rows


def _require_column(arrays: Mapping[str, Array], name: str, role: str) -> None:
    if name not in arrays:
        raise ProfileBuildError(
            f"unknown {role} column {name!r}", f"the data has columns: {', '.join(arrays) or '(none)'}"
        )


def _feature_names(
    arrays: Mapping[str, Array], features: Sequence[str] | None, roles: Mapping[str, str | None]
) -> list[str]:
    role_of = {name: role for role, name in roles.items() if name is not None}
    if features is None:
        names = [name for name in arrays if name not in role_of]
    else:
        names = list(features)
        for name in names:
            _require_column(arrays, name, "feature")
            if name in role_of:
                raise ProfileBuildError(
                    f"column {name!r} is the {role_of[name]}; it cannot also be a feature",
                    "list it only once, in its role",
                )
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ProfileBuildError(f"feature {duplicates[0]!r} is listed more than once")
    for name in names:
        _refuse_hidden_characters("feature", name)
    if not names:
        raise ProfileBuildError(
            "no features left to profile",
            "name features explicitly, or pass data with columns besides the target, prediction and confidence",
        )
    return names


def _feature_kinds(
    arrays: Mapping[str, Array], names: Sequence[str], feature_types: Mapping[str, str]
) -> dict[str, FeatureKind]:
    for name, kind in feature_types.items():
        if name not in names:
            raise ProfileBuildError(
                f"a type is given for {name!r}, which is not a feature",
                f"the features are: {', '.join(names)}",
            )
        if kind not in FEATURE_KINDS:
            raise ProfileBuildError(f"feature {name!r}: type must be numerical or categorical, got {kind!r}")
    return {name: _kind(feature_types.get(name), arrays[name]) for name in names}


def _kind(declared: str | None, array: Array) -> FeatureKind:
    if declared == "numerical" or (declared is None and array.dtype.kind in "iuf"):
        return "numerical"
    return "categorical"


def _numerical_profile(name: str, numbers: Array, bins: int) -> FeatureProfile:
    present = numbers[~np.isnan(numbers)]
    if present.size == 0:
        raise _all_missing(name)
    # Sorted, so sums (mean, std) add up in the same order whatever the row order: byte-identical files.
    finite = np.sort(present[np.isfinite(present)])
    if finite.size == 0:
        raise ProfileBuildError(f"column {name!r} has only infinite values", "profile a column with numbers")
    edges = quantile_edges(finite, bins)
    # Infinite values are in no bin, as bin_of and the live monitor have it.
    counts = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=len(edges) + 1)
    return FeatureProfile(
        name=name,
        kind="numerical",
        reference_ratios=tuple(shares(counts.tolist())),
        edges=tuple(float(edge) for edge in edges),
        missing_ratio=(numbers.size - present.size) / numbers.size,
        count=int(finite.size),
        stats=_numerical_stats(finite, int(present.size)),
    )


def _numerical_stats(sorted_finite: Array, count: int) -> dict[str, float]:
    quantiles = np.quantile(sorted_finite, list(NUMERICAL_STAT_QUANTILES.values()), method="linear")
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is dropped below, not worth a warning
        mean, std = float(np.mean(sorted_finite)), float(np.std(sorted_finite))
    stats = {
        "count": float(count),
        "mean": mean,
        "std": std,
        "min": float(sorted_finite[0]),
        "max": float(sorted_finite[-1]),
        **{key: float(q) for key, q in zip(NUMERICAL_STAT_QUANTILES, quantiles, strict=True)},
    }
    # A sum of values near float64's limit can overflow; JSON has no infinity, so such a statistic is left out.
    return {key: value for key, value in stats.items() if math.isfinite(value)}


def _categorical_profile(name: str, texts: Array, top_k: int) -> FeatureProfile:
    counts = Counter(texts.tolist())
    missing = counts.pop(None, 0)
    present = texts.size - missing
    if present == 0:
        raise _all_missing(name)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    # "" cannot be a Prometheus label value (it means "no label") and OTHER_BIN is taken: both count as other.
    top = [category for category, _ in ranked if category not in ("", OTHER_BIN)][:top_k]
    top_counts = [counts[category] for category in top]
    return FeatureProfile(
        name=name,
        kind="categorical",
        reference_ratios=tuple(shares([*top_counts, present - sum(top_counts)])),
        categories=tuple(top),
        missing_ratio=missing / texts.size,
        count=present,
        stats={"count": float(present), "distinct": float(len(counts))},
    )


def _all_missing(name: str) -> ProfileBuildError:
    return ProfileBuildError(
        f"column {name!r} has no values (every row is missing)",
        "leave it out of the features, or fix the data it comes from",
    )


def _prediction_profile(
    arrays: Mapping[str, Array], prediction: str | None, task: Task, bins: int, top_k: int
) -> FeatureProfile | None:
    if prediction is None:
        return None
    values = arrays[prediction]
    if task == "classification":
        return _named(_categorical_profile(prediction, category_texts(values), top_k))
    if values.dtype.kind not in "iuf":
        raise ProfileBuildError(
            f"prediction column {prediction!r} is not numerical, as a regression's prediction must be",
            "pass --task classification if it holds class labels",
        )
    return _named(_numerical_profile(prediction, as_numbers(prediction, values), bins))


def _named(profile: FeatureProfile) -> FeatureProfile:
    # Built under the column's name so errors name the column; stored under the name a loaded profile has.
    return replace(profile, name=PREDICTION_NAME)


def _confidence_mean(arrays: Mapping[str, Array], confidence: str | None) -> tuple[float | None, int | None]:
    """The mean confidence, and the rows it rests on."""
    if confidence is None:
        return None, None
    numbers = as_numbers(confidence, arrays[confidence])
    finite = numbers[np.isfinite(numbers)]
    if finite.size == 0:
        raise _all_missing(confidence)
    # fsum is exact, so the mean does not depend on row order.
    return math.fsum(finite.tolist()) / finite.size, int(finite.size)


def _accuracy(
    arrays: Mapping[str, Array], target: str | None, prediction: str | None, task: Task
) -> tuple[float | None, int | None]:
    """The reference accuracy, and the rows (with both a target and a prediction) it rests on."""
    if target is None:
        return None, None
    actual = category_texts(arrays[target])
    if not _present(actual).any():
        raise _all_missing(target)
    if prediction is None or task != "classification":
        return None, None
    predicted = category_texts(arrays[prediction])
    both = _present(actual) & _present(predicted)
    rows = int(np.count_nonzero(both))
    if not rows:
        return None, None
    # Labels compare as category text, so a target read as 1.0 matches a prediction read as "1".
    return int(np.count_nonzero(actual[both] == predicted[both])) / rows, rows


def _present(texts: Array) -> Array:
    """Which rows of :func:`category_texts` output have a value."""
    present: Array = np.not_equal(texts, np.array(None, dtype=object))
    return present


@dataclass(frozen=True)
class ProfiledFile:
    """A profile built from a file, and what was decided on the way: the columns left out as identifiers,
    timestamps or ``exclude``, and per feature read as numbers the text cells counted as missing."""

    profile: Profile
    left_out: list[LeftOut]
    text_cells: dict[str, dict[str, int]]


def profile_data_file(
    path: str | Path,
    model: str,
    features: Sequence[str] | None = None,
    feature_types: Mapping[str, str] | None = None,
    target: str | None = None,
    prediction: str | None = None,
    confidence: str | None = None,
    bins: int = DEFAULT_BINS,
    top_k: int = DEFAULT_TOP_K,
    task: Task = "classification",
    exclude: Sequence[str] = (),
) -> ProfiledFile:
    """Read a CSV, Parquet or JSON-lines file and build its profile (see :func:`build_profile`).

    With ``features`` named, only those columns and the target, prediction and confidence are read.
    Otherwise the features are every other column but ``exclude`` and the identifier and timestamp columns
    that :func:`mlmon.drift.columns.choose_features` recognises. A text feature whose cells are numbers but
    for at most 5% is profiled as numerical, as ``mlmon drift`` compares it (unless ``feature_types`` says
    categorical), its text cells counted as missing.
    """
    from mlmon.data import read_table
    from mlmon.drift.columns import choose_features, numbers_in_text

    roles = [name for name in (target, prediction, confidence) if name is not None]
    wanted = None
    if features is not None:
        wanted = list(dict.fromkeys([*features, *roles]))
    columns = read_table(path, wanted)
    left_out: list[LeftOut] = []
    if features is None:
        features, left_out = choose_features(columns, exclude=exclude, reserved=roles, side=str(path))
    elif exclude:
        raise ProfileBuildError("--exclude applies only when no --feature is named", "use one or the other")
    text_cells: dict[str, dict[str, int]] = {}
    for name in features:
        if name in columns and (feature_types or {}).get(name) is None:
            numbers = numbers_in_text(columns[name])
            if numbers is not None:
                columns[name] = numbers.values
                if numbers.text_cells:
                    text_cells[name] = numbers.text_cells
    profile = build_profile(
        columns,
        model,
        features=features,
        feature_types=feature_types,
        target=target,
        prediction=prediction,
        confidence=confidence,
        bins=bins,
        top_k=top_k,
        task=task,
    )
    return ProfiledFile(profile, left_out, text_cells)
