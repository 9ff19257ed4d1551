"""The servers mlmon talks to, each in one place.

- :mod:`mlmon.backends.http`: one HTTP exchange bounded as a whole (deadline, size caps, no redirects), which
  both clients below use;
- :mod:`mlmon.backends.prometheus`: Prometheus' HTTP API (queries, ranges, alerts, rules);
- :mod:`mlmon.backends.mlflow`: MLflow: how a store is reached and its errors (``client``), the REST API
  (``rest``), runs, experiments and registered models (``runs``), the registry as `mlmon status` reads it
  (``registry``). Profiles and drift reports as MLflow artifacts are in :mod:`mlmon.drift`.
"""
