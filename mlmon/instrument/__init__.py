"""The library a model service imports to export the metric contract.

from mlmon.instrument import ModelMonitor, MonitorMiddleware

monitor = ModelMonitor("credit-risk", "3", "profile.json")
app = MonitorMiddleware(app, monitor, predict_paths=["/predict"])   # counts requests, serves /metrics
...
monitor.observe(features, prediction, confidence=0.93)               # inside the prediction handler
"""

from mlmon.instrument.http import (
    MonitorMiddleware,
    MonitorWSGIMiddleware,
    metrics_asgi_app,
    metrics_wsgi_app,
)
from mlmon.instrument.monitor import ModelMonitor, Tracking
from mlmon.instrument.prediction_log import PredictionLog, read_prediction_log

__all__ = [
    "ModelMonitor",
    "MonitorMiddleware",
    "MonitorWSGIMiddleware",
    "PredictionLog",
    "Tracking",
    "metrics_asgi_app",
    "metrics_wsgi_app",
    "read_prediction_log",
]
