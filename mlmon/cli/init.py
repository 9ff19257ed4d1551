"""`mlmon init`: write mlmon.yaml (from flags or prompts) and render the monitoring files from it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from mlmon.cli import output
from mlmon.cli.output import handles_errors
from mlmon.errors import CheckFailed, MlmonError
from mlmon.settings import DEFAULT_ALERTMANAGER_URL, DEFAULT_PROMETHEUS_URL, DEFAULT_TRACKING_URI

NEW_SPEC_OPTIONS = (
    "project",
    "model",
    "target",
    "feature",
    "task",
    "prometheus_url",
    "alertmanager_url",
    "mlflow_uri",
)

ACTION_STYLE = {"create": "green", "update": "cyan", "identical": "dim", "conflict": "bold red"}

SpecOption = Annotated[
    Path, typer.Option("--spec", "-s", envvar="MLMON_SPEC", help="The spec file.", show_default=True)
]
OutOption = Annotated[
    Path, typer.Option("--out", "-o", envvar="MLMON_OUT", help="Folder the generated files go into.")
]
TemplatesOption = Annotated[
    Path | None,
    typer.Option(
        "--templates-dir",
        envvar="MLMON_TEMPLATES_DIR",
        help="Folder with templates that override mlmon's own.",
    ),
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print the plan; write nothing.")]
DiffOption = Annotated[
    bool, typer.Option("--diff", help="With the plan, print a unified diff of each change.")
]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite files edited since mlmon wrote them.")]
CheckOption = Annotated[
    bool, typer.Option("--check", help="Write nothing; exit 3 if any file would change (for CI).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the plan as JSON on stdout.")]


@handles_errors
def init_command(
    ctx: typer.Context,
    spec_path: SpecOption = Path("mlmon.yaml"),
    out: OutOption = Path("monitoring"),
    project: Annotated[str | None, typer.Option(help="Project name, for a new spec.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name, for a new spec.")] = None,
    target: Annotated[
        list[str] | None, typer.Option(help="host:port of the model service's /metrics (repeatable).")
    ] = None,
    feature: Annotated[
        list[str] | None, typer.Option(help="A feature as NAME or NAME:categorical (repeatable).")
    ] = None,
    task: Annotated[
        Literal["classification", "regression"], typer.Option(help="The model's task, for a new spec.")
    ] = "classification",
    prometheus_url: Annotated[
        str, typer.Option(envvar="MLMON_PROMETHEUS_URL", help="Prometheus' URL, for a new spec.")
    ] = DEFAULT_PROMETHEUS_URL,
    alertmanager_url: Annotated[
        str, typer.Option(envvar="MLMON_ALERTMANAGER_URL", help="Alertmanager's URL, for a new spec.")
    ] = DEFAULT_ALERTMANAGER_URL,
    mlflow_uri: Annotated[
        str, typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI, for a new spec.")
    ] = DEFAULT_TRACKING_URI,
    no_input: Annotated[
        bool, typer.Option("--no-input", help="Never prompt; use flags and defaults.")
    ] = False,
    templates_dir: TemplatesOption = None,
    dry_run: DryRunOption = False,
    diff: DiffOption = False,
    force: ForceOption = False,
    check: CheckOption = False,
    json_output: JsonOption = False,
) -> None:
    """Write mlmon.yaml if it is missing, then render Prometheus, Alertmanager and Grafana files from it.

    Safe to re-run: files you have not touched are updated, files you edited are left alone (the new version
    goes beside them as FILE.mlmon-new and the command exits 1), unless --force.
    """
    from mlmon.layout import ALL_OUTPUTS
    from mlmon.plan import FileChange

    spec_change: FileChange | None = None
    if spec_path.exists():
        # Options that only shape a new spec would be ignored: say so rather than drop them silently. (Their
        # environment variables are fine: they serve other commands too.)
        given = [
            "--" + name.replace("_", "-")
            for name in NEW_SPEC_OPTIONS
            if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"
        ]
        if given:
            raise MlmonError(
                f"{spec_path} exists, so {', '.join(given)} would be ignored",
                f"edit {spec_path} instead, or pass --spec NEW.yaml to start a new spec",
            )
        fingerprint, unchanged = nothing_changed(spec_path, out, templates_dir, ALL_OUTPUTS)
        if unchanged is not None:
            show_plan(unchanged, None, json_output=json_output, diff=diff, dry_run=dry_run or check)
            return
        from mlmon.render import apply_plan, plan_outputs
        from mlmon.spec import load_spec

        spec = load_spec(spec_path)
    else:
        from mlmon.plan import inputs_fingerprint
        from mlmon.render import NewModel, apply_plan, plan_outputs, render_spec_file

        interactive = not no_input and sys.stdin.isatty()
        answers = _ask(project, model, target, feature) if interactive else {}
        prometheus_url, alertmanager_url, mlflow_uri = _without_secrets(
            prometheus_url=prometheus_url, alertmanager_url=alertmanager_url, mlflow_uri=mlflow_uri
        )
        text, spec = render_spec_file(
            project=answers.get("project") or project or "my-project",
            models=[
                NewModel(
                    name=answers.get("model") or model or "my-model",
                    targets=tuple(answers.get("targets") or target or ["127.0.0.1:8000"]),
                    task=task,
                    features=tuple(_parse_feature(f) for f in (answers.get("features") or feature or [])),
                )
            ],
            prometheus_url=prometheus_url,
            alertmanager_url=alertmanager_url,
            mlflow_uri=mlflow_uri,
            templates_dir=templates_dir,
            source=str(spec_path),
        )
        spec_change = FileChange(str(spec_path), "create", text)
        fingerprint = inputs_fingerprint(text.encode("utf-8"), templates_dir)

    plan = plan_outputs(spec, out, templates_dir)
    show_plan(plan, spec_change, json_output=json_output, diff=diff, dry_run=dry_run or check)
    if check:
        if plan.has_changes or spec_change:
            raise CheckFailed("the generated files are out of date", "run `mlmon init` to update them")
        return
    if dry_run:
        return
    if spec_change:
        from mlmon.plan import write_atomic

        write_atomic(spec_path, spec_change.content)
    apply_plan(plan, force=force, fingerprint=fingerprint)


def nothing_changed(
    spec_path: Path, out: Path, templates_dir: Path | None, outputs: tuple[str, ...]
) -> tuple[str | None, Any]:
    """(inputs fingerprint, a plan of identical files if nothing changed since the last run, else None).

    The quick answer needs neither Jinja2 nor the spec parsed: a re-run with nothing to do stays fast."""
    from mlmon.plan import inputs_fingerprint, unchanged_plan

    if templates_dir is not None and not templates_dir.is_dir():
        return None, None  # let the full run report the missing folder
    try:
        spec_text = spec_path.read_bytes()
    except OSError:
        return None, None  # the full run reports it with a proper message
    fingerprint = inputs_fingerprint(spec_text, templates_dir)
    return fingerprint, unchanged_plan(out, fingerprint, outputs)


def _without_secrets(**uris: str) -> tuple[str, ...]:
    """The URIs for a new mlmon.yaml, with any password left out (MLFLOW_TRACKING_URI often holds one):
    the spec is a file people commit. MLflow still reads the full URI from the environment at run time."""
    from mlmon.spec import without_credentials

    cleaned = []
    for option, uri in uris.items():
        clean, removed = without_credentials(uri)
        if removed:
            output.warn(f"left the credentials in --{option.replace('_', '-')} out of the new spec")
        cleaned.append(clean)
    return tuple(cleaned)


def _parse_feature(text: str) -> tuple[str, str]:
    name, _, kind = text.rpartition(":") if text.endswith((":numerical", ":categorical")) else (text, "", "")
    return name, kind or "numerical"


def _ask(
    project: str | None, model: str | None, target: list[str] | None, feature: list[str] | None
) -> dict[str, Any]:
    """Prompt on stderr for what the flags did not say."""
    from rich.prompt import Prompt

    console = output.stderr()
    console.print("No mlmon.yaml here yet; a few questions to write one ([dim]--no-input to skip[/]).")
    answers: dict[str, Any] = {}
    answers["project"] = project or Prompt.ask("Project name", default="my-project", console=console)
    answers["model"] = model or Prompt.ask("Model name", default="my-model", console=console)
    answers["targets"] = target or Prompt.ask(
        "Model service host:port (comma-separated)", default="127.0.0.1:8000", console=console
    ).replace(" ", "").split(",")
    if feature is None:
        listed = Prompt.ask(
            "Features, comma-separated, NAME or NAME:categorical (empty for none)",
            default="",
            console=console,
        )
        answers["features"] = [f.strip() for f in listed.split(",") if f.strip()]
    return answers


def show_plan(plan: Any, spec_change: Any, *, json_output: bool, diff: bool, dry_run: bool) -> None:
    """The plan on stdout: one line per file with its action, and diffs with --diff."""
    from mlmon.plan import CONFLICT_SUFFIX

    changes = ([spec_change] if spec_change else []) + list(plan.changes)
    if json_output:
        output.print_json(
            {
                "out": str(plan.root),
                "dry_run": dry_run,
                "changes": [
                    {
                        "path": c.path if c is spec_change else str(plan.root / c.path),
                        "action": c.action,
                        **({"diff": c.diff()} if diff else {}),
                    }
                    for c in changes
                ],
            }
        )
        return
    # Styled lines without rich: a scripted re-run prints its plan in less time than importing rich takes.
    colour = output.stdout_colour()
    lines: list[str] = []
    for change in changes:
        path = change.path if change is spec_change else str(plan.root / change.path)
        spans: list[output.Span] = [(f"{change.action:>9}", ACTION_STYLE[change.action]), (f"  {path}", "")]
        if change.action == "conflict":
            verb = "would write" if dry_run else "new version in"
            spans.append((f"  (edited since mlmon wrote it; {verb} {path + CONFLICT_SUFFIX})", "dim"))
        lines.append(output.styled_text([spans], colour=colour, width=None))
        if diff and change.action != "identical":
            lines.append(change.diff())
    sys.stdout.write("".join(lines))
    sys.stdout.flush()
    if dry_run:
        output.note([("dry run: nothing written", "dim")])
