"""A small client for the Prometheus HTTP API, and for the compatible APIs behind a path prefix (Thanos,
Mimir's ``/prometheus``, VictoriaMetrics' ``/select/0/prometheus``).

Every failure becomes one :class:`PrometheusError` that says what happened and how to fix it, within the
client's timeout (no retries), and never shows a password or token::

    from mlmon.backends.prometheus import Credentials, PrometheusClient

    with PrometheusClient("http://127.0.0.1:9090", credentials=Credentials.from_environment()) as prom:
        for sample in prom.query("sum by (model) (up)"):
            print(sample.labels.get("model"), sample.value)
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode, urlsplit

from mlmon import __version__
from mlmon.backends.http import TooLarge, TooSlow, Unreachable, build_opener, exchange
from mlmon.errors import BackendError

T = TypeVar("T")
URL_HINT = "set the Prometheus URL with --prometheus-url or MLMON_PROMETHEUS_URL"
AUTH_HINT = (
    "set MLMON_PROMETHEUS_USERNAME with MLMON_PROMETHEUS_PASSWORD or MLMON_PROMETHEUS_PASSWORD_FILE, "
    "or MLMON_PROMETHEUS_BEARER_TOKEN or MLMON_PROMETHEUS_BEARER_TOKEN_FILE"
)
SHAPE_HINT = (
    "the URL must be the one under which /api/v1/query answers, e.g. http://host:9090, "
    "https://mimir/prometheus or http://vmselect:8481/select/0/prometheus"
)
QUERY_EXCERPT = 200
BODY_EXCERPT = 200
# Far more than any question of mlmon's needs (its largest, per feature, is a few hundred bytes a feature): a bigger
# answer is a wrong URL or a misbehaving server, and reading it would cost the whole deadline.
MAX_ANSWER_BYTES = 32 * 1024 * 1024


class PrometheusError(BackendError):
    """Prometheus could not be reached, refused a request, or answered something else than its API.

    ``status_code`` is the HTTP status when there was an answer; ``error_type`` is Prometheus' own
    ``errorType`` (bad_data, execution, timeout, ...) when it gave one."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.status_code = status_code
        self.error_type = error_type


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector; a scalar result is one sample with no labels."""

    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    """One series of a range result: (unix time, value) points, oldest first."""

    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Alert:
    """An alert that is pending or firing now, from /api/v1/alerts."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    state: str
    active_at: datetime | None
    value: float | None


@dataclass(frozen=True, repr=False)
class Credentials:
    """Basic auth or a bearer token. Secrets come from the environment or files, never from flags."""

    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None

    def __post_init__(self) -> None:
        if self.bearer_token is not None and (self.username is not None or self.password is not None):
            raise PrometheusError("give either basic auth or a bearer token, not both")
        if self.password is not None and self.username is None:
            raise PrometheusError("a basic auth password needs a username")

    def __repr__(self) -> str:
        hidden = {
            name: None if getattr(self, name) is None else "***" for name in ("password", "bearer_token")
        }
        return (
            f"Credentials(username={self.username!r}, password={hidden['password']}, "
            f"bearer_token={hidden['bearer_token']})"
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Credentials:
        """Read MLMON_PROMETHEUS_USERNAME, MLMON_PROMETHEUS_PASSWORD[_FILE] and
        MLMON_PROMETHEUS_BEARER_TOKEN[_FILE]; empty variables count as unset."""
        username = environ.get("MLMON_PROMETHEUS_USERNAME") or None
        password = _secret(environ, "MLMON_PROMETHEUS_PASSWORD")
        token = _secret(environ, "MLMON_PROMETHEUS_BEARER_TOKEN")
        if token is not None and (username or password is not None):
            raise PrometheusError(
                "both basic auth (MLMON_PROMETHEUS_USERNAME/PASSWORD) and a bearer token are set",
                "unset one of them: Prometheus accepts only one Authorization header",
            )
        if (username is None) != (password is None):
            missing = "MLMON_PROMETHEUS_PASSWORD" if password is None else "MLMON_PROMETHEUS_USERNAME"
            raise PrometheusError(f"basic auth needs both a username and a password: {missing} is not set")
        return cls(username, password, token)

    def authorization(self) -> str | None:
        """The Authorization header value. Built here, not by requests, so that a bad character is our
        error, whose message never shows the secret (requests' would show the header)."""
        if self.bearer_token is not None:
            if not re.fullmatch(r"[\x21-\x7e]+", self.bearer_token):
                raise PrometheusError(
                    "the bearer token holds spaces or characters an HTTP header cannot carry"
                )
            return f"Bearer {self.bearer_token}"
        if self.username is not None:
            if ":" in self.username:
                raise PrometheusError("a basic auth username cannot contain ':'")
            pair = f"{self.username}:{self.password or ''}".encode()
            return "Basic " + base64.b64encode(pair).decode("ascii")
        return None

    def secrets(self) -> list[str]:
        """Every string that must never appear in a message."""
        found = [s for s in (self.password, self.bearer_token) if s]
        header = self.authorization() if found else None
        return found + ([header.split(" ", 1)[1]] if header else [])


def _secret(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name) or None
    path = environ.get(f"{name}_FILE") or None
    if value is not None and path is not None:
        raise PrometheusError(f"both {name} and {name}_FILE are set", "set only one of them")
    if path is None:
        return value
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise PrometheusError(f"cannot read {name}_FILE {path} ({reason})") from None
    text = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
    if not text:
        raise PrometheusError(f"{name}_FILE {path} is empty")
    return text


class PrometheusClient:
    """The Prometheus HTTP API over one HTTP session.

    ``requests_made`` counts HTTP requests; ``warnings`` collects the warnings Prometheus attaches to its
    answers (callers read and clear it). Each call is bounded by ``timeout`` seconds and is not retried;
    ``budget`` (seconds from the client's creation) bounds all calls together, so that a slow server costs a
    command at most that long however many questions it asks."""

    def __init__(
        self,
        url: str,
        *,
        credentials: Credentials | None = None,
        ca_file: str | None = None,
        verify_tls: bool = True,
        timeout: float = 5.0,
        budget: float | None = None,
    ) -> None:
        self.url = _base_url(url)
        self.credentials = credentials or Credentials()
        self.timeout = timeout
        self._spent_by = None if budget is None else time.monotonic() + budget
        self.requests_made = 0
        self.warnings: list[str] = []
        self._secrets = self.credentials.secrets()
        # The standard library's HTTP client, not requests: importing requests costs about a fifth of a
        # second, a good part of what `mlmon status` may take in all. Proxies from the environment are
        # honoured as requests would.
        self._headers = {
            "User-Agent": f"mlmon/{__version__}",
            "Accept": "application/json",
            "Accept-Encoding": "gzip",
        }
        authorization = self.credentials.authorization()
        if authorization:
            self._headers["Authorization"] = authorization
        # No redirects are followed (see mlmon.backends.http). The TLS context only for https: loading the system's
        # certificate authorities takes most of a tenth of a second.
        https = self.url.lower().startswith("https:")
        self._opener = build_opener(_tls_context(ca_file, verify_tls) if https else None)

    def __repr__(self) -> str:
        return f"PrometheusClient(url={self.url!r}, credentials={self.credentials!r}, timeout={self.timeout})"

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: each request opens and closes its own connection."""

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """An instant query: one sample per series, or one unlabelled sample for a scalar."""
        form = {"query": promql} | ({} if at is None else {"time": f"{at:.6f}"})
        return self._call("POST", "/api/v1/query", form, promql, _samples)

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        """A range query from ``start`` to ``end`` (unix seconds) every ``step`` seconds."""
        form = {"query": promql, "start": f"{start:.6f}", "end": f"{end:.6f}", "step": f"{step:g}"}
        return self._call("POST", "/api/v1/query_range", form, promql, _series)

    def alerts(self) -> list[Alert]:
        """The alerts pending or firing now."""
        return self._call("GET", "/api/v1/alerts", None, None, _alerts)

    def rule_names(self, kind: Literal["record", "alert"] = "record") -> set[str]:
        """The names of the recording rules (or alerting rules) Prometheus evaluates."""
        wanted = "recording" if kind == "record" else "alerting"
        # The filter is also applied here: a compatible API may ignore the type parameter.
        parse = lambda data: {r["name"] for r in _rules(data) if r.get("type") == wanted}  # noqa: E731
        return self._call("GET", f"/api/v1/rules?type={kind}", None, None, parse)

    def _call(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None,
        promql: str | None,
        parse: Callable[[Any], T],
    ) -> T:
        status, content_type, body = self._send(method, self.url + path, form)
        route = path.split("?")[0]
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        self._raise_for_failure(route, status, answer, body, promql)
        try:
            if not isinstance(answer, dict) or answer.get("status") != "success" or "data" not in answer:
                raise _NotPrometheus(f"{content_type or 'no content type'}: {_excerpt(body, 100)}")
            result = parse(answer["data"])
        except (_NotPrometheus, KeyError, TypeError, ValueError) as exc:
            detail = str(exc) if isinstance(exc, _NotPrometheus) else f"{type(exc).__name__}: {exc}"
            raise self._error(
                f"Prometheus at {self.url} answered {route} with something that is not a Prometheus API "
                f"response ({_excerpt(detail, 300)})",
                SHAPE_HINT,
                status,
            ) from None
        self.warnings.extend(str(w) for w in answer.get("warnings") or [])
        return result

    def _raise_for_failure(self, route: str, status: int, answer: Any, body: str, promql: str | None) -> None:
        if status in (401, 403):
            raise self._error(
                f"Prometheus at {self.url} refused the credentials (HTTP {status})", AUTH_HINT, status
            )
        if status == 404:
            raise self._error(f"Prometheus at {self.url} has no {route} (HTTP 404)", SHAPE_HINT, status)
        # Prometheus reports a bad query (400), a failed evaluation (422) or a timeout (503) in its JSON.
        if isinstance(answer, dict) and answer.get("status") == "error":
            kind = str(answer.get("errorType", "error"))
            what = f"{kind}: {_excerpt(str(answer.get('error', '')), 500)}"
            if promql is None:
                raise self._error(
                    f"Prometheus at {self.url} answered {route} with an error ({what})", None, status, kind
                )
            raise self._error(
                f"Prometheus at {self.url} could not run the query ({what})\n"
                f"query: {_excerpt(promql, QUERY_EXCERPT)}",
                "the server, or the PromQL version it speaks, does not accept this query",
                status,
                kind,
            )
        if not 200 <= status < 300:
            failed = "the server or a proxy in front of it failed; see its logs"
            raise self._error(
                f"Prometheus at {self.url} answered {route} with HTTP {status}: {_excerpt(body, BODY_EXCERPT)}",
                failed if status >= 500 else SHAPE_HINT,
                status,
            )

    def _send(self, method: str, endpoint: str, form: dict[str, str] | None) -> tuple[int, str, str]:
        """One request, not retried, whose whole answer must come within the timeout (and what is left of the
        budget): (status, content type, body with the secrets blanked out)."""
        seconds = self.timeout
        if self._spent_by is not None:
            seconds = min(seconds, self._spent_by - time.monotonic())
            if seconds <= 0:
                raise self._error(
                    f"Prometheus at {self.url} used up the time allowed for its answers", URL_HINT
                )
        self.requests_made += 1
        data = urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(endpoint, data=data, headers=self._headers, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            answer = exchange(self._opener, request, seconds=seconds, max_bytes=MAX_ANSWER_BYTES)
        except TooSlow:
            raise self._error(
                f"cannot reach Prometheus at {self.url} (no whole answer within {seconds:.3g} s)",
                f"{URL_HINT}, or allow more time with --timeout",
            ) from None
        except TooLarge as exc:
            raise self._error(
                f"Prometheus at {self.url} answered more than mlmon reads ({exc.reason})",
                "ask about fewer models at a time (--model NAME)",
            ) from None
        except Unreachable as exc:
            if isinstance(exc.cause, ssl.SSLError):
                raise self._error(
                    f"cannot reach Prometheus at {self.url} ({_excerpt(exc.reason, 200)})",
                    "check the server's certificate, or give the CA that signed it with --ca-file or "
                    "MLMON_PROMETHEUS_CA_FILE",
                ) from None
            raise self._error(
                f"cannot reach Prometheus at {self.url} ({_excerpt(exc.reason, 200)})", URL_HINT
            ) from None
        if 300 <= answer.status < 400:
            location = self._redact(answer.headers.get("Location", ""))
            raise self._error(
                f"Prometheus at {self.url} answered with a redirect (HTTP {answer.status}) to {location!r}, "
                "which mlmon does not follow: it would carry the credentials there",
                "give the URL it redirects to with --prometheus-url or MLMON_PROMETHEUS_URL",
                answer.status,
            )
        charset = answer.headers.get_content_charset() or "utf-8"
        body = answer.body.decode(charset, errors="replace")
        return answer.status, answer.headers.get("Content-Type", ""), self._redact(body)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _error(
        self, message: str, hint: str | None, status: int | None = None, error_type: str | None = None
    ) -> PrometheusError:
        return PrometheusError(self._redact(message), hint, status_code=status, error_type=error_type)


def _tls_context(ca_file: str | None, verify_tls: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__
            raise PrometheusError(
                f"cannot read the CA file {ca_file} ({reason})",
                "give a PEM file of the certificate authorities that signed Prometheus' certificate",
            ) from None
    return context


class _NotPrometheus(Exception):
    """The answer does not have the shape of the Prometheus API."""


def _base_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PrometheusError(f"not an http(s) URL: {url!r}", URL_HINT)
    if parts.username is not None or parts.password is not None:
        # The URL is not repeated here: it holds the password.
        raise PrometheusError("the Prometheus URL holds a user name or password", f"remove it; {AUTH_HINT}")
    if parts.query or parts.fragment:
        raise PrometheusError(
            f"the Prometheus URL {parts.scheme}://{parts.netloc}{parts.path} has a ?query or #fragment"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _excerpt(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters, with control characters (terminal escapes) removed."""
    flat = " ".join(re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _labels(raw: Any) -> dict[str, str]:
    # A series with no labels at all (a bare number, an aggregation to nothing) may omit "metric".
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise _NotPrometheus(f"labels are not a map of strings: {json.dumps(raw)[:80]}")
    return raw


def _number(raw: Any) -> float:
    # Values are strings so that NaN and +Inf/-Inf survive JSON; float() reads both forms.
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise _NotPrometheus(f"a value is not a number: {json.dumps(raw)[:80]}")
    try:
        return float(raw)
    except ValueError:
        raise _NotPrometheus(f"a value is not a number: {str(raw)[:80]!r}") from None


def _point(raw: Any) -> tuple[float, float]:
    if not isinstance(raw, list) or len(raw) != 2:
        raise _NotPrometheus(f"a point is not [time, value]: {json.dumps(raw)[:80]}")
    return _number(raw[0]), _number(raw[1])


def _result(data: Any, types: tuple[str, ...]) -> Any:
    kind = data.get("resultType") if isinstance(data, dict) else None
    if kind not in types:
        raise _NotPrometheus(f"resultType {kind!r}, expected {' or '.join(types)}")
    result = data.get("result")
    if kind != "scalar" and not isinstance(result, list):
        raise _NotPrometheus("result is not a list")
    return result


def _samples(data: Any) -> list[Sample]:
    result = _result(data, ("vector", "scalar"))
    if data["resultType"] == "scalar":
        return [Sample({}, _point(result)[1])]
    return [
        Sample(_labels(item.get("metric")), _point(item.get("value"))[1]) for item in _items(result, "value")
    ]


def _series(data: Any) -> list[Series]:
    result = _result(data, ("matrix",))
    series = []
    for item in _items(result, "values"):
        values = item.get("values")
        if not isinstance(values, list):
            raise _NotPrometheus("a series has no list of values")
        series.append(Series(_labels(item.get("metric")), tuple(_point(p) for p in values)))
    return series


def _items(result: list[Any], key: str) -> list[dict[str, Any]]:
    if not all(isinstance(item, dict) for item in result):
        raise _NotPrometheus("a result item is not an object")
    # Native histograms come as "histogram(s)" instead of float values: nothing mlmon reads is one.
    return [item for item in result if key in item or ("histogram" not in item and "histograms" not in item)]


def _alerts(data: Any) -> list[Alert]:
    alerts = data.get("alerts") if isinstance(data, dict) else None
    if not isinstance(alerts, list) or not all(isinstance(a, dict) for a in alerts):
        raise _NotPrometheus("data.alerts is not a list of alerts")
    return [
        Alert(
            labels=_labels(a.get("labels")),
            annotations=_labels(a.get("annotations")),
            state=str(a.get("state", "")),
            active_at=_time(a.get("activeAt")),
            value=None if a.get("value") is None else _number(a["value"]),
        )
        for a in alerts
    ]


def _rules(data: Any) -> list[dict[str, Any]]:
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, list) or not all(
        isinstance(g, dict) and isinstance(g.get("rules"), list) for g in groups
    ):
        raise _NotPrometheus("data.groups is not a list of rule groups")
    rules = [rule for group in groups for rule in group["rules"]]
    if not all(isinstance(r, dict) and isinstance(r.get("name"), str) for r in rules):
        raise _NotPrometheus("a rule has no name")
    return rules


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(?:\.(\d+))?(?:([Zz])|([+-])(\d\d):(\d\d))")


def _time(raw: Any) -> datetime | None:
    """An RFC 3339 time. Go writes up to nine fractional digits, which datetime cannot hold: the
    nanoseconds are cut to microseconds. Go's zero time (year 1) means no time."""
    if raw is None or (isinstance(raw, str) and raw.startswith("0001-01-01")):
        return None
    match = _RFC3339.fullmatch(raw) if isinstance(raw, str) else None
    if match is None:
        raise _NotPrometheus(f"not an RFC 3339 time: {json.dumps(raw)[:80]}")
    day, clock, fraction, utc, sign, hours, minutes = match.groups()
    offset = (
        timedelta(0)
        if utc
        else (1 if sign == "+" else -1) * timedelta(hours=int(hours), minutes=int(minutes))
    )
    when = datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=timezone(offset))
    return when.replace(microsecond=int((fraction or "0")[:6].ljust(6, "0"))).astimezone(timezone.utc)
