"""How mlmon reaches MLflow, and what it says when MLflow fails: the one place that imports MLflow's client and
reads the MLFLOW_* environment variables beside MLflow itself.

- :func:`mlflow_client`: MLflow's client with short HTTP timeouts and no retries, refusing a local store that
  is not there (MLflow would create an empty one);
- :func:`rest_client`: mlmon's own bounded REST client for a tracking server (see :mod:`.rest`);
- :func:`call_mlflow`: any call of MLflow's client bounded as a whole (MLMON_TIMEOUT);
- :func:`mlflow_errors`, :func:`backend_error`: MLflow's exceptions as one-line BackendErrors with a hint;
- :func:`redact`: a URI without its credentials, for messages.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit, urlunsplit

from mlmon.errors import BackendError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlmon.backends.mlflow.rest import MlflowRestClient


# MLflow's own defaults retry a dead server for minutes; a command line or a starting service must not hang.
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


# MLflow's client bounds each read of a socket, not an exchange: a server that answers a byte at a time holds
# it for minutes. So each call is bounded as a whole: a lookup by MLMON_TIMEOUT (default 5 s), a call that
# moves an artifact or a batch of metrics by TRANSFER_FACTOR times that.
DEFAULT_TIMEOUT_SECONDS = 5.0


TRANSFER_FACTOR = 12


T = TypeVar("T")


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
    from mlmon.backends.mlflow.registry import sqlite_path

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
        raise not_an_answer(rest.tracking_uri, f"run {run_id}")


def rest_client(tracking_uri: str | None) -> MlflowRestClient | None:
    """mlmon's own client for an http(s) tracking server: each exchange bounded as a whole and capped in
    size, and an answer that is not MLflow's JSON an error. (MLflow's client takes a 200 with a blank or
    truncated body for an empty success, so a run would be reported as logged when nothing was.)"""
    from mlmon.backends.mlflow.rest import MlflowRestClient, rest_supported

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri or not rest_supported(uri):
        return None
    return MlflowRestClient(uri, read_timeout=timeout_seconds())


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
    from mlmon.backends.mlflow.rest import credentials

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


def not_an_answer(tracking_uri: str | None, what: str) -> BackendError:
    """The error for an answer that is not MLflow's (a proxy, another service at that URL)."""
    return BackendError(
        f"MLflow at {redact(tracking_uri or 'the default tracking URI')} answered without {what}; "
        "is this an MLflow tracking server?",
        "check --mlflow-uri / MLFLOW_TRACKING_URI",
    )
