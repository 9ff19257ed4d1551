"""`mlmon check`: validate a generated folder with the real tools (promtool, amtool) and a PromQL parser."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlmon.cli import output
from mlmon.cli.output import escape, handles_errors
from mlmon.errors import CheckFailed

STATUS_STYLE = {"passed": "green", "failed": "bold red", "skipped": "yellow"}


@handles_errors
def check_command(
    directory: Annotated[Path, typer.Argument(help="The folder `mlmon init` wrote.")] = Path("monitoring"),
    require_tools: Annotated[
        bool,
        typer.Option(
            "--require-tools",
            envvar="MLMON_REQUIRE_TOOLS",
            help="Fail, rather than skip, when a tool is missing.",
        ),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")] = False,
) -> None:
    """Validate generated files with promtool, amtool, and a PromQL parser.

    Runs promtool check config, check rules --lint-fatal and test rules, amtool check-config; checks each
    Grafana dashboard's structure; parses every PromQL query and checks it against the metric contract.

    Exits 3 when any check fails. Checks whose tool is missing are skipped and listed.
    """
    from mlmon.check import check_output

    report = check_output(directory, require_tools=require_tools)
    if json_output:
        output.print_json(
            {
                "directory": report.directory,
                "ok": not report.failed,
                "results": [
                    {"name": r.name, "target": r.target, "status": r.status, "detail": r.detail}
                    for r in report.results
                ],
            }
        )
    else:
        console = output.stdout()
        for r in report.results:
            console.print(f"[{STATUS_STYLE[r.status]}]{r.status:>7}[/]  {escape(r.name)}  {escape(r.target)}")
            if r.detail and r.status != "passed":
                for line in r.detail.splitlines():
                    console.print(f"           [dim]{escape(line)}[/]")
        passed = sum(r.status == "passed" for r in report.results)
        output.info(
            f"{passed} passed, {sum(r.status == 'failed' for r in report.results)} failed, "
            f"{len(report.skipped)} skipped"
        )
    if report.failed:
        raise CheckFailed(f"{report.directory} has problems", "see the failed checks above")
