"""Which columns of a table are features: the ones asked for, or every column but identifiers and timestamps.

A prediction table usually holds a request id and a timestamp beside the features. Compared as features they
always look drifted (every id and every instant is new), so ``mlmon drift`` and ``mlmon profile`` leave them out
unless they are named, and say so. What counts as one:

* **timestamps**: a text column whose values are ISO 8601 dates or date-times (CSV and Parquet timestamps
  arrive as such text from :mod:`mlmon.data`), or a numerical column named like a time (``ts``, ``timestamp``,
  ``time``, ``date``, ``datetime``, or ending in ``_at``, ``_ts``, ``_timestamp``) whose values all lie after
  1973 as epoch seconds or milliseconds;
* **identifiers**: a column named like one (``id``, ``uuid``, ``guid``, ``index``, an unnamed pandas index,
  or a name ending in ``_id``, ``-id``, `` id`` or ``Id``) whose values are mostly distinct (more than half of
  its rows), or a text column whose every value is distinct (at least 20 rows). A ``store_id`` with fifty
  stores over thousands of rows is a real categorical feature and stays.

Numbers stay features whatever their name unless it says identifier or time: a continuous feature has
distinct values too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlmon.errors import MlmonError

_ISO_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?",
    re.ASCII,
)
_TIME_NAME = re.compile(r"(ts|timestamp|time|date|datetime)|.*(_at|_ts|_timestamp)", re.IGNORECASE)
_ID_NAMES = frozenset({"", "id", "uuid", "guid", "index", "unnamed: 0"})  # "": pandas' unnamed index
# user_id, request-id, "order id", session_uuid (any case); userId, orderID (camel case only: not "paid").
_ID_NAME_END = re.compile(r"(?i:[_\- ](?:id|uuid))$|[a-z0-9](?:Id|ID)$")
# Epoch seconds after 1973-03-03 (1e8); milliseconds are larger still.
_EPOCH_FLOOR = 1e8
_MIN_ROWS_FOR_DISTINCT = 20
_CHECKED_VALUES = 1000


class ColumnChoiceError(MlmonError):
    """A column named with --feature or --exclude is not in the data."""


@dataclass(frozen=True)
class LeftOut:
    """A column that is not compared, and why (``"timestamps"``, ``"an identifier: ..."``, ``"--exclude"``)."""

    name: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "reason": self.reason}


def choose_features(
    columns: Mapping[str, Any],
    *,
    include: Sequence[str] | None = None,
    exclude: Iterable[str] = (),
    reserved: Iterable[str] = (),
    side: str = "the data",
    guess: bool = True,
) -> tuple[list[str], list[LeftOut]]:
    """The feature columns of ``columns``, in their order, and the columns left out with the reason.

    ``include`` names the features exactly (nothing is guessed then); otherwise every column is one except
    ``exclude``, ``reserved`` (the target, prediction and confidence of a profile, left out silently) and
    the identifiers and timestamps described in this module's docstring (unless ``guess`` is false). A name in ``include`` or
    ``exclude`` that is not a column is an error naming the columns there are.
    """
    available = list(columns)
    excluded = list(dict.fromkeys(exclude))
    require_columns(excluded, available, "--exclude", side)
    if include is not None:
        require_columns(include, available, "--feature", side)
        clash = [name for name in include if name in excluded]
        if clash:
            raise ColumnChoiceError(
                f"{_quoted(clash)} named by both --feature and --exclude", "name each column in one of them"
            )
        return list(dict.fromkeys(include)), []
    skip = set(excluded) | set(reserved)
    chosen: list[str] = []
    left_out = [LeftOut(name, "--exclude") for name in excluded]
    for name in available:
        if name in skip:
            continue
        reason = not_a_feature(name, columns[name]) if guess else None
        if reason is None:
            chosen.append(name)
        else:
            left_out.append(LeftOut(name, reason))
    return chosen, left_out


def not_a_feature(name: str, values: Any) -> str | None:
    """Why a column looks like an identifier or a timestamp rather than a feature, or None."""
    from mlmon.data import CategoryColumn

    if isinstance(values, CategoryColumn):
        texts: Sequence[str] = values.categories
        present, distinct = _present_and_distinct_codes(values)
        if texts and all(_ISO_TIME.fullmatch(text) for text in texts[:_CHECKED_VALUES]):
            return "timestamps"
        if distinct and _named_like_id(name) and distinct > present / 2:
            return "an identifier: named like one, most values distinct"
        if present >= _MIN_ROWS_FOR_DISTINCT and distinct == present:
            return "an identifier: every value distinct"
        return None
    import numpy as np

    array = np.asarray(values)
    if array.dtype.kind == "O":
        return not_a_feature(name, CategoryColumn.from_texts(array))
    if array.dtype.kind not in "iuf" or array.ndim != 1:
        return None
    finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array
    if finite.size == 0:
        return None
    if _TIME_NAME.fullmatch(name) and float(np.min(finite)) > _EPOCH_FLOOR:
        return "timestamps: named like a time, values like epoch seconds"
    if _named_like_id(name) and np.unique(finite).size > finite.size / 2:
        return "an identifier: named like one, most values distinct"
    return None


@dataclass(frozen=True)
class TextNumbers:
    """A text column that holds numbers but for a few cells: the numbers (NaN where missing or text), and
    the text cells by value, most frequent first."""

    values: Any
    text_cells: dict[str, int]

    @property
    def text_cell_count(self) -> int:
        return sum(self.text_cells.values())


# A text column is taken as numbers when at least this share of its present cells are numbers.
MIN_NUMBER_SHARE = 0.95


def numbers_in_text(column: Any) -> TextNumbers | None:
    """The numbers of a text column in which at least 95% of the present cells are numbers, or None.

    A CSV column of amounts with a few ``"unknown"`` cells reads as text; compared as categories it would
    show every amount as a new category. Read as numbers, its text cells count as missing, and the caller
    says which they were."""
    import numpy as np

    from mlmon.data import CategoryColumn

    if not isinstance(column, CategoryColumn):
        array = np.asarray(column)
        if array.dtype.kind != "O" or array.ndim != 1:
            return None
        column = CategoryColumn.from_texts(array)
    per_code = np.bincount(column.codes + 1, minlength=len(column.categories) + 1)
    present = int(per_code.sum() - per_code[0])
    allowed = (1 - MIN_NUMBER_SHARE) * present
    numbers = np.full(len(column.categories) + 1, np.nan)  # the last entry: code -1, a missing cell
    text_cells: dict[str, int] = {}
    text_rows = 0
    for code, text in enumerate(column.categories):
        try:
            numbers[code] = float(text)
        except ValueError:
            rows = int(per_code[code + 1])
            text_cells[text] = rows
            text_rows += rows
            if text_rows > allowed:
                return None
    if text_rows == present:
        return None
    ordered = dict(sorted(text_cells.items(), key=lambda item: (-item[1], item[0])))
    return TextNumbers(numbers[column.codes], ordered)


def _named_like_id(name: str) -> bool:
    stripped = name.strip()
    return stripped.lower() in _ID_NAMES or _ID_NAME_END.search(stripped) is not None


def _present_and_distinct_codes(column: Any) -> tuple[int, int]:
    counts, missing = column.counts()
    return len(column) - missing, len(counts)


def require_columns(names: Iterable[str], available: Sequence[str], flag: str, side: str) -> None:
    """An error naming the ``names`` that are not in ``available`` and listing the columns there are."""
    unknown = [name for name in names if name not in available]
    if unknown:
        shown = ", ".join(repr(name) for name in available[:30])
        more = f" and {len(available) - 30} more" if len(available) > 30 else ""
        raise ColumnChoiceError(
            f"{flag} {_quoted(unknown)}: no such column in {side}",
            f"its columns are {shown}{more}",
        )


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)
