"""Synthetic credit-risk data and a logistic-regression model trained on it with numpy alone.

The data has numerical and categorical features and some missing values; ``shift`` moves the income and
debt-ratio distributions, which is the drift the demo and the tests look for.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlmon.drift.profile import Profile

NUMERICAL = ("income", "age", "debt_ratio")
CATEGORICAL = ("region", "employment")
FEATURES = NUMERICAL + CATEGORICAL
REGIONS = ("north", "south", "east", "west", "central")
EMPLOYMENT = ("employed", "self-employed", "unemployed", "student")
CLASSES = ("repaid", "default")


def make_credit_data(rows: int, seed: int = 0, shift: float = 0.0) -> dict[str, np.ndarray]:
    """Columns of synthetic loan applications and their outcome.

    ``shift`` (0 = the training distribution) lowers incomes by ``shift`` standard deviations of log income
    and raises debt ratios; the other features keep their distribution."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(mean=10.8 - 0.5 * shift, sigma=0.5, size=rows)
    age = np.clip(rng.normal(42, 12, rows), 18, 90).round()
    debt_ratio = np.clip(rng.beta(2 + 2 * shift, 5, rows), 0, 1)
    region = rng.choice(REGIONS, size=rows, p=(0.25, 0.25, 0.2, 0.2, 0.1)).astype(object)
    employment = rng.choice(EMPLOYMENT, size=rows, p=(0.7, 0.15, 0.1, 0.05)).astype(object)
    logit = -1.2 - 1.1 * (np.log(income) - 10.8) + 3.0 * (debt_ratio - 0.3) - 0.01 * (age - 42)
    logit += np.where(employment == "unemployed", 1.2, 0.0) + np.where(region == "central", 0.3, 0.0)
    outcome = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "default", "repaid").astype(object)
    income[rng.random(rows) < 0.03] = np.nan  # applicants who did not state an income
    employment[rng.random(rows) < 0.02] = None
    return {
        "income": income,
        "age": age,
        "debt_ratio": debt_ratio,
        "region": region,
        "employment": employment,
        "outcome": outcome,
    }


@dataclass(frozen=True)
class CreditModel:
    """Logistic regression over standardised numerical features and one-hot categories."""

    weights: tuple[float, ...]
    bias: float
    means: tuple[float, ...]
    stds: tuple[float, ...]

    def _design(self, rows: list[dict[str, Any]]) -> np.ndarray:
        matrix = np.zeros((len(rows), len(self.weights)))
        for i, row in enumerate(rows):
            matrix[i] = _encode(row, self.means, self.stds)
        return matrix

    def predict_proba(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Probability of default per row."""
        logits = self._design(rows) @ np.asarray(self.weights) + self.bias
        return np.asarray(1 / (1 + np.exp(-logits)))

    def predict(self, row: dict[str, Any]) -> tuple[str, float]:
        """(predicted class, confidence of that class) for one application."""
        p = float(self.predict_proba([row])[0])
        return ("default", p) if p >= 0.5 else ("repaid", 1 - p)

    def to_json(self) -> str:
        return json.dumps(
            {"weights": self.weights, "bias": self.bias, "means": self.means, "stds": self.stds}, indent=2
        )

    @classmethod
    def load(cls, path: str | Path) -> CreditModel:
        data = json.loads(Path(path).read_text())
        return cls(tuple(data["weights"]), data["bias"], tuple(data["means"]), tuple(data["stds"]))


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def _encode(row: dict[str, Any], means: tuple[float, ...], stds: tuple[float, ...]) -> list[float]:
    """Numerical features standardised (income on a log scale; a missing or unusable value becomes the mean,
    0 after standardising), then one-hot categories."""
    values = []
    for i, name in enumerate(NUMERICAL):
        raw = _number(row.get(name))
        if raw is None:
            values.append(0.0)
            continue
        if name == "income":
            raw = math.log(max(raw, 1.0))
        values.append((raw - means[i]) / stds[i])
    values += [1.0 if row.get("region") == r else 0.0 for r in REGIONS]
    values += [1.0 if row.get("employment") == e else 0.0 for e in EMPLOYMENT]
    return values


def train(
    data: dict[str, np.ndarray],
    steps: int = 300,
    learning_rate: float = 0.5,
    l2: float = 1e-3,
    on_step: Callable[[int, float], None] | None = None,
    report_every: int = 25,
) -> CreditModel:
    """Fit by full-batch gradient descent on the log loss.

    ``on_step(step, log_loss)`` is called every ``report_every`` steps and after the last one, so a caller
    can log the training curve (the demo logs it to MLflow)."""
    log_income = np.log(np.maximum(np.nan_to_num(data["income"], nan=np.nanmean(data["income"])), 1.0))
    columns = {"income": log_income, "age": data["age"], "debt_ratio": data["debt_ratio"]}
    means = tuple(float(np.mean(columns[n])) for n in NUMERICAL)
    stds = tuple(float(np.std(columns[n]) or 1.0) for n in NUMERICAL)
    rows = _rows(data)
    placeholder = CreditModel((0.0,) * (len(NUMERICAL) + len(REGIONS) + len(EMPLOYMENT)), 0.0, means, stds)
    x = placeholder._design(rows)
    y = (data["outcome"] == "default").astype(float)
    w = np.zeros(x.shape[1])
    b = 0.0
    for step in range(steps):
        p = 1 / (1 + np.exp(-(x @ w + b)))
        if on_step is not None and (step % report_every == 0 or step == steps - 1):
            on_step(step, _log_loss(p, y))
        w -= learning_rate * (x.T @ (p - y) / len(y) + l2 * w)
        b -= learning_rate * float(np.mean(p - y))
    return CreditModel(tuple(float(v) for v in w), b, means, stds)


def _log_loss(probabilities: np.ndarray, outcome: np.ndarray) -> float:
    p = np.clip(probabilities, 1e-12, 1 - 1e-12)
    return float(-np.mean(outcome * np.log(p) + (1 - outcome) * np.log(1 - p)))


def evaluate(model: CreditModel, data: dict[str, np.ndarray]) -> dict[str, float]:
    """Accuracy, log loss and ROC AUC of ``model`` on ``data`` (default is the positive class)."""
    probabilities = model.predict_proba(_rows(data))
    outcome = (data["outcome"] == "default").astype(float)
    return {
        "accuracy": float(np.mean((probabilities >= 0.5) == (outcome == 1))),
        "logloss": _log_loss(probabilities, outcome),
        "auc": _roc_auc(probabilities, outcome),
    }


def _roc_auc(scores: np.ndarray, outcome: np.ndarray) -> float:
    """The probability that a random positive scores above a random negative (ties count half)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    if np.any(counts > 1):  # tied scores share their average rank
        sums = np.bincount(inverse, weights=ranks)
        ranks = (sums / counts)[inverse]
    positives = int(outcome.sum())
    negatives = len(outcome) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    return float((ranks[outcome == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _rows(data: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    names = [n for n in FEATURES if n in data]
    return [dict(zip(names, values, strict=True)) for values in zip(*(data[n] for n in names), strict=True)]


def rows(data: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The feature columns as one dict per row, with Python scalars (NaN kept as NaN)."""
    out = []
    for row in _rows(data):
        out.append({k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()})
    return out


def accuracy(model: CreditModel, data: dict[str, np.ndarray]) -> float:
    predicted = np.where(model.predict_proba(_rows(data)) >= 0.5, "default", "repaid")
    return float(np.mean(predicted == data["outcome"]))


def reference_profile(model: CreditModel, data: dict[str, np.ndarray], name: str = "credit-risk") -> Profile:
    """The reference profile of ``model``: its features, predictions and confidences on ``data``, accuracy
    against the outcome. What the demo logs to MLflow and a service monitors against."""
    from mlmon.drift.build import build_profile

    columns = dict(data)
    probabilities = model.predict_proba(rows(data))
    columns["prediction"] = np.where(probabilities >= 0.5, "default", "repaid").astype(object)
    columns["confidence"] = np.where(probabilities >= 0.5, probabilities, 1 - probabilities)
    return build_profile(
        columns,
        name,
        features=list(FEATURES),
        target="outcome",
        prediction="prediction",
        confidence="confidence",
    )
