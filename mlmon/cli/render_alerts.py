"""`mlmon render-alerts`: re-render the recording and alert rules (and their promtool tests) from the spec."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from mlmon.cli.init import (
    CheckOption,
    DiffOption,
    DryRunOption,
    ForceOption,
    JsonOption,
    OutOption,
    SpecOption,
    TemplatesOption,
    nothing_changed,
    show_plan,
)
from mlmon.cli.output import handles_errors
from mlmon.errors import CheckFailed, MlmonError


@handles_errors
def render_alerts_command(
    spec_path: SpecOption = Path("mlmon.yaml"),
    out: OutOption = Path("monitoring"),
    output_file: Annotated[
        str | None,
        typer.Option(
            "--output",
            help="Write one rule file here instead of updating the output folder; - for stdout.",
        ),
    ] = None,
    kind: Annotated[
        Literal["alerts", "recording"], typer.Option(help="Which rule file --output writes.")
    ] = "alerts",
    templates_dir: TemplatesOption = None,
    dry_run: DryRunOption = False,
    diff: DiffOption = False,
    force: ForceOption = False,
    check: CheckOption = False,
    json_output: JsonOption = False,
) -> None:
    """Re-render the recording rules, the alert rules and their promtool tests after a threshold changed.

    By default it updates OUT/prometheus/rules/ and OUT/prometheus/tests/ with the same safety as `mlmon init`
    (files you edited are left alone). With --output it writes a single rule file, or prints it with -.
    """
    from mlmon.render import (
        ALERT_RULES,
        RECORDING_RULES,
        RULE_OUTPUTS,
        apply_plan,
        plan_outputs,
        render_outputs,
        write_atomic,
    )
    from mlmon.spec import load_spec

    spec = load_spec(spec_path)
    if output_file is not None:
        if dry_run or check or diff:
            raise MlmonError("--output cannot be combined with --dry-run, --diff or --check")
        name = ALERT_RULES if kind == "alerts" else RECORDING_RULES
        text = render_outputs(spec, templates_dir, only=[name])[name]
        if output_file == "-":
            sys.stdout.write(text)
        elif Path(output_file).exists() and not force:
            raise MlmonError(
                f"{output_file} exists", "pass --force to overwrite it, or choose another --output"
            )
        else:
            write_atomic(Path(output_file), text)
        return
    fingerprint, plan = nothing_changed(spec_path, out, templates_dir, RULE_OUTPUTS)
    if plan is None:
        plan = plan_outputs(spec, out, templates_dir, only=RULE_OUTPUTS)
    show_plan(plan, None, json_output=json_output, diff=diff, dry_run=dry_run or check)
    if check:
        if plan.has_changes:
            raise CheckFailed("the rule files are out of date", "run `mlmon render-alerts` to update them")
        return
    if not dry_run:
        apply_plan(plan, force=force, fingerprint=fingerprint)
