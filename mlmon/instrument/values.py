"""What may reach a counter or a histogram: finite Python floats, and categories as text.

A model service hands the monitor whatever its code has: numpy and torch scalars of any width, Decimals, bools,
pandas' NA, arrays where a number was meant, integers of 400 digits. Each is either taken exactly, counted as
missing, or refused with a reason that becomes the ``reason`` label of ``mlmon_invalid_input_total``; none
raises, and none reaches a histogram's sum (one NaN there stays for the life of the process).
"""

from __future__ import annotations

import math
from typing import Any

from mlmon.drift.profile import category_label

# Why a value could not be used, as the `reason` label of mlmon_invalid_input_total.
WRONG_TYPE, NON_FINITE, OVERFLOW, NON_SCALAR, NAN = (
    "wrong_type",
    "non_finite",
    "overflow",
    "non_scalar",
    "nan",
)
_INF, _NINF = math.inf, -math.inf
_MISSING_TYPES = frozenset({"NAType", "NaTType"})  # pandas' missing markers, without importing pandas


def finite_number(value: Any) -> float | str | None:
    """``value`` as a finite Python float; None where it is missing (None, NaN, pandas' NA); otherwise the
    reason it is not a number (WRONG_TYPE, NON_FINITE, OVERFLOW, NON_SCALAR).

    float16/32/64, numpy and Python ints, Decimal, Fraction, bool and numeric text are taken exactly; the
    result is always a Python float, so that a float32 from torch never turns a histogram's sum into a
    float32 for the rest of the process."""
    if type(value) is not float:
        if value is None or _pandas_missing(value):
            return None
        if _not_one_value(value):
            return NON_SCALAR  # an array, a Series, a list: float() would take some, for the wrong reason
        try:
            value = float(value)
        except OverflowError:  # an int or Fraction past the largest float
            return OVERFLOW
        except (TypeError, ValueError):  # text that is not a number, a complex number, an object
            return WRONG_TYPE
    if value != value:
        return None
    if value in (_INF, _NINF):
        return NON_FINITE
    return float(value)


def category_text(value: Any) -> str | None:
    """The category of a non-text value (see ``category_label``); None where it is missing (NaN, pandas' NA);
    NON_SCALAR for an array, a list or anything else that is not one value."""
    if isinstance(value, Unhashable):
        return NON_SCALAR
    if value is None or (type(value) is float and value != value) or _pandas_missing(value):
        return None
    if _not_one_value(value):
        return NON_SCALAR
    try:
        return category_label(value)
    except Exception:  # an object whose str() or item() fails
        return NON_SCALAR


def _pandas_missing(value: Any) -> bool:
    return type(value).__name__ in _MISSING_TYPES


def _not_one_value(value: Any) -> bool:
    """An array, a Series, a list or another container where one value was meant."""
    return bool(getattr(value, "ndim", 0)) or isinstance(value, list | tuple | dict | set | frozenset)


class Unhashable(str):
    """The text of a value that cannot be a dictionary key (a list, an array): counted, never binned."""


def hashable(value: Any) -> Any:
    return value if getattr(value, "__hash__", None) is not None else Unhashable(repr(value))
