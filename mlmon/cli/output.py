"""All terminal output: the result on stdout, progress, warnings and errors on stderr.

Every string that came from a user or a server goes through :func:`escape` before rich renders it, so a
model called ``[bold]x`` prints as itself. rich turns colour off when stdout is not a terminal and honours
NO_COLOR.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
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


def plain_stdout() -> bool:
    """stdout is not a terminal (a pipe, a file, a script) and nothing asks for colour: plain text needs no
    rich, whose import costs about as much as a scripted `mlmon init` re-run."""
    return not sys.stdout.isatty() and not os.environ.get("FORCE_COLOR")


def escape(text: object) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(str(text))


def print_json(data: Any) -> None:
    """Machine output: plain JSON on stdout, never wrapped, coloured or truncated."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def info(message: str) -> None:
    stderr().print(message)


def warn(message: str) -> None:
    stderr().print(f"[yellow]warning:[/] {message}")


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
