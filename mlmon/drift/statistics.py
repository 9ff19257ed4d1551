"""Drift statistics over binned shares, with the same formulas as the Prometheus recording rules."""

from __future__ import annotations

import math
from collections.abc import Sequence

from mlmon.contract import PSI_EPSILON


def psi(current: Sequence[float], reference: Sequence[float], epsilon: float = PSI_EPSILON) -> float:
    """Population stability index, sum((a - e) * ln(a / e)), with both shares clamped to ``epsilon``: the
    formula of the recording rule ``model_feature:mlmon_feature_psi``, so both give the same number."""
    if len(current) != len(reference):
        raise ValueError(f"{len(current)} current shares for {len(reference)} reference shares")
    total = 0.0
    for a, e in zip(current, reference, strict=True):
        a, e = max(a, epsilon), max(e, epsilon)
        total += (a - e) * math.log(a / e)
    return total
