"""The demo credit-risk model behind FastAPI, instrumented with mlmon's ASGI middleware: the same endpoints
and answers as ``mlmon.demo.service`` (a WSGI app), for the tests that need a real uvicorn replica.

    MLMON_DEMO_MODEL=model.json MLMON_DEMO_PROFILE=profile.json MLMON_DEMO_VERSION=1 \
        python -m uvicorn tests.fastapi_service:app --host 127.0.0.1 --port 8000

Run from the repository root, so that ``tests`` is importable.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mlmon.demo.model import CreditModel
from mlmon.instrument.http import MonitorMiddleware
from mlmon.instrument.monitor import ModelMonitor


def make_app(model: CreditModel, monitor: ModelMonitor) -> MonitorMiddleware:
    api = FastAPI()

    @api.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.post("/feedback", status_code=202)
    async def feedback(request: Request) -> dict[str, str]:
        body = await request.json()
        monitor.record_feedback(body.get("predicted"), body.get("actual"))
        return {"status": "recorded"}

    @api.post("/predict")
    async def predict(request: Request) -> Any:
        body = await request.json()  # Python's json reads the NaN the tests send for a missing value
        features = body.get("features")
        if not isinstance(features, dict):
            return JSONResponse({"error": "features must be an object"}, status_code=400)
        if body.get("fail"):
            error = RuntimeError("failure requested by the client")
            monitor.observe(features, error=error)
            return JSONResponse({"error": str(error)}, status_code=500)
        prediction, confidence = model.predict(features)
        monitor.observe(features, prediction, confidence=confidence)
        return {"prediction": prediction, "confidence": confidence}

    return MonitorMiddleware(api, monitor, predict_paths=["/predict"])


def _from_environment() -> MonitorMiddleware:
    name = os.environ.get("MLMON_DEMO_NAME", "credit-risk")
    monitor = ModelMonitor(name, os.environ.get("MLMON_DEMO_VERSION", "1"), os.environ["MLMON_DEMO_PROFILE"])
    return make_app(CreditModel.load(os.environ["MLMON_DEMO_MODEL"]), monitor)


app = _from_environment() if "MLMON_DEMO_MODEL" in os.environ else None
