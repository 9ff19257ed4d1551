"""Reading tabular data (CSV, Parquet, JSON lines) into plain numpy columns.

``mlmon profile`` reads reference data with it and ``mlmon drift`` reads current data, so both see a file the
same way: the same columns, the same types, the same missing values. pyarrow does the parsing, in C++ and
in parallel, so a file of a million rows reads in well under a second; nothing here loops over numerical
rows in Python.

Example::

    from mlmon.data import read_table

    columns = read_table("reference.parquet", columns=["income", "region"])
    columns["income"]   # array([52000., nan, ...])          float64, NaN where missing
    columns["region"]   # array(['north', None, ...], dtype=object)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mlmon.errors import MlmonError

Column = npt.NDArray[Any]

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson", ".json")
SUPPORTED_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES + JSON_LINES_SUFFIXES


class DataError(MlmonError):
    """A data file is missing, unreadable, empty, or lacks a column that was asked for."""


def read_table(path: str | Path, columns: Sequence[str] | None = None) -> dict[str, Column]:
    """Read a CSV, Parquet or JSON-lines file into a dict of column name to numpy array.

    The format comes from the extension: ``.csv``; ``.parquet`` or ``.pq``; ``.jsonl``, ``.ndjson`` or
    ``.json`` (JSON lines: one object per line, not one JSON array). ``columns`` selects and orders the
    columns to return; by default every column comes back, in file order.

    A column is *numerical* when pyarrow's type for it is an integer, floating-point or decimal type; it
    comes back as a float64 array with NaN where a value is missing. For CSV that means every non-missing
    cell of the column parses as a number; for JSON lines, that every non-null value is a JSON number;
    Parquet keeps the type it was written with. A column whose every value is missing comes back as
    numerical too (all NaN): there is nothing to say otherwise.

    Every other column comes back as an object array of ``str``, with ``None`` where missing. Booleans
    read as ``"True"``/``"False"`` (Python's spelling, as the live monitor sees a ``bool``), timestamps in
    ISO form, nested JSON values as compact JSON text.

    In CSV, an empty cell and pyarrow's null markers (``NA``, ``NULL``, ``null``, ``NaN``, ``nan``,
    ``N/A``, ...) are missing, in text columns as in numerical ones.

    Raises :class:`DataError` (with a hint) when the file is missing, has an unknown extension, has no
    rows, cannot be parsed (naming the file and the parser's reason), or lacks a requested column (naming
    it and listing the columns it has).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"cannot read {path}: unknown file type {suffix or '(no extension)'!r}",
            f"use a {', '.join(SUPPORTED_SUFFIXES)} file",
        )
    if not path.is_file():
        raise DataError(f"data file {path} not found", "check the path")
    table = _read_arrow(path, suffix, list(columns) if columns is not None else None)
    if table.num_rows == 0:
        raise DataError(f"{path} has no rows", "profile a file with at least one row of data")
    return {name: _to_numpy(path, name, table.column(name)) for name in table.column_names}


def _read_arrow(path: Path, suffix: str, columns: list[str] | None) -> pa.Table:
    try:
        if suffix in CSV_SUFFIXES:
            return _read_csv(path, columns)
        if suffix in PARQUET_SUFFIXES:
            return _read_parquet(path, columns)
        return _read_json_lines(path, columns)
    except (pa.ArrowException, OSError) as exc:
        # The parser's own reason ("Expected 2 columns, got 3", "magic bytes not found") says what is wrong.
        raise DataError(f"cannot read {path}: {_reason(exc)}", _format_hint(suffix)) from None


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    if "Empty CSV file" in text or "Empty JSON file" in text or "file size is 0 bytes" in text:
        return "the file is empty"
    return text.splitlines()[0] if text else type(exc).__name__


def _format_hint(suffix: str) -> str:
    if suffix in CSV_SUFFIXES:
        return "a CSV file needs a header line and the same number of fields on every line"
    if suffix in PARQUET_SUFFIXES:
        return "the file may be truncated or not Parquet; write it again"
    return "JSON lines means one JSON object per line, with a consistent type per field"


def _read_csv(path: Path, columns: list[str] | None) -> pa.Table:
    import pyarrow.csv as pacsv

    convert = pacsv.ConvertOptions(strings_can_be_null=True)
    if columns is not None:
        # Check the header first, so a missing column gets mlmon's message rather than pyarrow's.
        with pacsv.open_csv(path) as reader:
            _check_columns(path, columns, reader.schema.names)
        convert = pacsv.ConvertOptions(strings_can_be_null=True, include_columns=columns)
    return pacsv.read_csv(path, convert_options=convert)


def _read_parquet(path: Path, columns: list[str] | None) -> pa.Table:
    import pyarrow.parquet as pq

    if columns is not None:
        _check_columns(path, columns, pq.read_schema(path).names)
    return pq.read_table(path, columns=columns)


def _read_json_lines(path: Path, columns: list[str] | None) -> pa.Table:
    import pyarrow.json as pajson

    table = pajson.read_json(path)
    if columns is None:
        return table
    if table.num_rows:
        _check_columns(path, columns, table.column_names)
    return table.select([name for name in columns if name in table.column_names])


def _check_columns(path: Path, wanted: Sequence[str], available: Sequence[str]) -> None:
    missing = [name for name in wanted if name not in available]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        plural = "s" if len(missing) > 1 else ""
        raise DataError(
            f"{path} has no column{plural} {names}",
            f"its columns are: {', '.join(available) or '(none)'}",
        )


def _to_numpy(path: Path, name: str, column: pa.ChunkedArray) -> Column:
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        # safe=False: a uint64 or decimal beyond float64's exact range rounds instead of failing.
        floats = pc.cast(column, pa.float64(), safe=False)
        return np.asarray(floats.to_numpy(zero_copy_only=False), dtype=np.float64)
    if pa.types.is_null(kind):
        return np.full(len(column), np.nan)
    if pa.types.is_boolean(kind):
        return _booleans_as_text(column)
    return _as_text(path, name, column)


def _booleans_as_text(column: pa.ChunkedArray) -> Column:
    values = column.to_numpy(zero_copy_only=False)
    out = np.full(len(values), None, dtype=object)
    present = pc.is_valid(column).to_numpy(zero_copy_only=False)
    out[present] = np.where(values[present].astype(bool), "True", "False")
    return out


def _as_text(path: Path, name: str, column: pa.ChunkedArray) -> Column:
    try:
        text = pc.cast(column, pa.string())
    except pa.ArrowNotImplementedError:
        # Lists and structs from JSON lines have no string cast: spell each as JSON, the way it was written.
        values = column.to_pylist()
        return np.array(
            [None if v is None else json.dumps(v, sort_keys=True, default=str) for v in values], dtype=object
        )
    except pa.ArrowInvalid as exc:
        raise DataError(
            f"column {name!r} of {path} is not text mlmon can read: {_reason(exc)}",
            "store text columns as UTF-8",
        ) from None
    return np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
