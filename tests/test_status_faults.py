"""`mlmon status --json` against a real HTTP server on 127.0.0.1 that answers like Prometheus, scripted per
test: server errors, timeouts, malformed answers, NaN and infinite values, empty and partial results, a
refused joined query, credentials, and the number of requests status makes whatever the number of models.

The scripted server reads the joined query the way Prometheus would see it: each part carries its check
(and window) in the ``mlmon_check`` and ``mlmon_window`` labels it sets with label_replace, so the answer
is the samples scripted for those checks, labelled like Prometheus' own answer."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlmon import rules
from mlmon.spec import spec_from_dict
from mlmon.status import CHECK_LABEL, PER_FEATURE_CHECKS, WINDOW_LABEL, seasonal_key
from tests.fake_prometheus import Answer, FakePrometheus, Request, serving, vector
from tests.helpers import CLI_ENV, run_cli
from tests.servers import poll

WINDOW = "1h"  # drift and feedback window of every model here
FEATURES = ("income", "age", "region")
QUERY = "/api/v1/query"
PASSWORD = "s3cret-p@ss"
TAG = re.compile(rf'"{CHECK_LABEL}", "([^"]*)"')
WINDOW_TAG = re.compile(rf'"{WINDOW_LABEL}", "([^"]*)"')

# Check -> value of a healthy model, as Prometheus writes numbers. Per-feature checks get one sample per
# feature; the windowed ones are asked for the window above.
HEALTHY: dict[str, str] = {
    "targets_up": "1",
    "targets_total": "1",
    "request_rate": "2.5",
    "error_ratio": "0",
    "model_age": "86400",
    "served_version": "1",
    "reference_confidence": "0.9",
    "reference_accuracy": "0.85",
    "latency_p50": "0.01",
    "latency_p95": "0.05",
    "latency_p99": "0.1",
    "feature_psi": "0.01",
    "feature_drift_z": "1.5",
    "feature_observations": "500",
    "missing_ratio": "0",
    "missing_z": "0",
    "missing_rise": "0",
    "prediction_psi": "0.02",
    "prediction_observations": "500",
    "prediction_drift_z": "1.2",
    "confidence": "0.88",
    "confidence_z": "0.5",
    "confidence_count": "500",
    "accuracy": "0.84",
    "feedback_count": "200",
    "accuracy_z": "0.2",
    "f1": "0.8",
    "invalid_input": "0",
}
PER_FEATURE = {
    "feature_psi",
    "feature_drift_z",
    "feature_observations",
    "missing_ratio",
    "missing_z",
    "missing_rise",
}
# The instant queries of one run: each per-feature check in a query of its own, every other check joined.
QUERIES = 1 + len(PER_FEATURE_CHECKS)
WINDOWED = PER_FEATURE | {
    "invalid_input",
    "prediction_psi",
    "prediction_observations",
    "prediction_drift_z",
    "confidence",
    "confidence_z",
    "confidence_count",
    "accuracy",
    "accuracy_z",
    "feedback_count",
    "f1",
}


def model_names(count: int) -> list[str]:
    return [f"model-{i:02d}" for i in range(count)]


def spec_dict(models: list[str], seasonal: Sequence[str] = ()) -> dict[str, Any]:
    """The spec of ``models``; those in ``seasonal`` judge drift against the same window a day earlier."""
    return {
        "defaults": {
            "thresholds": {"drift_window": WINDOW, "feedback_window": WINDOW, "min_drift_samples": 100}
        },
        "models": [
            {
                "name": name,
                "targets": [f"127.0.0.1:{8000 + i}"],
                "features": list(FEATURES),
                **({"thresholds": {"drift_baseline": "seasonal"}} if name in seasonal else {}),
            }
            for i, name in enumerate(models)
        ],
    }


def tags(promql: str) -> list[tuple[str, str]]:
    """The (check, window) of each part of a joined query, in order."""
    found = []
    for part in promql.split("\nor\n"):
        check = TAG.search(part)
        assert check is not None, f"a part of the query carries no {CHECK_LABEL} label: {part}"
        window = WINDOW_TAG.search(part)
        found.append((check.group(1), window.group(1) if window else ""))
    return found


@dataclass
class StatusServer:
    """The scripted Prometheus: ``values[(model, check)]`` is the value status reads for that check (for
    per-feature checks, a map of feature to value); what is not there is not answered, like a series
    Prometheus does not have."""

    fake: FakePrometheus
    models: list[str]
    # (model, check), or (model, check, window) for an answer that differs by window.
    values: dict[tuple[str, ...], Any] = field(default_factory=dict)
    seasonal: Sequence[str] = ()  # models with drift_baseline: seasonal
    refused: set[str] = field(default_factory=set)  # checks whose part Prometheus refuses (HTTP 400)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def healthy(cls, fake: FakePrometheus, models: list[str]) -> StatusServer:
        server = cls(fake, models)
        for model in models:
            for check, value in HEALTHY.items():
                server.values[(model, check)] = (
                    {f: value for f in FEATURES} if check in PER_FEATURE else value
                )
        return server

    def install(self) -> None:
        spec = spec_from_dict(spec_dict(self.models, self.seasonal))
        recorded = [
            {"name": rule.record, "type": "recording", "query": rule.expr}
            for group in rules.recording_rules(spec)
            for rule in group.rules
            if isinstance(rule, rules.RecordingRule)
        ]
        self.fake.answer("/api/v1/rules", {"status": "success", "data": {"groups": [{"rules": recorded}]}})
        self.fake.routes[QUERY] = self.query
        self.fake.routes["/api/v1/query_range"] = self.query_range
        self.fake.routes["/api/v1/alerts"] = lambda _: Answer(
            {"status": "success", "data": {"alerts": self.alerts}}
        )

    def samples(self, check: str, window: str) -> list[dict[str, Any]]:
        out = []
        for model in self.models:
            value = self.values.get((model, check, window), self.values.get((model, check)))
            if value is None:
                continue
            labels = {CHECK_LABEL: check} | ({WINDOW_LABEL: window} if window else {})
            if check == "exported_model":  # the value is the name the target exports
                labels |= {"mlmon_model": model, "exported_model": value}
                value = "1"
            elif check in ("targets_up", "targets_total"):
                labels["mlmon_model"] = model
            else:
                labels["model"] = model
            if check == "served_version":
                labels["version"] = "1"
            if isinstance(value, dict) and check == "invalid_input":  # keyed by (feature, reason)
                out += [
                    {"metric": labels | {"feature": f, "reason": why}, "value": [1700000000, v]}
                    for (f, why), v in value.items()
                ]
            elif isinstance(value, dict):
                out += [
                    {"metric": labels | {"feature": f}, "value": [1700000000, v]} for f, v in value.items()
                ]
            else:
                out.append({"metric": labels, "value": [1700000000, value]})
        return out

    def query(self, request: Request) -> Answer:
        parts = tags(request.form["query"][0])
        refused = [check for check, _ in parts if check in self.refused]
        if refused:
            error = f"parse error: unknown function in the part for {', '.join(refused)}"
            return Answer({"status": "error", "errorType": "bad_data", "error": error}, 400)
        return Answer(vector(*(s for check, window in parts for s in self.samples(check, window))))

    def query_range(self, request: Request) -> Answer:
        series = [
            {
                "metric": {"model": model, CHECK_LABEL: check},
                "values": [[1700000000 + 120 * i, str(0.1 * i)] for i in range(30)],
            }
            for check, _ in tags(request.form["query"][0])
            for model in self.models
        ]
        return Answer({"status": "success", "data": {"resultType": "matrix", "result": series}})

    def paths(self) -> list[str]:
        return [r.path for r in self.fake.requests]


@pytest.fixture
def fake() -> Iterator[FakePrometheus]:
    with serving(FakePrometheus("")) as served:
        yield served


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real, empty MLflow sqlite store: MLflow answers, so a Prometheus fault is the only gap."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    MlflowClient(uri).search_registered_models(max_results=1)
    return uri


def status(
    fake: FakePrometheus,
    tmp_path: Path,
    models: list[str],
    *args: str,
    mlflow_uri: str | None = None,
    env: dict[str, str] | None = None,
    seasonal: Sequence[str] = (),
) -> tuple[int, dict[str, Any], str, str]:
    """Run `mlmon status --json` against the scripted server: (exit code, report, stdout, stderr)."""
    spec = tmp_path / "mlmon.yaml"
    spec.write_text(yaml.safe_dump(spec_dict(models, seasonal)))
    code, out, err = run_cli(
        "status",
        "--json",
        "--spec",
        str(spec),
        "--prometheus-url",
        fake.url,
        "--mlflow-uri",
        mlflow_uri or f"sqlite:///{tmp_path / 'missing.db'}",
        # Room for the scripted server, which answers from this process: these tests are not about time
        # (those that are pass a --timeout of their own, which comes later and wins).
        "--timeout",
        "5",
        *args,
        cwd=tmp_path,
        env=env,
    )
    assert "Traceback" not in out + err
    assert out, err
    return code, json.loads(out), out, err


def human_view(
    fake: FakePrometheus, tmp_path: Path, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run `mlmon status` (the terminal view, which also asks for the sparklines) with the spec status()
    wrote: (exit code, stdout, stderr)."""
    code, out, err = run_cli(
        "status",
        "--spec",
        str(tmp_path / "mlmon.yaml"),
        "--prometheus-url",
        fake.url,
        "--mlflow-uri",
        f"sqlite:///{tmp_path / 'missing.db'}",
        "--timeout",
        "5",
        cwd=tmp_path,
        env=env,
    )
    assert "Traceback" not in out + err
    return code, out, err


def model_of(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in report["models"] if m["name"] == name)


def checks(model: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [c for c in model["checks"] if c["name"] == name]


def check_of(model: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = checks(model, name)
    return found


# ------------------------------------------------------------------------------------------------------
# The scripted server itself: a healthy answer gives OK everywhere, so the faults below are the only cause


def test_a_target_exporting_another_model_name_is_named_and_warns(
    fake: FakePrometheus, tmp_path: Path
) -> None:
    server = StatusServer.healthy(fake, ["a", "b"])
    server.values[("a", "exported_model")] = "a"  # the right name: no check
    server.values[("b", "exported_model")] = "b_typo"
    server.install()
    code, report, _, err = status(fake, tmp_path, ["a", "b"])
    assert code == 0, err
    assert checks(model_of(report, "a"), "exported_model") == []
    check = check_of(model_of(report, "b"), "exported_model")
    assert check["verdict"] == "WARN"
    assert "'b_typo', not 'b'" in check["detail"]
    assert model_of(report, "b")["verdict"] == "WARN"


def test_invalid_input_is_a_warning_that_names_the_unknown_features(
    fake: FakePrometheus, tmp_path: Path
) -> None:
    server = StatusServer.healthy(fake, ["a"])
    server.values[("a", "invalid_input")] = {
        ("__unknown__", "unknown_feature"): "0",
        ("mean_radius", "unknown_feature"): "1",
        ("income", "wrong_type"): "0.02",
        **{(f"junk{i}", "unknown_feature"): "0.5" for i in range(6)},
    }
    server.install()
    code, report, _, err = status(fake, tmp_path, ["a"], "--check", "--strict")
    assert code == 3, err
    check = check_of(model_of(report, "a"), "invalid_input")
    assert (check["verdict"], check["value"]) == ("WARN", 1.0)
    # Unknown names first, the largest share first, five named and the rest counted.
    assert check["detail"].startswith("unknown feature 'mean_radius' (1/request); unknown feature 'junk0'")
    assert check["detail"].endswith("; and 3 more")
    assert model_of(report, "a")["verdict"] == "WARN"


def test_a_healthy_answer_gives_ok_for_every_check(fake: FakePrometheus, tmp_path: Path) -> None:
    StatusServer.healthy(fake, ["a", "b"]).install()
    code, report, _, err = status(fake, tmp_path, ["a", "b"], "--check")
    assert code == 0, err
    assert report["prometheus"] == {"url": fake.url, "ok": True, "error": None, "hint": None}
    for name in ("a", "b"):
        model = model_of(report, name)
        assert model["verdict"] == "OK"
        prometheus_checks = [c for c in model["checks"] if c["name"] != "registry"]
        assert {c["verdict"] for c in prometheus_checks} == {"OK"}, prometheus_checks
        assert {c["feature"] for c in checks(model, "feature_psi")} == set(FEATURES)
        assert check_of(model, "registry")["verdict"] == "NO DATA"


# ------------------------------------------------------------------------------------------------------
# Server errors, timeouts, answers that are not Prometheus'


def test_server_error_marks_prometheus_down_and_check_exits_1(
    fake: FakePrometheus, tmp_path: Path, mlflow_store: str
) -> None:
    server = StatusServer.healthy(fake, ["a"])
    server.install()
    fake.answer(QUERY, "upstream connect error", 502, "text/plain")
    code, report, _, err = status(fake, tmp_path, ["a"], mlflow_uri=mlflow_store)
    assert code == 0, err
    prometheus = report["prometheus"]
    assert prometheus["ok"] is False
    assert "HTTP 502" in prometheus["error"] and "upstream connect error" in prometheus["error"]
    assert prometheus["hint"] == "the server or a proxy in front of it failed; see its logs"
    assert "HTTP 502" in err  # the gap is also said on stderr
    [model] = report["models"]
    assert model["verdict"] == "NO DATA"
    assert {c["name"]: c["detail"] for c in model["checks"] if c["name"] != "registry"} == {
        "request_rate": "Prometheus unreachable",
        "targets_up": "Prometheus unreachable",
    }
    # One request per question and no retry: the rules first, then the queries (all failed) and the alerts
    # sent alongside them.
    assert server.paths()[0] == "/api/v1/rules"
    assert Counter(server.paths()) == {"/api/v1/rules": 1, QUERY: QUERIES, "/api/v1/alerts": 1}

    fake.requests.clear()
    code, report, _, err = status(fake, tmp_path, ["a"], "--check", mlflow_uri=mlflow_store)
    assert code == 1
    assert "cannot check the models" in err and "HTTP 502" in err
    assert Counter(server.paths()) == {"/api/v1/rules": 1, QUERY: QUERIES, "/api/v1/alerts": 1}


def test_server_error_with_mlflow_also_missing_exits_1_with_both_reasons(
    fake: FakePrometheus, tmp_path: Path
) -> None:
    StatusServer.healthy(fake, ["a"]).install()
    fake.answer(QUERY, "Service Unavailable", 503, "text/plain")
    code, report, _, err = status(fake, tmp_path, ["a"])
    assert code == 1
    assert "neither Prometheus nor MLflow answered" in err and "HTTP 503" in err
    assert report["prometheus"]["ok"] is False and report["mlflow"]["ok"] is False
    assert "no MLflow store at" in report["mlflow"]["error"]


def test_without_a_spec_prometheus_down_exits_1_since_no_model_is_known(
    fake: FakePrometheus, tmp_path: Path, mlflow_store: str
) -> None:
    StatusServer.healthy(fake, ["a"]).install()
    fake.answer("/api/v1/rules", "Service Unavailable", 503, "text/plain")
    fake.answer(QUERY, "Service Unavailable", 503, "text/plain")
    code, out, err = run_cli(
        "status", "--prometheus-url", fake.url, "--mlflow-uri", mlflow_store, "--timeout", "1", cwd=tmp_path
    )
    assert code == 1, out + err
    assert "no model to show: Prometheus did not answer" in err and "HTTP 503" in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("slow_path", ["/api/v1/rules", QUERY])
def test_a_server_that_does_not_answer_in_time_gives_a_clear_error_not_a_hang(
    fake: FakePrometheus, tmp_path: Path, slow_path: str
) -> None:
    server = StatusServer.healthy(fake, ["a"])
    server.install()
    answered = threading.Event()
    normal = fake.routes[slow_path]

    def slow(request: Request) -> Answer:
        answer = normal(request)
        answer.delay = 3.0
        # Set once the delay is over, whether or not the client is still there to read the answer.
        threading.Timer(3.0, answered.set).start()
        return answer

    fake.routes[slow_path] = slow
    code, report, _, err = status(fake, tmp_path, ["a"], "--timeout", "0.5")
    # Status gave up before the server answered: the delay, not the answer, ended the wait.
    assert not answered.is_set()
    assert code == 1  # MLflow is missing too: nothing to show
    assert report["prometheus"]["ok"] is False
    # Each request waits 0.5 s at most, or what is left of the 0.75 s allowed for all of them.
    error = report["prometheus"]["error"]
    waited = re.fullmatch(
        rf"cannot reach Prometheus at {re.escape(fake.url)} \(no whole answer within ([0-9.]+) s\)", error
    )
    assert waited is not None and 0 < float(waited.group(1)) <= 0.5, error
    assert "no whole answer within" in err
    # Nothing asked twice: one rules request, or each query once.
    assert server.paths().count(slow_path) == (1 if slow_path == "/api/v1/rules" else QUERIES)


@pytest.mark.parametrize(
    ("body", "content_type", "shown"),
    [
        ("{not json", "application/json", "{not json"),
        ("<html><body>Welcome to nginx!</body></html>", "text/html", "Welcome to nginx!"),
        ({"status": "success", "data": {"resultType": "vector"}}, "application/json", "result is not a list"),
        ({"result": []}, "application/json", '{"result": []}'),
    ],
)
def test_an_answer_that_is_not_prometheus_says_so(
    fake: FakePrometheus, tmp_path: Path, body: Any, content_type: str, shown: str
) -> None:
    StatusServer.healthy(fake, ["a"]).install()
    fake.answer(QUERY, body, 200, content_type)
    _, report, _, err = status(fake, tmp_path, ["a"])
    error = report["prometheus"]["error"]
    assert report["prometheus"]["ok"] is False
    assert "is not a Prometheus API response" in err
    assert error.startswith(
        f"Prometheus at {fake.url} answered /api/v1/query with something that is not a Prometheus API response"
    )
    assert shown in error
    assert "/api/v1/query" in report["prometheus"]["hint"]


# ------------------------------------------------------------------------------------------------------
# Values: NaN, infinity, nothing, some things


def test_nan_is_no_data_and_infinite_latency_is_crit_with_null_values(
    fake: FakePrometheus, tmp_path: Path
) -> None:
    server = StatusServer.healthy(fake, ["a", "b"])
    server.values[("a", "error_ratio")] = "NaN"  # 0/0: no requests in the rate window
    server.values[("a", "feature_psi")] = {"income": "NaN", "age": "0.5", "region": "0.01"}
    server.values[("a", "feature_drift_z")] = {"income": "NaN", "age": "9", "region": "1"}
    server.values[("a", "latency_p99")] = "+Inf"  # histogram_quantile beyond the last finite bucket
    server.values[("a", "latency_p95")] = "+Inf"
    server.values[("b", "prediction_psi")] = "NaN"
    server.values[("b", "accuracy")] = "-Inf"
    server.values[("b", "accuracy_z")] = "NaN"  # what the rules make of an infinite accuracy
    server.install()
    code, report, out, err = status(fake, tmp_path, ["a", "b"])
    assert code == 0, err  # MLflow is missing, but Prometheus answered
    assert report["prometheus"]["ok"] is True, report["prometheus"]
    assert "NaN" not in out and "Infinity" not in out  # JSON has neither: they are null

    a = model_of(report, "a")
    assert check_of(a, "error_ratio") | {"detail": ""} == {
        "name": "error_ratio",
        "feature": None,
        "value": None,
        "threshold": 0.05,
        "verdict": "NO DATA",
        "detail": "",
    }
    p99, p95 = check_of(a, "latency_p99"), check_of(a, "latency_p95")
    assert (p99["value"], p99["verdict"], p99["threshold"]) == (None, "CRIT", 1.0)
    assert (p95["value"], p95["verdict"], p95["threshold"]) == (None, "WARN", 0.5)
    psi = checks(a, "feature_psi")
    # The most drifted first; NaN (no data) last.
    assert [(c["feature"], c["value"], c["verdict"]) for c in psi] == [
        ("age", 0.5, "CRIT"),
        ("region", 0.01, "OK"),
        ("income", None, "NO DATA"),
    ]
    assert a["verdict"] == "CRIT"

    b = model_of(report, "b")
    assert (check_of(b, "prediction_psi")["value"], check_of(b, "prediction_psi")["verdict"]) == (
        None,
        "NO DATA",
    )
    # Accuracy of -Inf is below any floor: it is judged, not hidden (without evidence, and says so).
    assert (check_of(b, "accuracy")["value"], check_of(b, "accuracy")["verdict"]) == (None, "WARN")
    assert "no evidence recorded" in check_of(b, "accuracy")["detail"]

    # The human view prints the same values without crashing.
    code, view, err = human_view(fake, tmp_path)
    assert code == 0
    assert re.search(r"latency_p99\s+inf\s+1\s+CRIT", view), view
    assert re.search(r"feature_psi income\s+nan\s+0\.01\s+NO DATA", view), view


def test_empty_results_give_no_data_for_every_model_and_check_passes(
    fake: FakePrometheus, tmp_path: Path, mlflow_store: str
) -> None:
    server = StatusServer(fake, ["a", "b"])
    server.install()
    for args in ((), ("--check",), ("--check", "--strict")):
        code, report, _, err = status(fake, tmp_path, ["a", "b"], *args, mlflow_uri=mlflow_store)
        # --check fails on CRIT (and WARN with --strict): NO DATA is neither.
        assert code == 0, (args, err)
        assert report["prometheus"]["ok"] is True
        assert [m["verdict"] for m in report["models"]] == ["NO DATA", "NO DATA"]
        for model in report["models"]:
            assert {c["verdict"] for c in model["checks"]} == {"NO DATA"}
            assert check_of(model, "targets_up")["detail"] == "Prometheus scrapes no target for it"
            assert check_of(model, "request_rate")["detail"] == "no requests"
            assert [c["feature"] for c in checks(model, "feature_psi")] == list(FEATURES)
            assert {c["detail"] for c in checks(model, "feature_psi")} == {"no observations in the window"}


def test_partial_data_judges_what_was_answered_and_says_no_data_for_the_rest(
    fake: FakePrometheus, tmp_path: Path
) -> None:
    server = StatusServer(fake, ["a", "b", "c"])
    # a: traffic checks only (no drift rules yet, no feedback); b: drift on one feature only, too few
    # observations on another; c: nothing at all.
    for check in ("targets_up", "targets_total", "request_rate", "error_ratio", "latency_p95"):
        server.values[("a", check)] = HEALTHY[check]
    server.values[("a", "error_ratio")] = "0.2"
    for check in ("targets_up", "targets_total", "request_rate"):
        server.values[("b", check)] = HEALTHY[check]
    server.values[("b", "feature_psi")] = {"income": "0.15", "age": "0.9"}
    server.values[("b", "feature_drift_z")] = {"income": "7", "age": "9"}
    server.values[("b", "feature_observations")] = {"income": "500", "age": "20"}
    server.install()
    code, report, _, err = status(fake, tmp_path, ["a", "b", "c"])
    assert code == 0 and report["prometheus"]["ok"] is True, err

    a = model_of(report, "a")
    assert (check_of(a, "error_ratio")["value"], check_of(a, "error_ratio")["verdict"]) == (0.2, "CRIT")
    assert check_of(a, "latency_p95")["verdict"] == "OK" and check_of(a, "request_rate")["verdict"] == "OK"
    answered = {"targets_up", "request_rate", "error_ratio", "latency_p95"}
    for c in a["checks"]:
        if c["name"] not in answered:
            assert (c["value"], c["verdict"]) == (None, "NO DATA"), c
    assert a["verdict"] == "CRIT"

    b = model_of(report, "b")
    psi = {c["feature"]: c for c in checks(b, "feature_psi")}
    assert (psi["income"]["value"], psi["income"]["verdict"]) == (0.15, "WARN")
    # A high PSI over 20 observations is noise: NO DATA, and the detail says why.
    assert (psi["age"]["value"], psi["age"]["verdict"]) == (0.9, "NO DATA")
    assert psi["age"]["detail"] == "20 observations in the window, fewer than min_drift_samples (100)"
    assert (psi["region"]["value"], psi["region"]["verdict"]) == (None, "NO DATA")
    assert b["verdict"] == "WARN"

    c = model_of(report, "c")
    assert c["verdict"] == "NO DATA" and {ch["verdict"] for ch in c["checks"]} == {"NO DATA"}


def test_model_level_signals_need_evidence_as_their_alerts_do(fake: FakePrometheus, tmp_path: Path) -> None:
    """a: a large PSI of the predictions and an accuracy far below the reference, both on evidence too weak
    (z 2): OK, and the detail says how sure; b: a small PSI and drop on strong evidence (z 9): WARN."""
    server = StatusServer.healthy(fake, ["a", "b"])
    for model, z, psi, accuracy in (("a", "2", "0.4", "0.6"), ("b", "9", "0.05", "0.78")):
        server.values[(model, "prediction_psi")] = psi
        server.values[(model, "prediction_drift_z")] = z
        server.values[(model, "accuracy")] = accuracy  # the reference is 0.85, the floor 0.8
        server.values[(model, "accuracy_z")] = z
    server.install()
    _, report, _, err = status(fake, tmp_path, ["a", "b"])
    assert report["prometheus"]["ok"] is True, err
    a, b = model_of(report, "a"), model_of(report, "b")
    assert [check_of(a, name)["verdict"] for name in ("prediction_psi", "accuracy")] == ["OK", "OK"]
    assert [check_of(b, name)["verdict"] for name in ("prediction_psi", "accuracy")] == ["WARN", "WARN"]
    assert check_of(a, "accuracy")["detail"].startswith(
        "z 2.0 below the reference (alerts above 4.65 with a drop above 0.05), 200 feedback events"
    )
    assert check_of(b, "prediction_psi")["detail"].startswith("z 9.0 (alerts above 4.65 with PSI above 0.01)")


def test_a_seasonal_model_is_judged_against_the_same_window_a_period_earlier(
    fake: FakePrometheus, tmp_path: Path
) -> None:
    """a: PSI and z against yesterday's window decide (not those against the reference, which the healthy
    answers keep low); b: a version younger than the period has no window a day earlier: NO DATA, and why."""
    server = StatusServer.healthy(fake, ["a", "b"])
    server.seasonal = ("a", "b")
    earlier = seasonal_key(WINDOW, "1d")
    server.values[("a", "feature_psi", earlier)] = {"income": "0.05", "age": "0.001", "region": "0.3"}
    server.values[("a", "feature_drift_z", earlier)] = {"income": "9", "age": "1", "region": "12"}
    server.values[("b", "feature_observations", earlier)] = {}
    server.install()
    code, report, _, err = status(fake, tmp_path, ["a", "b"], seasonal=("a", "b"))
    assert report["prometheus"]["ok"] is True, err
    queries = [tags(r.form["query"][0]) for r in fake.requests if r.path == QUERY]
    assert len(queries) == QUERIES  # the seasonal parts ride in the same requests
    assert ("feature_drift_z", earlier) in [part for q in queries for part in q]

    a = {c["feature"]: c for c in checks(model_of(report, "a"), "feature_psi")}
    assert {f: (c["value"], c["verdict"]) for f, c in a.items()} == {
        "income": (0.05, "WARN"),
        "age": (0.001, "OK"),
        "region": (0.3, "CRIT"),
    }
    assert a["income"]["detail"].startswith("z 9.0 against the same 1h 1d earlier (alerts above")
    b = checks(model_of(report, "b"), "feature_psi")
    assert {c["verdict"] for c in b} == {"NO DATA"}
    assert b[0]["detail"] == (
        "no seasonal baseline: 0 observations in the same 1h 1d earlier (a version younger than 1d has "
        "none; it needs min_drift_samples, 100)"
    )
    assert code == 0  # without --check, verdicts do not set the exit code


# ------------------------------------------------------------------------------------------------------
# A refused joined query


def test_a_refused_joined_query_is_asked_part_by_part_and_only_refused_parts_are_marked(
    fake: FakePrometheus, tmp_path: Path
) -> None:
    server = StatusServer.healthy(fake, ["a", "b"])
    server.refused = {"feature_psi", "latency_p99"}
    server.install()
    _, report, _, err = status(fake, tmp_path, ["a", "b"])
    assert report["prometheus"]["ok"] is True, err

    queries = [tags(r.form["query"][0]) for r in fake.requests if r.path == QUERY]
    # The queries go out side by side, so a retry may arrive before another query's first request: tell
    # them apart by their parts (only the joined query holds checks that are not per-feature).
    first = [q for q in queries if len(q) > 1 or q[0][0] in PER_FEATURE_CHECKS]
    retried = [q for q in queries if q not in first]
    assert len(first) == QUERIES
    # Every check asked once in the first round: the per-feature checks alone, the others joined.
    asked = [part for query in first for part in query]
    assert len(asked) == len(set(asked)) > 10
    assert sorted(query[0][0] for query in first if len(query) == 1) == sorted(PER_FEATURE_CHECKS)
    [joined] = [query for query in first if len(query) > 1]
    assert ("latency_p99", "") in joined
    # The refused joined query is then asked part by part, each part alone and once, in the same order;
    # feature_psi's query had no other part and is not asked again.
    assert all(len(part) == 1 for part in retried)
    assert [part[0] for part in retried] == joined
    assert Counter(server.paths()) == {"/api/v1/rules": 1, QUERY: QUERIES + len(joined), "/api/v1/alerts": 1}

    for name in ("a", "b"):
        model = model_of(report, name)
        for c in model["checks"]:
            if c["name"] in server.refused:
                assert (c["value"], c["verdict"]) == (None, "NO DATA"), c
                assert c["detail"].startswith(
                    f"Prometheus refused the query: Prometheus at {fake.url} could not run the query (bad_data: "
                ), c
            elif c["name"] != "registry":
                assert c["verdict"] == "OK", c
                assert "refused" not in c["detail"], c
        assert len(checks(model, "feature_psi")) == len(FEATURES)
        assert model["verdict"] == "OK"


# ------------------------------------------------------------------------------------------------------
# How many requests


@pytest.mark.parametrize("count", [2, 30])
def test_the_number_of_requests_does_not_grow_with_the_models(
    fake: FakePrometheus, tmp_path: Path, count: int
) -> None:
    models = model_names(count)
    server = StatusServer.healthy(fake, models)
    server.install()
    _, report, _, err = status(fake, tmp_path, models)
    assert report["prometheus"]["ok"] is True, err
    assert [m["verdict"] for m in report["models"]] == ["OK"] * count
    # JSON has no sparklines, so no range query.
    assert Counter(server.paths()) == {"/api/v1/rules": 1, QUERY: QUERIES, "/api/v1/alerts": 1}
    # The queries ask for all models at once: no model's name is in them.
    queries = [r.form["query"][0] for r in fake.requests if r.path == QUERY]
    assert not any(name in query for name in models for query in queries)
    fake.requests.clear()
    code, _, err = human_view(fake, tmp_path)
    assert code == 0, err
    assert Counter(server.paths()) == {
        "/api/v1/rules": 1,
        QUERY: QUERIES,
        "/api/v1/alerts": 1,
        "/api/v1/query_range": 1,
    }


# ------------------------------------------------------------------------------------------------------
# Credentials


def test_basic_auth_reaches_the_server_and_the_password_is_never_shown(
    fake: FakePrometheus, tmp_path: Path
) -> None:
    server = StatusServer.healthy(fake, ["a"])
    server.install()
    header = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    env = {"MLMON_PROMETHEUS_USERNAME": "alice", "MLMON_PROMETHEUS_PASSWORD": PASSWORD}
    code, report, out, err = status(fake, tmp_path, ["a"], env=env)
    assert report["prometheus"]["ok"] is True, err
    assert len(fake.requests) == 2 + QUERIES  # rules, the queries, alerts
    assert {r.headers.get("Authorization") for r in fake.requests} == {header}

    # A proxy that fails and echoes the request, credentials included, into its error page.
    fake.requests.clear()
    fake.routes[QUERY] = lambda request: Answer(
        f"bad gateway for {request.headers['Authorization']} (password {PASSWORD})", 502, "text/plain"
    )
    for args in ((), ("--check",)):
        code, report, out, err = status(fake, tmp_path, ["a"], *args, env=env)
        assert code == 1
        assert "HTTP 502" in report["prometheus"]["error"] and "***" in report["prometheus"]["error"]
        secret_header = header.split(" ", 1)[1]
        for text in (out, err):
            assert PASSWORD not in text and secret_header not in text
    # The human view, too.
    code, view, err = human_view(fake, tmp_path, env)
    assert code == 1 and "HTTP 502" in err
    assert PASSWORD not in view + err and header.split(" ", 1)[1] not in view + err


# ------------------------------------------------------------------------------------------------------
# Sparklines are a nicety


def test_a_failing_range_query_costs_only_the_sparklines(fake: FakePrometheus, tmp_path: Path) -> None:
    server = StatusServer.healthy(fake, ["a"])
    server.values[("a", "error_ratio")] = "0.5"
    server.install()
    status(fake, tmp_path, ["a"])  # writes the spec
    fake.requests.clear()
    fake.answer("/api/v1/query_range", "query timed out in expression evaluation", 503, "text/plain")
    code, out, err = human_view(fake, tmp_path)
    assert code == 0, err
    assert "/api/v1/query_range" in server.paths()
    assert "Prometheus http" in out and "UNREACHABLE" not in out
    assert re.search(r"^a +CRIT", out, re.MULTILINE), out
    assert re.search(r"^error_ratio +0\.5 +0\.05 +CRIT", out, re.MULTILINE), out


# ------------------------------------------------------------------------------------------------------
# --watch


def test_watch_redraws_until_ctrl_c_and_shows_a_backend_that_goes_down(
    fake: FakePrometheus, tmp_path: Path
) -> None:
    server = StatusServer.healthy(fake, ["a"])
    server.install()
    spec = tmp_path / "mlmon.yaml"
    spec.write_text(yaml.safe_dump(spec_dict(["a"])))
    args = ["status", "--watch", "1", "--spec", str(spec), "--prometheus-url", fake.url, "--timeout", "1"]
    args += ["--mlflow-uri", f"sqlite:///{tmp_path / 'missing.db'}"]
    env = {**os.environ, **CLI_ENV}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlmon", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )

    def views_asked(at_least: int) -> int | None:
        count = server.paths().count("/api/v1/rules")
        return count if count >= at_least else None

    try:
        refreshes = poll(lambda: views_asked(2), 60, "status --watch to refresh")
        # Prometheus fails from now on: the next views say so, and the watch goes on.
        fake.answer("/api/v1/rules", "upstream connect error", 502, "text/plain")
        poll(lambda: views_asked(refreshes + 2), 60, "status --watch to refresh with Prometheus down")
        time.sleep(0.5)  # the view after the last request
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "Traceback" not in out + err
    views = out.split("mlmon status ")[1:]
    assert len(views) >= 3, out
    assert "Prometheus" in views[0] and "UNREACHABLE" not in views[0]
    assert "UNREACHABLE" in views[-1]


# ------------------------------------------------------------------------------------------------------
# --model


def test_model_filter_and_an_unknown_model_name(fake: FakePrometheus, tmp_path: Path) -> None:
    server = StatusServer.healthy(fake, ["a", "b"])
    server.install()
    _, report, _, err = status(fake, tmp_path, ["a", "b"], "--model", "b")
    assert [m["name"] for m in report["models"]] == ["b"], err

    # With a spec, an unknown name fails before any request: the spec names every model.
    fake.requests.clear()
    code, out, err = run_cli(
        "status", "--json", "--spec", str(tmp_path / "mlmon.yaml"), "--prometheus-url", fake.url,
        "--model", "nope", cwd=tmp_path,
    )  # fmt: skip
    assert code == 1 and out == ""
    assert "no model named 'nope'" in err and "known models: a, b" in err and "Traceback" not in err
    assert server.paths() == []

    # Without one, the names come from Prometheus' mlmon_model_info.
    (tmp_path / "mlmon.yaml").unlink()
    code, out, err = run_cli(
        "status", "--json", "--prometheus-url", fake.url, "--model", "nope", cwd=tmp_path
    )
    assert code == 1 and "no model named 'nope'" in err and "known models: a, b" in err


def test_a_server_message_reaches_stderr_as_plain_text(fake: FakePrometheus, tmp_path: Path) -> None:
    StatusServer.healthy(fake, ["a"]).install()
    fake.answer(QUERY, "[red]upstream[/] \x1b[2Jfailed", 502, "text/plain")
    _, report, _, err = status(fake, tmp_path, ["a"])
    assert report["prometheus"]["ok"] is False
    # One error (neither backend answered), with the server's markup shown as it came, the escape blanked.
    assert (
        err.startswith("error: neither Prometheus nor MLflow answered: ")
        and "[red]upstream[/] [2Jfailed" in err
    )
    assert "warning:" not in err
    assert "\x1b" not in err
