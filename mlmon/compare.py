"""MLflow runs and registered model versions side by side: the data behind ``mlmon compare-runs``.

:func:`compare` is pure: it takes :class:`~mlmon.backends.mlflow.runs.RunRecord` values (whatever their source) and
returns a :class:`Comparison` (columns, rows per section, deltas against a baseline, the best value of each
metric), so it is tested and reused without a server. :mod:`mlmon.backends.mlflow.runs` reads the records::

    from mlmon.compare import compare
    from mlmon.backends.mlflow.runs import MlflowRunSource, Selection

    source = MlflowRunSource.connect("http://mlflow:5000")
    records = source.select(Selection(model="credit-risk", aliases=("champion", "challenger")))
    comparison = compare(records, history=source.metric_histories)
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Literal

from mlmon.backends.mlflow.runs import RunRecord
from mlmon.errors import CompareError

Section = Literal["params", "metrics", "tags"]
Direction = Literal["min", "max"]
SECTIONS: tuple[Section, ...] = ("params", "metrics", "tags")
# Past this many runs a column per run no longer fits a terminal: the table turns runs into rows.
TRANSPOSE_AFTER = 6
# Words in a metric name that mean "lower is better"; any other metric is taken as higher is better.
LOWER_IS_BETTER_WORDS = ("loss", "error", "rmse", "mae", "mse", "logloss", "latency")

Value = str | float

# {metric: run ids that have it} -> {(run id, metric): points, oldest first}
HistoryReader = Callable[[Mapping[str, Sequence[str]]], Mapping[tuple[str, str], Sequence[float]]]

# ------------------------------------------------------------------------------------------------------
# Output: the comparison


@dataclass(frozen=True)
class Column:
    """The header of one compared run or model version."""

    key: str
    name: str
    run_id: str | None
    experiment_id: str | None
    status: str | None
    start_time: datetime | None
    duration_seconds: float | None
    model: str | None
    version: str | None
    aliases: tuple[str, ...]
    stage: str | None
    baseline: bool

    @property
    def label(self) -> str:
        """The run name, or ``v3 @champion`` for a model version."""
        if self.version is None:
            return self.name
        return " ".join([f"v{self.version}", *(f"@{alias}" for alias in self.aliases)])


@dataclass(
    slots=True, unsafe_hash=True
)  # hashable by value, as were the frozen Row and Comparison holding it
class Cell:
    """One value of one row in one column; ``value`` is None when the run does not have it.

    Treat it as a value (make changed copies with :func:`dataclasses.replace`). It is not frozen only because
    a comparison of 200 runs makes 12,000 cells, and a frozen dataclass's ``__init__`` takes four times as long.
    """

    value: Value | None
    delta: float | None = None
    delta_percent: float | None = None
    best: bool = False
    history: tuple[float, ...] = ()

    @property
    def number(self) -> float | None:
        return as_number(self.value)


@dataclass(frozen=True)
class Row:
    """One param, metric or tag across all columns. ``direction`` is set for metrics only."""

    section: Section
    name: str
    cells: tuple[Cell, ...]
    differs: bool
    direction: Direction | None = None
    direction_rule: str | None = None


@dataclass(frozen=True)
class Comparison:
    """Runs or model versions side by side; the first column whose ``baseline`` is set is the reference."""

    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    baseline: int
    hidden_rows: int
    legend: tuple[str, ...]

    def section(self, name: Section) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if row.section == name)

    @property
    def transposed_by_default(self) -> bool:
        return len(self.columns) > TRANSPOSE_AFTER


# ------------------------------------------------------------------------------------------------------
# The comparison itself


@dataclass(frozen=True)
class DirectionRules:
    """Which way is better for each metric: ``--direction`` flags first, then the spec, then the name.

    ``spec`` is ``mlflow.metrics`` of mlmon.yaml (``{val_auc: max, latency_p95: min}``); ``spec_source`` names
    that file in the legend.
    """

    flags: Mapping[str, Direction] = field(default_factory=dict)
    spec: Mapping[str, Direction] = field(default_factory=dict)
    spec_source: str = "mlmon.yaml"

    def direction(self, name: str) -> tuple[Direction, str]:
        """The direction and the rule that chose it: "flag", "spec", "name" or "default"."""
        if name in self.flags:
            return self.flags[name], "flag"
        if name in self.spec:
            return self.spec[name], "spec"
        return metric_direction(name)

    def reason(self, rule: str) -> str:
        """The legend's words for a rule."""
        return {
            "flag": "set with --direction",
            "spec": f"set in {self.spec_source} under mlflow.metrics",
            "name": f"its name has one of: {', '.join(LOWER_IS_BETTER_WORDS)}",
            "default": "the default for other names",
        }.get(rule, rule)


def metric_direction(name: str) -> tuple[Direction, str]:
    """Whether lower or higher is better for a metric, judged by its name, and the rule ("name", "default").

    A name with one of :data:`LOWER_IS_BETTER_WORDS` as a word (``val_loss``, ``rmse``, ``p95-latency``), or a
    word ending in "loss", is lower-is-better; any other is higher-is-better. :class:`DirectionRules` puts
    explicit settings in front of this.
    """
    words = [word for word in re.split(r"[^a-z0-9]+", name.lower()) if word]
    if any(word in LOWER_IS_BETTER_WORDS or word.endswith("loss") for word in words):
        return "min", "name"
    return "max", "default"


def compare(
    records: Sequence[RunRecord],
    *,
    baseline: str | None = None,
    show_all: bool = False,
    metrics: Sequence[str] = (),
    params: Sequence[str] = (),
    directions: DirectionRules | None = None,
    history: HistoryReader | None = None,
    system_tags: bool = False,
) -> Comparison:
    """Compare runs or model versions: one row per param, metric and tag, one cell per record.

    By default only the rows whose values differ are kept (``show_all`` keeps every row). ``metrics`` and
    ``params`` are glob patterns that keep matching rows; a pattern starting with ``!`` drops them instead.
    ``baseline`` names the reference column (see :meth:`RunRecord.matches`); numbers get a delta against it.
    ``history`` is called once, with the runs of each shown metric, to draw sparklines; pass None to skip
    it (it costs requests). Tags MLflow sets itself (``mlflow.*``) are left out unless ``system_tags`` or
    ``show_all``.
    """
    if not records:
        raise CompareError("no runs to compare", "name run ids, or use --experiment or --model")
    records = _unique(records)
    rules = directions or DirectionRules()
    base = _baseline_index(records, baseline)
    rows: list[Row] = []
    hidden = 0
    for section in SECTIONS:
        maps = [_values(record, section) for record in records]
        for name in sorted({name for values in maps for name in values}):
            if not _keep(section, name, metrics, params, system_tags or show_all):
                continue
            values = [found.get(name) for found in maps]
            differs = _differs(values)
            if not differs and not show_all and len(records) > 1:
                hidden += 1
                continue
            rows.append(_row(section, name, values, base, differs, rules))
    if history is not None:
        rows = _with_history(rows, records, history)
    columns = tuple(_column(record, index == base) for index, record in enumerate(records))
    return Comparison(columns, tuple(rows), base, hidden, _legend(rows, columns[base], rules))


def _with_history(rows: list[Row], records: Sequence[RunRecord], history: HistoryReader) -> list[Row]:
    """The rows with each shown metric's history in its cells, read in one call for all of them."""
    wanted: dict[str, list[str]] = {}
    for row in rows:
        if row.section == "metrics":
            run_ids = [
                record.run_id
                for record, cell in zip(records, row.cells, strict=True)
                if record.run_id and cell.value is not None
            ]
            if run_ids:
                wanted[row.name] = list(dict.fromkeys(run_ids))
    if not wanted:
        return rows
    points = history(wanted)
    return [
        row
        if row.section != "metrics"
        else replace(
            row,
            cells=tuple(
                replace(cell, history=tuple(points.get((record.run_id, row.name), ())))
                if record.run_id and cell.value is not None
                else cell
                for record, cell in zip(records, row.cells, strict=True)
            ),
        )
        for row in rows
    ]


def _unique(records: Sequence[RunRecord]) -> list[RunRecord]:
    """The records in order, each once: naming a run twice must not make it its own rival."""
    seen: dict[str, RunRecord] = {}
    for record in records:
        seen.setdefault(record.key, record)
    return list(seen.values())


def _baseline_index(records: Sequence[RunRecord], baseline: str | None) -> int:
    if baseline is None:
        return 0
    for index, record in enumerate(records):
        if record.matches(baseline):
            return index
    names = ", ".join(record.version or record.run_id or record.key for record in records)
    raise CompareError(
        f"baseline {baseline!r} is none of the compared runs", f"use one of their ids or names: {names}"
    )


def _values(record: RunRecord, section: Section) -> Mapping[str, Value]:
    if section == "params":
        return record.params
    if section == "metrics":
        return record.metrics
    return record.tags


def _keep(
    section: Section, name: str, metrics: Sequence[str], params: Sequence[str], system_tags: bool
) -> bool:
    if section == "tags":
        return system_tags or not name.startswith("mlflow.")
    return _glob_keeps(name, metrics if section == "metrics" else params)


def _glob_keeps(name: str, patterns: Sequence[str]) -> bool:
    """Keep-patterns select (none given: all); ``!pattern`` then drops. Case-sensitive, as MLflow's names are."""
    keep = [pattern for pattern in patterns if not pattern.startswith("!")]
    drop = [pattern[1:] for pattern in patterns if pattern.startswith("!")]
    if keep and not any(fnmatch.fnmatchcase(name, pattern) for pattern in keep):
        return False
    return not any(fnmatch.fnmatchcase(name, pattern) for pattern in drop)


def _differs(values: list[Value | None]) -> bool:
    """Whether the values are not all the same: NaN equals NaN here, and a param "0.10" differs from "0.1"."""
    distinct = set(values)
    # Only NaN is unequal to itself; every NaN counts as one value.
    return len(distinct) > 1 and len({"nan" if value != value else value for value in distinct}) > 1


def _row(
    section: Section,
    name: str,
    values: list[Value | None],
    base: int,
    differs: bool,
    rules: DirectionRules,
) -> Row:
    numbers = [as_number(value) for value in values]
    reference = numbers[base]
    direction: Direction | None = None
    rule: str | None = None
    best: set[int] = set()
    if section == "metrics":
        direction, rule = rules.direction(name)
        best = _best(numbers, direction) if differs else set()
    cells = []
    for index, (value, number) in enumerate(zip(values, numbers, strict=True)):
        delta = percent = None
        if index != base and number is not None and reference is not None and section != "tags":
            delta, percent = _delta(number, reference)
        cells.append(Cell(value, delta, percent, index in best))
    return Row(section, name, tuple(cells), differs, direction, rule)


def as_number(value: Value | None) -> float | None:
    """A float for a metric, or for a param that reads as a number ("0.1", "64"); None otherwise."""
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _delta(number: float, reference: float) -> tuple[float | None, float | None]:
    delta = number - reference
    if delta != delta:  # NaN: one of them is NaN, or both are the same infinity
        return None, None
    if math.isinf(number) or math.isinf(reference):
        return delta, None  # an infinite difference has no percentage
    return delta, (delta / abs(reference) * 100 if reference else None)


def _best(numbers: list[float | None], direction: Direction) -> set[int]:
    """The columns holding the best finite value; NaN and infinities never win."""
    finite = {
        index: number for index, number in enumerate(numbers) if number is not None and math.isfinite(number)
    }
    if len(finite) < 2:
        return set()
    target = min(finite.values()) if direction == "min" else max(finite.values())
    return {index for index, number in finite.items() if number == target}


def _column(record: RunRecord, baseline: bool) -> Column:
    start = _datetime(record.start_time_ms)
    duration = None
    if record.start_time_ms is not None and record.end_time_ms is not None:
        duration = max(0.0, (record.end_time_ms - record.start_time_ms) / 1000)
    return Column(
        key=record.key,
        name=record.name,
        run_id=record.run_id,
        experiment_id=record.experiment_id,
        status=record.status,
        start_time=start,
        duration_seconds=duration,
        model=record.model,
        version=record.version,
        aliases=record.aliases,
        stage=record.stage,
        baseline=baseline,
    )


def _datetime(milliseconds: int | None) -> datetime | None:
    if milliseconds is None:
        return None
    return datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc)


def _legend(rows: Iterable[Row], baseline: Column, rules: DirectionRules) -> tuple[str, ...]:
    metrics = [row for row in rows if row.section == "metrics"]
    lines = [f"Δ: difference from the baseline {baseline.label}, absolute and in percent"]
    if not metrics:
        return tuple(lines)
    lines.append("★ best value of each metric")
    by_rule: dict[tuple[str, str], list[str]] = {}
    for row in metrics:
        by_rule.setdefault((str(row.direction), str(row.direction_rule)), []).append(row.name)
    for (direction, rule), names in sorted(by_rule.items()):
        better = "↓ lower is better" if direction == "min" else "↑ higher is better"
        lines.append(f"{better} ({rules.reason(rule)}): {', '.join(names)}")
    return tuple(lines)


# ------------------------------------------------------------------------------------------------------
# Display helpers shared by every renderer


def format_number(number: float, precision: int = 4) -> str:
    """``precision`` significant digits, never scientific notation for ordinary magnitudes."""
    magnitude = abs(number)
    if magnitude < 1e15:  # the common case first: every cell of a table goes through here
        if number == int(number):
            return str(int(number))
        if magnitude >= 1:
            digits = len(str(int(magnitude)))
            return f"{number:.{max(0, precision - digits)}f}"
        return f"{number:.{precision}g}"
    if number != number:
        return "NaN"
    if magnitude == math.inf:
        return "inf" if number > 0 else "-inf"
    return f"{number:.{precision}g}"


def format_value(value: Value | None, precision: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format_number(value, precision)
    return value


def format_delta(cell: Cell, precision: int = 4) -> str:
    """``+0.012 (+3.4%)``, or empty when the cell has no delta or the same value as the baseline."""
    delta = cell.delta
    if not delta:
        return ""
    text = format_number(delta, precision)
    if delta > 0:
        text = "+" + text
    if cell.delta_percent is None:
        return text
    return f"{text} ({format_percent(cell.delta_percent)})"


def format_percent(percent: float) -> str:
    """One decimal, as ``+3.4%``; a change too small for that keeps two significant digits (``-0.026%``)
    rather than reading as no change (``-0.0%``)."""
    if abs(percent) < 0.05 and percent != 0 and math.isfinite(percent):
        decimals = 1 - math.floor(math.log10(abs(percent)))
        return f"{percent:+.{decimals}f}%"
    return f"{percent:+.1f}%"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {rest:02d}s"


def format_time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"
