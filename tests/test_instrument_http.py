"""The HTTP middleware against real servers on 127.0.0.1: what /metrics says after real requests.

- ASGI: a FastAPI app wrapped in MonitorMiddleware, served by uvicorn in a background thread.
- WSGI: a plain WSGI app wrapped in MonitorWSGIMiddleware, and the demo service, served by wsgiref.
- Multiprocess mode: worker processes that write prometheus_client's shared files, merged by
  ``exposition_registry()``, and a ``uvicorn --workers 2`` service that serves the merged /metrics.
- Thread safety: 8 client threads against the uvicorn server, exact totals.

Every number is compared exactly with what the test sent; every server stops at the end of its test.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mlmon import contract
from mlmon.demo.model import make_credit_data, reference_profile, rows, train
from mlmon.demo.service import make_app, serve
from mlmon.drift.profile import FeatureProfile, Profile
from mlmon.instrument.http import MonitorMiddleware, MonitorWSGIMiddleware, exposition_registry
from mlmon.instrument.monitor import ModelMonitor
from tests.helpers import REQUIRE_TOOLS
from tests.servers import free_port, poll, running

try:
    import uvicorn
    from fastapi import BackgroundTasks, FastAPI, HTTPException
    from fastapi.responses import JSONResponse
except ImportError as exc:  # pragma: no cover - depends on the environment
    if REQUIRE_TOOLS:
        raise
    pytest.skip(f"{exc}: install the test extra (fastapi, uvicorn)", allow_module_level=True)

MODEL, VERSION = "credit-risk", "7"
MV = {"model": MODEL, "version": VERSION}
EDGES = (10.0, 20.0, 30.0)
CATEGORIES = ("north", "south")
PROFILE = Profile(
    model=MODEL,
    features=(
        FeatureProfile("income", "numerical", (0.1, 0.2, 0.3, 0.4), edges=EDGES, count=100),
        FeatureProfile("region", "categorical", (0.5, 0.3, 0.2), categories=CATEGORIES, count=100),
    ),
    prediction=FeatureProfile(
        "__prediction__", "categorical", (0.6, 0.4, 0.0), categories=("repaid", "default")
    ),
    reference_confidence_mean=0.8,
    reference_accuracy=0.75,
)
INCOMES: tuple[float | None, ...] = (5, 10, 15.5, 20, 25, 35, None)  # every income bin, and missing
REGIONS: tuple[str | None, ...] = ("north", "south", "west", None)  # both categories, __other__, missing


# ------------------------------------------------------------------------------------------------------
# What the test sent, counted offline


def row(i: int, incomes: tuple[float | None, ...] = INCOMES) -> dict[str, Any]:
    return {"income": incomes[i % len(incomes)], "region": REGIONS[i % len(REGIONS)]}


def predict_row(features: dict[str, Any]) -> tuple[str, float]:
    income = features.get("income")
    if isinstance(income, int | float) and income >= 20:
        return "default", 0.9
    return "repaid", 0.7


@dataclass
class Expected:
    ok: int = 0
    error: int = 0
    bins: Counter[tuple[str, str]] = field(default_factory=Counter)  # (feature, bin)
    missing: Counter[str] = field(default_factory=Counter)
    predictions: Counter[str] = field(default_factory=Counter)
    confidences: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    feedback: Counter[tuple[str, str]] = field(default_factory=Counter)

    def features(self, features: dict[str, Any]) -> None:
        income, region = features.get("income"), features.get("region")
        if income is None:
            self.missing["income"] += 1
        else:
            self.bins["income", str(bisect_right(EDGES, float(income)))] += 1
        if region is None:
            self.missing["region"] += 1
        else:
            self.bins["region", region if region in CATEGORIES else contract.OTHER_BIN] += 1

    def success(self, features: dict[str, Any], counted_request: bool = True) -> None:
        self.features(features)
        prediction, confidence = predict_row(features)
        self.predictions[prediction] += 1
        self.confidences.append(confidence)
        self.ok += counted_request

    def failure(self, features: dict[str, Any] | None) -> None:
        if features is not None:
            self.features(features)
        self.error += 1


Sample = tuple[str, dict[str, str], float]


def parse(text: str) -> list[Sample]:
    return [
        (s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The value of the one sample with exactly these labels (None if absent; fails if exposed twice)."""
    found = [v for n, sample_labels, v in samples if n == name and sample_labels == labels]
    assert len(found) <= 1, f"{name}{labels} is exposed {len(found)} times"
    return found[0] if found else None


def scrape(url: str) -> list[Sample]:
    answer = requests.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain"), answer.headers
    return parse(answer.text)


def assert_counts(samples: list[Sample], expected: Expected, check_latency_sum: bool = False) -> None:
    """Every contract counter equals what the test sent; every bin series is exposed, zero or not."""
    assert value(samples, "mlmon_requests_total", **MV, status="ok") == expected.ok
    assert value(samples, "mlmon_requests_total", **MV, status="error") == expected.error
    assert value(samples, "mlmon_request_duration_seconds_count", **MV) == expected.ok + expected.error
    assert (
        value(samples, "mlmon_request_duration_seconds_bucket", **MV, le="+Inf")
        == expected.ok + expected.error
    )
    if check_latency_sum:
        latency_sum = value(samples, "mlmon_request_duration_seconds_sum", **MV)
        assert latency_sum == pytest.approx(sum(expected.latencies))
    for feature in PROFILE.features:
        for bin_ in feature.bin_labels:
            got = value(samples, "mlmon_feature_bin_total", **MV, feature=feature.name, bin=bin_)
            assert got == expected.bins[feature.name, bin_], (feature.name, bin_)
        assert (
            value(samples, "mlmon_feature_missing_total", **MV, feature=feature.name)
            == (expected.missing[feature.name])
        )
    assert PROFILE.prediction is not None
    for bin_ in PROFILE.prediction.bin_labels:
        assert value(samples, "mlmon_prediction_bin_total", **MV, bin=bin_) == expected.predictions[bin_], (
            bin_
        )
    assert value(samples, "mlmon_prediction_confidence_count", **MV) == len(expected.confidences)
    assert value(samples, "mlmon_prediction_confidence_sum", **MV) == pytest.approx(sum(expected.confidences))
    for (predicted, actual), count in expected.feedback.items():
        correct = "true" if predicted == actual else "false"
        fb = value(samples, "mlmon_feedback_total", **MV, predicted=predicted, actual=actual, correct=correct)
        assert fb == count


def promtool_check(promtool: str, text: str) -> None:
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------------------------
# ASGI


def fastapi_app(monitor: ModelMonitor) -> FastAPI:
    """Prediction endpoints that call ``monitor.observe`` as a service would, plus failing ones."""
    api = FastAPI()

    @api.post("/predict")
    async def predict(payload: dict[str, Any]) -> dict[str, Any]:
        features = payload["features"]
        prediction, confidence = predict_row(features)
        monitor.observe(features, prediction, confidence=confidence)
        return {"prediction": prediction, "confidence": confidence}

    @api.post("/predict/sync")
    def predict_sync(payload: dict[str, Any]) -> dict[str, Any]:  # runs in the thread pool
        features = payload["features"]
        prediction, confidence = predict_row(features)
        monitor.observe(features, prediction, confidence=confidence)
        return {"prediction": prediction, "confidence": confidence}

    @api.post("/predict/slow")
    async def predict_slow(payload: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.06)
        return await predict(payload)

    @api.post("/predict/raise")
    async def predict_raise(payload: dict[str, Any]) -> dict[str, Any]:
        exc = RuntimeError("the model broke")
        monitor.observe(payload["features"], error=exc)
        raise exc

    @api.post("/predict/unavailable", response_model=None)
    async def predict_unavailable(payload: dict[str, Any]) -> JSONResponse:
        monitor.observe(payload["features"], error=True)
        return JSONResponse({"error": "model unavailable"}, status_code=503)

    @api.post("/predict/invalid")
    async def predict_invalid(payload: dict[str, Any]) -> dict[str, Any]:
        raise HTTPException(status_code=422, detail="no features")

    @api.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.post("/predictions")  # shares a prefix with /predict but is not under it: not counted
    async def predictions(payload: dict[str, Any]) -> dict[str, str]:
        return {"status": "ok"}

    return api


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """uvicorn in a background thread on a free loopback port; stopped (and joined) at the end. Lifespan
    events go through the middleware too."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, log_level="critical", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def monitor() -> ModelMonitor:
    return ModelMonitor(MODEL, VERSION, PROFILE, registry=CollectorRegistry(), run_id="run-7")


def test_asgi_middleware_counts_requests_once_and_serves_metrics(
    monitor: ModelMonitor, promtool: str
) -> None:
    app = MonitorMiddleware(fastapi_app(monitor), monitor, predict_paths=["/predict"])
    expected = Expected()
    with uvicorn_server(app) as url, requests.Session() as http:
        # Every series exists, at zero, before the first request.
        assert_counts(scrape(url), expected)

        def post(path: str, features: dict[str, Any], status: int) -> None:
            # uvicorn closes the connection after an exception in the app: that request gets its own.
            client = requests if path == "/predict/raise" else http
            answer = client.post(f"{url}{path}", json={"features": features}, timeout=10)
            assert answer.status_code == status, (path, answer.text)

        for i in range(14):
            post("/predict", row(i), 200)
            expected.success(row(i))
        for i in range(14, 21):
            post("/predict/sync", row(i), 200)
            expected.success(row(i))
        post("/predict/slow", row(5), 200)
        expected.success(row(5))
        for i in range(3):
            post("/predict/raise", row(i), 500)
            expected.failure(row(i))
        for i in range(3, 5):
            post("/predict/unavailable", row(i), 503)
            expected.failure(row(i))
        for i in range(4):  # the client's mistake: counted, as ok
            post("/predict/invalid", row(i), 422)
            expected.ok += 1
        for _ in range(3):
            assert http.get(f"{url}/health", timeout=10).status_code == 200
            post("/predictions", row(0), 200)
        assert http.get(f"{url}/predict", timeout=10).status_code == 405  # a 4xx from the router: ok
        expected.ok += 1

        samples = scrape(url)
        assert_counts(samples, expected)
        assert expected.ok == 27 and expected.error == 5  # the numbers above, for a reader
        # The middleware times the handler: the slow request lands above the 0.05 s bucket.
        assert value(samples, "mlmon_request_duration_seconds_sum", **MV) >= 0.06  # type: ignore[operator]
        below = value(samples, "mlmon_request_duration_seconds_bucket", **MV, le="0.05")
        assert below is not None and below <= expected.ok + expected.error - 1
        assert value(samples, "mlmon_model_info", **MV, run_id="run-7") == 1
        assert value(samples, "mlmon_feature_reference_ratio", **MV, feature="income", bin="3") == 0.4
        # Scraping counts nothing.
        assert_counts(scrape(url), expected)
        text = http.get(f"{url}/metrics", timeout=10).text
    promtool_check(promtool, text)
    # Outside a request the middleware handles, observe() counts the request itself, once.
    monitor.observe(row(1), "repaid", latency_seconds=0.01, confidence=0.7)
    expected.success(row(1))
    assert_counts(parse(generate_latest(monitor.registry).decode()), expected)


def test_asgi_middleware_under_eight_client_threads(monitor: ModelMonitor) -> None:
    app = MonitorMiddleware(fastapi_app(monitor), monitor, predict_paths=["/predict"])
    threads, per_thread = 8, 200
    expected = Expected()
    for t in range(threads):
        for i in range(per_thread):
            n = t * per_thread + i
            if n % 10 == 9:
                expected.failure(row(n))
            else:
                expected.success(row(n))
    failures: list[str] = []

    def client(t: int, url: str) -> None:
        with requests.Session() as http:
            for i in range(per_thread):
                n = t * per_thread + i
                path = "/predict/unavailable" if n % 10 == 9 else ("/predict", "/predict/sync")[n % 2]
                answer = http.post(f"{url}{path}", json={"features": row(n)}, timeout=30)
                if answer.status_code != (503 if n % 10 == 9 else 200):
                    failures.append(f"{path}: {answer.status_code} {answer.text}")

    with uvicorn_server(app) as url:
        workers = [threading.Thread(target=client, args=(t, url)) for t in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert not any(w.is_alive() for w in workers)
        assert failures == []
        samples = scrape(url)
    assert expected.ok + expected.error == threads * per_thread
    assert_counts(samples, expected)
    assert monitor.internal_errors == 0


def test_asgi_latency_ends_with_the_response_not_the_background_tasks(monitor: ModelMonitor) -> None:
    api = FastAPI()

    @api.post("/predict")
    async def predict(payload: dict[str, Any], background: BackgroundTasks) -> dict[str, Any]:
        features = payload["features"]
        prediction, confidence = predict_row(features)
        monitor.observe(features, prediction, confidence=confidence)
        background.add_task(time.sleep, 0.5)  # e.g. writing the prediction log, after the answer
        return {"prediction": prediction}

    with uvicorn_server(MonitorMiddleware(api, monitor)) as url:
        start = time.perf_counter()
        answer = requests.post(f"{url}/predict", json={"features": row(1)}, timeout=10)
        client_latency = time.perf_counter() - start
        assert answer.status_code == 200
        assert client_latency < 0.4, client_latency  # the client had its answer before the task ended

        def counted() -> list[Sample] | None:
            samples = scrape(url)
            return samples if value(samples, "mlmon_requests_total", **MV, status="ok") == 1 else None

        samples = poll(counted, 10, "the request to be counted")
    latency = value(samples, "mlmon_request_duration_seconds_sum", **MV)
    assert latency is not None and latency < 0.4, (
        f"recorded {latency:.3f}s, the client waited {client_latency:.3f}s"
    )


# ------------------------------------------------------------------------------------------------------
# WSGI

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def wsgi_app(monitor: ModelMonitor) -> WSGIApp:
    def respond(start_response: Callable[..., Any], status: str, data: Any) -> list[bytes]:
        body = json.dumps(data).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def stream(start_response: Callable[..., Any], status: str, features: dict[str, Any]) -> Iterator[bytes]:
        # start_response is called lazily, on the first iteration, as PEP 3333 allows.
        time.sleep(0.03)
        start_response(status, [("Content-Type", "text/plain")])
        yield b"part one "
        time.sleep(0.03)
        if status.startswith("200"):
            prediction, confidence = predict_row(features)
            monitor.observe(features, prediction, confidence=confidence)
        else:
            monitor.observe(features, error=True)
        yield b"part two"

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/health":
            return respond(start_response, "200 OK", {"status": "ok"})
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        features = body.get("features")
        if path == "/predict":
            prediction, confidence = predict_row(features)
            monitor.observe(features, prediction, confidence=confidence)
            return respond(start_response, "200 OK", {"prediction": prediction, "confidence": confidence})
        if path == "/predict/raise":
            exc = RuntimeError("the model broke")
            monitor.observe(features, error=exc)
            raise exc
        if path == "/predict/unavailable":
            monitor.observe(features, error=True)
            return respond(start_response, "503 Service Unavailable", {"error": "model unavailable"})
        if path == "/predict/invalid":
            return respond(start_response, "400 Bad Request", {"error": "no features"})
        if path == "/predict/stream":
            return stream(start_response, body.get("status", "200 OK"), features)
        return respond(start_response, "404 Not Found", {"error": path})

    return app


@contextmanager
def wsgi_server(app: WSGIApp) -> Iterator[str]:
    port = free_port()
    server = serve(app, port)  # threaded wsgiref server, as the demo service runs
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def test_wsgi_middleware_counts_requests_once_and_serves_metrics(
    monitor: ModelMonitor, promtool: str
) -> None:
    app = MonitorWSGIMiddleware(wsgi_app(monitor), monitor, predict_paths=["/predict"])
    expected = Expected()
    with wsgi_server(app) as url:
        assert_counts(scrape(url), expected)

        def post(path: str, features: dict[str, Any], expect: int, **extra: Any) -> requests.Response:
            answer = requests.post(f"{url}{path}", json={"features": features, **extra}, timeout=10)
            assert answer.status_code == expect, (path, answer.text)
            return answer

        for i in range(15):
            post("/predict", row(i), 200)
            expected.success(row(i))
        for i in range(3):  # an exception: wsgiref answers 500
            post("/predict/raise", row(i), 500)
            expected.failure(row(i))
        post("/predict/unavailable", row(3), 503)
        expected.failure(row(3))
        for i in range(2):
            post("/predict/invalid", row(i), 400)
            expected.ok += 1
        # A body produced lazily: its status comes from the first iteration, its time is part of the latency.
        assert post("/predict/stream", row(4), 200).text == "part one part two"
        expected.success(row(4))
        post("/predict/stream", row(6), 503, status="503 Service Unavailable")
        expected.failure(row(6))
        for _ in range(3):
            assert requests.get(f"{url}/health", timeout=10).status_code == 200
            post("/predictions", row(0), 404)  # outside the prediction paths: not counted
        samples = scrape(url)
        assert_counts(samples, expected)
        assert (expected.ok, expected.error) == (18, 5)
        assert value(samples, "mlmon_request_duration_seconds_sum", **MV) >= 0.12  # type: ignore[operator]
        below = value(samples, "mlmon_request_duration_seconds_bucket", **MV, le="0.05")
        assert below is not None and below <= expected.ok + expected.error - 2
        assert_counts(scrape(url), expected)
        text = requests.get(f"{url}/metrics", timeout=10).text
    promtool_check(promtool, text)


def test_wsgi_middleware_closes_the_application_iterable(monitor: ModelMonitor) -> None:
    """PEP 3333: whoever consumes the application's iterable calls its close() (Django's request_finished,
    Werkzeug's call_on_close and file wrappers depend on it); the middleware buffers the body, so it must."""
    closed = threading.Event()

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"done"

        def close(self) -> None:
            closed.set()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    with wsgi_server(MonitorWSGIMiddleware(app, monitor)) as url:
        assert requests.post(f"{url}/predict", timeout=10).text == "done"
        assert closed.wait(1.0), "the application's iterable was never closed"
        assert value(scrape(url), "mlmon_requests_total", **MV, status="ok") == 1


def test_demo_service_counts_equal_offline_bins() -> None:
    """The demo service (make_app, serve) with a trained model and its profile: every bin equals offline."""
    reference = make_credit_data(3000, seed=1)
    model = train(reference)
    profile = reference_profile(model, reference, MODEL)
    monitor = ModelMonitor(MODEL, VERSION, profile, registry=CollectorRegistry())
    traffic = rows(make_credit_data(80, seed=5, shift=1.0))
    predictions: Counter[str] = Counter()
    feedback: Counter[tuple[str, str]] = Counter()
    with wsgi_server(make_app(model, monitor)) as url:
        for i, features in enumerate(traffic):
            body = json.dumps({"features": features, "fail": i % 10 == 3})  # NaN travels as NaN
            answer = requests.post(f"{url}/predict", data=body, timeout=10)
            assert answer.status_code == (500 if i % 10 == 3 else 200), answer.text
            if i % 10 != 3:
                predictions[answer.json()["prediction"]] += 1
                if i % 4 == 0:
                    actual = "default" if i % 8 == 0 else "repaid"
                    sent = {"predicted": answer.json()["prediction"], "actual": actual}
                    assert requests.post(f"{url}/feedback", json=sent, timeout=10).status_code == 202
                    feedback[sent["predicted"], actual] += 1
        assert requests.get(f"{url}/health", timeout=10).status_code == 200
        samples = scrape(url)
    assert value(samples, "mlmon_requests_total", **MV, status="ok") == 72  # /feedback is not a prediction
    assert value(samples, "mlmon_requests_total", **MV, status="error") == 8
    assert value(samples, "mlmon_request_duration_seconds_count", **MV) == 80
    assert value(samples, "mlmon_prediction_confidence_count", **MV) == 72
    for feature in profile.features:
        counts = [0] * len(feature.bin_labels)
        missing = 0
        for features in traffic:  # failed requests count their features too
            index = feature.bin_of(features[feature.name])
            if index is None:
                missing += 1
            else:
                counts[index] += 1
        exposed = [
            value(samples, "mlmon_feature_bin_total", **MV, feature=feature.name, bin=b)
            for b in feature.bin_labels
        ]
        assert exposed == counts, feature.name
        assert value(samples, "mlmon_feature_missing_total", **MV, feature=feature.name) == missing
    assert profile.prediction is not None
    for bin_ in profile.prediction.bin_labels:
        assert value(samples, "mlmon_prediction_bin_total", **MV, bin=bin_) == predictions[bin_]
    assert sum(feedback.values()) > 0
    for (predicted, actual), count in feedback.items():
        correct = "true" if predicted == actual else "false"
        fb = value(samples, "mlmon_feedback_total", **MV, predicted=predicted, actual=actual, correct=correct)
        assert fb == count


# ------------------------------------------------------------------------------------------------------
# Multiprocess mode: PROMETHEUS_MULTIPROC_DIR

WORKER = """
import json, math, sys
from prometheus_client import CollectorRegistry
from mlmon.instrument.monitor import ModelMonitor

model, version, profile, mode, data = sys.argv[1:5] + [json.loads(sys.argv[5])]
monitor = ModelMonitor(model, version, profile, registry=CollectorRegistry(), run_id="run-7")
rows = data["rows"]
if mode == "batch":
    monitor.observe_batch(
        {name: [r["features"][name] for r in rows] for name in ("income", "region")},
        [r["prediction"] for r in rows],
        [r["latency"] for r in rows],
        [r["error"] for r in rows],
        [math.nan if r["confidence"] is None else r["confidence"] for r in rows],
    )
else:
    for r in rows:
        monitor.observe(r["features"], r["prediction"], r["latency"], r["error"], r["confidence"])
for predicted, actual in data["feedback"]:
    monitor.record_feedback(predicted, actual)
assert monitor.internal_errors == 0, monitor.internal_errors
"""

WORKER_INCOMES: tuple[float | None, ...] = (5, 10, 15.5, 20, 25, None)  # never the top bin: it stays at zero


def worker_data(worker: int, count: int, expected: Expected) -> dict[str, Any]:
    """The rows one worker observes, added to ``expected``."""
    data: dict[str, Any] = {"rows": [], "feedback": []}
    for i in range(worker * 100, worker * 100 + count):
        features = row(i, WORKER_INCOMES)
        failed = i % 5 == 3
        prediction, confidence = predict_row(features)
        latency = 0.001 * (i % 7 + 1)
        expected.latencies.append(latency)
        if failed:
            expected.failure(features)
        else:
            expected.success(features)
        data["rows"].append(
            {
                "features": features,
                "prediction": prediction,
                "latency": latency,
                "error": failed,
                "confidence": None if failed else confidence,
            }
        )
        if i % 3 == 0 and not failed:
            actual = "default" if i % 2 else "repaid"
            data["feedback"].append((prediction, actual))
            expected.feedback[prediction, actual] += 1
    return data


def run_workers(multiproc: Path, profile: Path, jobs: list[tuple[str, dict[str, Any]]]) -> None:
    """Run worker processes in parallel, each observing its rows into the shared folder, then exiting."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, MODEL, VERSION, str(profile), mode, json.dumps(data)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for mode, data in jobs
    ]
    for process in processes:
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output.decode(errors="replace")


def assert_merged(samples: list[Sample], expected: Expected, check_latency_sum: bool = True) -> None:
    assert_counts(samples, expected, check_latency_sum)
    assert value(samples, "mlmon_feature_bin_total", **MV, feature="income", bin="3") == 0  # created at zero
    assert value(samples, "mlmon_prediction_bin_total", **MV, bin=contract.OTHER_BIN) == 0
    # Gauges: one series per bin (multiprocess_mode="livemax"), with the profile's value, never one per pid.
    assert not [s for s in samples if "pid" in s[1]]
    for feature in PROFILE.features:
        for bin_, ratio in zip(feature.bin_labels, feature.reference_ratios, strict=True):
            got = value(samples, "mlmon_feature_reference_ratio", **MV, feature=feature.name, bin=bin_)
            assert got == ratio, (feature.name, bin_)
    assert PROFILE.prediction is not None
    for bin_, ratio in zip(PROFILE.prediction.bin_labels, PROFILE.prediction.reference_ratios, strict=True):
        assert value(samples, "mlmon_prediction_reference_ratio", **MV, bin=bin_) == ratio
    ratio_series = [s for s in samples if s[0] == "mlmon_feature_reference_ratio"]
    assert len(ratio_series) == sum(len(f.bin_labels) for f in PROFILE.features)
    assert value(samples, "mlmon_model_info", **MV, run_id="run-7") == 1
    assert value(samples, "mlmon_reference_accuracy", **MV) == 0.75
    assert value(samples, "mlmon_reference_confidence_mean", **MV) == 0.8


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    path = tmp_path / "profile.json"
    path.write_text(PROFILE.to_json())
    return path


def test_multiprocess_workers_merge_to_exact_sums(
    tmp_path: Path, profile_file: Path, promtool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    expected = Expected()
    jobs = [("rows", worker_data(0, 23, expected)), ("rows", worker_data(1, 31, expected))]
    jobs.append(("batch", worker_data(2, 40, expected)))  # observe_batch: the vectorised histogram path too
    run_workers(multiproc, profile_file, jobs)
    assert len(list(multiproc.glob("counter_*.db"))) == 3

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(multiproc))
    registry = exposition_registry(CollectorRegistry())
    text = generate_latest(registry).decode()
    samples = parse(text)
    assert expected.ok + expected.error == 94
    assert_merged(samples, expected)
    assert not [s for s in samples if s[0].endswith("_created")]
    promtool_check(promtool, text)


APP_MODULE = """
import os

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from mlmon.instrument.http import MonitorMiddleware
from mlmon.instrument.monitor import ModelMonitor

monitor = ModelMonitor(
    os.environ["MLMON_TEST_MODEL"],
    os.environ["MLMON_TEST_VERSION"],
    os.environ["MLMON_TEST_PROFILE"],
    registry=CollectorRegistry(),
    run_id="run-7",
)
api = FastAPI()


@api.post("/predict")
async def predict(payload: dict) -> dict:
    features = payload["features"]
    monitor.observe(features, payload["prediction"], confidence=payload["confidence"])
    return {"pid": os.getpid()}


@api.get("/health")
async def health() -> dict:
    return {"pid": os.getpid()}


app = MonitorMiddleware(api, monitor, predict_paths=["/predict"])
"""


def test_multiprocess_metrics_over_http_from_uvicorn_workers(
    tmp_path: Path, profile_file: Path, promtool: str
) -> None:
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    expected = Expected()
    # A worker that has already exited: its files must still be merged into what the service serves.
    run_workers(multiproc, profile_file, [("rows", worker_data(0, 17, expected))])
    (tmp_path / "mpapp.py").write_text(APP_MODULE)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = ["env", f"PROMETHEUS_MULTIPROC_DIR={multiproc}", f"MLMON_TEST_PROFILE={profile_file}"]
    env += [f"MLMON_TEST_MODEL={MODEL}", f"MLMON_TEST_VERSION={VERSION}"]
    args = [*env, sys.executable, "-m", "uvicorn", "mpapp:app", "--app-dir", str(tmp_path)]
    args += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--log-level", "warning"]
    log = tmp_path / "uvicorn.log"
    pids: set[int] = set()
    with running(args, log):
        poll(
            lambda: True if requests.get(f"{url}/health", timeout=2).ok else None, 20, "uvicorn workers", log
        )
        sent = 0
        # A new connection for each request, so that either worker may take it: at least 30 requests, and
        # more (up to 300) until both workers have answered, so that two live workers' files are merged.
        while sent < 30 or (len(pids) < 2 and sent < 300):
            features = row(sent, WORKER_INCOMES)
            prediction, confidence = predict_row(features)
            body = {"features": features, "prediction": prediction, "confidence": confidence}
            answer = requests.post(f"{url}/predict", json=body, headers={"Connection": "close"}, timeout=10)
            assert answer.status_code == 200, answer.text
            pids.add(answer.json()["pid"])
            expected.success(features)
            sent += 1
        answer = requests.get(f"{url}/metrics", timeout=10)
        assert answer.status_code == 200
        text = answer.text
    samples = parse(text)
    assert expected.ok + expected.error == 17 + sent
    # The server measured its own latencies: their count is known, their sum is not.
    assert_merged(samples, expected, check_latency_sum=False)
    # The finished worker's file, and one per server worker that answered.
    assert len(list(multiproc.glob("counter_*.db"))) >= 1 + len(pids)
    promtool_check(promtool, text)
    # The service's workers exited with it.
    for pid in pids:
        poll(partial(_exited, pid), 10, f"uvicorn worker {pid} to exit", log)


def _exited(pid: int) -> bool | None:
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return True
    return None
