"""`mlmon compare-runs`: MLflow runs or registered model versions side by side, with deltas and best values.

The command parses options, reads the records through :class:`mlmon.compare.MlflowRunSource`, calls
:func:`mlmon.compare.compare` and renders the result as a rich table, JSON, CSV or Markdown.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from mlmon.cli import output
from mlmon.cli.output import escape, handles_errors

if TYPE_CHECKING:
    from mlmon.compare import Cell, Column, Comparison, Direction, Row, Selection

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
            help="Whether lower (min) or higher (max) is better for a metric (repeatable).",
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
            help="Draw each metric's history (one request per run and metric). Default: up to 6 runs.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = "table",
    mlflow_uri: Annotated[
        str, typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI.")
    ] = "sqlite:///mlflow.db",
) -> None:
    """Compare MLflow runs or registered model versions: params, metrics and tags side by side.

    Only the rows that differ are shown (--all for every row). Numbers get their difference from the
    baseline; the best value of each metric is marked, lower-is-better for names with loss, error, rmse,
    mae, mse, logloss or latency and higher-is-better otherwise (--direction overrides).
    """
    from mlmon.compare import TRANSPOSE_AFTER, MlflowRunSource, compare

    selection = _selection(run_ids or [], experiment, filter_string, sort_by, top, model, versions, aliases)
    source = MlflowRunSource.connect(mlflow_uri)
    records = source.select(selection)
    from mlmon.compare import CompareError

    if not records:
        raise CompareError("no runs match", "check --filter and the experiment name")
    many = len(records) > TRANSPOSE_AFTER
    comparison = compare(
        records,
        baseline=baseline,
        show_all=show_all,
        metrics=metrics or (),
        params=params or (),
        directions=_directions(direction or []),
        history=source.metric_history if (sparklines if sparklines is not None else not many) else None,
    )
    if fmt == "json":
        output.print_json(comparison_json(comparison))
    elif fmt == "csv":
        sys.stdout.write(comparison_csv(comparison))
    elif fmt == "markdown":
        sys.stdout.write(comparison_markdown(comparison, precision, many if transpose is None else transpose))
    else:
        _print_table(comparison, precision, many if transpose is None else transpose)
    if len(comparison.columns) == 1:
        output.info(
            "[dim]hint:[/] only one run to compare: name more run ids, or use --experiment or --model"
        )
    elif comparison.hidden_rows and fmt == "table":
        hidden = comparison.hidden_rows
        output.info(
            f"{hidden} {'row is' if hidden == 1 else 'rows are'} the same in every run (--all shows them)"
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
    from mlmon.compare import Selection

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
    """NAME=min|max pairs. The spec has no per-metric direction key yet; these flags stand in for it."""
    found: dict[str, Direction] = {}
    for flag in flags:
        name, _, value = flag.rpartition("=")
        if not name or value not in ("min", "max"):
            raise typer.BadParameter(f"{flag!r} is not NAME=min or NAME=max", param_hint="--direction")
        found[name] = "min" if value == "min" else "max"
    return found


# ------------------------------------------------------------------------------------------------------
# Machine formats: every value in full


def _json_number(number: float | None) -> float | str | None:
    """JSON has no NaN or infinity: those travel as the strings "NaN", "Infinity" and "-Infinity"."""
    if number is None or math.isfinite(number):
        return number
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


def _json_value(value: str | float | None) -> Any:
    return _json_number(value) if isinstance(value, float) else value


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """The comparison as plain JSON data: columns, then sections of rows keyed by the column keys."""
    keys = [column.key for column in comparison.columns]
    return {
        "baseline": keys[comparison.baseline],
        "columns": [_column_json(column) for column in comparison.columns],
        **{
            section: [_row_json(row, keys) for row in comparison.section(section)]
            for section in ("params", "metrics", "tags")
        },
        "hidden_rows": comparison.hidden_rows,
        "legend": list(comparison.legend),
    }


def _column_json(column: Column) -> dict[str, Any]:
    return {
        "key": column.key,
        "name": column.name,
        "run_id": column.run_id,
        "experiment_id": column.experiment_id,
        "model": column.model,
        "version": column.version,
        "aliases": list(column.aliases),
        "stage": column.stage,
        "status": column.status,
        "start_time": column.start_time.isoformat() if column.start_time else None,
        "duration_seconds": column.duration_seconds,
        "baseline": column.baseline,
    }


def _row_json(row: Row, keys: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = {"name": row.name, "differs": row.differs}
    if row.direction:
        data["direction"] = row.direction
    data["values"] = {key: _cell_json(cell) for key, cell in zip(keys, row.cells, strict=True)}
    return data


def _cell_json(cell: Cell) -> dict[str, Any]:
    data: dict[str, Any] = {
        "value": _json_value(cell.value),
        "delta": _json_number(cell.delta),
        "delta_percent": _json_number(cell.delta_percent),
        "best": cell.best,
    }
    if cell.history:
        data["history"] = [_json_number(point) for point in cell.history]
    return data


def comparison_csv(comparison: Comparison) -> str:
    """One line per row and column (a tidy table for pandas or a spreadsheet), values in full."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["section", "name", "column", "run_id", "version", "value", "delta", "delta_percent", "best"]
    )
    for row in comparison.rows:
        for column, cell in zip(comparison.columns, row.cells, strict=True):
            writer.writerow(
                [
                    row.section,
                    row.name,
                    column.key,
                    column.run_id or "",
                    column.version or "",
                    ""
                    if cell.value is None
                    else (repr(cell.value) if isinstance(cell.value, float) else cell.value),
                    "" if cell.delta is None else repr(cell.delta),
                    "" if cell.delta_percent is None else repr(cell.delta_percent),
                    "true" if cell.best else "false",
                ]
            )
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------------
# Human formats


def _cell_text(row: Row, cell: Cell, precision: int) -> tuple[str, str, str]:
    """(value, delta, sparkline) as plain text, for the table and Markdown alike."""
    from mlmon.compare import format_delta, format_value, sparkline

    return format_value(cell.value, precision), format_delta(cell, precision), sparkline(cell.history)


def _header_lines(column: Column, comparison: Comparison) -> list[str]:
    """Label, [source run], [stage], status, start, duration: the same lines in every column, so they align."""
    from mlmon.compare import format_duration, format_time

    lines = [column.label + (" (baseline)" if column.baseline else "")]
    if any(other.version is not None for other in comparison.columns):
        lines.append(column.name if column.version is not None else "")
    if any(other.stage for other in comparison.columns):
        lines.append(f"stage: {column.stage}" if column.stage else "")
    lines += [column.status or "-", format_time(column.start_time), format_duration(column.duration_seconds)]
    return lines


def _row_label(row: Row) -> str:
    if row.direction is None:
        return row.name
    return f"{row.name} {'↓' if row.direction == 'min' else '↑'}"


def _print_table(comparison: Comparison, precision: int, transpose: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    console = output.stdout()
    if transpose:
        # Many runs make thousands of cells: Text objects skip rich's markup parser (about twice as fast),
        # and a string from MLflow inside a Text is never read as markup, so it needs no escaping.
        table = Table("run", "status", "started", "duration", box=None, pad_edge=False)
        for row in comparison.rows:
            table.add_column(Text(f"{row.section}.{_row_label(row)}"))
        for index, column in enumerate(comparison.columns):
            head = _header_lines(column, comparison)
            cells: list[Text] = [Text(head[0]), Text(head[-3]), Text(head[-2]), Text(head[-1])]
            for row in comparison.rows:
                value, delta, _ = _cell_text(row, row.cells[index], precision)
                best = row.cells[index].best
                text = Text(value, style="bold green" if best else "")
                if delta:
                    text.append(f" {delta}", style="dim")
                if best:
                    text.append(" ★", style="bold green")
                cells.append(text)
            table.add_row(*cells)
    else:
        table = Table("", box=None, pad_edge=False)
        for column in comparison.columns:
            table.add_column("\n".join(escape(line) for line in _header_lines(column, comparison)))
        for section in ("params", "metrics", "tags"):
            rows = comparison.section(section)
            if not rows:
                continue
            table.add_row(f"[bold]{section}[/]", *[""] * len(comparison.columns))
            for row in rows:
                markup = []
                for cell in row.cells:
                    value, delta, spark = _cell_text(row, cell, precision)
                    shown = escape(value) + (f" [dim]{escape(delta)}[/]" if delta else "")
                    shown = f"[bold green]{shown} ★[/]" if cell.best else shown
                    markup.append(shown + (f" {spark}" if spark else ""))
                table.add_row(f"  {escape(_row_label(row))}", *markup)
    if not comparison.rows:
        console.print("no differences" if len(comparison.columns) > 1 else "nothing logged")
    else:
        console.print(table)
        console.print("\n".join(f"[dim]{escape(line)}[/]" for line in comparison.legend))
    sys.stdout.flush()


def _md(text: str) -> str:
    """A Markdown table cell: pipes escaped, line breaks kept as <br>."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", "\n").replace("\n", "<br>")


def comparison_markdown(comparison: Comparison, precision: int = 4, transpose: bool = False) -> str:
    """A Markdown table ready to paste into a pull request: best values in bold with ★, a legend below."""
    lines: list[str] = []
    if transpose:
        names = [f"{row.section}.{_row_label(row)}" for row in comparison.rows]
        lines.append("| " + " | ".join(["run", "status", "started", "duration", *map(_md, names)]) + " |")
        lines.append("|" + "---|" * (4 + len(names)))
        for index, column in enumerate(comparison.columns):
            head = _header_lines(column, comparison)
            cells = [head[0], head[-3], head[-2], head[-1]]
            cells += [_md_cell(row, row.cells[index], precision) for row in comparison.rows]
            lines.append(
                "| " + " | ".join(_md(cell) if i < 4 else cell for i, cell in enumerate(cells)) + " |"
            )
    else:
        heads = [_header_lines(column, comparison) for column in comparison.columns]
        lines.append("| | " + " | ".join(_md(head[0]) for head in heads) + " |")
        lines.append("|---|" + "---|" * len(heads))
        lines.append("| status | " + " | ".join(_md(head[-3]) for head in heads) + " |")
        lines.append("| started | " + " | ".join(_md(head[-2]) for head in heads) + " |")
        lines.append("| duration | " + " | ".join(_md(head[-1]) for head in heads) + " |")
        if any(column.version is not None for column in comparison.columns):
            lines.append("| run | " + " | ".join(_md(column.name) for column in comparison.columns) + " |")
        if any(column.stage for column in comparison.columns):
            lines.append(
                "| stage | " + " | ".join(_md(column.stage or "-") for column in comparison.columns) + " |"
            )
        for section in ("params", "metrics", "tags"):
            rows = comparison.section(section)
            if rows:
                lines.append(f"| **{section}** |" + " |" * len(heads))
            for row in rows:
                cells = [_md_cell(row, cell, precision) for cell in row.cells]
                lines.append(f"| {_md(_row_label(row))} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"<sub>{_md(line)}</sub><br>" for line in comparison.legend]
    return "\n".join(lines) + "\n"


def _md_cell(row: Row, cell: Cell, precision: int) -> str:
    value, delta, spark = _cell_text(row, cell, precision)
    text = _md(value)
    if cell.best:
        text = f"**{text}** ★"
    if delta:
        text += f" ({_md(delta)})"
    return text + (f" `{spark}`" if spark else "")
