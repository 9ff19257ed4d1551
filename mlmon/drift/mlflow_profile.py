"""Reference profiles as MLflow artifacts.

``mlmon profile --log-to-mlflow RUN_ID`` stores the profile as ``mlmon/profile.json`` in the run a model
version was trained in. A model service then loads the profile of the exact version it serves at start-up::

    from mlmon.drift.mlflow_profile import load_profile_from_mlflow

    profile = load_profile_from_mlflow("models:/credit-risk@champion", "http://mlflow:5000")

mlflow is imported inside the functions, after short HTTP defaults are set, so importing this module is
cheap and a dead tracking server fails in seconds instead of retrying for minutes.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from mlmon.backends.mlflow.client import call_mlflow, mlflow_client, not_an_answer, require_run, rest_client
from mlmon.drift.profile import Profile, ProfileError
from mlmon.errors import BackendError

if TYPE_CHECKING:
    from mlflow import MlflowClient


PROFILE_ARTIFACT_DIR = "mlmon"
PROFILE_FILE_NAME = "profile.json"
PROFILE_ARTIFACT_PATH = f"{PROFILE_ARTIFACT_DIR}/{PROFILE_FILE_NAME}"
URI_FORMS = (
    f"runs:/RUN_ID[/PATH], models:/NAME@ALIAS or models:/NAME/VERSION (default PATH: {PROFILE_ARTIFACT_PATH})"
)


_RUNS_URI = re.compile(r"^runs:/(?P<run_id>[^/]+)(?:/(?P<path>.+))?$")
_MODEL_ALIAS_URI = re.compile(r"^models:/(?P<name>.+)@(?P<alias>[^@/]+)$")
_MODEL_VERSION_URI = re.compile(r"^models:/(?P<name>.+)/(?P<version>\d+)$")


def log_profile_to_mlflow(profile: Profile, run_id: str, tracking_uri: str | None = None) -> str:
    """Store ``profile`` as ``mlmon/profile.json`` in an MLflow run; return its ``runs:/`` URI.

    The artifact always has that name, whatever the local file was called, so
    :func:`load_profile_from_mlflow` finds it from a model version alone.
    """
    client = mlflow_client(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="mlmon-profile-") as folder:
        path = Path(folder) / PROFILE_FILE_NAME
        path.write_text(profile.to_json(), encoding="utf-8")
        call_mlflow(
            f"MLflow run {run_id!r}",
            client.tracking_uri,
            lambda: client.log_artifact(run_id, str(path), artifact_path=PROFILE_ARTIFACT_DIR),
            transfer=True,
        )
    return f"runs:/{run_id}/{PROFILE_ARTIFACT_PATH}"


def load_profile_from_mlflow(uri: str, tracking_uri: str | None = None) -> Profile:
    """Load the reference profile a run or a registered model version carries.

    ``uri`` is ``runs:/RUN_ID/mlmon/profile.json`` (or just ``runs:/RUN_ID``), ``models:/NAME@ALIAS`` or
    ``models:/NAME/VERSION``; for a model version the profile comes from the run the version was made
    from. ``tracking_uri`` defaults to MLflow's own (MLFLOW_TRACKING_URI).

    Raises :class:`BackendError` when the server fails or the run, model, alias or artifact does not exist,
    and :class:`ProfileError` when the artifact is not a profile.
    """
    with tempfile.TemporaryDirectory(prefix="mlmon-profile-") as folder:
        local = download_mlflow_artifact(uri, folder, tracking_uri, profile=True)
        try:
            text = local.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(f"cannot read the profile at {uri}: {exc}") from None
    return Profile.from_json(text, uri)


def is_mlflow_uri(text: str) -> bool:
    """Whether ``text`` is a ``runs:/`` or ``models:/`` URI rather than a local path."""
    return text.startswith(("runs:/", "models:/"))


def download_mlflow_artifact(
    uri: str, folder: str | Path, tracking_uri: str | None = None, *, profile: bool = False
) -> Path:
    """Download the artifact (a file or a folder) a ``runs:/`` or ``models:/`` URI points at into ``folder``.

    ``runs:/RUN_ID/PATH`` is that artifact of the run; ``runs:/RUN_ID``, ``models:/NAME@ALIAS`` and
    ``models:/NAME/VERSION`` are the run's mlmon profile. Raises :class:`BackendError` naming what is
    missing, or where MLflow failed; a missing profile (``profile``, or the default path) gets the command that
    logs one as its hint."""
    client = mlflow_client(tracking_uri)
    run_id, artifact_path = _resolve(client, uri)
    require_run(run_id, client.tracking_uri)  # so that a missing run is not reported as a missing artifact
    missing = None
    if profile or artifact_path == PROFILE_ARTIFACT_PATH:
        missing = f"log a profile to the run with `mlmon profile DATA --model NAME --log-to-mlflow {run_id}`"
    local = call_mlflow(
        f"artifact {artifact_path!r} of MLflow run {run_id!r}",
        client.tracking_uri,
        lambda: client.download_artifacts(run_id, artifact_path, dst_path=str(folder)),
        missing_hint=missing,
        transfer=True,
    )
    return Path(local)


def _resolve(client: MlflowClient, uri: str) -> tuple[str, str]:
    """The run and artifact path a profile URI points at."""
    if match := _RUNS_URI.match(uri):
        return match["run_id"], match["path"] or PROFILE_ARTIFACT_PATH
    rest = rest_client(client.tracking_uri)
    if match := _MODEL_ALIAS_URI.match(uri):
        name, alias = match["name"], match["alias"]
        what = f"alias {alias!r} of registered model {name!r}"
        if rest is not None:
            answer = rest.get("registered-models/alias", {"name": name, "alias": alias}, what=what)
            version = _version_of(answer, f"{name}@{alias}", rest.tracking_uri)
        else:
            version = call_mlflow(
                what, client.tracking_uri, lambda: client.get_model_version_by_alias(name, alias)
            )
        return _source_run(version, f"{name}@{alias}", client.tracking_uri), PROFILE_ARTIFACT_PATH
    if match := _MODEL_VERSION_URI.match(uri):
        name, number = match["name"], match["version"]
        what = f"version {number} of registered model {name!r}"
        if rest is not None:
            answer = rest.get("model-versions/get", {"name": name, "version": number}, what=what)
            version = _version_of(answer, f"{name}/{number}", rest.tracking_uri)
        else:
            version = call_mlflow(what, client.tracking_uri, lambda: client.get_model_version(name, number))
        return _source_run(version, f"{name}/{number}", client.tracking_uri), PROFILE_ARTIFACT_PATH
    raise ProfileError(f"cannot load a profile from {uri!r}", f"use {URI_FORMS}")


def _version_of(answer: dict[str, Any], name: str, tracking_uri: str) -> Any:
    """The model version in a REST answer, with the attributes MLflow's client gives it."""
    version = answer.get("model_version")
    if not isinstance(version, dict):
        raise not_an_answer(tracking_uri, f"model version {name}")
    return SimpleNamespace(version=version.get("version"), run_id=version.get("run_id") or None)


def _source_run(version: Any, name: str, tracking_uri: str | None) -> str:
    if not getattr(version, "version", None):
        # MLflow's client reads an answer without a model version (an empty or blank body) as an empty one.
        raise not_an_answer(tracking_uri, f"model version {name}")
    run_id: str | None = version.run_id
    if not run_id:
        raise BackendError(
            f"model version {name} has no source run, so it has no mlmon profile",
            "register versions from a run, and log the profile to that run with `mlmon profile --log-to-mlflow`",
        )
    return run_id
