"""ModelMonitor: what a model service calls to export the metric contract.

A monitor only increments counters and observes histograms; Prometheus' recording rules turn them into
rates, quantiles, PSI, missing ratios and accuracy across all replicas. Three promises shape the code:

- It never raises into the prediction path. Bad input (None, NaN, inf, text in a numerical feature, unknown
  or absent features) is counted, and each kind of problem is logged once, not per call. An unexpected
  failure inside the monitor is swallowed, counted in ``monitor.internal_errors`` and logged once.
- Every series exists from the start, at zero, because ``increase()`` and the window counts of the rules see
  only what happened after a series' first scrape.
- Labels stay bounded: bins come from the reference profile, other label values (classes without a
  profile, feedback labels) are capped, and values past the cap are counted under ``__other__``.

``observe`` costs a few microseconds per 20-feature row: the per-bin counter children are resolved once,
at start-up, so the hot path is a bisect and an ``inc()`` per feature.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from bisect import bisect_right
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from mlmon import contract as c
from mlmon.drift.profile import FeatureProfile, Profile, category_label, load_profile
from mlmon.instrument.counters import (
    CounterFamily,
    FastCounter,
    FastCounterCollector,
    multiprocess_mode,
    observe_many,
)
from mlmon.instrument.values import (
    NAN,
    NON_FINITE,
    NON_SCALAR,
    OVERFLOW,
    WRONG_TYPE,
    Unhashable,
    category_text,
    finite_number,
    hashable,
)
from mlmon.names import visible

log = logging.getLogger("mlmon.instrument")

P = ParamSpec("P")
R = TypeVar("R")

_ABSENT = object()
# Set by the ASGI/WSGI middleware while it handles a request: it counts the request and its latency itself,
# so observe() inside that request counts only features, prediction and confidence.
REQUEST_COUNTED_BY_MIDDLEWARE: ContextVar[bool] = ContextVar("mlmon_request_counted", default=False)
UNKNOWN_FEATURE = c.UNKNOWN_FEATURE
# Unknown feature names are counted under their own name (so that `mlmon status` and the alert can say
# "mean_radius arrived, mean radius did not"), up to this many per monitor, cut to UNKNOWN_NAME_LENGTH
# characters; the rest count under __unknown__, which bounds the series a misbehaving client can create.
UNKNOWN_NAMES_CAP = 20
UNKNOWN_NAME_LENGTH = 100
# Stand-in feature names under which the invalid values of the other inputs are counted.
LATENCY, CONFIDENCE, PREDICTION = "__latency__", "__confidence__", "__prediction__"
_REASON_TEXT = {
    WRONG_TYPE: "values that are not numbers",
    NON_FINITE: "infinite values",
    OVERFLOW: "numbers too large for a float",
    NON_SCALAR: "values that are not one value (an array, a list)",
    NAN: "NaN values",
    "label_cap": "more distinct values than the label cap",
}


# ------------------------------------------------------------------------------------------------------
# One set of metric objects per registry: several monitors (models) share it, as Prometheus expects one
# metric family per name.


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # One lock for all counting through this registry: a monitor takes it once per observation. It is
        # re-entrant because a first-seen label value creates its cell while the lock is held.
        self.lock = threading.RLock()
        fast = not multiprocess_mode()
        collector = FastCounterCollector()

        def counter(metric: c.Metric) -> CounterFamily:
            name = metric.name.removesuffix("_total")
            if fast:
                family = FastCounter(name, metric.help, metric.labels, self.lock)
                collector.counters.append(family)
                return family
            return Counter(name, metric.help, metric.labels, registry=registry)

        def gauge(metric: c.Metric) -> Gauge:
            # In multiprocess mode every worker reports the same value: keep the largest, not one per pid,
            # and only from live workers, so that after a reload to a new version the old version's
            # gauges leave with its last worker (mlmon.instrument.gunicorn.child_exit marks it dead).
            return Gauge(
                metric.name, metric.help, metric.labels, registry=registry, multiprocess_mode="livemax"
            )

        def histogram(metric: c.Metric) -> Histogram:
            return Histogram(
                metric.name, metric.help, metric.labels, registry=registry, buckets=metric.buckets
            )

        self.model_info = gauge(c.MODEL_INFO)
        self.requests = counter(c.REQUESTS)
        self.request_duration = histogram(c.REQUEST_DURATION)
        self.prediction_bin = counter(c.PREDICTION_BIN)
        self.prediction_reference_ratio = gauge(c.PREDICTION_REFERENCE_RATIO)
        self.prediction_reference_observations = gauge(c.PREDICTION_REFERENCE_OBSERVATIONS)
        self.prediction_confidence = histogram(c.PREDICTION_CONFIDENCE)
        self.reference_confidence_mean = gauge(c.REFERENCE_CONFIDENCE_MEAN)
        self.reference_confidence_observations = gauge(c.REFERENCE_CONFIDENCE_OBSERVATIONS)
        self.feature_bin = counter(c.FEATURE_BIN)
        self.feature_reference_ratio = gauge(c.FEATURE_REFERENCE_RATIO)
        self.feature_reference_observations = gauge(c.FEATURE_REFERENCE_OBSERVATIONS)
        self.feature_reference_missing_ratio = gauge(c.FEATURE_REFERENCE_MISSING_RATIO)
        self.feature_missing = counter(c.FEATURE_MISSING)
        self.invalid_input = counter(c.INVALID_INPUT)
        self.feedback = counter(c.FEEDBACK)
        self.reference_accuracy = gauge(c.REFERENCE_ACCURACY)
        self.reference_accuracy_observations = gauge(c.REFERENCE_ACCURACY_OBSERVATIONS)
        self.model_trained = gauge(c.MODEL_TRAINED_TIMESTAMP)
        # The earliest start among the workers' files: counters in those files keep counting across worker
        # restarts, so the start of the oldest one is when the summed counters began.
        self.monitor_start = Gauge(
            c.MONITOR_START.name,
            c.MONITOR_START.help,
            c.MONITOR_START.labels,
            registry=registry,
            multiprocess_mode="min",
        )
        self.started: set[tuple[str, str]] = set()
        if collector.counters:
            registry.register(collector)


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, _Metrics] = weakref.WeakKeyDictionary()
_METRICS_LOCK = threading.Lock()


def _metrics_for(registry: CollectorRegistry) -> _Metrics:
    with _METRICS_LOCK:
        metrics = _METRICS.get(registry)
        if metrics is None:
            metrics = _METRICS[registry] = _Metrics(registry)
        return metrics


# ------------------------------------------------------------------------------------------------------


class _BoundedLabels:
    """Maps raw label values to at most ``cap`` distinct ones; the rest become ``__other__``."""

    def __init__(self, cap: int, known: Sequence[str] = ()) -> None:
        self.cap = cap
        self.values: dict[str, str] = {v: v for v in known}
        self.fixed = bool(known)  # a profile's categories are the whole vocabulary

    def __call__(self, value: Any) -> str:
        text = value if isinstance(value, str) else category_label(value)
        mapped = self.values.get(text)
        if mapped is not None:
            return mapped
        if self.fixed or len(self.values) >= self.cap:
            return c.OTHER_BIN
        self.values[text] = text
        return text


@dataclass
class _FeatureSlot:
    """Everything ``observe`` needs for one feature, resolved once."""

    name: str
    profile: FeatureProfile
    numerical: bool
    edges: tuple[float, ...]
    bins: list[Any]  # counter children, one per bin
    missing: Any
    invalid: dict[str, Any]  # counter children by reason; the rarer reasons are added when first seen
    categories: dict[str, int] = field(default_factory=dict)


@dataclass
class Tracking:
    """Filled in inside ``with monitor.track(...) as t:``."""

    features: Mapping[str, Any] | None = None
    prediction: Any = None
    confidence: float | None = None


class ModelMonitor:
    """Exports the metric contract for one model version.

    ``profile`` is a :class:`Profile`, a profile file, or the MLflow URI of the model version served
    (``models:/credit-risk@champion``), whose source run carries the profile ``mlmon profile --log-to-mlflow``
    stored.

    >>> monitor = ModelMonitor("credit-risk", "3", "profile.json")  # doctest: +SKIP
    >>> monitor.observe({"income": 52000.0, "region": "north"}, prediction="ok", confidence=0.91,
    ...                 latency_seconds=0.012)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str,
        version: str,
        profile: Profile | str | Path | None = None,
        *,
        registry: CollectorRegistry | None = None,
        run_id: str = "",
        trained_at: float | None = None,
        label_value_cap: int = c.DEFAULT_LABEL_VALUE_CAP,
        clock: Callable[[], float] = time.perf_counter,
        tracking_uri: str | None = None,
    ) -> None:
        self.model = model
        self.version = str(version)
        self.profile = _load(profile, tracking_uri)
        self.registry = registry if registry is not None else REGISTRY
        self.internal_errors = 0
        self._clock = clock
        self._warned: set[str] = set()
        self._warn_lock = threading.Lock()
        m = self._metrics = _metrics_for(self.registry)
        self._lock = m.lock
        mv = (self.model, self.version)

        m.model_info.labels(*mv, run_id).set(1)
        with self._lock:
            # Once per registry and model version: a second monitor of the same version shares its counters,
            # and a new start time would make the rules read a reset that never happened.
            if mv not in m.started:
                m.started.add(mv)
                m.monitor_start.labels(*mv).set(time.time())
        if trained_at is not None:
            m.model_trained.labels(*mv).set(trained_at)
        self._ok = m.requests.labels(*mv, "ok")
        self._error = m.requests.labels(*mv, "error")
        self._latency = m.request_duration.labels(*mv)
        self._confidence = m.prediction_confidence.labels(*mv)
        self._unknown_features: dict[str, Any] = {}
        self._unknown_other = m.invalid_input.labels(*mv, UNKNOWN_FEATURE, "unknown_feature")
        self._invalid: dict[tuple[str, str], Any] = {}

        self._slots: list[_FeatureSlot] = []
        self._slot_by_name: dict[str, _FeatureSlot] = {}
        if self.profile is not None:
            for feature in self.profile.features:
                self._add_slot(feature)
            # The rows each reference value rests on; a profile written before they were kept leaves the
            # rules to take the reference as exact.
            if self.profile.reference_confidence_mean is not None:
                m.reference_confidence_mean.labels(*mv).set(self.profile.reference_confidence_mean)
                if self.profile.reference_confidence_rows:
                    rows = self.profile.reference_confidence_rows
                    m.reference_confidence_observations.labels(*mv).set(rows)
            if self.profile.reference_accuracy is not None:
                m.reference_accuracy.labels(*mv).set(self.profile.reference_accuracy)
                if self.profile.reference_accuracy_rows:
                    m.reference_accuracy_observations.labels(*mv).set(self.profile.reference_accuracy_rows)

        prediction = self.profile.prediction if self.profile is not None else None
        self._prediction = prediction
        self._prediction_children: dict[str, Any] = {}
        if prediction is not None:
            for label, ratio in zip(prediction.bin_labels, prediction.reference_ratios, strict=True):
                self._prediction_children[label] = m.prediction_bin.labels(*mv, label)
                self._prediction_children[label].inc(0)
                m.prediction_reference_ratio.labels(*mv, label).set(ratio)
            if prediction.count > 0:
                m.prediction_reference_observations.labels(*mv).set(prediction.count)
            classes = prediction.categories if prediction.kind == "categorical" else ()
        else:
            classes = ()
        self._classes = _BoundedLabels(label_value_cap, classes)
        self._label_cap_hits = m.invalid_input.labels(*mv, "__prediction__", "label_cap")
        # Zero series for ok and error, so the error ratio reads 0, not "no data", before the first failure.
        self._ok.inc(0)
        self._error.inc(0)

    def _add_slot(self, feature: FeatureProfile) -> None:
        m, mv = self._metrics, (self.model, self.version)
        bins = []
        for label, ratio in zip(feature.bin_labels, feature.reference_ratios, strict=True):
            child = m.feature_bin.labels(*mv, feature.name, label)
            child.inc(0)
            bins.append(child)
            m.feature_reference_ratio.labels(*mv, feature.name, label).set(ratio)
        if (
            feature.count > 0
        ):  # a profile written before counts were kept leaves the rules to assume a large one
            m.feature_reference_observations.labels(*mv, feature.name).set(feature.count)
        m.feature_reference_missing_ratio.labels(*mv, feature.name).set(feature.missing_ratio)
        missing = m.feature_missing.labels(*mv, feature.name)
        missing.inc(0)
        slot = _FeatureSlot(
            name=feature.name,
            profile=feature,
            numerical=feature.kind == "numerical",
            edges=feature.edges,
            bins=bins,
            missing=missing,
            invalid={
                reason: m.invalid_input.labels(*mv, feature.name, reason)
                for reason in (WRONG_TYPE, NON_FINITE)
            },
            categories={name: i for i, name in enumerate(feature.categories)},
        )
        self._slots.append(slot)
        self._slot_by_name[feature.name] = slot

    # --------------------------------------------------------------------------------------------------
    # The prediction path

    def observe(
        self,
        features: Mapping[str, Any] | None,
        prediction: Any = None,
        latency_seconds: float | None = None,
        error: bool | BaseException | None = None,
        confidence: float | None = None,
    ) -> None:
        """Count one prediction request: its features, prediction, confidence, latency and outcome.

        Inside a request handled by :class:`~mlmon.instrument.http.MonitorMiddleware` the middleware counts
        the request and its latency, and this call adds the rest. Never raises. ``error`` may be True or the exception the model raised; a failed request still
        counts its features, because inputs that break the model are part of the drift story."""
        try:
            with self._lock:
                if not REQUEST_COUNTED_BY_MIDDLEWARE.get():
                    self._count_request(latency_seconds, bool(error))
                if features is not None:
                    self._observe_features(features)
                if prediction is not None and not error:
                    self._observe_prediction(prediction)
            if confidence is not None:
                self._observe_confidence(confidence)
        except Exception as exc:  # the monitor must never break a prediction
            self._internal_error(exc)

    def record_request(self, latency_seconds: float | None, failed: bool) -> None:
        """Count one request and its latency, nothing else (what the HTTP middleware calls). Never raises."""
        try:
            with self._lock:
                self._count_request(latency_seconds, failed)
        except Exception as exc:
            self._internal_error(exc)

    def _count_request(self, latency_seconds: float | None, failed: bool) -> None:
        (self._error if failed else self._ok).inc()
        if latency_seconds is None:
            return
        # A finite Python float is the common case: x - x is 0 for it, NaN for NaN and infinities.
        if type(latency_seconds) is float and latency_seconds - latency_seconds == 0.0:
            self._latency.observe(latency_seconds)
            return
        latency = finite_number(latency_seconds)
        if isinstance(latency, float):
            self._latency.observe(latency)
        else:
            self._count_invalid(LATENCY, latency or NAN)

    def _observe_confidence(self, confidence: Any) -> None:
        if type(confidence) is float and confidence - confidence == 0.0:
            self._confidence.observe(confidence)
            return
        number = finite_number(confidence)
        if isinstance(number, float):
            self._confidence.observe(number)
        else:
            with self._lock:
                self._count_invalid(CONFIDENCE, number or NAN)

    def _count_invalid(self, field_name: str, reason: str, count: int = 1) -> None:
        """Count values of ``field_name`` (a feature, or LATENCY, CONFIDENCE, PREDICTION) that could not be
        used, by reason. Called with the lock held."""
        key = (field_name, reason)
        child = self._invalid.get(key)
        if child is None:
            slot = self._slot_by_name.get(field_name)
            child = slot.invalid.get(reason) if slot is not None else None
            if child is None:
                child = self._metrics.invalid_input.labels(self.model, self.version, field_name, reason)
            self._invalid[key] = child
        child.inc(count)
        self._warn_once(f"{reason}:{field_name}", f"{field_name!r}: {_REASON_TEXT[reason]}")

    def _observe_features(self, features: Mapping[str, Any]) -> None:
        get = features.get
        for slot in self._slots:
            value = get(slot.name, _ABSENT)
            if value is None or value is _ABSENT:
                slot.missing.inc()
                continue
            if slot.numerical:
                # A finite Python float is the common case: x - x is 0 for it, NaN for NaN and infinities.
                number = value if type(value) is float and value - value == 0.0 else finite_number(value)
                if isinstance(number, float):
                    slot.bins[bisect_right(slot.edges, number)].inc()
                elif number is None:
                    slot.missing.inc()
                else:
                    self._count_invalid(slot.name, number)
            elif type(value) is str:
                slot.bins[slot.categories.get(value, -1)].inc()  # -1 is the __other__ bin
            else:
                text = category_text(value)
                if text is None:
                    slot.missing.inc()
                elif text is NON_SCALAR:
                    self._count_invalid(slot.name, NON_SCALAR)
                else:
                    slot.bins[slot.categories.get(text, -1)].inc()
        if len(features) > len(self._slots) or any(name not in self._slot_by_name for name in features):
            self._count_unknown(features)

    def _count_unknown(self, features: Mapping[str, Any], rows: int = 1) -> None:
        for name in features:
            if name not in self._slot_by_name:
                self._unknown_counter(name).inc(rows)

    def _unknown_counter(self, name: Any) -> Any:
        # A name with a hidden character (a zero-width space, 'café' with a combining accent) is shown
        # escaped, so that status and the dashboard show how it differs from the profile's name.
        label = visible(str(name))[:UNKNOWN_NAME_LENGTH]
        counter = self._unknown_features.get(label)
        if counter is not None:
            return counter
        if len(self._unknown_features) >= UNKNOWN_NAMES_CAP or label == UNKNOWN_FEATURE:
            self._warn_once("unknown:cap", f"more than {UNKNOWN_NAMES_CAP} unknown feature names")
            return self._unknown_other
        self._warn_once(
            f"unknown:{label}",
            f"feature {label!r} is not in the reference profile; it is counted, not binned",
        )
        counter = self._unknown_features[label] = self._metrics.invalid_input.labels(
            self.model, self.version, label, "unknown_feature"
        )
        return counter

    @property
    def _prediction_is_label(self) -> bool:
        return self._prediction is None or self._prediction.kind == "categorical"

    def _observe_prediction(self, prediction: Any, count: int = 1) -> None:
        profile = self._prediction
        # Text is the common case for a class and needs none of category_text's checks.
        if type(prediction) is not str and (profile is None or profile.kind == "categorical"):
            text = category_text(prediction)
            if text is None or text is NON_SCALAR:
                self._count_invalid(PREDICTION, text or NAN, count)
                return
            prediction = text
        if profile is None:
            label = self._classes(prediction)
        elif profile.kind == "numerical":
            finite = type(prediction) is float and prediction - prediction == 0.0
            number = prediction if finite else finite_number(prediction)
            if not isinstance(number, float):
                self._count_invalid(PREDICTION, number or NAN, count)
                return
            label = str(bisect_right(profile.edges, number))
        else:
            label = self._classes(prediction)
        child = self._prediction_children.get(label)
        if child is None:
            if label == c.OTHER_BIN and profile is None:
                self._label_cap_hits.inc(count)
                self._warn_once(
                    "cap:prediction",
                    f"more than {self._classes.cap} prediction classes; the rest count as {c.OTHER_BIN}",
                )
            child = self._prediction_children[label] = self._metrics.prediction_bin.labels(
                self.model, self.version, label
            )
        child.inc(count)

    def observe_batch(
        self,
        features: Mapping[str, Sequence[Any]],
        predictions: Sequence[Any] | None = None,
        latencies: Sequence[float] | None = None,
        errors: Sequence[bool] | None = None,
        confidences: Sequence[float] | None = None,
    ) -> None:
        """Count many rows at once: ``features`` maps each feature to a column (list or numpy array).

        Vectorised with numpy: per feature, one searchsorted and one bincount, then one ``inc`` per bin.
        Never raises."""
        try:
            with self._lock:
                self._observe_batch(features, predictions, latencies, errors, confidences)
        except Exception as exc:
            self._internal_error(exc)

    def _observe_batch(
        self,
        features: Mapping[str, Sequence[Any]],
        predictions: Sequence[Any] | None,
        latencies: Sequence[float] | None,
        errors: Sequence[bool] | None,
        confidences: Sequence[float] | None,
    ) -> None:
        import numpy as np

        rows = _batch_rows(features, predictions)
        failed = int(np.count_nonzero(np.asarray(errors, dtype=bool))) if errors is not None else 0
        self._ok.inc(rows - failed)
        if failed:
            self._error.inc(failed)
        if latencies is not None:
            for reason, n in observe_many(self._latency, latencies).items():
                self._count_invalid(LATENCY, reason, n)
        for slot in self._slots:
            column = features.get(slot.name)
            if column is None:
                slot.missing.inc(rows)
                continue
            counts, missing, invalid = _bin_column(slot, column, np)
            for index in np.flatnonzero(counts):
                slot.bins[index].inc(float(counts[index]))
            if missing:
                slot.missing.inc(missing)
            for reason, n in invalid.items():
                self._count_invalid(slot.name, reason, n)
        self._count_unknown(features, rows)
        if predictions is not None:
            values = np.asarray(predictions, dtype=object)
            if errors is not None:
                values = values[~np.asarray(errors, dtype=bool)]
            values = values[np.fromiter((v is not None for v in values), dtype=bool, count=len(values))]
            # One increment per distinct prediction, not one per row (each distinct value is judged once).
            tally = _tally(values.tolist()) if self._prediction_is_label else None
            if tally is None:
                try:
                    distinct, counts = np.unique(values.astype(float), return_counts=True)
                    tally = Tally(dict(zip(distinct.tolist(), counts.tolist(), strict=True)))
                except (TypeError, ValueError, OverflowError):  # objects that are not all numbers
                    tally = Tally(map(hashable, values.tolist()))
            for prediction, count in tally.items():
                self._observe_prediction(prediction, count)
        if confidences is not None:
            for reason, n in observe_many(self._confidence, confidences).items():
                self._count_invalid(CONFIDENCE, reason, n)

    @contextmanager
    def track(self, features: Mapping[str, Any] | None = None) -> Iterator[Tracking]:
        """Time a prediction and count it, with its error if the block raises (the error is re-raised).

        >>> with monitor.track(features) as t:  # doctest: +SKIP
        ...     t.prediction = model.predict(row)
        """
        tracking = Tracking(features=features)
        start = self._clock()
        try:
            yield tracking
        except BaseException as exc:
            self.observe(tracking.features, None, self._clock() - start, error=exc)
            raise
        self.observe(
            tracking.features, tracking.prediction, self._clock() - start, confidence=tracking.confidence
        )

    def timed(self, function: Callable[P, R]) -> Callable[P, R]:
        """Decorator: count and time each call of ``function``; an exception counts as an error."""
        import functools

        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with self.track():
                return function(*args, **kwargs)

        return wrapper

    def record_feedback(self, predicted: Any, actual: Any) -> None:
        """Count delayed ground truth for one earlier prediction. Never raises."""
        try:
            correct = "true" if category_label(predicted) == category_label(actual) else "false"
            with self._lock:  # the class map grows under the lock, so the cap holds across threads
                p, a = self._classes(predicted), self._classes(actual)
                self._metrics.feedback.labels(self.model, self.version, p, a, correct).inc()
        except Exception as exc:
            self._internal_error(exc)

    # --------------------------------------------------------------------------------------------------

    def _warn_once(self, key: str, message: str) -> None:
        if key in self._warned:
            return
        with self._warn_lock:
            if key in self._warned or len(self._warned) > 10_000:
                return
            self._warned.add(key)
        log.warning("mlmon: model %s version %s: %s (logged once)", self.model, self.version, message)

    def _internal_error(self, exc: BaseException) -> None:
        self.internal_errors += 1
        self._warn_once(f"internal:{type(exc).__name__}", f"monitor error swallowed: {exc!r}")


def _load(profile: Profile | str | Path | None, tracking_uri: str | None) -> Profile | None:
    """A profile given as an object, a file, or an MLflow URI (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``,
    ``runs:/RUN_ID``). Loading happens once, at start-up, where a failure should stop the service loudly."""
    if isinstance(profile, str) and profile.startswith(("models:/", "runs:/")):
        from mlmon.drift.mlflow_profile import load_profile_from_mlflow

        return load_profile_from_mlflow(profile, tracking_uri)
    if isinstance(profile, str | Path):
        return load_profile(profile)
    return profile


def _batch_rows(features: Mapping[str, Sequence[Any]], predictions: Sequence[Any] | None) -> int:
    lengths = {len(column) for column in features.values()}
    if predictions is not None:
        lengths.add(len(predictions))
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _bin_column(slot: _FeatureSlot, column: Sequence[Any], np: Any) -> tuple[Any, int, Tally[str]]:
    """(counts per bin, missing, invalid by reason) for one column, with the rules of ``observe``."""
    size = len(slot.bins)
    if slot.numerical:
        array = np.asarray(column) if not isinstance(column, list) else None
        if array is None or array.dtype.kind not in "fiub" or array.ndim != 1:
            return _bin_objects(slot, column, np)
        values = array.astype(float, copy=False)  # float16 and float32 are exact in float64
        nan = np.isnan(values)
        inf = np.isinf(values)
        good = values[~(nan | inf)]
        counts = np.bincount(np.searchsorted(slot.edges, good, side="right"), minlength=size)
        non_finite = int(inf.sum())
        return counts, int(nan.sum()), Tally({NON_FINITE: non_finite} if non_finite else {})
    return _bin_objects(slot, column, np)


def _bin_objects(slot: _FeatureSlot, column: Sequence[Any], np: Any) -> tuple[Any, int, Tally[str]]:
    """Bin a column of Python objects: each distinct value is classified once (a C-speed tally first), so a
    categorical column of 1,000 rows costs a few dozen dictionary operations, not 1,000 Python steps."""
    counts = np.zeros(len(slot.bins), dtype=np.int64)
    missing = 0
    invalid: Tally[str] = Tally()
    values = column.tolist() if hasattr(column, "tolist") else list(column)
    for value, n in _tally(values).items():
        if isinstance(value, Unhashable):
            invalid[NON_SCALAR] += n
            continue
        if slot.numerical:
            number = finite_number(value)
            if isinstance(number, float):
                counts[bisect_right(slot.edges, number)] += n
            elif number is None:
                missing += n
            else:
                invalid[number] += n
        else:
            text = value if type(value) is str else category_text(value)
            if text is None:
                missing += n
            elif text is NON_SCALAR:
                invalid[NON_SCALAR] += n
            else:
                counts[slot.categories.get(text, len(slot.bins) - 1)] += n
    return counts, missing, invalid


def _tally(values: list[Any]) -> Tally[Any]:
    """How often each value occurs; an unhashable value (a list, a dict) counts by its text."""
    try:
        return Tally(values)
    except TypeError:
        return Tally(map(hashable, values))
