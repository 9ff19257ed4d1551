"""MLflow's REST API, read with the standard library: the calls ``mlmon compare-runs`` and ``mlmon status``
make to a tracking server (through :mod:`mlmon.backends.mlflow.runs`).

Importing MLflow's client takes two to four seconds (pydantic, protobuf, opentelemetry and more), longer than
a command that reads one page of runs from a tracking server should take in all. For ``http://`` and
``https://`` tracking URIs mlmon therefore speaks MLflow's documented REST API
(https://mlflow.org/docs/latest/api_reference/rest-api.html) itself: JSON over urllib, a short timeout, no
retries. It reads the same environment variables for credentials and TLS as MLflow's client
(:data:`CREDENTIAL_VARIABLES`, :data:`TLS_VARIABLES`) and honours HTTP(S)_PROXY and NO_PROXY. Setups that need
MLflow's own code (an auth plugin through MLFLOW_TRACKING_AUTH, AWS SigV4 signing) keep using MLflow's client:
see :func:`rest_supported`.

Errors become :class:`~mlmon.errors.BackendError` with the same wording as errors from MLflow's client, so a
message does not depend on which path read the server.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from mlmon.backends.http import Answer, TooLarge, TooSlow, Unreachable, build_opener, exchange
from mlmon.errors import BackendError


class MlflowNotFound(BackendError):
    """The server answered that the run, experiment, model or version asked for does not exist."""


class EndpointMissing(BackendError):
    """The server has no such endpoint: an older MLflow, or not an MLflow server at all."""


# The same variables MLflow's client reads; a value set for one path works for the other.
CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
TLS_VARIABLES = (
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
)
# Variables that ask for behaviour only MLflow's client implements (plugins, request signing).
CLIENT_ONLY_VARIABLES = ("MLFLOW_TRACKING_AUTH", "MLFLOW_TRACKING_AWS_SIGV4")
# MLflow's own client waits 120 s and retries for minutes. A server that is down or unreachable fails within
# the connect timeout; an answer may take longer (a large search page on a busy server), up to the read timeout,
# which MLFLOW_HTTP_REQUEST_TIMEOUT sets as it does for MLflow's client.
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0
API_PREFIX = "/api/2.0/mlflow/"
# Far more than a page of runs or a metric's history needs: a bigger answer is a wrong URL or a misbehaving
# server, and reading it would cost the whole deadline.
MAX_ANSWER_BYTES = 64 * 1024 * 1024


def rest_supported(tracking_uri: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether mlmon can read this tracking URI over REST itself (an http(s) server, no client-only options)."""
    environ = os.environ if environ is None else environ
    scheme = urllib.parse.urlsplit(tracking_uri).scheme.lower()
    if scheme not in ("http", "https"):
        return False
    return not any(_truthy(environ.get(name, "")) for name in CLIENT_ONLY_VARIABLES)


class MlflowRestClient:
    """GET and POST against one MLflow server's REST API; counts its requests (``requests_made``).

    >>> client = MlflowRestClient("http://127.0.0.1:5000")  # doctest: +SKIP
    >>> client.get("experiments/get-by-name", {"experiment_name": "churn"}, what="experiment 'churn'")  # doctest: +SKIP
    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        read_timeout: float | None = None,
        budget: float | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """``read_timeout`` bounds each whole exchange (MLFLOW_HTTP_REQUEST_TIMEOUT where not given);
        ``budget`` (seconds from now) bounds all of them together, so that a slow server costs a command at
        most that long however many requests it makes."""
        environ = os.environ if environ is None else environ
        self.tracking_uri = tracking_uri
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout if read_timeout is not None else _read_timeout(environ)
        self._spent_by = None if budget is None else time.monotonic() + budget
        self.requests_made = 0
        self._count_lock = threading.Lock()  # history requests run on a few threads
        parts = urllib.parse.urlsplit(tracking_uri)
        # urllib does not send credentials written into the URL (user:password@host); MLflow's client does.
        host = parts.netloc.rsplit("@", 1)[-1]
        self._base = urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
        self._headers = {"Accept": "application/json", "User-Agent": "mlmon"}
        authorization = _authorization(parts, environ)
        if authorization:
            self._headers["Authorization"] = authorization
        # Whatever a server or a proxy answers (an error page may echo the request's headers) is printed
        # without the credentials this client holds.
        self._secrets = _secrets(parts, environ, authorization)
        context = None
        if parts.scheme.lower() == "https":
            try:
                context = _tls_context(environ)
            except (OSError, ValueError) as exc:  # a certificate file missing or unreadable
                raise BackendError(
                    f"cannot set up TLS for MLflow at {self._where()}: {exc}",
                    "check MLFLOW_TRACKING_SERVER_CERT_PATH and MLFLOW_TRACKING_CLIENT_CERT_PATH",
                ) from None
        self._opener = build_opener(context)

    def get(
        self,
        endpoint: str,
        params: Mapping[str, str | Sequence[str]],
        *,
        what: str,
        missing_hint: str | None = None,
    ) -> dict[str, Any]:
        """GET ``/api/2.0/mlflow/ENDPOINT?params``; a list value repeats its key (``run_ids=a&run_ids=b``)."""
        query = urllib.parse.urlencode(
            [
                (key, item)
                for key, value in params.items()
                for item in ([value] if isinstance(value, str) else value)
            ]
        )
        return self._call(urllib.request.Request(f"{self._url(endpoint)}?{query}"), what, missing_hint)

    def post(
        self, endpoint: str, body: Mapping[str, Any], *, what: str, missing_hint: str | None = None
    ) -> dict[str, Any]:
        data = json.dumps(body).encode()
        request = urllib.request.Request(
            self._url(endpoint), data=data, headers={"Content-Type": "application/json"}, method="POST"
        )
        return self._call(request, what, missing_hint)

    def _url(self, endpoint: str) -> str:
        return f"{self._base}{API_PREFIX}{endpoint}"

    def _call(self, request: urllib.request.Request, what: str, missing_hint: str | None) -> dict[str, Any]:
        for name, value in self._headers.items():
            request.add_header(name, value)
        seconds = self.read_timeout
        if self._spent_by is not None:
            seconds = min(seconds, self._spent_by - time.monotonic())
        with self._count_lock:
            self.requests_made += 1
        try:
            answer = exchange(
                self._opener,
                request,
                seconds=seconds,
                max_bytes=MAX_ANSWER_BYTES,
                connect_timeout=self.connect_timeout,
            )
        except TooSlow:
            raise BackendError(
                f"MLflow at {self._where()} gave no whole answer to {what} within {max(seconds, 0):.3g} s",
                "check that the server is up and not overloaded, or allow more time with --timeout",
            ) from None
        except TooLarge as exc:
            raise BackendError(
                f"MLflow at {self._where()} answered {what} with more than mlmon reads ({exc.reason})",
                "ask for fewer runs (--top, --filter) or check the tracking URI",
            ) from None
        except Unreachable as exc:
            raise self._error(what, "URLError", exc.reason, missing_hint) from None
        if not 200 <= answer.status < 300:
            raise self._http_error(answer, what, missing_hint)
        try:
            body = json.loads(answer.body)
        except ValueError:
            raise self._error(what, "BAD_RESPONSE", _not_mlflow(answer.body), missing_hint) from None
        if not isinstance(body, dict):
            raise self._error(what, "BAD_RESPONSE", _not_mlflow(answer.body), missing_hint)
        return body

    def _http_error(self, answer: Answer, what: str, missing_hint: str | None) -> BackendError:
        try:
            body = json.loads(answer.body)
        except ValueError:
            body = None
        if isinstance(body, dict) and "error_code" in body:
            return self._error(what, str(body["error_code"]), str(body.get("message", "")), missing_hint)
        reason = f"HTTP {answer.status} {answer.reason}".strip()
        if answer.status in (401, 403):
            return BackendError(
                self._redact(f"MLflow at {self._where()} refused {what}: {reason}"),
                "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN",
            )
        if answer.status == 404:
            reason = f"HTTP 404 for {answer.url} (is this an MLflow tracking server?)"
            return self._error(what, "ENDPOINT_NOT_FOUND", reason, missing_hint)
        if 300 <= answer.status < 400:
            location = answer.headers.get("Location", "")
            reason += (
                f", a redirect to {location!r} that mlmon does not follow (it would carry the credentials)"
            )
        return self._error(what, f"HTTP {answer.status}", reason, missing_hint)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _error(self, what: str, code: str, message: str, missing_hint: str | None) -> BackendError:
        from mlmon.backends.mlflow.client import backend_error

        error = backend_error(what, self.tracking_uri, code, self._redact(message), missing_hint)
        error = BackendError(self._redact(error.message), error.hint)
        if code == "RESOURCE_DOES_NOT_EXIST":
            return MlflowNotFound(error.message, error.hint)
        if code == "ENDPOINT_NOT_FOUND":
            return EndpointMissing(error.message, error.hint)
        return error

    def _where(self) -> str:
        from mlmon.backends.mlflow.client import redact

        return redact(self.tracking_uri)


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _read_timeout(environ: Mapping[str, str]) -> float:
    try:
        return float(environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", READ_TIMEOUT_SECONDS))
    except ValueError:
        return READ_TIMEOUT_SECONDS


def _authorization(parts: urllib.parse.SplitResult, environ: Mapping[str, str]) -> str | None:
    """Basic auth from the URL or MLFLOW_TRACKING_USERNAME/PASSWORD, else a bearer MLFLOW_TRACKING_TOKEN."""
    username = environ.get("MLFLOW_TRACKING_USERNAME") or urllib.parse.unquote(parts.username or "")
    password = environ.get("MLFLOW_TRACKING_PASSWORD") or urllib.parse.unquote(parts.password or "")
    if username or password:
        return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    token = environ.get("MLFLOW_TRACKING_TOKEN")
    return f"Bearer {token}" if token else None


def credentials(tracking_uri: str, environ: Mapping[str, str]) -> list[str]:
    """Every credential for ``tracking_uri`` that must never be printed (see :func:`_secrets`)."""
    parts = urllib.parse.urlsplit(tracking_uri)
    return _secrets(parts, environ, _authorization(parts, environ))


def _secrets(
    parts: urllib.parse.SplitResult, environ: Mapping[str, str], authorization: str | None
) -> list[str]:
    """Every string that must never appear in a message: password, token, the user:password pair and the
    Authorization header's value (the longest first, so that a part does not leave the rest visible)."""
    password = environ.get("MLFLOW_TRACKING_PASSWORD") or urllib.parse.unquote(parts.password or "")
    username = environ.get("MLFLOW_TRACKING_USERNAME") or urllib.parse.unquote(parts.username or "")
    found = [environ.get("MLFLOW_TRACKING_TOKEN") or "", password]
    if password:
        found.append(f"{username}:{password}")
    if authorization:
        found.append(authorization.split(" ", 1)[-1])
    return sorted({s for s in found if s}, key=len, reverse=True)


def _tls_context(environ: Mapping[str, str]) -> ssl.SSLContext:
    if _truthy(environ.get("MLFLOW_TRACKING_INSECURE_TLS", "")):
        context = ssl._create_unverified_context()
    else:
        context = ssl.create_default_context(cafile=environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)
    client_cert = environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH")
    if client_cert:
        context.load_cert_chain(client_cert)
    return context


def _not_mlflow(body: bytes) -> str:
    text = body[:80].decode("utf-8", "replace").strip().splitlines()
    first = text[0] if text else "an empty body"
    return f"the answer is not MLflow's JSON (it starts with {first!r}); is this an MLflow tracking server?"
