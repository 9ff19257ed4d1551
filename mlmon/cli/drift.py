"""`mlmon drift`: compare reference data (or a profile) with current data (or prediction logs), per feature."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from mlmon.cli import output
from mlmon.cli.output import escape, handles_errors
from mlmon.drift.evidence import DEFAULT_MIN_PSI
from mlmon.errors import CheckFailed
from mlmon.settings import DEFAULT_TRACKING_URI, tracking_uri

if TYPE_CHECKING:
    from mlmon.drift.report import DriftReport, FeatureDrift

BLOCKS = " ▁▂▃▄▅▆▇█"


@handles_errors
def drift_command(
    reference: Annotated[
        str,
        typer.Argument(
            metavar="REFERENCE",
            help="Reference data: a .csv, .parquet or .jsonl file, a folder or a quoted glob of them, a profile "
            "written by `mlmon profile`, or an MLflow artifact (runs:/RUN_ID/PATH, models:/NAME@ALIAS).",
            show_default=False,
        ),
    ],
    current: Annotated[
        str,
        typer.Argument(
            metavar="CURRENT",
            help="Current data: a .csv, .parquet or .jsonl file, a folder or a quoted glob of them, or mlmon "
            "prediction logs (a log file or the folder the service logs into).",
            show_default=False,
        ),
    ],
    method: Annotated[
        Literal["evidence", "ks", "wasserstein", "psi", "chisquare", "jensenshannon"] | None,
        typer.Option(
            help="The statistic behind the verdict, for the features it applies to (default: evidence, as "
            "the live alerts judge drift: the chi-square of the profile's bins, both sample sizes in it, "
            "as a z score, and a PSI above --min-psi)."
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Drift threshold: z above it (evidence), p-value below it (ks, chisquare), else statistic "
            "above (default: the z of a budget of 0.05 false alarms a week for this many features; 0.05 for "
            "p-values; 0.1 for the distances and PSI).",
        ),
    ] = None,
    min_psi: Annotated[
        float,
        typer.Option(
            "--min-psi", min=0.0, help="evidence: the smallest change (as PSI) that counts as drift."
        ),
    ] = DEFAULT_MIN_PSI,
    psi_bins: Annotated[
        Literal["quantile", "sturges"],
        typer.Option(help="quantile: the profile's bins, as the live rules; sturges: Evidently's PSI."),
    ] = "quantile",
    feature: Annotated[
        list[str] | None,
        typer.Option(
            "--feature",
            help="Compare only this column (repeatable). Default: every column but identifiers and timestamps.",
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Leave this column out (repeatable)."),
    ] = None,
    categorical: Annotated[
        list[str] | None,
        typer.Option("--categorical", help="Treat this feature as categorical (repeatable)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", metavar="FILE", help="Also write a self-contained HTML report (a chart per feature)."
        ),
    ] = None,
    log_to_mlflow: Annotated[
        str | None,
        typer.Option(
            "--log-to-mlflow",
            metavar="RUN_ID",
            help="Log the per-feature metrics (drift.<feature>.psi, ...) and the HTML and JSON reports "
            "(artifacts mlmon/drift/) to this MLflow run.",
        ),
    ] = None,
    mlflow_uri: Annotated[
        str | None,
        typer.Option(
            envvar="MLFLOW_TRACKING_URI",
            help="MLflow tracking URI, for --log-to-mlflow and a runs:/ or models:/ reference. Default: "
            f"./mlmon.yaml's mlflow.tracking_uri, else {DEFAULT_TRACKING_URI}.",
        ),
    ] = None,
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help="Exit with code 3 when any feature drifted.")
    ] = False,
) -> None:
    """Report, per feature, whether its distribution moved between REFERENCE and CURRENT.

    Every feature is judged as the live alerts judge it: the evidence (the chi-square of the profile's bins
    against the reference's, both sample sizes in it, as a z score) above the z a budget of false alarms
    allows, and a change (PSI on the same bins) above --min-psi. KS and the Wasserstein distance (numerical),
    chi-square and the Jensen-Shannon distance (categorical) and PSI are reported beside it; --method makes
    one of them the verdict, with its fixed --threshold.

    Identifier and timestamp columns (a request id, an ISO date-time, epoch seconds named ts) are left out
    unless named with --feature; the report says which. A text column that holds numbers but in at most 5%
    of its cells is compared as numbers, and the text cells are named.
    """
    from mlmon.drift.inputs import read_current, read_reference
    from mlmon.drift.mlflow_profile import is_mlflow_uri
    from mlmon.drift.report import drift_report

    if log_to_mlflow is not None or is_mlflow_uri(reference):  # the spec is read only when MLflow is needed
        mlflow_uri = tracking_uri(mlflow_uri)
    if log_to_mlflow is not None:
        from mlmon.backends.mlflow.client import require_run

        require_run(log_to_mlflow, mlflow_uri)  # before the comparison, which may take a while
    reference_side = read_reference(reference, mlflow_uri)
    current_side = read_current(current)
    progress, finish = _progress(json_output)
    try:
        report = drift_report(
            reference_side,
            current_side,
            method=method,
            threshold=threshold,
            min_psi=min_psi,
            psi_bins=psi_bins,
            features=feature,
            exclude=exclude or (),
            feature_types=dict.fromkeys(categorical or [], "categorical"),
            progress=progress,
        )
    finally:
        finish()
    if html is not None or log_to_mlflow is not None:
        from mlmon.drift.html import render_html

        page = render_html(report, reference=reference, current=current)
        if html is not None:
            from mlmon.plan import write_atomic

            write_atomic(html, page)
        if log_to_mlflow is not None:
            from mlmon.drift.mlflow_report import log_report_to_mlflow

            log_report_to_mlflow(report, log_to_mlflow, page, mlflow_uri)
    if json_output:
        output.print_json(report.to_dict())
    else:
        print_report(report)
        if html is not None:
            output.info(f"wrote {escape(html)}")
        if log_to_mlflow is not None:
            output.info(f"logged the metrics and the report to MLflow run {escape(log_to_mlflow)}")
    if fail_on_drift and report.drifted:
        raise CheckFailed(
            f"drift in {len(report.drifted)} of {len(report.features)} features: "
            + ", ".join(f.name for f in report.drifted[:10]),
            "look at the features above; --threshold or --method change the verdict",
        )


def _progress(quiet: bool) -> tuple[Any, Any]:
    if quiet or not sys.stderr.isatty():
        return None, lambda: None
    from rich.progress import Progress

    bar = Progress(console=output.stderr(), transient=True)
    task = bar.add_task("comparing features", total=None)
    bar.start()
    return (lambda name: bar.advance(task)), bar.stop


def histogram(feature: FeatureDrift, width: int = 12) -> str:
    """Reference and current shares per bin as two rows of block characters, scaled to the largest share."""
    shares = [*feature.reference_shares, *feature.current_shares]
    top = max(shares) if shares else 0.0
    labels = list(feature.reference_shares)[:width], list(feature.current_shares)[:width]

    def row(values: list[float]) -> str:
        return "".join(BLOCKS[round(v / top * (len(BLOCKS) - 1))] if top else " " for v in values)

    return f"ref {row(labels[0])}\ncur {row(labels[1])}"


def print_report(report: DriftReport) -> None:
    """The drift table, its warnings and its summary line, on the terminal (`mlmon drift`, `mlmon demo`)."""
    from rich.table import Table

    table = Table(
        "feature", "type", "method", "statistic", "p-value", "PSI", "threshold", "drift", "missing ref/cur",
        "histogram", box=None, pad_edge=False,
    )  # fmt: skip
    for f in report.features:
        table.add_row(
            escape(f.name),
            f.kind,
            f.method,
            f"{f.statistic:.4g}",
            "-" if f.p_value is None else f"{f.p_value:.3g}",
            f"{f.psi:.4f}",
            f"{f.threshold:.3g}",
            "[bold red]DRIFT[/]" if f.drift else "ok",
            f"{f.missing_ratio_reference:.1%} / {f.missing_ratio_current:.1%}",
            histogram(f),
        )
    output.stdout().print(table)
    sys.stdout.flush()
    for f in report.features:
        if f.new_categories:
            shown = ", ".join(escape(c) for c in f.new_categories[:5])
            output.warn(f"{escape(f.name)}: new categories not in the reference: {shown}")
        if f.text_cell_count:
            output.warn_text_cells(f.name, f.text_cells, f.text_cell_count, "compares")
    for s in report.skipped:
        output.warn(f"skipped {escape(s.name)}: {escape(s.reason)}")
    output.info_left_out(report.left_out, "compare")
    output.info(
        f"{len(report.drifted)} of {len(report.features)} features drifted ({report.share_drifted:.0%}); "
        f"{report.rows_reference} reference rows, {report.rows_current} current rows"
    )
