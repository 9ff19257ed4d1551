"""`mlmon profile`: build a model's reference profile from data, write it, optionally log it to MLflow."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from mlmon.cli import output
from mlmon.cli.output import escape, handles_errors
from mlmon.settings import DEFAULT_TRACKING_URI, tracking_uri

if TYPE_CHECKING:
    from mlmon.drift.profile import FeatureProfile, Profile

# Typer checks these bounds itself (a usage error, exit 2); mlmon.drift.build checks them again for callers.
MIN_BINS, MAX_BINS, MAX_TOP_K = 2, 100, 99


@handles_errors
def profile_command(
    data: Annotated[
        Path,
        typer.Argument(
            metavar="DATA", help="Reference data: a .csv, .parquet/.pq or .jsonl/.ndjson/.json file."
        ),
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="The model the profile belongs to.")],
    feature: Annotated[
        list[str] | None,
        typer.Option(
            "--feature",
            "--features",
            "-f",
            help="A feature column (repeatable). Default: every column but target, prediction, confidence, "
            "identifiers and timestamps.",
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Leave this column out of the default features (repeatable)."),
    ] = None,
    categorical: Annotated[
        list[str] | None,
        typer.Option(
            "--categorical", help="Treat this feature as categorical, e.g. integer codes (repeatable)."
        ),
    ] = None,
    target: Annotated[str | None, typer.Option(help="The column with the true label or value.")] = None,
    prediction: Annotated[str | None, typer.Option(help="The column with the model's prediction.")] = None,
    confidence: Annotated[
        str | None, typer.Option(help="The column with the confidence of the predicted class.")
    ] = None,
    task: Annotated[Literal["classification", "regression"], typer.Option(help="The model's task.")] = (
        "classification"
    ),
    bins: Annotated[
        int, typer.Option(min=MIN_BINS, max=MAX_BINS, help="Quantile bins per numerical feature.")
    ] = 10,
    top_k: Annotated[
        int,
        typer.Option("--top-k", min=1, max=MAX_TOP_K, help="Categories kept per categorical feature."),
    ] = 20,
    out: Annotated[Path, typer.Option("--output", "-o", help="The profile file to write.")] = Path(
        "profile.json"
    ),
    log_to_mlflow: Annotated[
        str | None,
        typer.Option(
            "--log-to-mlflow",
            metavar="RUN_ID",
            help="Also store the profile as mlmon/profile.json in this MLflow run.",
        ),
    ] = None,
    mlflow_uri: Annotated[
        str | None,
        typer.Option(
            envvar="MLFLOW_TRACKING_URI",
            help=f"MLflow tracking URI, for --log-to-mlflow. Default: ./mlmon.yaml's mlflow.tracking_uri, else "
            f"{DEFAULT_TRACKING_URI}.",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Build a reference profile (bins and reference shares per feature) from CSV, Parquet or JSON lines.

    Numerical features get quantile bins, categorical ones their top-K categories plus __other__. The same
    data always gives the same file. With --log-to-mlflow, a model service can load the profile of the exact
    model version it serves (models:/NAME@ALIAS).

    Identifier and timestamp columns (a request id, an ISO date-time, epoch seconds named ts) are not
    features unless named with --feature; the summary says which were left out.
    """
    from mlmon.drift.build import profile_data_file

    if log_to_mlflow is not None:
        from mlmon.backends.mlflow.client import require_run

        mlflow_uri = tracking_uri(mlflow_uri)
        require_run(log_to_mlflow, mlflow_uri)  # before anything is written
    from mlmon.render import write_atomic

    profiled = profile_data_file(
        data,
        model,
        features=feature,
        exclude=exclude or (),
        feature_types=dict.fromkeys(categorical or [], "categorical"),
        target=target,
        prediction=prediction,
        confidence=confidence,
        bins=bins,
        top_k=top_k,
        task=task,
    )
    profile, left_out = profiled.profile, profiled.left_out
    for name, cells in profiled.text_cells.items():
        output.warn_text_cells(name, {"reference": cells}, sum(cells.values()), "profiles")
    write_atomic(out, profile.to_json())  # a failed write is an MlmonError with its hint
    if not json_output:
        _print_table(profile, prediction)
        output.info_left_out(left_out, "profile")
        output.info(f"wrote {escape(out)}: {profile.rows} rows, {len(profile.features)} features")
    artifact = None
    if log_to_mlflow is not None:
        from mlmon.drift.mlflow_profile import log_profile_to_mlflow

        artifact = log_profile_to_mlflow(profile, log_to_mlflow, mlflow_uri)
    if json_output:
        output.print_json(
            {
                **_summary(profile, prediction, out, artifact),
                "left_out": [c.to_dict() for c in left_out],
                "text_cells": profiled.text_cells,
            }
        )
    elif artifact:
        output.info(f"logged to MLflow as {escape(artifact)}")


def _summary(profile: Profile, prediction: str | None, out: Path, artifact: str | None) -> dict[str, Any]:
    return {
        "output": str(out),
        "model": profile.model,
        "task": profile.task,
        "rows": profile.rows,
        "features": [_row(f) for f in profile.features],
        "prediction": {**_row(profile.prediction), "name": prediction} if profile.prediction else None,
        "reference_accuracy": profile.reference_accuracy,
        "reference_confidence_mean": profile.reference_confidence_mean,
        "mlflow_artifact": artifact,
    }


def _row(feature: FeatureProfile) -> dict[str, Any]:
    return {
        "name": feature.name,
        "kind": feature.kind,
        "bins": len(feature.bin_labels),
        "missing_ratio": feature.missing_ratio,
    }


def _print_table(profile: Profile, prediction: str | None) -> None:
    from rich.table import Table

    table = Table("feature", "type", "bins", "missing", box=None, pad_edge=False)
    for feature in profile.features:
        table.add_row(*_cells(escape(feature.name), feature))
    if profile.prediction:
        table.add_row(*_cells(f"{escape(prediction)} [dim](prediction)[/]", profile.prediction))
    output.stdout().print(table)
    sys.stdout.flush()  # so the summary lands before the stderr lines in a combined log


def _cells(label: str, feature: FeatureProfile) -> tuple[str, str, str, str]:
    return label, feature.kind, str(len(feature.bin_labels)), f"{feature.missing_ratio:.1%}"
