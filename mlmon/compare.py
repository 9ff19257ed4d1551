"""MLflow runs and registered model versions side by side: the data behind ``mlmon compare-runs``.

Two halves. :func:`compare` is pure: it takes :class:`RunRecord` values (whatever their source) and returns a
:class:`Comparison` (columns, rows per section, deltas against a baseline, the best value of each metric), so
it is tested and reused without a server::

    from mlmon.compare import MlflowRunSource, Selection, compare

    source = MlflowRunSource.connect("http://mlflow:5000")
    records = source.select(Selection(model="credit-risk", aliases=("champion", "challenger")))
    comparison = compare(records, history=source.metric_history)

:class:`MlflowRunSource` is the thin adapter over MLflow's client: it imports mlflow only when it connects,
with the short timeouts of :func:`mlmon.drift.mlflow_profile.mlflow_client`, and turns MLflow's errors into
:class:`~mlmon.errors.BackendError` messages that name the run, model, version or alias asked for.
"""

from __future__ import annotations

import fnmatch
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal

from mlmon.errors import BackendError, MlmonError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

Section = Literal["params", "metrics", "tags"]
Direction = Literal["min", "max"]
SECTIONS: tuple[Section, ...] = ("params", "metrics", "tags")
# Past this many runs a column per run no longer fits a terminal: the table turns runs into rows.
TRANSPOSE_AFTER = 6
# Words in a metric name that mean "lower is better"; any other metric is taken as higher is better.
LOWER_IS_BETTER_WORDS = ("loss", "error", "rmse", "mae", "mse", "logloss", "latency")
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 16
# One page of MLflow's run search holds this many runs; a larger experiment is read page by page.
SEARCH_PAGE_SIZE = 1000

Value = str | float

HistoryReader = Callable[[str, str], Sequence[float]]


class CompareError(MlmonError):
    """The selection of runs cannot be compared as asked (nothing selected, an unknown baseline)."""


# ------------------------------------------------------------------------------------------------------
# Input: one run or model version


@dataclass(frozen=True)
class RunRecord:
    """One thing to compare: an MLflow run, or a registered model version with its source run's data.

    ``key`` is unique among the compared records (a run id, or ``MODEL/VERSION``). Times are in
    milliseconds since the epoch, as MLflow keeps them.
    """

    key: str
    name: str
    run_id: str | None = None
    experiment_id: str | None = None
    status: str | None = None
    start_time_ms: int | None = None
    end_time_ms: int | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    model: str | None = None
    version: str | None = None
    aliases: tuple[str, ...] = ()
    stage: str | None = None

    def matches(self, wanted: str) -> bool:
        """Whether ``--baseline wanted`` names this record: its id, name, version or one of its aliases."""
        names = {
            self.key,
            self.name,
            self.run_id,
            self.version,
            *self.aliases,
            *(f"@{a}" for a in self.aliases),
        }
        return wanted in names or (
            self.run_id is not None and len(wanted) >= 6 and self.run_id.startswith(wanted)
        )


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


@dataclass(frozen=True)
class Cell:
    """One value of one row in one column; ``value`` is None when the run does not have it."""

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


def metric_direction(name: str, overrides: Mapping[str, Direction] | None = None) -> tuple[Direction, str]:
    """Whether lower or higher is better for a metric, and the rule that said so (for the legend).

    An explicit override wins (from ``--direction`` or, later, the spec); else a name with one of
    :data:`LOWER_IS_BETTER_WORDS` as a word (``val_loss``, ``rmse``, ``p95-latency``) is lower-is-better.
    """
    if overrides and name in overrides:
        return overrides[name], "set"
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
    directions: Mapping[str, Direction] | None = None,
    history: HistoryReader | None = None,
    system_tags: bool = False,
) -> Comparison:
    """Compare runs or model versions: one row per param, metric and tag, one cell per record.

    By default only the rows whose values differ are kept (``show_all`` keeps every row). ``metrics`` and
    ``params`` are glob patterns that keep matching rows; a pattern starting with ``!`` drops them instead.
    ``baseline`` names the reference column (see :meth:`RunRecord.matches`); numbers get a delta against it.
    ``history(run_id, metric)`` is called for each shown metric of each run, to draw sparklines; pass None to
    skip that (it costs one request per run and metric). Tags MLflow sets itself (``mlflow.*``) are left out
    unless ``system_tags`` or ``show_all``.
    """
    if not records:
        raise CompareError("no runs to compare", "name run ids, or use --experiment or --model")
    records = _unique(records)
    base = _baseline_index(records, baseline)
    rows: list[Row] = []
    hidden = 0
    for section in SECTIONS:
        for name in sorted({name for record in records for name in _values(record, section)}):
            if not _keep(section, name, metrics, params, system_tags or show_all):
                continue
            values = [_values(record, section).get(name) for record in records]
            differs = len({_identity(value) for value in values}) > 1
            if not differs and not show_all and len(records) > 1:
                hidden += 1
                continue
            rows.append(_row(section, name, values, base, differs, directions, records, history))
    columns = tuple(_column(record, index == base) for index, record in enumerate(records))
    return Comparison(columns, tuple(rows), base, hidden, _legend(rows, columns[base]))


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


def _identity(value: Value | None) -> object:
    """What makes two values the same: NaN equals NaN here, and a param "0.10" differs from "0.1"."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def _row(
    section: Section,
    name: str,
    values: list[Value | None],
    base: int,
    differs: bool,
    directions: Mapping[str, Direction] | None,
    records: Sequence[RunRecord],
    history: HistoryReader | None,
) -> Row:
    numbers = [as_number(value) for value in values]
    reference = numbers[base]
    direction: Direction | None = None
    rule: str | None = None
    best: set[int] = set()
    if section == "metrics":
        direction, rule = metric_direction(name, directions)
        best = _best(numbers, direction) if differs else set()
    cells = []
    for index, (value, number) in enumerate(zip(values, numbers, strict=True)):
        delta = percent = None
        if index != base and number is not None and reference is not None and section != "tags":
            delta, percent = _delta(number, reference)
        points: tuple[float, ...] = ()
        run_id = records[index].run_id
        if section == "metrics" and history is not None and value is not None and run_id:
            points = tuple(history(run_id, name))
        cells.append(Cell(value, delta, percent, index in best, points))
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
    if math.isnan(number) or math.isnan(reference):
        return None, None
    if math.isinf(number) or math.isinf(reference):
        # inf - inf is NaN; an infinite difference is only meaningful when the two differ.
        return (None if number == reference else number - reference), None
    delta = number - reference
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


def _legend(rows: Iterable[Row], baseline: Column) -> tuple[str, ...]:
    metrics = [row for row in rows if row.section == "metrics"]
    lines = [f"Δ: difference from the baseline {baseline.label}, absolute and in percent"]
    if not metrics:
        return tuple(lines)
    lines.append("★ best value of each metric")
    by_rule: dict[tuple[str | None, str | None], list[str]] = {}
    for row in metrics:
        by_rule.setdefault((row.direction, row.direction_rule), []).append(row.name)
    reasons = {
        "name": f"its name has one of: {', '.join(LOWER_IS_BETTER_WORDS)}",
        "default": "the default for other names",
        "set": "set with --direction",
    }
    for (direction, rule), names in sorted(
        by_rule.items(), key=lambda item: (str(item[0][0]), str(item[0][1]))
    ):
        better = "↓ lower is better" if direction == "min" else "↑ higher is better"
        lines.append(f"{better} ({reasons.get(rule or '', rule)}): {', '.join(names)}")
    return tuple(lines)


# ------------------------------------------------------------------------------------------------------
# Display helpers shared by every renderer


def format_number(number: float, precision: int = 4) -> str:
    """``precision`` significant digits, never scientific notation for ordinary magnitudes."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    if number == int(number) and abs(number) < 1e15:
        return str(int(number))
    magnitude = abs(number)
    if 1 <= magnitude < 1e15:
        digits = len(str(int(magnitude)))
        return f"{number:.{max(0, precision - digits)}f}"
    return f"{number:.{precision}g}"


def format_value(value: Value | None, precision: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format_number(value, precision)
    return value


def format_delta(cell: Cell, precision: int = 4) -> str:
    """``+0.012 (+3.4%)``, or empty when the cell has no delta or the same value as the baseline."""
    if not cell.delta:
        return ""
    text = format_number(cell.delta, precision)
    text = text if text.startswith("-") else f"+{text}"
    if cell.delta_percent is not None:
        text += f" ({cell.delta_percent:+.1f}%)"
    return text


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


# ------------------------------------------------------------------------------------------------------
# The MLflow adapter


@dataclass(frozen=True)
class Selection:
    """What to compare: run ids; or an experiment's runs; or versions of a registered model.

    With ``model`` and neither ``versions`` nor ``aliases``, every version that has an alias is compared.
    ``sort_by`` takes MLflow's order-by clauses (``metrics.rmse ASC``).
    """

    run_ids: tuple[str, ...] = ()
    experiment: str | None = None
    filter: str = ""
    sort_by: tuple[str, ...] = ()
    top: int | None = None
    model: str | None = None
    versions: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


class MlflowRunSource:
    """Reads runs, registered model versions and metric histories through an ``MlflowClient``.

    ``search_pages`` counts the run-search requests made, so a benchmark can check that a large experiment
    is read in one page rather than hundreds of requests.
    """

    def __init__(self, client: MlflowClient) -> None:
        self.client = client
        self.search_pages = 0

    @classmethod
    def connect(cls, tracking_uri: str | None = None) -> MlflowRunSource:
        from mlmon.drift.mlflow_profile import mlflow_client

        return cls(mlflow_client(tracking_uri))

    @property
    def tracking_uri(self) -> str:
        return str(self.client.tracking_uri)

    def select(self, selection: Selection) -> list[RunRecord]:
        if selection.model is not None:
            return self.model_versions(selection.model, selection.versions, selection.aliases)
        if selection.experiment is not None:
            return self.experiment_runs(
                selection.experiment, selection.filter, selection.sort_by, selection.top
            )
        return [self.run(run_id) for run_id in selection.run_ids]

    def run(self, run_id: str) -> RunRecord:
        from mlmon.drift.mlflow_profile import mlflow_errors

        hint = "check the id (`mlflow runs list --experiment-id ID`) and --mlflow-uri"
        with mlflow_errors(f"run {run_id!r}", self.tracking_uri, hint):
            return _run_record(self.client.get_run(run_id))

    def experiment_runs(
        self, name: str, filter_string: str = "", sort_by: Sequence[str] = (), top: int | None = None
    ) -> list[RunRecord]:
        from mlmon.drift.mlflow_profile import mlflow_errors

        with mlflow_errors(f"experiment {name!r}", self.tracking_uri):
            experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            raise BackendError(
                f"experiment {name!r} not found in MLflow at {_where(self.tracking_uri)}",
                "check the name (`mlflow experiments search`) and --mlflow-uri",
            )
        records: list[RunRecord] = []
        token: str | None = None
        with mlflow_errors(f"the runs of experiment {name!r}", self.tracking_uri, "check --filter"):
            while True:
                wanted = SEARCH_PAGE_SIZE if top is None else min(SEARCH_PAGE_SIZE, top - len(records))
                page = self.client.search_runs(
                    [experiment.experiment_id],
                    filter_string=filter_string,
                    max_results=wanted,
                    order_by=list(sort_by) or None,
                    page_token=token,
                )
                self.search_pages += 1
                records.extend(_run_record(run) for run in page)
                token = page.token
                if not token or (top is not None and len(records) >= top):
                    return records

    def model_versions(
        self, name: str, versions: Sequence[str] = (), aliases: Sequence[str] = ()
    ) -> list[RunRecord]:
        """Versions with their source run's params and metrics and their own tags, aliases and stage.

        Aliases come from the registered model: MLflow's model-version search leaves them out on SQL stores.
        """
        from mlmon.drift.mlflow_profile import mlflow_errors

        with mlflow_errors(f"registered model {name!r}", self.tracking_uri):
            registered = self.client.get_registered_model(name)
        by_alias = {str(alias): str(version) for alias, version in dict(registered.aliases or {}).items()}
        aliases_of: dict[str, list[str]] = {}
        for alias, version in sorted(by_alias.items()):
            aliases_of.setdefault(version, []).append(alias)
        known = ", ".join(sorted(by_alias)) or "none"
        wanted: list[str] = [str(version) for version in versions]
        for alias in aliases:
            if alias.lstrip("@") not in by_alias:
                raise BackendError(
                    f"alias {alias!r} of registered model {name!r} not found in MLflow at {_where(self.tracking_uri)}",
                    f"the model's aliases: {known}",
                )
            wanted.append(by_alias[alias.lstrip("@")])
        if not versions and not aliases:
            if not by_alias:
                raise CompareError(
                    f"registered model {name!r} has no aliased versions", "name versions with --versions 1 2"
                )
            wanted = sorted(set(by_alias.values()), key=lambda version: (len(version), version))
        records = []
        for number in dict.fromkeys(wanted):
            with mlflow_errors(f"version {number} of registered model {name!r}", self.tracking_uri):
                found = self.client.get_model_version(name, number)
            run = self.run(found.run_id) if found.run_id else None
            stage = found.current_stage if found.current_stage not in (None, "", "None") else None
            records.append(
                RunRecord(
                    key=f"{name}/{number}",
                    name=run.name if run else f"{name} v{number}",
                    run_id=found.run_id or None,
                    experiment_id=run.experiment_id if run else None,
                    status=run.status if run else str(found.status),
                    start_time_ms=run.start_time_ms if run else found.creation_timestamp,
                    end_time_ms=run.end_time_ms if run else None,
                    params=run.params if run else {},
                    metrics=run.metrics if run else {},
                    tags={str(k): str(v) for k, v in dict(found.tags or {}).items()},
                    model=name,
                    version=str(number),
                    aliases=tuple(aliases_of.get(str(number), ())),
                    stage=stage,
                )
            )
        return records

    def metric_history(self, run_id: str, key: str) -> list[float]:
        from mlmon.drift.mlflow_profile import mlflow_errors

        with mlflow_errors(f"the history of metric {key!r} in run {run_id!r}", self.tracking_uri):
            points = self.client.get_metric_history(run_id, key)
        return [
            _from_store(float(point.value)) for point in sorted(points, key=lambda p: (p.step, p.timestamp))
        ]


def _where(tracking_uri: str) -> str:
    from mlmon.drift.mlflow_profile import redact

    return redact(tracking_uri)


def _from_store(value: float) -> float:
    """MLflow's SQL stores save an infinite metric as the largest float; turn it back into infinity."""
    return math.copysign(math.inf, value) if abs(value) == sys.float_info.max else value


def _run_record(run: Run) -> RunRecord:
    info, data = run.info, run.data
    return RunRecord(
        key=info.run_id,
        name=info.run_name or info.run_id,
        run_id=info.run_id,
        experiment_id=info.experiment_id,
        status=info.status,
        start_time_ms=info.start_time,
        end_time_ms=info.end_time,
        params=dict(data.params),
        metrics={key: _from_store(float(value)) for key, value in data.metrics.items()},
        tags=dict(data.tags),
    )
