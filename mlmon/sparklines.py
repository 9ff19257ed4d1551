"""A series in one line of unicode blocks: a metric's history in a table cell, a check's recent values."""

from __future__ import annotations

import math
from collections.abc import Sequence

# A metric's history in a table cell: 16 characters of unicode blocks.
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 16


def sparkline(points: Sequence[float], width: int = SPARK_WIDTH) -> str:
    """A metric's history in unicode blocks, oldest first; NaN and infinities leave a gap (a space).

    A longer history is cut into ``width`` equal buckets, each drawn by its last value (what the run had
    reached by then), so a long training run still fits a cell.
    """
    if len(points) < 2:
        return ""
    if len(points) > width:
        points = [
            points[min(len(points) - 1, (index + 1) * len(points) // width - 1)] for index in range(width)
        ]
    finite = [point for point in points if math.isfinite(point)]
    if not finite:
        return " " * len(points)
    low, high = min(finite), max(finite)
    span = high - low
    top = len(SPARK_BLOCKS) - 1
    return "".join(
        " "
        if not math.isfinite(point)
        else SPARK_BLOCKS[round((point - low) / span * top) if span else top // 2]
        for point in points
    )
