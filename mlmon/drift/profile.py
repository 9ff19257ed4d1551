"""Reference profiles: per feature, the bins and the share of reference data in each.

One binning serves the live monitor (which counts observations per bin and exports the reference shares to
Prometheus) and offline drift reports, so both give the same PSI on the same data.

Numerical features have quantile edges; a value ``x`` falls in bin ``i`` when ``edges[i-1] <= x < edges[i]``
(``edges`` are the interior cut points, so there are ``len(edges) + 1`` bins, labelled "0", "1", ...).
Categorical features keep their top-K reference categories, each its own bin labelled with the category,
plus one ``__other__`` bin for everything else. Missing values (None, NaN, absent) are in no bin: they are
counted apart, as the missing ratio.

The file is JSON with a schema version, written with sorted keys and no timestamps, so the same data gives
the same bytes.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlmon.contract import OTHER_BIN
from mlmon.errors import MlmonError

PROFILE_SCHEMA_VERSION = 1
FeatureKind = Literal["numerical", "categorical"]


class ProfileError(MlmonError):
    """A profile file is missing, unreadable, or not a profile."""


@dataclass(frozen=True)
class FeatureProfile:
    """The reference distribution of one feature (or of the prediction)."""

    name: str
    kind: FeatureKind
    reference_ratios: tuple[float, ...]  # one per bin, in bin order; sums to 1 (or all 0 if no data)
    edges: tuple[float, ...] = ()  # numerical: interior cut points, ascending
    categories: tuple[str, ...] = ()  # categorical: the top-K categories, most frequent first
    missing_ratio: float = 0.0
    count: int = 0  # non-missing reference values
    stats: Mapping[str, float] = field(default_factory=dict)  # mean, std, min, max, quantiles, ...

    @property
    def bin_labels(self) -> tuple[str, ...]:
        if self.kind == "numerical":
            return tuple(str(i) for i in range(len(self.edges) + 1))
        return (*self.categories, OTHER_BIN)

    def bin_of(self, value: Any) -> int | None:
        """The bin index of one value, or None when it is in no bin: missing (None, NaN) or infinite.

        Raises ValueError for a value of the wrong kind (text in a numerical feature); the monitor counts
        those, and infinite values, as invalid input."""
        if value is None:
            return None
        if self.kind == "numerical":
            # float() takes ints, floats, numpy scalars and numeric text; other values raise ValueError.
            number = float(value)
            if math.isnan(number) or math.isinf(number):
                return None
            return bisect_right(self.edges, number)
        if isinstance(value, float) and math.isnan(value):
            return None
        text = value if isinstance(value, str) else category_label(value)
        try:
            return self._category_index[text]
        except KeyError:
            return len(self.categories)

    @property
    def _category_index(self) -> dict[str, int]:
        cached = self.__dict__.get("_category_index_cache")
        if cached is None:
            cached = {c: i for i, c in enumerate(self.categories)}
            object.__setattr__(self, "_category_index_cache", cached)
        return cached

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "reference_ratios": list(self.reference_ratios),
            "missing_ratio": self.missing_ratio,
            "count": self.count,
            "stats": dict(self.stats),
        }
        if self.kind == "numerical":
            data["edges"] = list(self.edges)
        else:
            data["categories"] = list(self.categories)
        return data

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> FeatureProfile:
        kind = data["kind"]
        if kind not in ("numerical", "categorical"):
            raise ValueError(f"feature {name!r}: kind must be numerical or categorical, got {kind!r}")
        profile = cls(
            name=name,
            kind=kind,
            reference_ratios=tuple(float(x) for x in data["reference_ratios"]),
            edges=tuple(float(x) for x in data.get("edges", ())),
            categories=tuple(str(x) for x in data.get("categories", ())),
            missing_ratio=float(data.get("missing_ratio", 0.0)),
            count=int(data.get("count", 0)),
            stats={str(k): float(v) for k, v in data.get("stats", {}).items()},
        )
        if len(profile.reference_ratios) != len(profile.bin_labels):
            raise ValueError(
                f"feature {name!r}: {len(profile.reference_ratios)} reference ratios for "
                f"{len(profile.bin_labels)} bins"
            )
        if list(profile.edges) != sorted(profile.edges):
            raise ValueError(f"feature {name!r}: edges must be ascending")
        return profile


@dataclass(frozen=True)
class Profile:
    """A model version's reference profile: its features, and optionally its prediction and target."""

    model: str
    features: tuple[FeatureProfile, ...]
    prediction: FeatureProfile | None = None
    rows: int = 0
    bins: int = 10
    task: Literal["classification", "regression"] = "classification"
    reference_confidence_mean: float | None = None
    reference_accuracy: float | None = None
    # The rows each rests on, so that live and offline tests weigh the reference's own sampling error (None in
    # a profile written before they were kept: the reference is then taken as exact).
    reference_confidence_rows: int | None = None
    reference_accuracy_rows: int | None = None

    def feature(self, name: str) -> FeatureProfile:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": PROFILE_SCHEMA_VERSION,
            "model": self.model,
            "task": self.task,
            "rows": self.rows,
            "bins": self.bins,
            "features": {f.name: f.to_dict() for f in self.features},
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "reference_confidence_mean": self.reference_confidence_mean,
            "reference_accuracy": self.reference_accuracy,
            "reference_confidence_rows": self.reference_confidence_rows,
            "reference_accuracy_rows": self.reference_accuracy_rows,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        version = data.get("schema_version")
        if version != PROFILE_SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {version!r} is not supported (this mlmon reads {PROFILE_SCHEMA_VERSION})"
            )
        features = data["features"]
        if not isinstance(features, Mapping):
            raise ValueError("features must be a mapping of name to feature profile")
        prediction = data.get("prediction")
        return cls(
            model=str(data["model"]),
            features=tuple(FeatureProfile.from_dict(name, f) for name, f in features.items()),
            prediction=FeatureProfile.from_dict("__prediction__", prediction) if prediction else None,
            rows=int(data.get("rows", 0)),
            bins=int(data.get("bins", 10)),
            task=data.get("task", "classification"),
            reference_confidence_mean=_optional_float(data.get("reference_confidence_mean")),
            reference_accuracy=_optional_float(data.get("reference_accuracy")),
            reference_confidence_rows=_optional_int(data.get("reference_confidence_rows")),
            reference_accuracy_rows=_optional_int(data.get("reference_accuracy_rows")),
        )

    @classmethod
    def from_json(cls, text: str, source: str = "<profile>") -> Profile:
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise ProfileError(
                f"{source} is not a valid mlmon profile: {exc}",
                "build one with `mlmon profile DATA -o profile.json`",
            ) from None


def category_label(value: Any) -> str:
    """The category text of a non-text value: 1.0 and 1 are the same category "1" (files deliver integer codes
    as floats, services send ints); numpy scalars count as their Python value."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "item") and not isinstance(value, str):
        return category_label(value.item())
    return str(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def load_profile(path: str | Path, source: str | None = None) -> Profile:
    """Read a profile written by ``mlmon profile``; ``source`` names it in errors (default: the path; the
    MLflow URI, say, of a downloaded one)."""
    path = Path(path)
    source = source or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(
            f"profile {source} not found", "build one with `mlmon profile DATA -o profile.json`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read profile {source}: {exc}") from None
    return Profile.from_json(text, source)


def shares(counts: Sequence[float]) -> list[float]:
    """Counts as shares of their total (all zeros when the total is zero)."""
    total = float(sum(counts))
    return [c / total if total else 0.0 for c in counts]
