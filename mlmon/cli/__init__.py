"""The ``mlmon`` command line: a thin layer over the library.

Each command lives in its own module, parses its options, calls one library function and renders the
result through :mod:`mlmon.cli.output`. Heavy libraries (mlflow, numpy, scipy) are imported inside the
commands that need them, so ``mlmon --help`` stays fast.
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlmon import __version__
from mlmon.cli.output import DEBUG

if TYPE_CHECKING:
    app: typer.Typer

# name -> (module, function), in the order `mlmon --help` lists them. A command's module is imported only
# when the command runs (or for --help): each pulls in its own options and libraries.
COMMANDS = {
    "init": ("mlmon.cli.init", "init_command"),
    "render-alerts": ("mlmon.cli.render_alerts", "render_alerts_command"),
    "status": ("mlmon.cli.status", "status_command"),
    "check": ("mlmon.cli.check", "check_command"),
    "profile": ("mlmon.cli.profile", "profile_command"),
    "drift": ("mlmon.cli.drift", "drift_command"),
    "compare-runs": ("mlmon.cli.compare_runs", "compare_runs_command"),
    "demo": ("mlmon.cli.demo", "demo_command"),
}


def _version(value: bool) -> None:
    if value:
        print(f"mlmon {__version__}")
        raise typer.Exit()


def root(
    debug: Annotated[
        bool, typer.Option("--debug", envvar="MLMON_DEBUG", help="Show tracebacks for errors.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Set up and run monitoring for ML models from one declarative file, mlmon.yaml.

    Exit codes: 0 ok, 1 error (bad spec, unreachable server), 2 usage error, 3 a requested check failed.
    """
    DEBUG.set(debug)


def build_app(only: str | None = None) -> typer.Typer:
    """The Typer app with every command, or with just ``only``: Typer turns each registered command into a
    Click command before running any, which for all of them costs more than most commands' own work."""
    app = typer.Typer(
        name="mlmon",
        help="Monitoring for ML models in production on Prometheus, Alertmanager, Grafana and MLflow.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # Plain help: rich's help formatter imports a Markdown parser, which would double start-up time.
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(root)
    for name, (module, function) in COMMANDS.items():
        if only is None or name == only:
            app.command(name)(getattr(importlib.import_module(module), function))
    return app


def __getattr__(name: str) -> Any:
    """``mlmon.cli.app``, the app with every command, built on first use (tests and tools import it)."""
    if name == "app":
        globals()["app"] = built = build_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    # Root options are flags, so the first argument that is not an option names the command.
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    try:
        build_app(command if command in COMMANDS else None)()
    finally:
        # The interpreter's shutdown runs the cycle collector over every object still alive (typer, click,
        # http.client and the rest): about 40 ms, a tenth of a quick command. It skips frozen objects. Nothing
        # is lost: atexit handlers still run, commands close the files they write, and the memory of any
        # cycle left goes back with the process.
        gc.freeze()
