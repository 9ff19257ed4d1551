"""Where things live: the files mlmon generates (relative to the output folder) and its templates.

Kept free of heavy imports, so that a command can find out that nothing changed without loading Jinja2.
"""

from __future__ import annotations

from pathlib import Path

# Output file -> template (the same path plus .j2). The order is the order of the printed plan.
PROMETHEUS_CONFIG = "prometheus/prometheus.yml"
RECORDING_RULES = "prometheus/rules/mlmon-recording.yml"
ALERT_RULES = "prometheus/rules/mlmon-alerts.yml"
ALERT_TESTS = "prometheus/tests/mlmon-alerts-test.yml"
ALERTMANAGER_CONFIG = "alertmanager/alertmanager.yml"
GRAFANA_DATASOURCE = "grafana/provisioning/datasources/mlmon.yml"
GRAFANA_DASHBOARD_PROVIDER = "grafana/provisioning/dashboards/mlmon.yml"
GRAFANA_DASHBOARD = "grafana/dashboards/mlmon-overview.json"
ALL_OUTPUTS = (
    PROMETHEUS_CONFIG,
    RECORDING_RULES,
    ALERT_RULES,
    ALERT_TESTS,
    ALERTMANAGER_CONFIG,
    GRAFANA_DATASOURCE,
    GRAFANA_DASHBOARD_PROVIDER,
    GRAFANA_DASHBOARD,
)
RULE_OUTPUTS = (RECORDING_RULES, ALERT_RULES, ALERT_TESTS)
SPEC_TEMPLATE = "mlmon.yaml.j2"


def builtin_templates_dir() -> Path:
    """The templates shipped with mlmon: the live top-level templates/ folder in a checkout or editable
    install, package data inside a wheel."""
    from importlib.resources import files

    return Path(str(files("mlmon.templates")))
