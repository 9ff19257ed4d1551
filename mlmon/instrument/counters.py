"""Counters cheap enough to increment twenty times per prediction.

A prometheus_client ``Counter.inc()`` takes a lock and checks its argument on every call: about a
microsecond, paid once per feature per prediction. Here a labelled counter is a dictionary of plain
cells; the monitor takes one lock per observation around all its increments, and a collector turns the
cells into the exposition format at scrape time.

With several worker processes (PROMETHEUS_MULTIPROC_DIR set), values must live in prometheus_client's
shared files, so the monitor makes a prometheus_client Counter instead (mlmon.instrument.monitor); both have
the same ``labels(...).inc(n)`` interface.
"""

from __future__ import annotations

import os
import threading
from collections import Counter as Counter_
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from mlmon.instrument.values import finite_number


class CounterChild(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class CounterFamily(Protocol):
    def labels(self, *values: str) -> Any: ...


class Cell:
    """One labelled counter value. Not thread-safe on its own: callers hold the family's lock."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class FastCounter:
    """A labelled counter of plain cells; ``name`` is the exposed name without ``_total``."""

    def __init__(
        self, name: str, documentation: str, labelnames: Iterable[str], lock: threading.RLock
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.lock = lock
        self.cells: dict[tuple[str, ...], Cell] = {}

    def labels(self, *values: str) -> Cell:
        key = tuple(str(v) for v in values)
        cell = self.cells.get(key)
        if cell is None:
            with self.lock:
                cell = self.cells.setdefault(key, Cell())
        return cell

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self.lock:
            snapshot = [(key, cell.value) for key, cell in self.cells.items()]
        for key, value in snapshot:
            family.add_metric(key, value)
        return family


class FastCounterCollector(Collector):
    """Exposes a set of FastCounters through a prometheus_client registry."""

    def __init__(self) -> None:
        self.counters: list[FastCounter] = []

    def collect(self) -> Iterator[CounterMetricFamily]:
        for counter in self.counters:
            yield counter.family()

    def describe(self) -> Iterator[CounterMetricFamily]:
        for counter in self.counters:
            yield CounterMetricFamily(counter.name, counter.documentation, labels=counter.labelnames)


def multiprocess_dir() -> Path | None:
    """The folder of prometheus_client's multiprocess files, or None in single-process mode. Read as
    prometheus_client reads it, the deprecated lowercase name included, so both always agree."""
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")  # noqa: SIM112
    return Path(value) if value else None


def multiprocess_mode() -> bool:
    return multiprocess_dir() is not None


def observe_many(histogram_child: Any, values: Any) -> Counter_[str]:
    """Observe many values into a prometheus_client Histogram child at once (vectorised bucket counts), and
    return how many were left out, by reason: NaN ("nan"), infinite ("non_finite"), or not a number at all
    ("wrong_type"). Only finite Python floats reach the histogram's sum.

    Falls back to one ``observe`` per value if the client's internals ever change shape."""
    import numpy as np

    left_out: Counter_[str] = Counter_()
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError, OverflowError):  # objects that are not all numbers: judge them one by one
        numbers = []
        for value in values:
            number = finite_number(value)
            if type(number) is float:
                numbers.append(number)
            else:
                left_out["nan" if number is None else str(number)] += 1
        array = np.asarray(numbers, dtype=float)
    if array.ndim != 1:
        left_out["non_scalar"] += int(array.size)
        return left_out
    nan = np.isnan(array)
    inf = np.isinf(array)
    if nan.any() or inf.any():
        left_out["nan"] += int(nan.sum())
        left_out["non_finite"] += int(inf.sum())
        array = array[~(nan | inf)]
    left_out = +left_out  # drop zero counts
    if array.size == 0:
        return left_out
    buckets = getattr(histogram_child, "_buckets", None)
    bounds = getattr(histogram_child, "_upper_bounds", None)
    total = getattr(histogram_child, "_sum", None)
    if buckets is None or bounds is None or total is None or len(buckets) != len(bounds):
        for value in array.tolist():
            histogram_child.observe(value)
        return left_out
    # observe() puts a value in the first bucket whose bound is >= the value: searchsorted side="left".
    counts = np.bincount(
        np.searchsorted(np.asarray(bounds, dtype=float), array, side="left"), minlength=len(bounds)
    )
    for index in np.flatnonzero(counts):
        buckets[index].inc(float(counts[index]))
    total.inc(float(array.sum()))
    return left_out


__all__ = [
    "Cell",
    "CollectorRegistry",
    "Counter",
    "CounterFamily",
    "FastCounter",
    "FastCounterCollector",
    "Histogram",
    "multiprocess_dir",
    "multiprocess_mode",
    "observe_many",
]
