"""The two sides of ``mlmon drift``: what a REFERENCE or CURRENT argument names, read into columns.

Either side may be a CSV, Parquet or JSON-lines file, a folder of them, or a glob pattern (files of one side
must share their columns; see :func:`mlmon.data.read_tables`). The current side may also be mlmon prediction
logs (a log file, or the folder a service logs into, rotated files included): each record's ``features``. The
reference side may also be a profile written by ``mlmon profile``, or an MLflow artifact: ``runs:/RUN_ID/PATH``
(a profile, a data file or a folder of data files logged to the run), ``runs:/RUN_ID``,
``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` (the profile logged with ``mlmon profile --log-to-mlflow``).

Text columns come back dictionary-encoded (:class:`mlmon.data.CategoryColumn`), which the report counts fast.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmon.errors import MlmonError

if TYPE_CHECKING:
    from mlmon.drift.profile import Profile

Columns = dict[str, Any]


class InputError(MlmonError):
    """A side of the comparison names nothing readable, or something that side cannot be."""


def read_reference(location: str, tracking_uri: str | None = None) -> Columns | Profile:
    """The reference side: columns, or a :class:`~mlmon.drift.profile.Profile` (local or from MLflow)."""
    from mlmon.drift.mlflow_profile import download_mlflow_artifact, is_mlflow_uri

    if not is_mlflow_uri(location):
        return _read_reference_files(location, location)
    with tempfile.TemporaryDirectory(prefix="mlmon-drift-") as folder:
        local = download_mlflow_artifact(location, folder, tracking_uri)
        return _read_reference_files(str(local), location)


def _read_reference_files(location: str, source: str) -> Columns | Profile:
    path = Path(location)
    if path.is_file() and path.suffix.lower() == ".json" and looks_like_profile(path):
        from mlmon.drift.profile import load_profile

        return load_profile(path, source)
    return read_data(location)


def read_current(location: str) -> Columns:
    """The current side: data files, or mlmon prediction logs."""
    from mlmon.data import data_files
    from mlmon.drift.mlflow_profile import is_mlflow_uri

    if is_mlflow_uri(location):
        raise InputError(
            f"the current data cannot be an MLflow artifact ({location})",
            "download it, or pass the files or the prediction log folder",
        )
    # An empty .jsonl beside the logs is the live log of a service that has answered nothing yet.
    files = [path for path in data_files(location) if not (path.suffix == ".jsonl" and _empty(path))]
    logs = [path for path in files if is_prediction_log(path)]
    if logs:
        if len(logs) != len(files):
            others = ", ".join(str(p) for p in files if p not in logs)
            raise InputError(
                f"{location} mixes prediction logs with other data files: {others}",
                "keep prediction logs in a folder of their own",
            )
        # A folder goes to the log reader whole, which orders rotated files before the live one.
        return columns_from_prediction_log([location] if Path(location).is_dir() else [str(p) for p in files])
    return read_data(location)


def read_data(location: str) -> Columns:
    """A data file, folder or glob, as columns with text dictionary-encoded."""
    from mlmon.data import data_files, read_tables

    return read_tables(data_files(location), encode_text=True)


def looks_like_profile(path: Path) -> bool:
    """Whether a .json file is a profile (one pretty-printed object) rather than JSON lines."""
    try:
        with open(path, "rb") as file:
            head = file.read(4096).lstrip()
    except OSError:
        return False
    # A profile is one pretty-printed JSON object; JSON lines have a whole object on the first line.
    return head.startswith(b"{") and b"\n" in head and head.split(b"\n", 1)[0].strip() == b"{"


# Far above any prediction log record (one row's features, prediction and ids).
_FIRST_LINE_LIMIT = 16 << 20


def is_prediction_log(path: Path) -> bool:
    """Whether a file is an mlmon prediction log: JSON lines whose first record has ``ts`` and ``features``."""
    if path.suffix.lower() != ".jsonl" or not path.is_file():
        return False
    try:
        with open(path, "rb") as file:
            # Bounded: a file with no newline (a JSON array on one line, a binary file) would otherwise be
            # read whole here. A cut line does not parse, and the file is read as ordinary data.
            first = json.loads(file.readline(_FIRST_LINE_LIMIT) or b"null")
    except (OSError, ValueError):
        return False  # read_table names the file and the parser's reason
    return isinstance(first, dict) and isinstance(first.get("features"), dict) and "ts" in first


def columns_from_prediction_log(paths: Sequence[str] | str) -> Columns:
    """Feature columns from mlmon prediction logs (files or folders): each record's ``features`` object.

    A feature absent from a record, or redacted in it, counts as missing for that record. Numbers come back as
    float64 arrays (NaN where missing); a feature with any non-number value comes back as text.
    """
    import numpy as np

    from mlmon.data import CategoryColumn
    from mlmon.drift.profile import category_label
    from mlmon.instrument.prediction_log import LogReadStats, read_prediction_log

    stats = LogReadStats()
    records = [r.get("features") for r in read_prediction_log(paths, stats=stats)]
    rows = [r if isinstance(r, dict) else {} for r in records]
    if not rows:
        raise InputError(
            f"the prediction log {', '.join(paths) if not isinstance(paths, str) else paths} has no records",
            "point at the file or folder the service logs into",
        )
    names = list(dict.fromkeys(name for row in rows for name in row))
    columns: Columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        numeric = all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values)
        if numeric:
            columns[name] = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
        else:
            texts = [None if v is None else (v if isinstance(v, str) else category_label(v)) for v in values]
            columns[name] = CategoryColumn.from_texts(texts)
    return columns


def _empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False  # read_table names the problem
