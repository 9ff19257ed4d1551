"""Reference profiles as MLflow artifacts.

``mlmon profile --log-to-mlflow RUN_ID`` stores the profile as ``mlmon/profile.json`` in the run a model
version was trained in. A model service then loads the profile of the exact version it serves at start-up::

    from mlmon.drift.mlflow_profile import load_profile_from_mlflow

    profile = load_profile_from_mlflow("models:/credit-risk@champion", "http://mlflow:5000")

mlflow is imported inside the functions, after short HTTP defaults are set, so importing this module is
cheap and a dead tracking server fails in seconds instead of retrying for minutes.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from mlmon.drift.profile import Profile, ProfileError
from mlmon.errors import BackendError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlmon.mlflow_rest import MlflowRestClient

PROFILE_ARTIFACT_DIR = "mlmon"
PROFILE_FILE_NAME = "profile.json"
PROFILE_ARTIFACT_PATH = f"{PROFILE_ARTIFACT_DIR}/{PROFILE_FILE_NAME}"
# MLflow's own defaults retry a dead server for minutes; a command line or a starting service must not hang.
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
URI_FORMS = (
    f"runs:/RUN_ID[/PATH], models:/NAME@ALIAS or models:/NAME/VERSION (default PATH: {PROFILE_ARTIFACT_PATH})"
)

# MLflow's client bounds each read of a socket, not an exchange: a server that answers a byte at a time holds
# it for minutes. So each call is bounded as a whole: a lookup by MLMON_TIMEOUT (default 5 s), a call that
# moves an artifact or a batch of metrics by TRANSFER_FACTOR times that.
DEFAULT_TIMEOUT_SECONDS = 5.0
TRANSFER_FACTOR = 12
T = TypeVar("T")

_RUNS_URI = re.compile(r"^runs:/(?P<run_id>[^/]+)(?:/(?P<path>.+))?$")
_MODEL_ALIAS_URI = re.compile(r"^models:/(?P<name>.+)@(?P<alias>[^@/]+)$")
_MODEL_VERSION_URI = re.compile(r"^models:/(?P<name>.+)/(?P<version>\d+)$")
_MISSING_ALIAS = re.compile(r"alias .* not found", re.IGNORECASE)
_CONNECT_FAILURES = frozenset(
    {
        "Connection refused",
        "No route to host",
        "Network is unreachable",
        "Name or service not known",
        "Temporary failure in name resolution",
    }
)
_OS_ERROR = re.compile(r"\[Errno -?\d+\] ([^\"')\]]+)")


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


def mlflow_client(
    tracking_uri: str | None = None, registry_uri: str | None = None, *, create: bool = False
) -> MlflowClient:
    """An MlflowClient with short HTTP timeouts and no retries (unless the environment sets its own).

    MLflow's client creates a local store that does not exist (an empty sqlite database, a folder); a
    mistyped path would then read as an empty store, or receive the profile meant for the real one. Unless
    ``create``, a local store that is not there is a :class:`BackendError` naming it."""
    if not create:
        registry = registry_uri or os.environ.get("MLFLOW_REGISTRY_URI")
        for uri in (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"), registry):
            if uri:
                _require_local_store(uri)
    for name, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:  # the light install of a model service leaves it out
        raise BackendError(
            "talking to MLflow needs MLflow's client, which is not installed",
            "pip install 'mlmon[mlflow]' (or 'mlmon[cli]' for the command line)",
        )
    from mlflow import MlflowClient

    with mlflow_errors("MLflow", tracking_uri):
        return MlflowClient(tracking_uri, registry_uri)


def _require_local_store(uri: str) -> None:
    from mlmon.registry import sqlite_path

    database = sqlite_path(uri)
    if database is not None and not database.is_file():
        raise BackendError(
            f"no MLflow store at {database} ({redact(uri)})",
            "check the path in --mlflow-uri or MLFLOW_TRACKING_URI (sqlite:///relative.db, "
            "sqlite:////absolute.db); mlmon reads a store and never creates one",
        )


def require_run(run_id: str, tracking_uri: str | None = None) -> None:
    """Raise :class:`BackendError` unless MLflow run ``run_id`` exists (checked before long work, or before
    writing anything, rather than after)."""
    what = f"MLflow run {run_id!r}"
    rest = rest_client(tracking_uri)
    if rest is None:
        client = mlflow_client(tracking_uri)
        call_mlflow(what, client.tracking_uri, lambda: client.get_run(run_id))
        return
    answer = rest.get("runs/get", {"run_id": run_id}, what=what)
    run = answer.get("run")
    if not isinstance(run, dict) or not isinstance(run.get("info"), dict):
        raise _not_an_answer(rest.tracking_uri, f"run {run_id}")


def rest_client(tracking_uri: str | None) -> MlflowRestClient | None:
    """mlmon's own client for an http(s) tracking server: each exchange bounded as a whole and capped in
    size, and an answer that is not MLflow's JSON an error. (MLflow's client takes a 200 with a blank or
    truncated body for an empty success, so a run would be reported as logged when nothing was.)"""
    from mlmon.mlflow_rest import MlflowRestClient, rest_supported

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri or not rest_supported(uri):
        return None
    return MlflowRestClient(uri, read_timeout=timeout_seconds())


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
        raise _not_an_answer(tracking_uri, f"model version {name}")
    return SimpleNamespace(version=version.get("version"), run_id=version.get("run_id") or None)


def _not_an_answer(tracking_uri: str | None, what: str) -> BackendError:
    return BackendError(
        f"MLflow at {redact(tracking_uri or 'the default tracking URI')} answered without {what}; "
        "is this an MLflow tracking server?",
        "check --mlflow-uri / MLFLOW_TRACKING_URI",
    )


def _source_run(version: Any, name: str, tracking_uri: str | None) -> str:
    if not getattr(version, "version", None):
        # MLflow's client reads an answer without a model version (an empty or blank body) as an empty one.
        raise _not_an_answer(tracking_uri, f"model version {name}")
    run_id: str | None = version.run_id
    if not run_id:
        raise BackendError(
            f"model version {name} has no source run, so it has no mlmon profile",
            "register versions from a run, and log the profile to that run with `mlmon profile --log-to-mlflow`",
        )
    return run_id


def call_mlflow(
    what: str,
    tracking_uri: str | None,
    call: Callable[[], T],
    *,
    missing_hint: str | None = None,
    transfer: bool = False,
) -> T:
    """``call()`` (one use of MLflow's client), with its errors made plain as :func:`mlflow_errors` does, and
    bounded as a whole: past the deadline (MLMON_TIMEOUT, times TRANSFER_FACTOR for a ``transfer``) it is a
    :class:`BackendError`, and the call is left to finish or fail on a daemon thread, which never holds up
    the process's exit."""
    seconds = timeout_seconds() * (TRANSFER_FACTOR if transfer else 1)
    outcome: dict[str, object] = {}
    done = threading.Event()

    def run() -> None:
        try:
            with mlflow_errors(what, tracking_uri, missing_hint):
                outcome["value"] = call()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="mlmon-mlflow-call", daemon=True).start()
    if not done.wait(seconds):
        where = redact(tracking_uri) if tracking_uri else "the default tracking URI"
        raise BackendError(
            f"MLflow at {where} gave no whole answer on {what} within {seconds:g} s",
            "check that the server is up and answers; MLMON_TIMEOUT sets the seconds a lookup may take",
        )
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def timeout_seconds() -> float:
    """MLMON_TIMEOUT, or the default, when it is not a positive number."""
    try:
        value = float(os.environ.get("MLMON_TIMEOUT", DEFAULT_TIMEOUT_SECONDS))
    except ValueError:
        return DEFAULT_TIMEOUT_SECONDS
    return value if value > 0 else DEFAULT_TIMEOUT_SECONDS


@contextmanager
def mlflow_errors(what: str, tracking_uri: str | None, missing_hint: str | None = None) -> Iterator[None]:
    """Turn MLflow's exceptions into one-line BackendErrors that name ``what`` was asked for, and where."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        raise backend_error(what, tracking_uri, exc.error_code, exc.message, missing_hint) from None
    except (OSError, ImportError) as exc:
        raise backend_error(what, tracking_uri, type(exc).__name__, str(exc), missing_hint) from None


def backend_error(
    what: str, tracking_uri: str | None, code: str, message: str, missing_hint: str | None
) -> BackendError:
    where = redact(tracking_uri) if tracking_uri else "the default tracking URI"
    reason = _scrub(_reason(message, tracking_uri or ""), tracking_uri) or code
    # MLflow answers a missing alias with INVALID_PARAMETER_VALUE, not RESOURCE_DOES_NOT_EXIST.
    if code == "RESOURCE_DOES_NOT_EXIST" or _MISSING_ALIAS.search(reason):
        return BackendError(
            f"{what} not found in MLflow at {where}",
            missing_hint or "check the name or id, and the tracking URI",
        )
    scheme = (tracking_uri or "").split(":", 1)[0].split("+", 1)[0]
    if scheme in DATABASE_SCHEMES and ("unsupported URI" in reason or "sqlalchemy" in reason.lower()):
        return BackendError(
            f"cannot open the MLflow store at {where}: {reason}",
            "a database store needs sqlalchemy and alembic: pip install sqlalchemy alembic",
        )
    return BackendError(
        f"MLflow at {where} failed on {what}: {reason}",
        "check --mlflow-uri / MLFLOW_TRACKING_URI and that the server is up",
    )


def _scrub(text: str, tracking_uri: str | None) -> str:
    """``text`` without any credential mlmon holds for MLflow (a proxy's error page may echo the request's
    headers, and MLflow's client puts the answer's body into its message)."""
    from mlmon.mlflow_rest import credentials

    for secret in credentials(tracking_uri or "", os.environ):
        text = text.replace(secret, "***")
    return text


def _reason(message: str, tracking_uri: str) -> str:
    """The first line of MLflow's message, with a password masked and a refused connection said plainly."""
    lines = message.strip().splitlines()
    reason = lines[0] if lines else ""
    password = urlsplit(tracking_uri).password if tracking_uri else None
    if password:
        reason = reason.replace(password, "***")
    if errno := _OS_ERROR.search(reason):
        return f"cannot connect ({errno[1].strip()})"
    if reason in _CONNECT_FAILURES:  # mlmon's REST client says the operating system's words alone
        return f"cannot connect ({reason})"
    return reason


def redact(uri: str) -> str:
    """A URI fit to print: a password in it is replaced by ***."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
