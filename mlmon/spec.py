"""The mlmon.yaml model: load, validate and fill in defaults.

Errors name the file, the line and the key path (``mlmon.yaml:14: models[0].thresholds.psi_warning: ...``) and
suggest the closest valid key for a misspelt one. Values that end up in generated files (model, feature and
receiver names) may hold any printable text; the renderers escape them for YAML, PromQL and JSON. Control
characters are refused here, because no consumer can show them faithfully.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import yaml

from mlmon.contract import LATENCY_BUCKETS
from mlmon.drift.evidence import DEFAULT_FALSE_ALARMS_PER_WEEK, DEFAULT_MIN_PSI
from mlmon.errors import SpecError
from mlmon.names import hidden_characters, visible
from mlmon.settings import DEFAULT_ALERTMANAGER_URL, DEFAULT_PROMETHEUS_URL, DEFAULT_TRACKING_URI

SPEC_VERSION = 1
DEFAULT_SPEC_FILE = "mlmon.yaml"

Task = Literal["classification", "regression"]
FeatureType = Literal["numerical", "categorical"]
Severity = Literal["critical", "warning"]
MetricDirection = Literal["min", "max"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning")

_DURATION_RE = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_DURATION_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)
_LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_HOST_PORT_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_NAME_LENGTH = 200
MAX_PSI_THRESHOLD = 2.5
MAX_MIN_DRIFT_SAMPLES = 1_000_000
RESERVED_RECEIVER = "mlmon-unrouted"


def duration_seconds(text: str) -> float:
    """Seconds in a Prometheus duration such as ``1h30m`` (validated by the spec loader)."""
    match = _DURATION_RE.match(text)
    if not text or not match:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(part) * unit for part, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if part)


# ------------------------------------------------------------------------------------------------------
# The spec as data

# A seasonal period must exceed the drift window and drift_for by this much (a few counting steps).
SEASONAL_SLACK_SECONDS = 300


@dataclass(frozen=True)
class Thresholds:
    """When an alert fires. Ratios are between 0 and 1; durations are Prometheus durations."""

    latency_p95_seconds: float = 0.5
    latency_p99_seconds: float = 1.0
    error_ratio: float = 0.05
    min_request_rate: float = 0.01
    # How drift is judged: "evidence" weighs the window's and the reference's sample sizes against a budget of
    # false alarms (mlmon.drift.evidence); "psi" is the older fixed PSI threshold (psi_warning), which pages on
    # noise at low traffic and misses subtle change at high traffic.
    drift_test: str = "evidence"
    # At most this many false drift or missing-value alerts per week for the model, all features together.
    false_alarms_per_week: float = DEFAULT_FALSE_ALARMS_PER_WEEK
    # The smallest change that may alert, as PSI: holds back a statistically clear but tiny change.
    drift_min_psi: float = DEFAULT_MIN_PSI
    psi_warning: float = 0.1  # drift_test: psi only
    psi_critical: float = 0.2  # critical above this PSI (a mean shift of half a standard deviation: 0.24)
    prediction_psi: float = 0.25
    drift_window: str = "1h"
    # What a drift window is compared with: "reference", the version's reference profile; "seasonal", the same
    # window one seasonal_period earlier (so that a daily or weekly rhythm in the inputs does not page).
    drift_baseline: str = "reference"
    seasonal_period: str = "1d"
    # How long drift must last before its alerts fire: long enough that a burst of odd traffic stays quiet.
    drift_for: str = "15m"
    min_drift_samples: int = 100
    missing_ratio: float = 0.1  # drift_test: psi only
    # drift_test evidence: the smallest rise of the missing ratio over the reference's that may alert.
    missing_min_increase: float = 0.02
    # Values the monitor could not use (unknown features, NaN, text in a number) per request.
    invalid_ratio: float = 0.01
    confidence_drop: float = 0.1
    accuracy_drop: float = 0.05
    feedback_window: str = "6h"
    max_model_age_days: float = 30.0


@dataclass(frozen=True)
class Feature:
    name: str
    type: FeatureType = "numerical"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    registered_model: str
    alias: str = "champion"
    task: Task = "classification"
    targets: tuple[str, ...] = ()
    file_sd: tuple[str, ...] = ()
    metrics_path: str = "/metrics"
    scheme: Literal["http", "https"] = "http"
    scrape_interval: str | None = None
    features: tuple[Feature, ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)


class _ServerURL:
    """host:port, scheme and path of a server's URL, as Prometheus' configuration wants them apart."""

    url: str

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def address(self) -> str:
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or ""
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def path_prefix(self) -> str:
        return urlsplit(self.url).path.rstrip("/")


@dataclass(frozen=True)
class PrometheusConfig(_ServerURL):
    url: str = DEFAULT_PROMETHEUS_URL
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    external_labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class WebhookReceiver:
    url: str | None = None
    url_file: str | None = None
    bearer_token_file: str | None = None
    send_resolved: bool = True


@dataclass(frozen=True)
class SlackReceiver:
    api_url_file: str
    channel: str
    send_resolved: bool = True


@dataclass(frozen=True)
class PagerDutyReceiver:
    routing_key_file: str
    send_resolved: bool = True


@dataclass(frozen=True)
class EmailReceiver:
    to: str
    sender: str
    smarthost: str
    auth_username: str | None = None
    auth_password_file: str | None = None
    require_tls: bool = True
    send_resolved: bool = False


@dataclass(frozen=True)
class Receiver:
    name: str
    severities: tuple[Severity, ...] = SEVERITIES
    webhook: WebhookReceiver | None = None
    slack: SlackReceiver | None = None
    pagerduty: PagerDutyReceiver | None = None
    email: EmailReceiver | None = None


@dataclass(frozen=True)
class AlertmanagerConfig(_ServerURL):
    url: str = DEFAULT_ALERTMANAGER_URL
    group_by: tuple[str, ...] = ("alertname", "model")
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"
    receivers: tuple[Receiver, ...] = ()


@dataclass(frozen=True)
class GrafanaConfig:
    datasource_name: str = "Prometheus (mlmon)"
    datasource_uid: str = "mlmon-prometheus"
    datasource_url: str | None = None  # defaults to prometheus.url
    folder: str = "mlmon"
    dashboards_path: str = "/var/lib/grafana/dashboards/mlmon"


@dataclass(frozen=True)
class MlflowConfig:
    tracking_uri: str = DEFAULT_TRACKING_URI
    registry_uri: str | None = None
    # Which way is better for each run metric ("min" or "max"), for compare-runs' best-value marks.
    metrics: tuple[tuple[str, MetricDirection], ...] = ()


@dataclass(frozen=True)
class AlertingConfig:
    runbook_base_url: str = "https://github.com/mlmon/mlmon/blob/main/docs/runbooks.md"


@dataclass(frozen=True)
class Spec:
    """A validated mlmon.yaml. Build one with :func:`load_spec` or :func:`spec_from_dict`."""

    project: str
    models: tuple[ModelSpec, ...]
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)
    alertmanager: AlertmanagerConfig = field(default_factory=AlertmanagerConfig)
    grafana: GrafanaConfig = field(default_factory=GrafanaConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    alerting: AlertingConfig = field(default_factory=AlertingConfig)
    version: int = SPEC_VERSION
    source: str = "<spec>"

    def windows(self) -> tuple[str, ...]:
        """Every distinct drift and feedback window the models use, shortest first."""
        return tuple(sorted({*self.drift_windows(), *self.feedback_windows()}, key=duration_seconds))

    def drift_windows(self) -> tuple[str, ...]:
        """The distinct drift windows, shortest first (1h without models)."""
        found = {m.thresholds.drift_window for m in self.models}
        return tuple(sorted(found or {Thresholds.drift_window}, key=duration_seconds))

    def feedback_windows(self) -> tuple[str, ...]:
        """The distinct feedback windows, shortest first (6h without models)."""
        found = {m.thresholds.feedback_window for m in self.models}
        return tuple(sorted(found or {Thresholds.feedback_window}, key=duration_seconds))


# ------------------------------------------------------------------------------------------------------
# Reading YAML with line numbers


# libyaml's parser when PyYAML was built with it: several times faster, same nodes and line marks.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Node:
    """A YAML value with the line it starts on, so that errors can point at it."""

    __slots__ = ("line", "value")

    def __init__(self, value: Any, line: int) -> None:
        self.value = value
        self.line = line


def _from_yaml_node(node: yaml.Node, source: str) -> _Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        mapping: dict[str, _Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError("mapping keys must be text", where=f"{source}:{key_node.start_mark.line + 1}")
            key = key_node.value
            if key in mapping:
                raise SpecError(
                    f"key {key!r} appears twice",
                    "remove one of them",
                    where=f"{source}:{key_node.start_mark.line + 1}",
                )
            mapping[key] = _from_yaml_node(value_node, source)
        return _Node(mapping, line)
    if isinstance(node, yaml.SequenceNode):
        return _Node([_from_yaml_node(item, source) for item in node.value], line)
    # Scalars: PyYAML's safe constructor decides the type (int, float, bool, null, str). A fresh one each
    # time: a constructor remembers every node it built.
    try:
        value = yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise SpecError(
            f"cannot read the value {node.value!r}: {exc}".split("\n")[0],
            "write plain YAML values; tags such as !!python/... are not allowed",
            where=f"{source}:{line}",
        ) from None
    return _Node(value, line)


def _plain_to_node(value: Any, line: int = 0) -> _Node:
    """Wrap plain Python data (a spec built in code) so it goes through the same validation."""
    if isinstance(value, Mapping):
        return _Node({str(k): _plain_to_node(v, line) for k, v in value.items()}, line)
    if isinstance(value, list | tuple):
        return _Node([_plain_to_node(v, line) for v in value], line)
    return _Node(value, line)


T = TypeVar("T")


class _Reader:
    """Validates one mapping of the spec; knows its key path and file, for error messages."""

    def __init__(self, node: _Node, path: str, source: str) -> None:
        self.node = node
        self.path = path
        self.source = source
        if not isinstance(node.value, dict):
            raise self.error(f"must be a mapping of keys to values, got {_describe(node.value)}")
        self.items: dict[str, _Node] = node.value
        self.used: set[str] = set()

    def where(self, node: _Node | None = None, key: str | None = None) -> str:
        line = (node or self.node).line
        location = f"{self.source}:{line}" if line else self.source
        keypath = _join(self.path, key) if key is not None else self.path
        return f"{location}: {keypath}" if keypath else location

    def error(self, message: str, hint: str | None = None, key: str | None = None) -> SpecError:
        node = self.items.get(key) if key is not None and hasattr(self, "items") else None
        return SpecError(message, hint, where=self.where(node, key))

    def has(self, key: str) -> bool:
        return key in self.items and self.items[key].value is not None

    def raw(self, key: str) -> _Node | None:
        self.used.add(key)
        node = self.items.get(key)
        return node if node is not None and node.value is not None else None

    def get(self, key: str, convert: Callable[[Any], T], default: T) -> T:
        node = self.raw(key)
        if node is None:
            return default
        try:
            return convert(node.value)
        except (TypeError, ValueError) as exc:
            raise self.error(str(exc), key=key) from None

    def text(self, key: str, default: str) -> str:
        return self.get(key, _text, default)

    def optional_text(self, key: str) -> str | None:
        return self.get(key, _text, None)

    def child(self, key: str) -> _Reader:
        node = self.raw(key)
        return _Reader(
            node if node is not None else _Node({}, self.node.line), _join(self.path, key), self.source
        )

    def children(self, key: str, shorthand: str | None = None) -> Iterator[_Reader]:
        """Readers for a list of mappings; with ``shorthand``, a bare text item means {shorthand: item}."""
        node = self.raw(key)
        if node is None:
            return
        if not isinstance(node.value, list):
            raise self.error(f"must be a list, got {_describe(node.value)}", key=key)
        for index, item in enumerate(node.value):
            if shorthand and isinstance(item.value, str):
                item = _Node({shorthand: item}, item.line)
            yield _Reader(item, f"{_join(self.path, key)}[{index}]", self.source)

    def text_list(self, key: str, check: Callable[[str], str] | None = None) -> tuple[str, ...]:
        node = self.raw(key)
        if node is None:
            return ()
        items = node.value if isinstance(node.value, list) else [node]
        result = []
        for index, item in enumerate(items):
            try:
                value = _text(item.value)
                result.append(check(value) if check else value)
            except (TypeError, ValueError) as exc:
                raise SpecError(
                    str(exc), where=f"{self.where(item)}.{key}[{index}]".replace(": .", ": ")
                ) from None
        return tuple(result)

    def finish(self, valid: tuple[str, ...] | None = None, hints: Mapping[str, str] | None = None) -> None:
        """Refuse keys nobody read: a misspelt key must not be silently ignored."""
        for key, node in self.items.items():
            if key in self.used:
                continue
            if hints and key in hints:
                raise SpecError(f"unknown key {key!r}", hints[key], where=self.where(node, key))
            choices = sorted(valid if valid is not None else self.used)
            close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"valid keys here: {', '.join(choices)}"
            raise SpecError(f"unknown key {key!r}", hint, where=self.where(node, key))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"


# ------------------------------------------------------------------------------------------------------
# Value converters: each raises ValueError with a message fit for the user.


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"must be text, got {_describe(value)}")
    return str(value)


def _name(value: Any) -> str:
    text = _text(value)
    if not text.strip():
        raise ValueError("must not be empty")
    if _CONTROL_RE.search(text):
        raise ValueError(f"must not contain control characters such as newlines or tabs, got {text!r}")
    if len(text) > MAX_NAME_LENGTH:
        raise ValueError(f"must be at most {MAX_NAME_LENGTH} characters, got {len(text)}")
    return text


def _visible_name(value: Any) -> str:
    """A model or feature name: a name with no invisible character, in Unicode's composed form."""
    text = _name(value)
    problem = hidden_characters(text)
    if problem is not None:
        raise ValueError(f"'{visible(text)}' {problem}")
    return text


def _number(
    low: float | None = None, high: float | None = None, integer: bool = False
) -> Callable[[Any], Any]:
    def convert(value: Any) -> float | int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, got {_describe(value)}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"must be a finite number, got {value}")
        if integer and int(value) != value:
            raise ValueError(f"must be a whole number, got {value}")
        if low is not None and value < low:
            raise ValueError(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise ValueError(f"must be at most {high}, got {value}")
        return int(value) if integer else float(value)

    return convert


def _positive(value: Any) -> float:
    number = _number(0)(value)
    if number <= 0:
        raise ValueError(f"must be greater than 0, got {value}")
    return float(number)


def _ratio(value: Any) -> float:
    return float(_number(0, 1)(value))


def _duration(value: Any) -> str:
    text = _text(value)
    if not text or not _DURATION_RE.match(text) or duration_seconds(text) <= 0:
        raise ValueError(f"must be a Prometheus duration such as 30s, 5m, 1h or 7d, got {text!r}")
    return text


def _for_duration(value: Any) -> str:
    """An alert's ``for:``; 0s (fire at the first evaluation) is allowed, more than a day is a mistake."""
    text = _text(value)
    if not text or not _DURATION_RE.match(text) or not 0 <= duration_seconds(text) <= 86400:
        raise ValueError(f"must be a Prometheus duration from 0s to 1d, such as 0s, 5m or 15m, got {text!r}")
    return text


def _duration_between(low: str, high: str) -> Callable[[Any], str]:
    """A duration within bounds: drift over more than a day costs Prometheus a lot of samples per
    evaluation, and windows shorter than a few scrapes are noise."""

    def convert(value: Any) -> str:
        text = _duration(value)
        if not duration_seconds(low) <= duration_seconds(text) <= duration_seconds(high):
            raise ValueError(f"must be between {low} and {high}, got {text}")
        return text

    return convert


def _url(value: Any) -> str:
    text = _text(value)
    if not re.match(r"^https?://[^\s/]+", text):
        raise ValueError(f"must be an http:// or https:// URL, got {text!r}")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:  # a port out of range, a broken IPv6 address
        raise ValueError(f"is not a valid URL ({exc}): {text!r}") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "must not hold credentials (user:password@): they would be copied into generated files; "
            "give credentials through environment variables or files instead"
        )
    if not parts.hostname or port == 0:
        raise ValueError(f"needs a host and a port above 0, got {text!r}")
    return text.rstrip("/")


_CREDENTIALS_RE = re.compile(r"^([a-z][a-z0-9+.-]*://)([^/@\s]*)@", re.IGNORECASE)


def without_credentials(uri: str) -> tuple[str, bool]:
    """``uri`` with its secret removed, and whether there was one. An http(s) URL loses ``user:password@``
    whole (Prometheus and Grafana take credentials elsewhere); a database URI keeps its user name."""
    match = _CREDENTIALS_RE.match(uri)
    if not match:
        return uri, False
    prefix, userinfo, rest = match.group(1), match.group(2), uri[match.end() :]
    if prefix.lower() in ("http://", "https://"):
        return prefix + rest, True
    if ":" not in userinfo:
        return uri, False
    return f"{prefix}{userinfo.split(':', 1)[0]}@{rest}", True


def _tracking_uri(value: Any) -> str:
    text = _text(value)
    if re.match(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@", text, re.IGNORECASE):
        raise ValueError(
            "must not hold a password: it would be written into mlmon.yaml; set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_URI) in the environment instead"
        )
    return text


def _host_port(value: Any) -> str:
    text = _text(value)
    match = _HOST_PORT_RE.match(text)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ValueError(f"must be host:port such as 127.0.0.1:8000, got {text!r}")
    return text


def _label_name(value: Any) -> str:
    text = _text(value)
    if not _LABEL_NAME_RE.match(text) or text.startswith("__"):
        raise ValueError(f"must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*), got {text!r}")
    return text


def _choice(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = _text(value)
        if text not in choices:
            close = difflib.get_close_matches(text, choices, n=1)
            suggestion = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"must be one of {', '.join(choices)}, got {text!r}{suggestion}")
        return text

    return convert


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {_describe(value)}")
    return value


# ------------------------------------------------------------------------------------------------------
# Sections

# Keys that people try first, with the way mlmon wants them; secrets never go inline into mlmon.yaml.
_INLINE_SECRET_HINTS = {
    "api_url": "put the Slack webhook URL in a file and set api_url_file: /path/to/file (Alertmanager reads it)",
    "routing_key": "put the PagerDuty key in a file and set routing_key_file: /path/to/file",
    "service_key": "put the PagerDuty key in a file and set routing_key_file: /path/to/file",
    "auth_password": "put the password in a file and set auth_password_file: /path/to/file",
    "bearer_token": "put the token in a file and set bearer_token_file: /path/to/file",
    "password": "secrets are read from files: use a *_file key that names the file",
}


def _thresholds(r: _Reader) -> Thresholds:
    d = Thresholds()
    t = Thresholds(
        latency_p95_seconds=r.get("latency_p95_seconds", _positive, d.latency_p95_seconds),
        latency_p99_seconds=r.get("latency_p99_seconds", _positive, d.latency_p99_seconds),
        error_ratio=r.get("error_ratio", _number(0, 0.99), d.error_ratio),
        min_request_rate=r.get("min_request_rate", _number(0), d.min_request_rate),
        drift_test=r.get("drift_test", _choice("evidence", "psi"), d.drift_test),
        false_alarms_per_week=r.get("false_alarms_per_week", _number(1e-6, 100), d.false_alarms_per_week),
        drift_min_psi=r.get("drift_min_psi", _number(0, MAX_PSI_THRESHOLD), d.drift_min_psi),
        psi_warning=r.get("psi_warning", _positive, d.psi_warning),
        psi_critical=r.get("psi_critical", _positive, d.psi_critical),
        prediction_psi=r.get("prediction_psi", _positive, d.prediction_psi),
        drift_window=r.get("drift_window", _duration_between("5m", "1d"), d.drift_window),
        drift_baseline=r.get("drift_baseline", _choice("reference", "seasonal"), d.drift_baseline),
        # Prometheus keeps 15 days by default: a baseline further back than its retention is never there.
        seasonal_period=r.get("seasonal_period", _duration_between("1h", "14d"), d.seasonal_period),
        drift_for=r.get("drift_for", _for_duration, d.drift_for),
        min_drift_samples=r.get(
            "min_drift_samples", _number(0, MAX_MIN_DRIFT_SAMPLES, integer=True), d.min_drift_samples
        ),
        missing_ratio=r.get("missing_ratio", _ratio, d.missing_ratio),
        missing_min_increase=r.get("missing_min_increase", _ratio, d.missing_min_increase),
        invalid_ratio=r.get("invalid_ratio", _ratio, d.invalid_ratio),
        confidence_drop=r.get("confidence_drop", _ratio, d.confidence_drop),
        accuracy_drop=r.get("accuracy_drop", _ratio, d.accuracy_drop),
        feedback_window=r.get("feedback_window", _duration_between("5m", "30d"), d.feedback_window),
        max_model_age_days=r.get("max_model_age_days", _positive, d.max_model_age_days),
    )
    r.finish()
    for key in ("latency_p95_seconds", "latency_p99_seconds"):
        if getattr(t, key) >= LATENCY_BUCKETS[-1]:
            raise r.error(
                f"{key} must be below {LATENCY_BUCKETS[-1]}s, the largest latency bucket of the metric "
                "contract: a quantile above it cannot be measured, so the alert could never fire",
                key=key,
            )
    if t.psi_critical > MAX_PSI_THRESHOLD:
        raise r.error(
            f"psi_critical ({t.psi_critical}) must be at most {MAX_PSI_THRESHOLD}: a PSI that high means the "
            "distributions barely overlap, and the generated alert tests cannot build such a case",
            key="psi_critical",
        )
    if t.drift_min_psi >= t.psi_critical:
        raise r.error(
            f"drift_min_psi ({t.drift_min_psi}) must be below psi_critical ({t.psi_critical})",
            key="drift_min_psi",
        )
    if t.psi_warning >= t.psi_critical:
        raise r.error(
            f"psi_warning ({t.psi_warning}) must be below psi_critical ({t.psi_critical})", key="psi_warning"
        )
    if t.drift_baseline == "seasonal":
        least = duration_seconds(t.drift_window) + duration_seconds(t.drift_for) + SEASONAL_SLACK_SECONDS
        if duration_seconds(t.seasonal_period) < least:
            raise r.error(
                f"seasonal_period ({t.seasonal_period}) must be at least drift_window + drift_for + 5m "
                f"({least / 60:g}m): a change is compared with the same window one period earlier, and that "
                "window must still predate the change when the drifted window has filled and drift_for has "
                "passed, or a clear change might never alert",
                key="seasonal_period",
            )
    if t.latency_p95_seconds > t.latency_p99_seconds:
        raise r.error(
            f"latency_p95_seconds ({t.latency_p95_seconds}) must not exceed latency_p99_seconds "
            f"({t.latency_p99_seconds})",
            key="latency_p95_seconds",
        )
    return t


def _merge_thresholds(defaults: _Node | None, own: _Node | None) -> _Node:
    """Per-model thresholds override the spec-wide ``defaults.thresholds`` key by key."""
    merged: dict[str, _Node] = {}
    line = 0
    for node in (defaults, own):
        if node is not None and isinstance(node.value, dict):
            merged.update(node.value)
            line = node.line
        elif node is not None:
            return node  # not a mapping: let the reader report it where it stands
    return _Node(merged, line)


def _model(r: _Reader, default_thresholds: _Node | None) -> ModelSpec:
    name = r.get("name", _visible_name, None)
    if name is None:
        raise r.error("needs a name", "add  name: my-model")
    features: list[Feature] = []
    seen: set[str] = set()
    for fr in r.children("features", shorthand="name"):  # "- income" means a numerical feature
        feature = Feature(
            name=fr.get("name", _visible_name, None) or "",
            type=fr.get("type", _choice("numerical", "categorical"), "numerical"),  # type: ignore[arg-type]
        )
        fr.finish()
        if not feature.name:
            raise fr.error("needs a name")
        if feature.name in seen:
            raise fr.error(f"feature {feature.name!r} is listed twice", "give each feature one entry")
        seen.add(feature.name)
        features.append(feature)
    thresholds_node = _merge_thresholds(default_thresholds, r.raw("thresholds"))
    model = ModelSpec(
        name=name,
        registered_model=r.get("registered_model", _visible_name, name),
        alias=r.get("alias", _name, "champion"),
        task=r.get("task", _choice("classification", "regression"), "classification"),  # type: ignore[arg-type]
        targets=r.text_list("targets", _host_port),
        file_sd=r.text_list("file_sd", _name),
        metrics_path=r.get("metrics_path", _metrics_path, "/metrics"),
        scheme=r.get("scheme", _choice("http", "https"), "http"),  # type: ignore[arg-type]
        scrape_interval=r.get("scrape_interval", _duration, None),
        features=tuple(features),
        thresholds=_thresholds(_Reader(thresholds_node, _join(r.path, "thresholds"), r.source)),
    )
    r.finish()
    if not model.targets and not model.file_sd:
        raise r.error(
            f"model {name!r} has no targets",
            "add  targets: [127.0.0.1:8000]  or  file_sd: [targets/my-model.json]",
        )
    return model


def _metrics_path(value: Any) -> str:
    text = _name(value)
    if not text.startswith("/") or any(c in text for c in " ?#"):
        raise ValueError(f"must be a URL path such as /metrics, got {text!r}")
    return text


def _receiver(r: _Reader) -> Receiver:
    name = r.get("name", _name, None)
    if name is None:
        raise r.error("needs a name", "add  name: oncall")
    severities = r.text_list("severities", _choice(*SEVERITIES)) or SEVERITIES
    webhook = slack = pagerduty = email = None
    if r.has("webhook"):
        w = r.child("webhook")
        webhook = WebhookReceiver(
            url=w.get("url", _url, None),
            url_file=w.get("url_file", _name, None),
            bearer_token_file=w.get("bearer_token_file", _name, None),
            send_resolved=w.get("send_resolved", _bool, True),
        )
        w.finish(hints=_INLINE_SECRET_HINTS)
        if (webhook.url is None) == (webhook.url_file is None):
            raise w.error("needs exactly one of url or url_file", "url_file needs Alertmanager 0.26 or newer")
    if r.has("slack"):
        s = r.child("slack")
        api_url_file = s.get("api_url_file", _name, None)
        channel, send_resolved = s.get("channel", _name, "#ml-alerts"), s.get("send_resolved", _bool, True)
        s.finish(hints=_INLINE_SECRET_HINTS)  # an inline secret is the likelier mistake: name it first
        if api_url_file is None:
            raise s.error("needs api_url_file", _INLINE_SECRET_HINTS["api_url"])
        slack = SlackReceiver(api_url_file, channel, send_resolved)
    if r.has("pagerduty"):
        p = r.child("pagerduty")
        routing_key_file = p.get("routing_key_file", _name, None)
        send_resolved = p.get("send_resolved", _bool, True)
        p.finish(hints=_INLINE_SECRET_HINTS)
        if routing_key_file is None:
            raise p.error("needs routing_key_file", _INLINE_SECRET_HINTS["routing_key"])
        pagerduty = PagerDutyReceiver(routing_key_file, send_resolved)
    if r.has("email"):
        e = r.child("email")
        missing = [k for k in ("to", "from", "smarthost") if not e.has(k)]
        if missing:
            raise e.error(
                f"needs {', '.join(missing)}", "add  to: team@example.org, from: ..., smarthost: host:587"
            )
        email = EmailReceiver(
            to=e.get("to", _name, ""),
            sender=e.get("from", _name, ""),
            smarthost=e.get("smarthost", _host_port, ""),
            auth_username=e.get("auth_username", _name, None),
            auth_password_file=e.get("auth_password_file", _name, None),
            require_tls=e.get("require_tls", _bool, True),
            send_resolved=e.get("send_resolved", _bool, False),
        )
        e.finish(hints=_INLINE_SECRET_HINTS)
    r.finish(hints=_INLINE_SECRET_HINTS)
    return Receiver(name, severities, webhook, slack, pagerduty, email)  # type: ignore[arg-type]


def _prometheus(r: _Reader) -> PrometheusConfig:
    labels: list[tuple[str, str]] = []
    el = r.child("external_labels")
    for key, node in el.items.items():
        el.used.add(key)
        try:
            labels.append((_label_name(key), _name(node.value)))
        except ValueError as exc:
            raise el.error(str(exc), key=key) from None
    config = PrometheusConfig(
        url=r.get("url", _url, PrometheusConfig.url),
        scrape_interval=r.get("scrape_interval", _duration, PrometheusConfig.scrape_interval),
        evaluation_interval=r.get("evaluation_interval", _duration, PrometheusConfig.evaluation_interval),
        external_labels=tuple(labels),
    )
    r.finish()
    return config


def _alertmanager(r: _Reader) -> AlertmanagerConfig:
    receivers = [_receiver(rr) for rr in r.children("receivers")]
    names = [x.name for x in receivers]
    if RESERVED_RECEIVER in names:
        raise r.error(
            f"the receiver name {RESERVED_RECEIVER!r} is reserved: mlmon routes unrouted alerts there",
            "choose another name",
            key="receivers",
        )
    for name in names:
        if names.count(name) > 1:
            raise r.error(
                f"receiver {name!r} is defined twice", "give each receiver a unique name", key="receivers"
            )
    config = AlertmanagerConfig(
        url=r.get("url", _url, AlertmanagerConfig.url),
        group_by=r.text_list("group_by", _label_name) or AlertmanagerConfig.group_by,
        group_wait=r.get("group_wait", _duration, AlertmanagerConfig.group_wait),
        group_interval=r.get("group_interval", _duration, AlertmanagerConfig.group_interval),
        repeat_interval=r.get("repeat_interval", _duration, AlertmanagerConfig.repeat_interval),
        receivers=tuple(receivers),
    )
    r.finish()
    return config


def _metric_directions(r: _Reader) -> tuple[tuple[str, MetricDirection], ...]:
    directions = _choice("min", "max")
    found: list[tuple[str, MetricDirection]] = []
    for key, node in r.items.items():
        r.used.add(key)
        try:
            found.append((_name(key), directions(node.value)))  # type: ignore[arg-type]
        except ValueError as exc:
            raise r.error(str(exc), "say which way is better: min (lower) or max (higher)", key=key) from None
    return tuple(found)


def _grafana(r: _Reader) -> GrafanaConfig:
    d = GrafanaConfig()
    config = GrafanaConfig(
        datasource_name=r.get("datasource_name", _name, d.datasource_name),
        datasource_uid=r.get("datasource_uid", _uid, d.datasource_uid),
        datasource_url=r.get("datasource_url", _url, None),
        folder=r.get("folder", _name, d.folder),
        dashboards_path=r.get("dashboards_path", _name, d.dashboards_path),
    )
    r.finish()
    return config


def _uid(value: Any) -> str:
    text = _text(value)
    if not re.match(r"^[a-zA-Z0-9_-]{1,40}$", text):
        raise ValueError(f"must be 1-40 letters, digits, '-' or '_' (a Grafana uid), got {text!r}")
    return text


def _spec(r: _Reader) -> Spec:
    version = r.get("version", _number(1, integer=True), SPEC_VERSION)
    if version != SPEC_VERSION:
        raise r.error(
            f"spec version {version} is not supported by this mlmon", "set  version: 1", key="version"
        )
    defaults = r.child("defaults")
    default_thresholds = defaults.raw("thresholds")
    defaults.finish()
    if default_thresholds is not None:  # report a mistake in the defaults there, not under every model
        _thresholds(_Reader(default_thresholds, "defaults.thresholds", r.source))
    models = [_model(mr, default_thresholds) for mr in r.children("models")]
    if not models:
        raise r.error("lists no models", "add a models: list; `mlmon init` writes an example", key="models")
    names = [m.name for m in models]
    for name in names:
        if names.count(name) > 1:
            raise r.error(f"model {name!r} is defined twice", "give each model a unique name", key="models")
    mlflow = r.child("mlflow")
    mlflow_config = MlflowConfig(
        tracking_uri=mlflow.get("tracking_uri", _tracking_uri, MlflowConfig.tracking_uri),
        registry_uri=mlflow.optional_text("registry_uri"),
        metrics=_metric_directions(mlflow.child("metrics")),
    )
    mlflow.finish()
    alerting = r.child("alerting")
    alerting_config = AlertingConfig(
        runbook_base_url=alerting.get("runbook_base_url", _name, AlertingConfig.runbook_base_url)
    )
    alerting.finish()
    spec = Spec(
        project=r.get("project", _name, "mlmon"),
        models=tuple(models),
        prometheus=_prometheus(r.child("prometheus")),
        alertmanager=_alertmanager(r.child("alertmanager")),
        grafana=_grafana(r.child("grafana")),
        mlflow=mlflow_config,
        alerting=alerting_config,
        version=version,
        source=r.source,
    )
    r.finish()
    return spec


# ------------------------------------------------------------------------------------------------------
# Entry points


def spec_from_yaml(text: str, source: str = DEFAULT_SPEC_FILE) -> Spec:
    """Validate the text of an mlmon.yaml; ``source`` names it in error messages."""
    try:
        root = yaml.compose(text, Loader=_YAML_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise SpecError(
            f"not valid YAML: {exc.problem or exc}",
            "check indentation and quoting near that line",
            where=where,
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {exc}", where=source) from None
    if root is None:
        raise SpecError("is empty", "run `mlmon init` to write an example", where=source)
    try:
        tree = _from_yaml_node(root, source)
    except RecursionError:
        raise SpecError(
            "refers to itself (a YAML alias inside its own anchor)",
            "remove the recursive alias",
            where=source,
        ) from None
    return _spec(_Reader(tree, "", source))


def spec_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Spec:
    """Validate a spec given as plain Python data (the same schema as mlmon.yaml)."""
    return _spec(_Reader(_plain_to_node(data), "", source))


def load_spec(path: str | Path = DEFAULT_SPEC_FILE) -> Spec:
    """Read and validate an mlmon.yaml file.

    >>> spec = load_spec("mlmon.yaml")  # doctest: +SKIP
    >>> [m.name for m in spec.models]  # doctest: +SKIP
    ['credit-risk']
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"{path} not found", "run `mlmon init` to write one, or pass --spec PATH", where=None
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read {path}: {exc}") from None
    return spec_from_yaml(text, source=str(path))
