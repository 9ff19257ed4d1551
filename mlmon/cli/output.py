"""All terminal output: the result on stdout, progress, warnings and errors on stderr.

Every string that came from a user or a server goes through :func:`escape` before rich renders it, so a
model called ``[bold]x`` prints as itself. rich turns colour off when stdout is not a terminal and honours
NO_COLOR.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer

from mlmon.errors import MlmonError

if TYPE_CHECKING:
    from rich.console import Console

# Set by `mlmon --debug`: errors then show their traceback.
DEBUG: ContextVar[bool] = ContextVar("mlmon_debug", default=False)

P = ParamSpec("P")
R = TypeVar("R")


# rich is imported on first use, not at start-up: `mlmon --help` must stay fast.


def stdout() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


# Styled lines without rich, for views that must be quick to lay out (`mlmon status` over many models): a
# line is a list of (text, style) spans.
Span = tuple[str, str]
_ANSI = {
    "bold": "1",
    "dim": "2",
    "green": "32",
    "yellow": "33",
    "red": "31",
    "bold red": "1;31",
    "bold green": "1;32",
    "cyan": "36",
}
_CONTROL = str.maketrans({c: " " for c in [*map(chr, range(32)), *map(chr, range(127, 160))]})


def stdout_colour() -> bool:
    """Colour only on a terminal that can show it; NO_COLOR wins, FORCE_COLOR forces it."""
    return _colour(sys.stdout)


def _colour(stream: Any) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return bool(stream.isatty()) and os.environ.get("TERM") != "dumb"


def note(spans: list[Span]) -> None:
    """One styled line on stderr, written without rich (importing it costs about a tenth of a second, more
    than some commands' own work)."""
    sys.stderr.write(styled_text([spans], colour=_colour(sys.stderr), width=None))
    sys.stderr.flush()


def ansi_codes() -> dict[str, str]:
    """The ANSI code of each style name that :func:`styled_text` knows."""
    return dict(_ANSI)


def printable(text: str) -> str:
    """``text`` with control characters (terminal escapes among them) turned into spaces."""
    return text if text.isprintable() else text.translate(_CONTROL)


def styled_text(lines: list[list[Span]], *, colour: bool, width: int | None) -> str:
    """The lines as text: control characters from servers or users become spaces (no terminal escapes get
    through), each line is cut to ``width`` with an ellipsis, and styles become ANSI codes if ``colour``."""
    out = []
    for spans in lines:
        room = width if width is not None else -1
        parts = []
        for text, style in spans:
            text = printable(text)
            if room >= 0:
                if len(text) > room:
                    text = text[: max(0, room - 1)] + "…"
                room -= len(text)
            code = _ANSI.get(style, "") if colour else ""
            parts.append(f"\x1b[{code}m{text}\x1b[0m" if code and text else text)
            if room == 0:
                break
        out.append("".join(parts).rstrip() + "\n")
    return "".join(out)


def escape(text: object) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(str(text))


def print_json(data: Any) -> None:
    """Machine output: plain JSON on stdout, never wrapped, coloured or truncated."""
    sys.stdout.write(json_text(data) + "\n")
    sys.stdout.flush()


# One line, by the C encoder: ``json.dumps(indent=...)`` falls back to the pure-Python encoder, which took a
# tenth of a second for `mlmon status --json` on 50 models. The encoder is made once (``JSONEncoder.encode``
# would make one per call); without the C accelerator, the standard encoder does the same work.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_one_line_chunks = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(None, str, json.encoder.encode_basestring, None, ": ", ", ", False, False, False)
)
_fallback_encoder = json.JSONEncoder(ensure_ascii=False, default=str, allow_nan=False)
_quoted = json.encoder.encode_basestring  # a string as JSON, the same as the encoder above writes it


def _one_line(value: Any) -> str:
    """Strict JSON: NaN and infinities, which JSON has no word for (``JSON.parse`` rejects Python's
    ``NaN``), are written as null. The encoders refuse them, so the common case costs no extra pass."""
    try:
        return _encode(value)
    except ValueError:
        return _encode(_finite(value))


def _encode(value: Any) -> str:
    if _one_line_chunks is None:  # pragma: no cover - CPython always has the accelerator
        return _fallback_encoder.encode(value)
    return "".join(_one_line_chunks(value, 0))


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


_CONTAINERS = frozenset({dict, list, tuple})


def json_text(data: Any, indent: str = "  ") -> str:
    """``data`` as indented JSON in which every object or array holding no other (non-empty) object or array
    is written on one line: a check, a run's params, a histogram each read as one line."""
    parts: list[str] = []
    _write_json(data, "\n", indent, parts)
    return "".join(parts)


def _write_json(value: Any, newline: str, indent: str, out: list[str]) -> None:
    kind = type(value)
    if kind is dict:
        items: Any = value.items()
        members = value.values()
        opening, closing = "{", "}"
    elif kind is list or kind is tuple:
        items = members = value
        opening, closing = "[", "]"
    else:
        out.append(_one_line(value))  # scalars, and subclasses of dict and list, on one line
        return
    if _CONTAINERS.isdisjoint(map(type, members)) or not any(m for m in members if type(m) in _CONTAINERS):
        out.append(_one_line(value))  # nothing inside but scalars and empty containers
        return
    inner = newline + indent
    out.append(opening)
    for position, item in enumerate(items):
        out.append(("," if position else "") + inner)
        if opening == "{":
            key, item = item
            out.append(_json_key(key) + ": ")
        _write_json(item, inner, indent, out)
    out.append(newline + closing)


def _json_key(key: Any) -> str:
    """A key as ``json.dumps`` writes it: a string quoted, a number or constant as its JSON text, quoted."""
    if isinstance(key, str):
        return _quoted(key)
    if key is None or isinstance(key, (bool, int, float)):
        return _quoted(json.dumps(key))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def info(message: str) -> None:
    stderr().print(message)


def warn(message: str) -> None:
    stderr().print(f"[yellow]warning:[/] {message}")


def warn_text_cells(name: str, by_side: Mapping[str, Mapping[str, int]], count: int, verb: str) -> None:
    """A column read as numbers although some cells were text: which cells, per side, and how to keep it text
    (``verb``: what --categorical then does with it, "compares" or "profiles")."""
    per_side = "; ".join(
        (f"{side}: " if len(by_side) > 1 or side != "reference" else "")
        + ", ".join(f"{escape(repr(text))} x{n}" for text, n in list(cells.items())[:5])
        for side, cells in by_side.items()
    )
    cells = "cell is" if count == 1 else "cells are"
    warn(
        f"{escape(name)}: {count} {cells} not a number and counted as missing ({per_side}); "
        f"--categorical {escape(name)} {verb} the column as text"
    )


def info_left_out(left_out: Sequence[Any], verb: str) -> None:
    """The columns left out of the features (identifiers, timestamps, --exclude), with why."""
    if left_out:
        shown = "; ".join(f"{escape(c.name)} ({escape(c.reason)})" for c in left_out)
        info(f"left out: {shown}; name a column with --feature to {verb} it")


def print_error(exc: MlmonError) -> None:
    console = stderr()
    console.print(f"[bold red]error:[/] {escape(exc.message)}")
    if exc.hint:
        console.print(f"[dim]hint:[/] {escape(exc.hint)}")


def handles_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn an MlmonError into one plain message and its exit code; a traceback only with --debug."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except MlmonError as exc:
            if DEBUG.get():
                raise
            print_error(exc)
            raise typer.Exit(exc.exit_code) from None

    return wrapper
