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

import glob
import json
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, eq=False)
class CategoryColumn:
    """A text column, dictionary-encoded: row ``i`` holds ``categories[codes[i]]``, or is missing where
    ``codes[i]`` is -1. The categories are distinct.

    Counting categories is then one ``numpy.bincount`` instead of a hash lookup per row in Python: what
    makes ``mlmon drift`` fast on text features. ``numpy.asarray(column)`` gives the object array of
    ``str`` and ``None`` that :func:`read_table` returns without ``encode_text``, so code written for plain
    arrays takes either.
    """

    codes: npt.NDArray[np.int32]
    categories: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.codes.size)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Column:
        lookup = np.array([*self.categories, None], dtype=object)  # code -1 picks the trailing None
        texts = lookup[self.codes]
        return texts if dtype is None else texts.astype(dtype)

    def counts(self) -> tuple[dict[str, int], int]:
        """Rows per category (categories with no row left out) and the number of missing rows."""
        per_code = np.bincount(self.codes + 1, minlength=len(self.categories) + 1).tolist()
        present = {c: n for c, n in zip(self.categories, per_code[1:], strict=True) if n}
        return present, per_code[0]

    @classmethod
    def from_texts(cls, texts: Sequence[str | None] | Column) -> CategoryColumn:
        """Encode an array of ``str`` and ``None``."""
        return _encode_texts(pa.array(np.asarray(texts, dtype=object), type=pa.string(), from_pandas=True))


def read_table(
    path: str | Path, columns: Sequence[str] | None = None, *, encode_text: bool = False
) -> dict[str, Column]:
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

    With ``encode_text``, text columns come back as :class:`CategoryColumn` (the same values,
    dictionary-encoded by pyarrow) instead of object arrays: much faster to count.

    Raises :class:`DataError` (with a hint) when the file is missing, has an unknown extension, has no
    rows, cannot be parsed (naming the file and the parser's reason), or lacks a requested column (naming
    it and listing the columns it has).
    """
    path = Path(path)
    suffix = _data_file_suffix(path)
    table = _read_arrow(path, suffix, list(columns) if columns is not None else None, encode_text)
    if table.num_rows == 0:
        raise DataError(f"{path} has no rows", "pass a file with at least one row of data")
    return {name: _to_numpy(path, name, table.column(name), encode_text) for name in table.column_names}


def data_files(location: str | Path) -> list[Path]:
    """The files a data argument names: one file, a folder (its .csv, .parquet and JSON-lines files, sorted
    by name), or a glob pattern such as ``'data/2025-*.parquet'`` (matching files, sorted).

    Raises :class:`DataError` when a pattern matches no file or a folder holds no data file. A single path
    is returned as it is: :func:`read_table` reports a missing file or an unknown extension."""
    text = str(location)
    if glob.has_magic(text) and not Path(text).exists():  # an existing name such as cur[1].csv is a name
        matches = sorted(Path(match) for match in glob.glob(text, recursive=True))
        files = [path for path in matches if path.is_file()]
        if not files:
            raise DataError(
                f"no files match {text}",
                "check the pattern, and quote it so that the shell leaves it to mlmon",
            )
        return files
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
        if not files:
            raise DataError(
                f"folder {path} has no data files", f"put {', '.join(SUPPORTED_SUFFIXES)} files in it"
            )
        return files
    return [path]


def read_tables(
    paths: Sequence[str | Path], columns: Sequence[str] | None = None, *, encode_text: bool = False
) -> dict[str, Column]:
    """Read several files holding the same columns as one table, their rows one after the other.

    The files may mix formats. They must have the same column names, and a column must be numerical in
    every file or text in every file (a column with no value in a file fits either); integer and float
    columns combine as float. Otherwise :class:`DataError` names the file and the columns that differ.
    Each file is read as :func:`read_table` reads it, and its errors name the file.
    """
    if not paths:
        raise DataError("no data files given")
    if len(paths) == 1:
        return read_table(paths[0], columns, encode_text=encode_text)
    tables: list[tuple[Path, pa.Table]] = []
    for given in paths:
        path = Path(given)
        wanted = list(columns) if columns is not None else None
        tables.append((path, _read_arrow(path, _data_file_suffix(path), wanted)))
    names = _same_columns(tables)
    try:
        table = pa.concat_tables([t.select(names) for _, t in tables], promote_options="permissive")
    except (pa.ArrowException, ValueError) as exc:
        raise DataError(f"cannot combine {paths[0]} and the other files: {_reason(exc)}") from None
    if table.num_rows == 0:
        raise DataError(f"{len(paths)} files and no rows in any", "pass files with at least one row of data")
    found: dict[str, Column] = {}
    for name in names:
        try:
            found[name] = _to_numpy(Path(paths[0]), name, table.column(name), encode_text)
        except DataError:
            # The message should name the file that holds the bad value, not the first one: convert each
            # file's column alone; the first that fails raises (when only the combined column fails, the
            # message names the first file).
            for path, part in tables:
                _to_numpy(path, name, part.column(name), encode_text)
            raise
    return found


def _data_file_suffix(path: Path) -> str:
    """The suffix of a data file mlmon reads, once the file is known to exist; else a DataError saying why."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"cannot read {path}: unknown file type {suffix or '(no extension)'!r}",
            f"mlmon reads {', '.join(SUPPORTED_SUFFIXES)} files",
        )
    if not path.is_file():
        if path.exists():  # a named pipe, a socket, a device: pyarrow needs a file it can seek in
            raise DataError(
                f"cannot read {path}: it is not a regular file (a named pipe, a socket or a device)",
                "write the data to a file first, then pass that file",
            )
        raise DataError(f"data file {path} not found", "check the path")
    return suffix


def _same_columns(tables: Sequence[tuple[Path, pa.Table]]) -> list[str]:
    first_path, first = tables[0]
    names = list(first.column_names)
    kinds: dict[str, tuple[str, Path]] = {}
    for path, table in tables:
        extra = [n for n in table.column_names if n not in names]
        lacking = [n for n in names if n not in table.column_names]
        if extra or lacking:
            parts = []
            if extra:
                parts.append(f"has {_names(extra)}, which {first_path} has not")
            if lacking:
                parts.append(f"lacks {_names(lacking)}")
            raise DataError(
                f"{path} {' and '.join(parts)}", "all the files of one side must have the same columns"
            )
        for name in names:
            kind = _column_kind(table.schema.field(name).type)
            if kind == "empty":
                continue
            seen = kinds.setdefault(name, (kind, path))
            if seen[0] != kind:
                raise DataError(
                    f"column {name!r} is {seen[0]} in {seen[1]} but {kind} in {path}",
                    "fix the data so that the column holds one kind of value in every file",
                )
    return names


def _names(names: Sequence[str]) -> str:
    plural = "s" if len(names) > 1 else ""
    return f"column{plural} " + ", ".join(repr(name) for name in names)


def _column_kind(kind: pa.DataType) -> str:
    if pa.types.is_null(kind):
        return "empty"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "numerical"
    return "text"


def _read_arrow(path: Path, suffix: str, columns: list[str] | None, dictionary: bool = False) -> pa.Table:
    try:
        if suffix in CSV_SUFFIXES:
            table = _read_csv(path, columns)
        elif suffix in PARQUET_SUFFIXES:
            table = _read_parquet(path, columns, dictionary)
        else:
            table = _read_json_lines(path, columns)
    except (pa.ArrowException, OSError) as exc:
        # The parser's own reason ("Expected 2 columns, got 3", "magic bytes not found") says what is wrong.
        raise DataError(f"cannot read {path}: {_reason(exc)}", _format_hint(suffix)) from None
    _refuse_repeated_names(path, table.column_names)
    return table


def _refuse_repeated_names(path: Path, names: Sequence[str]) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(
            f"{path} names {_names(repeated)} more than once",
            "give every column its own name in the file's header, then run again",
        )


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    if "Empty CSV file" in text or "Empty JSON file" in text or "file size is 0 bytes" in text:
        return "the file is empty"
    if "straddling object" in text:  # pyarrow reads JSON lines in blocks of 1 MiB
        return "a JSON value runs on for more than 1 MiB: a line that long, or not JSON lines at all"
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
    table = pacsv.read_csv(path, convert_options=convert)
    _refuse_unclosed_quote(path, table)
    return table


def _refuse_unclosed_quote(path: Path, table: pa.Table) -> None:
    """pyarrow reads a quote that is never closed as one cell running to the end of the file, so a truncated
    export would pass as a few rows. Newlines are not allowed inside values (pyarrow's default), so a text
    cell holding one can only come from such a quote."""
    import pyarrow.compute as pc

    for name, column in zip(table.column_names, table.columns, strict=True):  # names may repeat here
        if not _is_text(column.type):
            continue
        broken = pc.match_substring_regex(column, "[\\r\\n]")
        if pc.any(broken).as_py():
            row = pc.index(broken, True).as_py() + 1
            raise DataError(
                f"cannot read {path}: a quote in column {name!r} at data row {row} is never closed, so "
                "the rest of the file was read as one value",
                "the file may be truncated; export it again, or close the quote",
            )


def _read_parquet(path: Path, columns: list[str] | None, dictionary: bool = False) -> pa.Table:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    _refuse_repeated_names(path, schema.names)
    if columns is not None:
        _check_columns(path, columns, schema.names)
    # Parquet stores text dictionary-encoded already: read so, text never becomes one string per row.
    texts = [
        field.name
        for field in schema
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
    ]
    return pq.read_table(path, columns=columns, read_dictionary=texts if dictionary else None)


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


def _to_numpy(path: Path, name: str, column: pa.ChunkedArray, encode_text: bool = False) -> Any:
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        # safe=False: a uint64 or decimal beyond float64's exact range rounds instead of failing.
        floats = pc.cast(column, pa.float64(), safe=False)
        return np.asarray(floats.to_numpy(zero_copy_only=False), dtype=np.float64)
    if pa.types.is_null(kind):
        return np.full(len(column), np.nan)
    if pa.types.is_boolean(kind):
        texts = _booleans_as_text(column)
        return CategoryColumn.from_texts(texts) if encode_text else texts
    if encode_text and pa.types.is_dictionary(kind) and _is_text(kind.value_type):
        return _from_dictionary(column)
    if encode_text and _is_text(kind):
        return _encode_texts(column.combine_chunks() if column.num_chunks != 1 else column.chunk(0))
    texts = _as_text(path, name, column)
    return CategoryColumn.from_texts(texts) if encode_text else texts


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _from_dictionary(column: pa.ChunkedArray) -> CategoryColumn:
    """A dictionary-encoded text column as it is: its chunks (row groups) share one dictionary once unified."""
    unified = column.unify_dictionaries()
    chunks = unified.chunks
    if not chunks:
        return CategoryColumn(np.empty(0, dtype=np.int32), ())
    parts = [pc.fill_null(chunk.indices, -1).to_numpy(zero_copy_only=False) for chunk in chunks]
    codes = np.concatenate(parts).astype(np.int32, copy=False)
    return CategoryColumn(codes, tuple(chunks[0].dictionary.to_pylist()))


def _encode_texts(array: pa.Array) -> CategoryColumn:
    encoded = pc.dictionary_encode(array)
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    return CategoryColumn(codes, tuple(encoded.dictionary.to_pylist()))


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
