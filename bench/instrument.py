"""Cost of the instrument library on the prediction path, side by side with its baselines.

1. ``ModelMonitor.observe`` for one 20-feature row (15 numerical, 5 categorical, with a prediction,
   confidence and latency), against a bare prometheus_client ``Histogram.observe`` plus ``Counter.inc``.
2. ``ModelMonitor.observe_batch`` for 1,000 rows, per row.
3. The ASGI middleware's overhead per request on a FastAPI app, called in-process (no network, so the
   overhead is not hidden by socket time), against the same app bare and instrumented with
   prometheus-fastapi-instrumentator.

    pip install -e '.[bench]' && python bench/instrument.py
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from mlmon.drift.profile import FeatureProfile, Profile
from mlmon.instrument.http import MonitorMiddleware
from mlmon.instrument.monitor import ModelMonitor

NUMERICAL = [f"x{i}" for i in range(15)]
CATEGORICAL = [f"c{i}" for i in range(5)]
CATEGORIES = tuple(f"cat{i}" for i in range(8))


def make_profile() -> Profile:
    edges = tuple(
        float(e) for e in np.quantile(np.random.default_rng(0).normal(size=10_000), np.arange(1, 10) / 10)
    )
    features = [FeatureProfile(n, "numerical", (0.1,) * 10, edges=edges) for n in NUMERICAL]
    features += [FeatureProfile(n, "categorical", (1 / 9,) * 9, categories=CATEGORIES) for n in CATEGORICAL]
    prediction = FeatureProfile("__prediction__", "categorical", (0.5, 0.5, 0.0), categories=("yes", "no"))
    return Profile("bench", tuple(features), prediction)


def per_call(function: Callable[[], Any], calls: int, repeats: int = 7) -> float:
    """Best median-of-repeats time per call, in microseconds."""
    results = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        results.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(results)


def bench_observe() -> list[tuple[str, float]]:
    rng = np.random.default_rng(1)
    row = {n: float(rng.normal()) for n in NUMERICAL} | {n: CATEGORIES[i] for i, n in enumerate(CATEGORICAL)}
    monitor = ModelMonitor("bench", "1", make_profile(), registry=CollectorRegistry())
    registry = CollectorRegistry()
    histogram = Histogram("h_seconds", "h", registry=registry)
    counter = Counter("c", "c", registry=registry)

    def bare() -> None:
        histogram.observe(0.01)
        counter.inc()

    rows = 1000
    columns: dict[str, Any] = {n: rng.normal(size=rows) for n in NUMERICAL}
    columns |= {n: rng.choice(CATEGORIES, rows).astype(object) for n in CATEGORICAL}
    predictions = rng.choice(["yes", "no"], rows)
    confidences = rng.random(rows)
    return [
        ("prometheus_client Histogram.observe + Counter.inc", per_call(bare, 20_000)),
        (
            "ModelMonitor.observe, one 20-feature row",
            per_call(lambda: monitor.observe(row, "yes", 0.01, confidence=0.9), 20_000),
        ),
        (
            "ModelMonitor.observe_batch, 1,000 rows, per row",
            per_call(lambda: monitor.observe_batch(columns, predictions, None, None, confidences), 50) / rows,
        ),
    ]


def bench_middleware(requests: int = 5000) -> list[tuple[str, float]]:
    from fastapi import FastAPI
    from prometheus_fastapi_instrumentator import Instrumentator

    def make_app() -> FastAPI:
        app = FastAPI()

        @app.get("/predict")
        async def predict() -> dict[
            str, str
        ]:  # async: a sync endpoint adds a thread hop that drowns the rest
            return {"prediction": "yes"}

        return app

    bare = make_app()
    ours = MonitorMiddleware(make_app(), ModelMonitor("bench", "1", None, registry=CollectorRegistry()))
    theirs = make_app()
    Instrumentator(registry=CollectorRegistry()).instrument(theirs)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    async def once(app: Any) -> float:
        start = time.perf_counter()
        for _ in range(requests):
            await app(dict(scope), receive, send)
        return (time.perf_counter() - start) / requests * 1e6

    async def compare() -> tuple[float, float, float]:
        apps = (bare, ours, theirs)
        for app in apps:  # warm-up: routing caches, first-request set-up
            for _ in range(200):
                await app(dict(scope), receive, send)
        # Interleaved rounds, fastest of each: the machine's noise hits all three alike.
        rounds: list[list[float]] = [[], [], []]
        for _ in range(7):
            for i, app in enumerate(apps):
                rounds[i].append(await once(app))
        return min(rounds[0]), min(rounds[1]), min(rounds[2])

    base, mine, other = asyncio.run(compare())
    return [
        ("FastAPI app, no instrumentation (per request)", base),
        ("+ mlmon MonitorMiddleware: overhead per request", mine - base),
        ("+ prometheus-fastapi-instrumentator: overhead per request", other - base),
    ]


def main() -> None:
    print("| case | microseconds |")
    print("|---|---:|")
    for label, micros in bench_observe() + bench_middleware():
        print(f"| {label} | {micros:.2f} |")


if __name__ == "__main__":
    main()
