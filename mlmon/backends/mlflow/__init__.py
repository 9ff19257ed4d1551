"""MLflow, for every command and for the instrument: ``client`` (how a store is reached, bounded calls, errors;
the only module that imports MLflow's client), ``rest`` (MLflow's REST API over the standard library), ``runs``
(runs, experiments and registered models), ``registry`` (the registry as `mlmon status` reads it)."""
