"""`mlmon compare-runs`: MLflow runs or registered model versions side by side, with deltas and best values.

The command parses options, reads the records through :class:`mlmon.backends.mlflow.runs.MlflowRunSource`, calls
:func:`mlmon.compare.compare` and renders the result as a table, JSON, CSV or Markdown.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Protocol

import typer

from mlmon.cli import output
from mlmon.cli.output import handles_errors
from mlmon.compare_formats import (
    column_label,
    comparison_csv,
    comparison_json,
    comparison_markdown,
    header_fields,
    row_label,
)
from mlmon.settings import DEFAULT_TRACKING_URI, optional_spec, registry_uri_for, tracking_uri_for
from mlmon.sparklines import sparkline

if TYPE_CHECKING:
    from mlmon.backends.mlflow.runs import Selection
    from mlmon.compare import Cell, Comparison, Direction

Format = Literal["table", "json", "csv", "markdown"]


@handles_errors
def compare_runs_command(
    run_ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[RUN_ID]...",
            help="Runs to compare. With --model, more versions or aliases (`--versions 3 4`).",
            show_default=False,
        ),
    ] = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Compare the runs of this experiment.")
    ] = None,
    filter_string: Annotated[
        str, typer.Option("--filter", help='MLflow search filter, e.g. "metrics.rmse < 0.5".')
    ] = "",
    sort_by: Annotated[
        list[str] | None,
        typer.Option("--sort-by", help='MLflow order-by clause, e.g. "metrics.rmse ASC" (repeatable).'),
    ] = None,
    top: Annotated[int | None, typer.Option("--top", min=1, help="Keep the first N runs found.")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="Compare versions of this registered model (alone: every aliased one)."
        ),
    ] = None,
    versions: Annotated[
        list[str] | None, typer.Option("--versions", help="Model versions, e.g. --versions 3 4.")
    ] = None,
    aliases: Annotated[
        list[str] | None,
        typer.Option("--aliases", help="Model aliases, e.g. --aliases champion challenger."),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="The reference column: a run id or name, a version or an alias. Default: the first."
        ),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Show every row, not only the rows that differ.")
    ] = False,
    metrics: Annotated[
        list[str] | None,
        typer.Option("--metrics", help="Glob of metrics to keep; !GLOB drops (repeatable)."),
    ] = None,
    params: Annotated[
        list[str] | None, typer.Option("--params", help="Glob of params to keep; !GLOB drops (repeatable).")
    ] = None,
    direction: Annotated[
        list[str] | None,
        typer.Option(
            "--direction",
            metavar="NAME=min|max",
            help="Whether lower (min) or higher (max) is better for a metric, over the spec (repeatable).",
        ),
    ] = None,
    precision: Annotated[
        int, typer.Option(min=1, max=17, help="Significant digits in the table and Markdown.")
    ] = 4,
    transpose: Annotated[
        bool | None,
        typer.Option(
            "--transpose/--no-transpose",
            help="Runs as rows instead of columns. Default: when there are more than 6.",
            show_default=False,
        ),
    ] = None,
    sparklines: Annotated[
        bool | None,
        typer.Option(
            "--sparklines/--no-sparklines",
            help="Read each shown metric's history (one request per metric and 100 runs on a server), for "
            "the sparklines beside runs as columns and for JSON; CSV and runs as rows show none. Default: "
            "up to 6 runs.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = "table",
    mlflow_uri: Annotated[
        str | None,
        typer.Option(
            envvar="MLFLOW_TRACKING_URI",
            help=f"MLflow tracking URI. Default: the spec's mlflow.tracking_uri, else {DEFAULT_TRACKING_URI}.",
            show_default=False,
        ),
    ] = None,
    spec_path: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            "-s",
            envvar="MLMON_SPEC",
            help="The spec, for its metric directions (mlflow.metrics) and tracking URI. Default: mlmon.yaml "
            "when it exists.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            envvar="MLMON_TIMEOUT",
            help="Seconds a tracking server's answers may take, all requests together (each one also at "
            "most MLFLOW_HTTP_REQUEST_TIMEOUT).",
            min=0.1,
        ),
    ] = 5.0,
) -> None:
    """Compare MLflow runs or registered model versions: params, metrics and tags side by side.

    Only the rows that differ are shown (--all for every row). Numbers get their difference from the
    baseline; the best value of each metric is marked: lower-is-better or higher-is-better as --direction
    or the spec's mlflow.metrics say, else lower for names with loss, error, rmse, mae, mse, logloss or
    latency and higher for the others.
    """
    from mlmon.backends.mlflow.runs import MlflowRunSource
    from mlmon.compare import TRANSPOSE_AFTER, DirectionRules, compare
    from mlmon.errors import CompareError

    selection = _selection(run_ids or [], experiment, filter_string, sort_by, top, model, versions, aliases)
    flags = _directions(direction or [])
    spec = optional_spec(spec_path)
    tracking_uri = tracking_uri_for(spec, mlflow_uri)
    registry_uri = registry_uri_for(spec, tracking_given=mlflow_uri is not None)
    source = MlflowRunSource.connect(tracking_uri, registry_uri, timeout=timeout)
    records = source.select(selection)
    if not records:
        raise CompareError("no runs match", "check --filter and the experiment name")
    transposed = len(records) > TRANSPOSE_AFTER if transpose is None else transpose
    # Histories cost requests: read them only where they are shown (sparklines beside runs as columns,
    # "history" in JSON), and by default only for the few runs that are not transposed.
    shows_history = fmt == "json" or (fmt in ("table", "markdown") and not transposed)
    read_history = shows_history and (
        sparklines if sparklines is not None else len(records) <= TRANSPOSE_AFTER
    )
    rules = DirectionRules(flags, dict(spec.mlflow.metrics), spec.source) if spec else DirectionRules(flags)
    comparison = compare(
        records,
        baseline=baseline,
        show_all=show_all,
        metrics=metrics or (),
        params=params or (),
        directions=rules,
        history=source.metric_histories if read_history else None,
    )
    if fmt == "json":
        output.print_json(comparison_json(comparison))
    elif fmt == "csv":
        sys.stdout.write(comparison_csv(comparison))
    elif fmt == "markdown":
        sys.stdout.write(comparison_markdown(comparison, precision, transposed))
    else:
        print_table(comparison, precision, transposed)
    if len(comparison.columns) == 1:
        output.note(
            [
                ("hint:", "dim"),
                (" only one run to compare: name more run ids, or use --experiment or --model", ""),
            ]
        )
    elif comparison.hidden_rows and fmt == "table":
        hidden = comparison.hidden_rows
        output.note(
            [
                (
                    f"{hidden} {'row is' if hidden == 1 else 'rows are'} the same in every run (--all shows them)",
                    "",
                )
            ]
        )


def _selection(
    positional: list[str],
    experiment: str | None,
    filter_string: str,
    sort_by: list[str] | None,
    top: int | None,
    model: str | None,
    versions: list[str] | None,
    aliases: list[str] | None,
) -> Selection:
    """Check that exactly one way of selecting was used; positional values extend --versions or --aliases.

    Click options take one value each, so `--versions 3 4` arrives as versions ["3"] and positional ["4"].
    """
    from mlmon.backends.mlflow.runs import Selection

    if sum(bool(x) for x in (experiment, model)) > 1:
        raise typer.BadParameter("use one of run ids, --experiment or --model", param_hint="--experiment")
    if (versions or aliases) and not model:
        raise typer.BadParameter("--versions and --aliases need --model", param_hint="--model")
    if (filter_string or sort_by or top) and not experiment:
        raise typer.BadParameter("--filter, --sort-by and --top need --experiment", param_hint="--experiment")
    if model:
        if positional and versions and aliases:
            raise typer.BadParameter(
                "with both --versions and --aliases, repeat the option for each value",
                param_hint="--versions",
            )
        if positional and not (versions or aliases):
            raise typer.BadParameter(
                f"say whether {' '.join(positional)} are --versions or --aliases", param_hint="--model"
            )
        extra_versions = positional if versions else []
        extra_aliases = positional if aliases else []
        return Selection(
            model=model,
            versions=tuple(_split([*(versions or []), *extra_versions])),
            aliases=tuple(_split([*(aliases or []), *extra_aliases])),
        )
    if experiment:
        if positional:
            raise typer.BadParameter("use either run ids or --experiment", param_hint="--experiment")
        return Selection(experiment=experiment, filter=filter_string, sort_by=tuple(sort_by or ()), top=top)
    if not positional:
        raise typer.BadParameter("name run ids, or use --experiment or --model", param_hint="RUN_ID")
    return Selection(run_ids=tuple(positional))


def _split(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _directions(flags: list[str]) -> dict[str, Direction]:
    """NAME=min|max pairs; they override the spec's mlflow.metrics and the rule by name."""
    found: dict[str, Direction] = {}
    for flag in flags:
        name, _, value = flag.rpartition("=")
        if not name or value not in ("min", "max"):
            raise typer.BadParameter(f"{flag!r} is not NAME=min or NAME=max", param_hint="--direction")
        found[name] = "min" if value == "min" else "max"
    return found


# ------------------------------------------------------------------------------------------------------
# Human formats

# A styled piece of text: (text, style name of output.styled_text).
Piece = tuple[str, str]
# A table cell, on one line: its text as measured, and as written (with ANSI codes when in colour).
GridCell = tuple[str, str]
EMPTY: GridCell = ("", "")


class Painter(Protocol):
    """Makes a table cell of styled pieces (see :func:`_painter`)."""

    def __call__(self, *pieces: Piece) -> GridCell: ...


# Line breaks and tabs in a value would break the table's alignment.
_ONE_LINE = str.maketrans({"\n": "⏎", "\r": "", "\t": " "})


def _one_line(text: str) -> str:
    # translate() is slow next to a membership test, and nearly every value is on one line already.
    return text.translate(_ONE_LINE) if "\n" in text or "\r" in text or "\t" in text else text


def _painter(colour: bool) -> Painter:
    """A function making a table cell of pieces. In colour each piece is cleaned of control characters before
    its ANSI codes go round it; without, the table cleans whole lines (faster, and the same text)."""
    codes = output.ansi_codes() if colour else {}

    def paint(*pieces: Piece) -> GridCell:
        plain = pieces[0][0] if len(pieces) == 1 else "".join([text for text, _ in pieces])
        if not codes:
            return plain, plain
        shown = "".join(
            [
                f"\x1b[{codes[style]}m{output.printable(text)}\x1b[0m"
                if style in codes and text
                else output.printable(text)
                for text, style in pieces
            ]
        )
        return plain, shown

    return paint


def _cell_painter(paint: Painter, precision: int, limit: int, spark: bool) -> Callable[[Cell], GridCell]:
    """A function turning a cell into a table cell: value (bold green when best), delta (dim), ★ and, for
    runs as columns, the sparkline. (A closure, so that the imports run once, not once per cell.)"""
    from mlmon.compare import format_delta, format_value

    def cell_text(cell: Cell) -> GridCell:
        value = _one_line(format_value(cell.value, precision))
        if len(value) > limit:  # a long tag or param; JSON and CSV carry it whole
            value = value[: limit - 1] + "…"
        found: list[Piece] = [(value, "bold green" if cell.best else "")]
        delta = format_delta(cell, precision)
        if delta:
            found.append((f" {delta}", "dim"))
        if cell.best:
            found.append((" ★", "bold green"))
        if spark and cell.history:
            line = sparkline(cell.history)
            if line:
                found.append((f" {line}", ""))
        return paint(*found)

    return cell_text


def print_table(comparison: Comparison, precision: int = 4, transpose: bool = False) -> None:
    """The comparison as aligned columns on stdout (runs as rows with ``transpose``), then the legend."""
    colour = output.stdout_colour()
    if not comparison.rows:
        sys.stdout.write("no differences\n" if len(comparison.columns) > 1 else "nothing logged\n")
        return
    # The terminal's width; COLUMNS, or 80, elsewhere (as rich and pandas choose it).
    width = shutil.get_terminal_size().columns
    limit = max(40, width - 30)
    build = _transposed_grid if transpose else _grid
    grid = build(comparison, _painter(colour), precision, limit)
    legend = [[(line, "dim")] for line in comparison.legend]
    sys.stdout.write(_grid_text(grid, width, colour) + output.styled_text(legend, colour=colour, width=None))
    sys.stdout.flush()


def _grid(comparison: Comparison, paint: Painter, precision: int, limit: int) -> list[list[GridCell]]:
    """Runs as columns: header lines, then a title row per section and one row per param, metric or tag."""
    columns = comparison.columns
    cell_text = _cell_painter(paint, precision, limit, spark=True)
    grid: list[list[GridCell]] = [
        [EMPTY] + [paint((_one_line(column_label(column)), "bold")) for column in columns]
    ]
    for title, get in header_fields(comparison):
        grid.append([paint((title, "dim")), *(paint((_one_line(get(column)), "")) for column in columns)])
    for section in ("params", "metrics", "tags"):
        rows = comparison.section(section)
        if rows:
            grid.append([paint((section, "bold"))] + [EMPTY] * len(columns))
        for row in rows:
            label = paint((_one_line(f"  {row_label(row)}"), ""))
            grid.append([label] + [cell_text(cell) for cell in row.cells])
    return grid


def _transposed_grid(
    comparison: Comparison, paint: Painter, precision: int, limit: int
) -> list[list[GridCell]]:
    """Runs as rows: one line per run, one column per header fact and per param, metric or tag."""
    fields = header_fields(comparison)
    cell_text = _cell_painter(paint, precision, limit, spark=False)
    titles = ["run", *(title for title, _ in fields)]
    titles += [_one_line(f"{row.section}.{row_label(row)}") for row in comparison.rows]
    grid: list[list[GridCell]] = [[paint((title, "bold")) for title in titles]]
    for index, column in enumerate(comparison.columns):
        line = [paint((_one_line(column_label(column)), ""))]
        line += [paint((_one_line(get(column)), "")) for _, get in fields]
        line += [cell_text(row.cells[index]) for row in comparison.rows]
        grid.append(line)
    return grid


def _grid_text(grid: list[list[GridCell]], width: int, colour: bool, gap: int = 2) -> str:
    """Cells in aligned columns, left-aligned, values never wrapped; styles as ANSI codes when ``colour``.

    Built as plain text: a rich Table measures, divides and wraps every cell (seconds for a few thousand
    cells), and even rich Segments took a sixth of a second for 200 runs. Columns that do not fit ``width``
    move to a further block below, which repeats the first column (the row labels) and the header rows, as
    pandas prints a wide frame.
    """
    lengths = [[_text_width(plain) for plain, _ in row] for row in grid]
    widths = [0] * max(len(row) for row in grid)
    for row_lengths in lengths:
        for index, length in enumerate(row_lengths):
            if length > widths[index]:
                widths[index] = length
    out: list[str] = []
    for block_number, block in enumerate(_blocks(widths, width, gap)):
        if block_number:
            out.append("\n")
        for row, row_lengths in zip(grid, lengths, strict=True):
            # The last column of the block with text in this row: the line ends there, without padding.
            last = next((index for index in reversed(block) if index < len(row) and row[index][0]), 0)
            parts: list[str] = []
            for index in block:
                if index > last:
                    break
                parts.append(row[index][1])
                if index < last:
                    parts.append(" " * (widths[index] - row_lengths[index] + gap))
            line = "".join(parts).rstrip()
            # Text from runs and users: control characters become spaces, so that no terminal escape gets
            # through (coloured, each piece was cleaned before its codes went round it).
            out.append((line if colour else output.printable(line)) + "\n")
    return "".join(out)


def _text_width(text: str) -> int:
    if text.isascii():
        return len(text)
    from rich.cells import cell_len  # East Asian wide characters take two columns, combining marks none

    return cell_len(text)


def _blocks(widths: list[int], available: int, gap: int) -> list[list[int]]:
    """Column indexes per block: the first column in each, then as many more as fit ``available``."""
    blocks: list[list[int]] = []
    current = [0]
    used = widths[0]
    for index in range(1, len(widths)):
        if len(current) > 1 and used + gap + widths[index] > available:
            blocks.append(current)
            current, used = [0], widths[0]
        current.append(index)
        used += gap + widths[index]
    blocks.append(current)
    return blocks
