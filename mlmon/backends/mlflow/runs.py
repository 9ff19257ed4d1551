"""Reading MLflow for ``mlmon compare-runs`` and ``mlmon status``: runs, experiments and registered models.

:class:`MlflowRunSource` selects what to compare (run ids, an experiment's runs, versions of a registered
model) as :class:`RunRecord` values. It reads through an :class:`MlflowReader`: for a tracking server
(``http(s)://``) :class:`RestReader` speaks MLflow's REST API itself (:mod:`mlmon.backends.mlflow.rest`), because
importing MLflow's client costs more than a whole command may; for local stores (``sqlite:///mlflow.db``, a
folder) :class:`ClientReader` goes through MLflow's client, imported only then. Both readers turn the same data
into the same values (an infinite metric, which MLflow's SQL stores keep as the largest float, comes back as
infinity), and errors into :class:`~mlmon.errors.BackendError` messages that name the run, model, version or
alias asked for.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mlmon.errors import BackendError, CompareError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from mlmon.backends.mlflow.rest import MlflowRestClient

# One page of MLflow's run search holds this many runs; a larger experiment is read page by page.
SEARCH_PAGE_SIZE = 1000
# MLflow's bulk history endpoint takes at most 100 runs and returns at most 2,500 points per run (evenly
# sampled past that, first and last step kept).
HISTORY_RUNS_PER_REQUEST = 100
HISTORY_POINTS = 2500
# History requests run this many at a time: one per shown metric adds up on a remote server.
HISTORY_CONCURRENCY = 4


@dataclass(frozen=True)
class RunRecord:
    """One thing to compare: an MLflow run, or a registered model version with its source run's data.

    ``key`` is unique among the compared records (a run id, or ``MODEL/VERSION``). Times are in
    milliseconds since the epoch, as MLflow keeps them.
    """

    key: str
    name: str
    run_id: str | None = None
    experiment_id: str | None = None
    status: str | None = None
    start_time_ms: int | None = None
    end_time_ms: int | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    model: str | None = None
    version: str | None = None
    aliases: tuple[str, ...] = ()
    stage: str | None = None

    def matches(self, wanted: str) -> bool:
        """Whether ``--baseline wanted`` names this record: its id, name, version or one of its aliases."""
        names = {
            self.key,
            self.name,
            self.run_id,
            self.version,
            *self.aliases,
            *(f"@{a}" for a in self.aliases),
        }
        return wanted in names or (
            self.run_id is not None and len(wanted) >= 6 and self.run_id.startswith(wanted)
        )


@dataclass(frozen=True)
class Selection:
    """What to compare: run ids; or an experiment's runs; or versions of a registered model.

    With ``model`` and neither ``versions`` nor ``aliases``, every version that has an alias is compared.
    ``sort_by`` takes MLflow's order-by clauses (``metrics.rmse ASC``).
    """

    run_ids: tuple[str, ...] = ()
    experiment: str | None = None
    filter: str = ""
    sort_by: tuple[str, ...] = ()
    top: int | None = None
    model: str | None = None
    versions: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class VersionInfo:
    """What the registry holds about one model version (its run's data is read separately)."""

    run_id: str | None
    status: str | None
    stage: str | None
    tags: Mapping[str, str]
    creation_timestamp: int | None


@dataclass(frozen=True)
class RegisteredModel:
    """What the registry holds about a registered model itself: its aliases and its latest versions."""

    aliases: Mapping[str, str]  # alias -> version
    # (version, legacy stage) of the newest version in each stage, as MLflow's ``latest_versions`` has them
    latest_versions: tuple[tuple[str, str], ...] = ()


class MlflowReader(Protocol):
    """The reads ``mlmon compare-runs`` and status's registry lookup need. :class:`ClientReader` and
    :class:`RestReader` implement them."""

    tracking_uri: str
    registry_uri: str  # where the registered models are: the tracking store unless told otherwise

    def run(self, run_id: str) -> RunRecord: ...

    def experiment_id(self, name: str) -> str | None: ...

    def search_runs(
        self,
        experiment_id: str,
        experiment_name: str,
        filter_string: str,
        max_results: int,
        order_by: Sequence[str],
        page_token: str | None,
    ) -> tuple[list[RunRecord], str | None]: ...

    def registered_model(self, name: str) -> RegisteredModel: ...

    def model_version(self, name: str, version: str) -> VersionInfo: ...

    def metric_histories(self, wanted: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], list[float]]: ...


RUN_HINT = "check the id (`mlflow runs list --experiment-id ID`) and --mlflow-uri"
EXPERIMENT_HINT = "check the name (`mlflow experiments search`) and --mlflow-uri"


class MlflowRunSource:
    """Selects runs and model versions through a :class:`MlflowReader`, whichever MLflow it talks to.

    ``search_pages`` counts the run-search requests made, so a benchmark can check that a large experiment
    is read in one page rather than hundreds of requests.
    """

    def __init__(self, reader: MlflowReader) -> None:
        self.reader = reader
        self.search_pages = 0

    @classmethod
    def connect(
        cls, tracking_uri: str, registry_uri: str | None = None, timeout: float | None = None
    ) -> MlflowRunSource:
        """A source over MLflow's REST API for a tracking server, over MLflow's client for anything else.

        ``registry_uri`` defaults to MLFLOW_REGISTRY_URI, then to the tracking URI, as in MLflow. ``timeout``
        bounds all of a server's answers together (REST only: MLflow's client has its own timeouts).
        """
        from mlmon.backends.mlflow.rest import MlflowRestClient, rest_supported

        registry_uri = registry_uri or os.environ.get("MLFLOW_REGISTRY_URI") or None
        if rest_supported(tracking_uri) and (registry_uri is None or rest_supported(registry_uri)):
            tracking = MlflowRestClient(tracking_uri, budget=timeout)
            registry = (
                MlflowRestClient(registry_uri, budget=timeout)
                if registry_uri not in (None, tracking_uri)
                else None
            )
            return cls(RestReader(tracking, registry))
        return cls(ClientReader.connect(tracking_uri, registry_uri))

    @property
    def tracking_uri(self) -> str:
        return self.reader.tracking_uri

    def select(self, selection: Selection) -> list[RunRecord]:
        if selection.model is not None:
            return self.model_versions(selection.model, selection.versions, selection.aliases)
        if selection.experiment is not None:
            return self.experiment_runs(
                selection.experiment, selection.filter, selection.sort_by, selection.top
            )
        return [self.reader.run(run_id) for run_id in selection.run_ids]

    def experiment_runs(
        self, name: str, filter_string: str = "", sort_by: Sequence[str] = (), top: int | None = None
    ) -> list[RunRecord]:
        experiment_id = self.reader.experiment_id(name)
        if experiment_id is None:
            raise BackendError(
                f"experiment {name!r} not found in MLflow at {_where(self.tracking_uri)}", EXPERIMENT_HINT
            )
        records: list[RunRecord] = []
        token: str | None = None
        while True:
            wanted = SEARCH_PAGE_SIZE if top is None else min(SEARCH_PAGE_SIZE, top - len(records))
            page, token = self.reader.search_runs(experiment_id, name, filter_string, wanted, sort_by, token)
            self.search_pages += 1
            records.extend(page)
            if not token or (top is not None and len(records) >= top):
                return records

    def model_versions(
        self, name: str, versions: Sequence[str] = (), aliases: Sequence[str] = ()
    ) -> list[RunRecord]:
        """Versions with their source run's params and metrics and their own tags, aliases and stage.

        Aliases come from the registered model: MLflow's model-version search leaves them out on SQL stores.
        Version numbers stay strings, as MLflow's REST API has them.
        """
        by_alias = self.reader.registered_model(name).aliases
        aliases_of: dict[str, list[str]] = {}
        for alias, version in sorted(by_alias.items()):
            aliases_of.setdefault(version, []).append(alias)
        known = ", ".join(sorted(by_alias)) or "none"
        wanted: list[str] = [str(version) for version in versions]
        for alias in aliases:
            if alias.lstrip("@") not in by_alias:
                raise BackendError(
                    f"alias {alias!r} of registered model {name!r} not found in MLflow at "
                    f"{_where(self.reader.registry_uri)}",
                    f"the model's aliases: {known}",
                )
            wanted.append(by_alias[alias.lstrip("@")])
        if not versions and not aliases:
            if not by_alias:
                raise CompareError(
                    f"registered model {name!r} has no aliased versions", "name versions with --versions 1 2"
                )
            wanted = sorted(set(by_alias.values()), key=lambda version: (len(version), version))
        records = []
        for number in dict.fromkeys(wanted):
            found = self.reader.model_version(name, number)
            run = self.reader.run(found.run_id) if found.run_id else None
            records.append(
                RunRecord(
                    key=f"{name}/{number}",
                    name=run.name if run else f"{name} v{number}",
                    run_id=found.run_id,
                    experiment_id=run.experiment_id if run else None,
                    status=run.status if run else found.status,
                    start_time_ms=run.start_time_ms if run else found.creation_timestamp,
                    end_time_ms=run.end_time_ms if run else None,
                    params=run.params if run else {},
                    metrics=run.metrics if run else {},
                    tags=found.tags,
                    model=name,
                    version=number,
                    aliases=tuple(aliases_of.get(number, ())),
                    stage=found.stage,
                )
            )
        return records

    def metric_histories(self, wanted: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], list[float]]:
        """The history of each metric in each of its runs, oldest first: a
        :data:`mlmon.compare.HistoryReader`."""
        return self.reader.metric_histories(wanted)


class ClientReader:
    """Reads through an ``MlflowClient``: local stores (sqlite, a folder), and servers that need MLflow's
    own auth plugins. mlflow is imported when the reader connects."""

    def __init__(self, client: MlflowClient, registry_uri: str | None = None) -> None:
        self.client = client
        self.tracking_uri = str(client.tracking_uri)
        # Named in errors about registered models; MLflow's client reads MLFLOW_REGISTRY_URI itself too.
        self.registry_uri = registry_uri or os.environ.get("MLFLOW_REGISTRY_URI") or self.tracking_uri

    @classmethod
    def connect(cls, tracking_uri: str | None = None, registry_uri: str | None = None) -> ClientReader:
        from mlmon.backends.mlflow.client import mlflow_client

        return cls(mlflow_client(tracking_uri, registry_uri), registry_uri)

    def run(self, run_id: str) -> RunRecord:
        from mlmon.backends.mlflow.client import mlflow_errors

        with mlflow_errors(f"run {run_id!r}", self.tracking_uri, RUN_HINT):
            return _run_record(self.client.get_run(run_id))

    def experiment_id(self, name: str) -> str | None:
        from mlmon.backends.mlflow.client import mlflow_errors

        with mlflow_errors(f"experiment {name!r}", self.tracking_uri):
            experiment = self.client.get_experiment_by_name(name)
        return None if experiment is None else str(experiment.experiment_id)

    def search_runs(
        self,
        experiment_id: str,
        experiment_name: str,
        filter_string: str,
        max_results: int,
        order_by: Sequence[str],
        page_token: str | None,
    ) -> tuple[list[RunRecord], str | None]:
        from mlmon.backends.mlflow.client import mlflow_errors

        what = f"the runs of experiment {experiment_name!r}"
        with mlflow_errors(what, self.tracking_uri, "check --filter"):
            page = self.client.search_runs(
                [experiment_id],
                filter_string=filter_string,
                max_results=max_results,
                order_by=list(order_by) or None,
                page_token=page_token,
            )
        return [_run_record(run) for run in page], page.token or None

    def registered_model(self, name: str) -> RegisteredModel:
        from mlmon.backends.mlflow.client import mlflow_errors

        with mlflow_errors(f"registered model {name!r}", self.registry_uri):
            registered = self.client.get_registered_model(name)
        return RegisteredModel(
            aliases={str(alias): str(version) for alias, version in dict(registered.aliases or {}).items()},
            latest_versions=tuple(
                (str(version.version), str(version.current_stage or ""))
                for version in registered.latest_versions or []
            ),
        )

    def model_version(self, name: str, version: str) -> VersionInfo:
        from mlmon.backends.mlflow.client import mlflow_errors

        with mlflow_errors(f"version {version} of registered model {name!r}", self.registry_uri):
            found = self.client.get_model_version(name, version)
        return VersionInfo(
            run_id=found.run_id or None,
            status=str(found.status) if found.status else None,
            stage=_stage(found.current_stage),
            tags={str(key): str(value) for key, value in dict(found.tags or {}).items()},
            creation_timestamp=found.creation_timestamp,
        )

    def metric_histories(self, wanted: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], list[float]]:
        from mlmon.backends.mlflow.client import mlflow_errors

        found: dict[tuple[str, str], list[float]] = {}
        for key, run_ids in wanted.items():
            for run_id in run_ids:
                with mlflow_errors(f"the history of metric {key!r} in run {run_id!r}", self.tracking_uri):
                    points = self.client.get_metric_history(run_id, key)
                found[run_id, key] = _history((point.step, point.timestamp, point.value) for point in points)
        return found


class RestReader:
    """Reads a tracking server through MLflow's REST API (:mod:`mlmon.backends.mlflow.rest`), without importing mlflow.

    Histories come from ``metrics/get-history-bulk-interval`` (one request per shown metric and 100 runs,
    at most :data:`HISTORY_POINTS` points per run); a server without that endpoint (MLflow before 2.9) is
    asked per run with ``metrics/get-history``.
    """

    def __init__(self, tracking: MlflowRestClient, registry: MlflowRestClient | None = None) -> None:
        self.tracking = tracking
        self.registry = registry or tracking
        self.tracking_uri = tracking.tracking_uri
        self.registry_uri = self.registry.tracking_uri

    @property
    def requests_made(self) -> int:
        return self.tracking.requests_made + (
            self.registry.requests_made if self.registry is not self.tracking else 0
        )

    def run(self, run_id: str) -> RunRecord:
        answer = self.tracking.get(
            "runs/get", {"run_id": run_id}, what=f"run {run_id!r}", missing_hint=RUN_HINT
        )
        return _run_record_from_json(answer.get("run", {}))

    def experiment_id(self, name: str) -> str | None:
        from mlmon.backends.mlflow.rest import MlflowNotFound

        try:
            answer = self.tracking.get(
                "experiments/get-by-name", {"experiment_name": name}, what=f"experiment {name!r}"
            )
        except MlflowNotFound:
            return None
        return str(answer["experiment"]["experiment_id"])

    def search_runs(
        self,
        experiment_id: str,
        experiment_name: str,
        filter_string: str,
        max_results: int,
        order_by: Sequence[str],
        page_token: str | None,
    ) -> tuple[list[RunRecord], str | None]:
        body: dict[str, Any] = {"experiment_ids": [experiment_id], "max_results": max_results}
        if filter_string:
            body["filter"] = filter_string
        if order_by:
            body["order_by"] = list(order_by)
        if page_token:
            body["page_token"] = page_token
        what = f"the runs of experiment {experiment_name!r}"
        answer = self.tracking.post("runs/search", body, what=what, missing_hint="check --filter")
        runs = [_run_record_from_json(run) for run in answer.get("runs", [])]
        return runs, answer.get("next_page_token") or None

    def registered_model(self, name: str) -> RegisteredModel:
        answer = self.registry.get("registered-models/get", {"name": name}, what=f"registered model {name!r}")
        found = answer.get("registered_model", {})
        return RegisteredModel(
            aliases={str(item["alias"]): str(item["version"]) for item in found.get("aliases", [])},
            latest_versions=tuple(
                (str(item["version"]), str(item.get("current_stage", "")))
                for item in found.get("latest_versions", [])
            ),
        )

    def model_version(self, name: str, version: str) -> VersionInfo:
        what = f"version {version} of registered model {name!r}"
        answer = self.registry.get("model-versions/get", {"name": name, "version": version}, what=what)
        found = answer.get("model_version", {})
        created = found.get("creation_timestamp")
        return VersionInfo(
            run_id=found.get("run_id") or None,
            status=found.get("status") or None,
            stage=_stage(found.get("current_stage")),
            tags=_pairs(found.get("tags")),
            creation_timestamp=int(created) if created is not None else None,
        )

    def metric_histories(self, wanted: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], list[float]]:
        tasks = [
            (key, tuple(run_ids[start : start + HISTORY_RUNS_PER_REQUEST]))
            for key, run_ids in wanted.items()
            for start in range(0, len(run_ids), HISTORY_RUNS_PER_REQUEST)
        ]
        found: dict[tuple[str, str], list[float]] = {}
        if len(tasks) == 1:
            found.update(self._bulk_history(*tasks[0]))
            return found
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(HISTORY_CONCURRENCY) as pool:
            for part in pool.map(lambda task: self._bulk_history(*task), tasks):
                found.update(part)
        return found

    def _bulk_history(self, key: str, run_ids: tuple[str, ...]) -> dict[tuple[str, str], list[float]]:
        from mlmon.backends.mlflow.rest import EndpointMissing

        what = f"the history of metric {key!r}"
        params = {"run_ids": run_ids, "metric_key": key, "max_results": str(HISTORY_POINTS)}
        try:
            answer = self.tracking.get("metrics/get-history-bulk-interval", params, what=what)
        except EndpointMissing:
            return {(run_id, key): self._history(run_id, key) for run_id in run_ids}
        points: dict[str, list[tuple[int, int, Any]]] = {run_id: [] for run_id in run_ids}
        for point in answer.get("metrics", []):
            points.setdefault(point["run_id"], []).append(_point(point))
        return {(run_id, key): _history(found) for run_id, found in points.items()}

    def _history(self, run_id: str, key: str) -> list[float]:
        what = f"the history of metric {key!r} in run {run_id!r}"
        params = {"run_id": run_id, "metric_key": key}
        points: list[tuple[int, int, Any]] = []
        while True:
            answer = self.tracking.get("metrics/get-history", params, what=what)
            points.extend(_point(point) for point in answer.get("metrics", []))
            token = answer.get("next_page_token")
            if not token:
                return _history(points)
            params = {**params, "page_token": token}


def _where(tracking_uri: str) -> str:
    from mlmon.backends.mlflow.client import redact

    return redact(tracking_uri)


def from_store(value: float) -> float:
    """MLflow's SQL stores save an infinite metric as the largest float; turn it back into infinity."""
    return math.copysign(math.inf, value) if abs(value) == sys.float_info.max else value


def _stage(stage: object) -> str | None:
    """A legacy registry stage, or None when the version has none (MLflow says "None")."""
    return None if stage in (None, "", "None") else str(stage)


def _history(points: Iterable[tuple[int, int, Any]]) -> list[float]:
    """(step, timestamp, value) triples as values in the order they were logged."""
    return [from_store(float(value)) for _, _, value in sorted(points, key=lambda point: point[:2])]


def _point(point: Mapping[str, Any]) -> tuple[int, int, Any]:
    return int(point.get("step", 0)), int(point.get("timestamp", 0)), point.get("value", math.nan)


def _pairs(items: object) -> dict[str, str]:
    """MLflow's JSON lists of ``{"key": ..., "value": ...}`` as a dict; a repeated key keeps its last value."""
    if not isinstance(items, list):
        return {}
    return {str(item["key"]): str(item.get("value", "")) for item in items}


def _run_record(run: Run) -> RunRecord:
    info, data = run.info, run.data
    return RunRecord(
        key=info.run_id,
        name=info.run_name or info.run_id,
        run_id=info.run_id,
        experiment_id=str(info.experiment_id),
        status=info.status,
        start_time_ms=info.start_time,
        end_time_ms=info.end_time,
        params=dict(data.params),
        metrics={key: from_store(float(value)) for key, value in data.metrics.items()},
        tags=dict(data.tags),
    )


def _run_record_from_json(run: Mapping[str, Any]) -> RunRecord:
    """A run as MLflow's REST API has it: the same record :func:`_run_record` makes from the client's Run.

    Values that JSON cannot hold come as strings ("NaN", "Infinity"), which float() reads.
    """
    info, data = run.get("info", {}), run.get("data", {})
    run_id = str(info.get("run_id") or info.get("run_uuid"))
    start, end = info.get("start_time"), info.get("end_time")
    return RunRecord(
        key=run_id,
        name=info.get("run_name") or run_id,
        run_id=run_id,
        experiment_id=str(info.get("experiment_id")),
        status=info.get("status"),
        start_time_ms=int(start) if start is not None else None,
        end_time_ms=int(end) if end is not None else None,
        params=_pairs(data.get("params")),
        metrics={
            str(metric["key"]): from_store(float(metric.get("value", math.nan)))
            for metric in data.get("metrics", [])
        },
        tags=_pairs(data.get("tags")),
    )
