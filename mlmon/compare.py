"""MLflow runs and registered model versions side by side: the data behind ``mlmon compare-runs``.

Two halves. :func:`compare` is pure: it takes :class:`RunRecord` values (whatever their source) and returns a
:class:`Comparison` (columns, rows per section, deltas against a baseline, the best value of each metric), so
it is tested and reused without a server::

    from mlmon.compare import MlflowRunSource, Selection, compare

    source = MlflowRunSource.connect("http://mlflow:5000")
    records = source.select(Selection(model="credit-risk", aliases=("champion", "challenger")))
    comparison = compare(records, history=source.metric_histories)

:class:`MlflowRunSource` reads the records. For a tracking server (``http(s)://``) it speaks MLflow's REST API
itself (:mod:`mlmon.mlflow_rest`), because importing MLflow's client costs more than the whole command may;
for local stores (``sqlite:///mlflow.db``, a folder) it goes through MLflow's client, imported only then. Both
readers turn the same data into the same records, and errors into :class:`~mlmon.errors.BackendError`
messages that name the run, model, version or alias asked for.
"""

from __future__ import annotations

import fnmatch
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, Protocol

from mlmon.errors import BackendError, MlmonError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from mlmon.mlflow_rest import MlflowRestClient

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
# MLflow's bulk history endpoint takes at most 100 runs and returns at most 2,500 points per run (evenly
# sampled past that, first and last step kept).
HISTORY_RUNS_PER_REQUEST = 100
HISTORY_POINTS = 2500
# History requests run this many at a time: one per shown metric adds up on a remote server.
HISTORY_CONCURRENCY = 4

Value = str | float

# {metric: run ids that have it} -> {(run id, metric): points, oldest first}
HistoryReader = Callable[[Mapping[str, Sequence[str]]], Mapping[tuple[str, str], Sequence[float]]]


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


@dataclass(slots=True)
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
# Reading MLflow


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


@dataclass(frozen=True)
class VersionInfo:
    """What the registry holds about one model version (its run's data is read separately)."""

    run_id: str | None
    status: str | None
    stage: str | None
    tags: Mapping[str, str]
    creation_timestamp: int | None


class MlflowReader(Protocol):
    """The few reads a comparison needs. :class:`ClientReader` and :class:`RestReader` implement them."""

    tracking_uri: str

    def run(self, run_id: str) -> RunRecord: ...

    def experiment_id(self, name: str) -> str | None: ...

    def search_runs(
        self,
        experiment_id: str,
        experiment_name: str,
        filter_string: str,
        max_results: int,
        order_by: Sequence[str],
        page_token: str | None,
    ) -> tuple[list[RunRecord], str | None]: ...

    def model_aliases(self, name: str) -> dict[str, str]: ...

    def model_version(self, name: str, version: str) -> VersionInfo: ...

    def metric_histories(self, wanted: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], list[float]]: ...


RUN_HINT = "check the id (`mlflow runs list --experiment-id ID`) and --mlflow-uri"
EXPERIMENT_HINT = "check the name (`mlflow experiments search`) and --mlflow-uri"


class MlflowRunSource:
    """Selects runs and model versions through a :class:`MlflowReader`, whichever MLflow it talks to.

    ``search_pages`` counts the run-search requests made, so a benchmark can check that a large experiment
    is read in one page rather than hundreds of requests.
    """

    def __init__(self, reader: MlflowReader) -> None:
        self.reader = reader
        self.search_pages = 0

    @classmethod
    def connect(cls, tracking_uri: str, registry_uri: str | None = None) -> MlflowRunSource:
        """A source over MLflow's REST API for a tracking server, over MLflow's client for anything else.

        ``registry_uri`` defaults to MLFLOW_REGISTRY_URI, then to the tracking URI, as in MLflow.
        """
        import os

        from mlmon.mlflow_rest import MlflowRestClient, rest_supported

        registry_uri = registry_uri or os.environ.get("MLFLOW_REGISTRY_URI") or None
        if rest_supported(tracking_uri) and (registry_uri is None or rest_supported(registry_uri)):
            tracking = MlflowRestClient(tracking_uri)
            registry = MlflowRestClient(registry_uri) if registry_uri not in (None, tracking_uri) else None
            return cls(RestReader(tracking, registry))
        return cls(ClientReader.connect(tracking_uri, registry_uri))

    @property
    def tracking_uri(self) -> str:
        return self.reader.tracking_uri

    def select(self, selection: Selection) -> list[RunRecord]:
        if selection.model is not None:
            return self.model_versions(selection.model, selection.versions, selection.aliases)
        if selection.experiment is not None:
            return self.experiment_runs(
                selection.experiment, selection.filter, selection.sort_by, selection.top
            )
        return [self.reader.run(run_id) for run_id in selection.run_ids]

    def experiment_runs(
        self, name: str, filter_string: str = "", sort_by: Sequence[str] = (), top: int | None = None
    ) -> list[RunRecord]:
        experiment_id = self.reader.experiment_id(name)
        if experiment_id is None:
            raise BackendError(
                f"experiment {name!r} not found in MLflow at {_where(self.tracking_uri)}", EXPERIMENT_HINT
            )
        records: list[RunRecord] = []
        token: str | None = None
        while True:
            wanted = SEARCH_PAGE_SIZE if top is None else min(SEARCH_PAGE_SIZE, top - len(records))
            page, token = self.reader.search_runs(experiment_id, name, filter_string, wanted, sort_by, token)
            self.search_pages += 1
            records.extend(page)
            if not token or (top is not None and len(records) >= top):
                return records

    def model_versions(
        self, name: str, versions: Sequence[str] = (), aliases: Sequence[str] = ()
    ) -> list[RunRecord]:
        """Versions with their source run's params and metrics and their own tags, aliases and stage.

        Aliases come from the registered model: MLflow's model-version search leaves them out on SQL stores.
        Version numbers stay strings, as MLflow's REST API has them.
        """
        by_alias = self.reader.model_aliases(name)
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
            found = self.reader.model_version(name, number)
            run = self.reader.run(found.run_id) if found.run_id else None
            records.append(
                RunRecord(
                    key=f"{name}/{number}",
                    name=run.name if run else f"{name} v{number}",
                    run_id=found.run_id,
                    experiment_id=run.experiment_id if run else None,
                    status=run.status if run else found.status,
                    start_time_ms=run.start_time_ms if run else found.creation_timestamp,
                    end_time_ms=run.end_time_ms if run else None,
                    params=run.params if run else {},
                    metrics=run.metrics if run else {},
                    tags=found.tags,
                    model=name,
                    version=number,
                    aliases=tuple(aliases_of.get(number, ())),
                    stage=found.stage,
                )
            )
        return records

    def metric_histories(self, wanted: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], list[float]]:
        """The history of each metric in each of its runs, oldest first: a :data:`HistoryReader`."""
        return self.reader.metric_histories(wanted)


class ClientReader:
    """Reads through an ``MlflowClient``: local stores (sqlite, a folder), and servers that need MLflow's
    own auth plugins. mlflow is imported when the reader connects."""

    def __init__(self, client: MlflowClient) -> None:
        self.client = client
        self.tracking_uri = str(client.tracking_uri)

    @classmethod
    def connect(cls, tracking_uri: str | None = None, registry_uri: str | None = None) -> ClientReader:
        from mlmon.drift.mlflow_profile import mlflow_client

        return cls(mlflow_client(tracking_uri, registry_uri))

    def run(self, run_id: str) -> RunRecord:
        from mlmon.drift.mlflow_profile import mlflow_errors

        with mlflow_errors(f"run {run_id!r}", self.tracking_uri, RUN_HINT):
            return _run_record(self.client.get_run(run_id))

    def experiment_id(self, name: str) -> str | None:
        from mlmon.drift.mlflow_profile import mlflow_errors

        with mlflow_errors(f"experiment {name!r}", self.tracking_uri):
            experiment = self.client.get_experiment_by_name(name)
        return None if experiment is None else str(experiment.experiment_id)

    def search_runs(
        self,
        experiment_id: str,
        experiment_name: str,
        filter_string: str,
        max_results: int,
        order_by: Sequence[str],
        page_token: str | None,
    ) -> tuple[list[RunRecord], str | None]:
        from mlmon.drift.mlflow_profile import mlflow_errors

        what = f"the runs of experiment {experiment_name!r}"
        with mlflow_errors(what, self.tracking_uri, "check --filter"):
            page = self.client.search_runs(
                [experiment_id],
                filter_string=filter_string,
                max_results=max_results,
                order_by=list(order_by) or None,
                page_token=page_token,
            )
        return [_run_record(run) for run in page], page.token or None

    def model_aliases(self, name: str) -> dict[str, str]:
        from mlmon.drift.mlflow_profile import mlflow_errors

        with mlflow_errors(f"registered model {name!r}", self.tracking_uri):
            registered = self.client.get_registered_model(name)
        return {str(alias): str(version) for alias, version in dict(registered.aliases or {}).items()}

    def model_version(self, name: str, version: str) -> VersionInfo:
        from mlmon.drift.mlflow_profile import mlflow_errors

        with mlflow_errors(f"version {version} of registered model {name!r}", self.tracking_uri):
            found = self.client.get_model_version(name, version)
        return VersionInfo(
            run_id=found.run_id or None,
            status=str(found.status) if found.status else None,
            stage=_stage(found.current_stage),
            tags={str(key): str(value) for key, value in dict(found.tags or {}).items()},
            creation_timestamp=found.creation_timestamp,
        )

    def metric_histories(self, wanted: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], list[float]]:
        from mlmon.drift.mlflow_profile import mlflow_errors

        found: dict[tuple[str, str], list[float]] = {}
        for key, run_ids in wanted.items():
            for run_id in run_ids:
                with mlflow_errors(f"the history of metric {key!r} in run {run_id!r}", self.tracking_uri):
                    points = self.client.get_metric_history(run_id, key)
                found[run_id, key] = _history((point.step, point.timestamp, point.value) for point in points)
        return found


class RestReader:
    """Reads a tracking server through MLflow's REST API (:mod:`mlmon.mlflow_rest`), without importing mlflow.

    Histories come from ``metrics/get-history-bulk-interval`` (one request per shown metric and 100 runs,
    at most :data:`HISTORY_POINTS` points per run); a server without that endpoint (MLflow before 2.9) is
    asked per run with ``metrics/get-history``.
    """

    def __init__(self, tracking: MlflowRestClient, registry: MlflowRestClient | None = None) -> None:
        self.tracking = tracking
        self.registry = registry or tracking
        self.tracking_uri = tracking.tracking_uri

    @property
    def requests_made(self) -> int:
        return self.tracking.requests_made + (
            self.registry.requests_made if self.registry is not self.tracking else 0
        )

    def run(self, run_id: str) -> RunRecord:
        answer = self.tracking.get(
            "runs/get", {"run_id": run_id}, what=f"run {run_id!r}", missing_hint=RUN_HINT
        )
        return _run_record_from_json(answer.get("run", {}))

    def experiment_id(self, name: str) -> str | None:
        from mlmon.mlflow_rest import MlflowNotFound

        try:
            answer = self.tracking.get(
                "experiments/get-by-name", {"experiment_name": name}, what=f"experiment {name!r}"
            )
        except MlflowNotFound:
            return None
        return str(answer["experiment"]["experiment_id"])

    def search_runs(
        self,
        experiment_id: str,
        experiment_name: str,
        filter_string: str,
        max_results: int,
        order_by: Sequence[str],
        page_token: str | None,
    ) -> tuple[list[RunRecord], str | None]:
        body: dict[str, Any] = {"experiment_ids": [experiment_id], "max_results": max_results}
        if filter_string:
            body["filter"] = filter_string
        if order_by:
            body["order_by"] = list(order_by)
        if page_token:
            body["page_token"] = page_token
        what = f"the runs of experiment {experiment_name!r}"
        answer = self.tracking.post("runs/search", body, what=what, missing_hint="check --filter")
        runs = [_run_record_from_json(run) for run in answer.get("runs", [])]
        return runs, answer.get("next_page_token") or None

    def model_aliases(self, name: str) -> dict[str, str]:
        answer = self.registry.get("registered-models/get", {"name": name}, what=f"registered model {name!r}")
        aliases = answer.get("registered_model", {}).get("aliases", [])
        return {str(item["alias"]): str(item["version"]) for item in aliases}

    def model_version(self, name: str, version: str) -> VersionInfo:
        what = f"version {version} of registered model {name!r}"
        answer = self.registry.get("model-versions/get", {"name": name, "version": version}, what=what)
        found = answer.get("model_version", {})
        created = found.get("creation_timestamp")
        return VersionInfo(
            run_id=found.get("run_id") or None,
            status=found.get("status") or None,
            stage=_stage(found.get("current_stage")),
            tags=_pairs(found.get("tags")),
            creation_timestamp=int(created) if created is not None else None,
        )

    def metric_histories(self, wanted: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], list[float]]:
        tasks = [
            (key, tuple(run_ids[start : start + HISTORY_RUNS_PER_REQUEST]))
            for key, run_ids in wanted.items()
            for start in range(0, len(run_ids), HISTORY_RUNS_PER_REQUEST)
        ]
        found: dict[tuple[str, str], list[float]] = {}
        if len(tasks) == 1:
            found.update(self._bulk_history(*tasks[0]))
            return found
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(HISTORY_CONCURRENCY) as pool:
            for part in pool.map(lambda task: self._bulk_history(*task), tasks):
                found.update(part)
        return found

    def _bulk_history(self, key: str, run_ids: tuple[str, ...]) -> dict[tuple[str, str], list[float]]:
        from mlmon.mlflow_rest import EndpointMissing

        what = f"the history of metric {key!r}"
        params = {"run_ids": run_ids, "metric_key": key, "max_results": str(HISTORY_POINTS)}
        try:
            answer = self.tracking.get("metrics/get-history-bulk-interval", params, what=what)
        except EndpointMissing:
            return {(run_id, key): self._history(run_id, key) for run_id in run_ids}
        points: dict[str, list[tuple[int, int, Any]]] = {run_id: [] for run_id in run_ids}
        for point in answer.get("metrics", []):
            points.setdefault(point["run_id"], []).append(_point(point))
        return {(run_id, key): _history(found) for run_id, found in points.items()}

    def _history(self, run_id: str, key: str) -> list[float]:
        what = f"the history of metric {key!r} in run {run_id!r}"
        params = {"run_id": run_id, "metric_key": key}
        points: list[tuple[int, int, Any]] = []
        while True:
            answer = self.tracking.get("metrics/get-history", params, what=what)
            points.extend(_point(point) for point in answer.get("metrics", []))
            token = answer.get("next_page_token")
            if not token:
                return _history(points)
            params = {**params, "page_token": token}


def _where(tracking_uri: str) -> str:
    from mlmon.drift.mlflow_profile import redact

    return redact(tracking_uri)


def _from_store(value: float) -> float:
    """MLflow's SQL stores save an infinite metric as the largest float; turn it back into infinity."""
    return math.copysign(math.inf, value) if abs(value) == sys.float_info.max else value


def _stage(stage: object) -> str | None:
    """A legacy registry stage, or None when the version has none (MLflow says "None")."""
    return None if stage in (None, "", "None") else str(stage)


def _history(points: Iterable[tuple[int, int, Any]]) -> list[float]:
    """(step, timestamp, value) triples as values in the order they were logged."""
    return [_from_store(float(value)) for _, _, value in sorted(points, key=lambda point: point[:2])]


def _point(point: Mapping[str, Any]) -> tuple[int, int, Any]:
    return int(point.get("step", 0)), int(point.get("timestamp", 0)), point.get("value", math.nan)


def _pairs(items: object) -> dict[str, str]:
    """MLflow's JSON lists of ``{"key": ..., "value": ...}`` as a dict; a repeated key keeps its last value."""
    if not isinstance(items, list):
        return {}
    return {str(item["key"]): str(item.get("value", "")) for item in items}


def _run_record(run: Run) -> RunRecord:
    info, data = run.info, run.data
    return RunRecord(
        key=info.run_id,
        name=info.run_name or info.run_id,
        run_id=info.run_id,
        experiment_id=str(info.experiment_id),
        status=info.status,
        start_time_ms=info.start_time,
        end_time_ms=info.end_time,
        params=dict(data.params),
        metrics={key: _from_store(float(value)) for key, value in data.metrics.items()},
        tags=dict(data.tags),
    )


def _run_record_from_json(run: Mapping[str, Any]) -> RunRecord:
    """A run as MLflow's REST API has it: the same record :func:`_run_record` makes from the client's Run.

    Values that JSON cannot hold come as strings ("NaN", "Infinity"), which float() reads.
    """
    info, data = run.get("info", {}), run.get("data", {})
    run_id = str(info.get("run_id") or info.get("run_uuid"))
    start, end = info.get("start_time"), info.get("end_time")
    return RunRecord(
        key=run_id,
        name=info.get("run_name") or run_id,
        run_id=run_id,
        experiment_id=str(info.get("experiment_id")),
        status=info.get("status"),
        start_time_ms=int(start) if start is not None else None,
        end_time_ms=int(end) if end is not None else None,
        params=_pairs(data.get("params")),
        metrics={
            str(metric["key"]): _from_store(float(metric.get("value", math.nan)))
            for metric in data.get("metrics", [])
        },
        tags=_pairs(data.get("tags")),
    )
