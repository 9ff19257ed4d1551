"""A comparison of runs (:mod:`mlmon.compare`) as JSON data, CSV and Markdown: the library's writers, which
`mlmon compare-runs` and a notebook share. The terminal table is the command's (mlmon.cli.compare_runs)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlmon.sparklines import sparkline

if TYPE_CHECKING:
    from mlmon.compare import Cell, Column, Comparison, Row


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
        data["direction_rule"] = row.direction_rule
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
# Markdown, and what it shares with the terminal table


def header_fields(comparison: Comparison) -> list[tuple[str, Callable[[Column], str]]]:
    """The facts about each column beyond its label: source run (for versions), stage (when any has one),
    status, start and duration. The same list heads the table, the transposed table and Markdown."""
    from mlmon.compare import format_duration, format_time

    fields: list[tuple[str, Callable[[Column], str]]] = []
    if any(column.version is not None for column in comparison.columns):
        fields.append(("run", lambda column: column.name if column.version is not None else "-"))
    if any(column.stage for column in comparison.columns):
        fields.append(("stage", lambda column: column.stage or "-"))
    fields += [
        ("status", lambda column: column.status or "-"),
        ("started", lambda column: format_time(column.start_time)),
        ("duration", lambda column: format_duration(column.duration_seconds)),
    ]
    return fields


def column_label(column: Column) -> str:
    return column.label + (" (baseline)" if column.baseline else "")


def row_label(row: Row) -> str:
    if row.direction is None:
        return row.name
    return f"{row.name} {'↓' if row.direction == 'min' else '↑'}"


def _md(text: str) -> str:
    """A Markdown table cell: pipes escaped, line breaks kept as <br>."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", "\n").replace("\n", "<br>")


def comparison_markdown(comparison: Comparison, precision: int = 4, transpose: bool = False) -> str:
    """A Markdown table ready to paste into a pull request: best values in bold with ★, a legend below."""
    fields = header_fields(comparison)
    lines: list[str] = []
    if transpose:
        titles = ["run", *(title for title, _ in fields)]
        titles += [f"{row.section}.{row_label(row)}" for row in comparison.rows]
        lines.append("| " + " | ".join(_md(title) for title in titles) + " |")
        lines.append("|" + "---|" * len(titles))
        for index, column in enumerate(comparison.columns):
            cells = [_md(column_label(column)), *(_md(get(column)) for _, get in fields)]
            cells += [_md_cell(row.cells[index], precision) for row in comparison.rows]
            lines.append("| " + " | ".join(cells) + " |")
    else:
        columns = comparison.columns
        lines.append("| | " + " | ".join(_md(column_label(column)) for column in columns) + " |")
        lines.append("|---|" + "---|" * len(columns))
        for title, get in fields:
            lines.append(f"| {title} | " + " | ".join(_md(get(column)) for column in columns) + " |")
        for section in ("params", "metrics", "tags"):
            rows = comparison.section(section)
            if rows:
                lines.append(f"| **{section}** |" + " |" * len(columns))
            for row in rows:
                cells = [_md_cell(cell, precision) for cell in row.cells]
                lines.append(f"| {_md(row_label(row))} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"<sub>{_md(line)}</sub><br>" for line in comparison.legend]
    return "\n".join(lines) + "\n"


def _md_cell(cell: Cell, precision: int) -> str:
    from mlmon.compare import format_delta, format_value

    text = _md(format_value(cell.value, precision))
    if cell.best:
        text = f"**{text}** ★"
    delta = format_delta(cell, precision)
    if delta:
        text += f" ({_md(delta)})"
    spark = sparkline(cell.history)
    return text + (f" `{spark}`" if spark else "")
