"""The ``mlmon`` command line: a thin layer over the library.

Each command lives in its own module, parses its options, calls one library function and renders the
result through :mod:`mlmon.cli.output`. Heavy libraries (mlflow, numpy, scipy) are imported inside the
commands that need them, so ``mlmon --help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from mlmon import __version__
from mlmon.cli import check, compare_runs, demo, drift, init, profile, render_alerts, status
from mlmon.cli.output import DEBUG

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


def _version(value: bool) -> None:
    if value:
        print(f"mlmon {__version__}")
        raise typer.Exit()


@app.callback()
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


app.command("init")(init.init_command)
app.command("render-alerts")(render_alerts.render_alerts_command)
app.command("status")(status.status_command)
app.command("check")(check.check_command)
app.command("profile")(profile.profile_command)
app.command("drift")(drift.drift_command)
app.command("compare-runs")(compare_runs.compare_runs_command)
app.command("demo")(demo.demo_command)


def main() -> None:
    app()
