"""`mlmon check` as a library: real promtool and amtool on generated output, and the checks mlmon makes itself
(dashboard structure, PromQL parse, metric contract) on output broken on purpose.

Tests that need promtool or amtool skip when the binary is missing, unless MLMON_REQUIRE_TOOLS is set (CI),
where a missing binary fails the test. Tests of the Python checks hide the tools (an empty PATH), so that
they run fast and everywhere, and the tools' results are then exactly "skipped".
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlmon import contract
from mlmon.check import (
    AMTOOL_CONFIG,
    DASHBOARD_STRUCTURE,
    GRAFANA_PROVISIONING,
    METRIC_CONTRACT,
    PROMQL_PARSE,
    PROMTOOL_CONFIG,
    PROMTOOL_RULES,
    PROMTOOL_TESTS,
    CheckReport,
    CheckResult,
    check_output,
    selected_metrics,
    unknown_metrics,
)
from mlmon.errors import MlmonError
from mlmon.render import apply_plan, plan_changes, render_outputs
from mlmon.spec import spec_from_dict

REQUIRE_TOOLS = os.environ.get("MLMON_REQUIRE_TOOLS", "") not in ("", "0")
TOOL_PACKAGES = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}


def require_tool(name: str) -> None:
    """Skip the test when ``name`` is not on PATH; fail it instead when MLMON_REQUIRE_TOOLS is set."""
    if shutil.which(name) is None:
        message = f"{name} not found on PATH (Debian: apt-get install {TOOL_PACKAGES[name]})"
        if REQUIRE_TOOLS:
            pytest.fail(f"{message}; MLMON_REQUIRE_TOOLS is set, so this fails rather than skips")
        pytest.skip(message)


@pytest.fixture
def real_tools() -> None:
    for name in TOOL_PACKAGES:
        require_tool(name)


@pytest.fixture
def no_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with neither promtool nor amtool on it; returns the (empty) folder it points to."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


# ----------------------------------------------------------------------------------------------------------
# Specs and generated folders

MINIMAL: dict[str, Any] = {"models": [{"name": "credit-risk", "targets": ["127.0.0.1:8000"]}]}


def full_spec(secrets: Path) -> dict[str, Any]:
    """Several models and tasks, distinct windows, and a receiver of every kind, secrets in files."""
    secrets.mkdir(exist_ok=True)
    for name in ("slack-url", "pagerduty-key", "smtp-password", "webhook-token"):
        (secrets / name).write_text("not-a-real-secret\n")
    return {
        "project": "payments",
        "prometheus": {"scrape_interval": "10s", "external_labels": {"env": "prod", "region": "eu-west-1"}},
        "alertmanager": {
            "receivers": [
                {
                    "name": "team-webhook",
                    "webhook": {
                        "url": "http://127.0.0.1:5001/alerts",
                        "bearer_token_file": str(secrets / "webhook-token"),
                    },
                },
                {
                    "name": "slack",
                    "severities": ["warning"],
                    "slack": {"api_url_file": str(secrets / "slack-url"), "channel": "#ml-alerts"},
                },
                {
                    "name": "pager",
                    "severities": ["critical"],
                    "pagerduty": {"routing_key_file": str(secrets / "pagerduty-key")},
                },
                {
                    "name": "mail",
                    "email": {
                        "to": "ml-team@example.org",
                        "from": "alerts@example.org",
                        "smarthost": "smtp.example.org:587",
                        "auth_username": "alerts",
                        "auth_password_file": str(secrets / "smtp-password"),
                    },
                },
            ]
        },
        "models": [
            {
                "name": "credit-risk",
                "targets": ["127.0.0.1:8000", "127.0.0.1:8001"],
                "features": [{"name": "income"}, {"name": "region", "type": "categorical"}],
                "thresholds": {"latency_p95_seconds": 0.2, "error_ratio": 0.01},
            },
            {
                "name": "churn",
                "task": "regression",
                "file_sd": ["targets/churn.json"],
                "features": ["tenure"],
                "thresholds": {"drift_window": "30m", "feedback_window": "1d"},
            },
            {
                "name": "fraud",
                "targets": ["127.0.0.1:8002"],
                # Judged against the same window 3 hours earlier: its own rules, alert tests and panel target.
                "thresholds": {"drift_window": "2h", "drift_baseline": "seasonal", "seasonal_period": "3h"},
            },
        ],
    }


HOSTILE_NAME = 'we"ird \\ back {{ x }} # a: b é 模型 $x'

HOSTILE: dict[str, Any] = {
    "project": 'evil "project" {{ x }} # $HOME',
    "grafana": {"folder": "{{ folder }} $x: y"},
    "alertmanager": {
        "receivers": [
            {"name": 'hook "{{ x }}" #1: é', "webhook": {"url": "http://127.0.0.1:5001/a?b=c#d"}},
            {
                "name": "slack {{",
                "slack": {"api_url_file": "/run/secrets/slack url", "channel": "#a {{ b }}"},
            },
        ]
    },
    "models": [
        {"name": "plain", "targets": ["127.0.0.1:8000"], "features": ["income"]},
        {
            "name": HOSTILE_NAME,
            "targets": ["127.0.0.1:8001"],
            "features": ['f"{{1}}', "back\\slash: # é"],
            "thresholds": {
                "drift_window": "30m",
                "feedback_window": "7d",
                "drift_baseline": "seasonal",
                "seasonal_period": "1h",
            },
        },
    ],
}


def generate(spec: dict[str, Any], out: Path) -> Path:
    apply_plan(plan_changes(out, render_outputs(spec_from_dict(spec))))
    return out


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    return generate(MINIMAL, tmp_path / "out")


RECORDING = "prometheus/rules/mlmon-recording.yml"
ALERTS = "prometheus/rules/mlmon-alerts.yml"
TESTS = "prometheus/tests/mlmon-alerts-test.yml"
DASHBOARD = "grafana/dashboards/mlmon-overview.json"

# Every result, in report order, for a folder `mlmon init` wrote.
RESULT_KEYS = [
    (PROMTOOL_CONFIG, "prometheus/prometheus.yml"),
    (PROMTOOL_RULES, ALERTS),
    (PROMTOOL_RULES, RECORDING),
    (PROMTOOL_TESTS, TESTS),
    (AMTOOL_CONFIG, "alertmanager/alertmanager.yml"),
    (GRAFANA_PROVISIONING, "grafana/provisioning/datasources/mlmon.yml"),
    (GRAFANA_PROVISIONING, "grafana/provisioning/dashboards/mlmon.yml"),
    (DASHBOARD_STRUCTURE, DASHBOARD),
    (PROMQL_PARSE, ALERTS),
    (METRIC_CONTRACT, ALERTS),
    (PROMQL_PARSE, RECORDING),
    (METRIC_CONTRACT, RECORDING),
    (PROMQL_PARSE, DASHBOARD),
    (METRIC_CONTRACT, DASHBOARD),
]
TOOL_CHECKS = {PROMTOOL_CONFIG, PROMTOOL_RULES, PROMTOOL_TESTS, AMTOOL_CONFIG}


def statuses(report: CheckReport) -> list[tuple[str, str, str]]:
    return [(r.name, r.target, r.status) for r in report.results]


def expected(failed: Collection[tuple[str, str]] = (), tools: bool = True) -> list[tuple[str, str, str]]:
    """The statuses of a whole report: ``failed`` fail, tool checks are skipped without ``tools``, the
    rest pass."""
    rows = []
    for name, target in RESULT_KEYS:
        if (name, target) in failed:
            status = "failed"
        elif name in TOOL_CHECKS and not tools:
            status = "skipped"
        else:
            status = "passed"
        rows.append((name, target, status))
    return rows


def result(report: CheckReport, name: str, target: str) -> CheckResult:
    [found] = [r for r in report.results if (r.name, r.target) == (name, target)]
    return found


def edit_yaml(path: Path, change: Callable[[Any], None]) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")


def edit_json(path: Path, change: Callable[[Any], None]) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")


def recording_group(document: Any, name: str = "mlmon.rates.5m") -> list[dict[str, Any]]:
    [group] = [g for g in document["groups"] if g["name"] == name]
    rules: list[dict[str, Any]] = group["rules"]
    return rules


def panel(dashboard: Any, title: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [p for p in dashboard["panels"] if p["title"] == title]
    [only] = found
    return only


# ----------------------------------------------------------------------------------------------------------
# Generated output passes every check, with the real tools


@pytest.mark.prometheus
@pytest.mark.alertmanager
@pytest.mark.usefixtures("real_tools")
@pytest.mark.parametrize("name", ["minimal", "full", "hostile"])
def test_generated_output_passes_every_check(name: str, tmp_path: Path) -> None:
    spec = {"minimal": MINIMAL, "full": full_spec(tmp_path / "secrets"), "hostile": HOSTILE}[name]
    out = generate(spec, tmp_path / "out")

    report = check_output(out, require_tools=True)

    assert [(r.status, r.detail) for r in report.failures] == []
    assert statuses(report) == expected()
    assert report.failed is False
    assert report.skipped == ()
    assert report.directory == str(out)


def test_hostile_names_reach_the_checked_files(tmp_path: Path) -> None:
    """Guards the test above: the hostile names really are in what was checked."""
    out = generate(HOSTILE, tmp_path / "out")
    alerts = yaml.safe_load((out / ALERTS).read_text(encoding="utf-8"))
    assert {rule["labels"]["model"] for group in alerts["groups"] for rule in group["rules"]} == {
        "plain",
        HOSTILE_NAME.replace("{{", '{{ "{{" }}'),
    }


# ----------------------------------------------------------------------------------------------------------
# Broken rule files, caught by promtool and by mlmon's own checks


@pytest.mark.prometheus
@pytest.mark.alertmanager
@pytest.mark.usefixtures("real_tools")
def test_rule_with_bad_promql_fails(generated: Path) -> None:
    edit_yaml(
        generated / RECORDING,
        lambda doc: recording_group(doc).append(
            {"record": "model:broken:rate5m", "expr": "sum(rate(up[5m])"}
        ),
    )

    report = check_output(generated, require_tools=True)

    assert statuses(report) == expected(
        {
            (PROMTOOL_CONFIG, "prometheus/prometheus.yml"),
            (PROMTOOL_RULES, RECORDING),
            (PROMTOOL_TESTS, TESTS),
            (PROMQL_PARSE, RECORDING),
        }
    )
    promtool_detail = result(report, PROMTOOL_RULES, RECORDING).detail
    assert '"model:broken:rate5m": could not parse expression' in promtool_detail
    assert "unclosed left parenthesis" in promtool_detail
    assert result(report, PROMQL_PARSE, RECORDING).detail == (
        "group 'mlmon.rates.5m' record 'model:broken:rate5m': unclosed left parenthesis in: sum(rate(up[5m])"
    )
    # promtool test rules reports a broken rule file once per test; the detail says it once.
    test_detail = result(report, PROMTOOL_TESTS, TESTS).detail
    assert test_detail.count("unclosed left parenthesis") == 1


@pytest.mark.prometheus
@pytest.mark.usefixtures("real_tools")
def test_duplicate_rule_fails_only_because_of_lint_fatal(generated: Path) -> None:
    edit_yaml(generated / RECORDING, lambda doc: recording_group(doc).append(dict(recording_group(doc)[0])))

    report = check_output(generated, require_tools=True)

    # promtool check config lints duplicates too, but exits 0 without --lint-fatal.
    assert statuses(report) == expected({(PROMTOOL_RULES, RECORDING)})
    assert result(report, PROMTOOL_RULES, RECORDING).detail.splitlines()[:2] == [
        "lint error 1 duplicate rule(s) found.",
        "Metric: model:mlmon_requests:rate5m",
    ]


@pytest.mark.prometheus
@pytest.mark.usefixtures("real_tools")
def test_rule_selecting_a_metric_outside_the_contract_fails_only_the_contract(generated: Path) -> None:
    edit_yaml(
        generated / RECORDING,
        lambda doc: recording_group(doc).append(
            {"record": "model:mlmon_typo:rate5m", "expr": "sum by (model) (rate(mlmon_typo_total[5m]))"}
        ),
    )

    report = check_output(generated, require_tools=True)

    # Valid PromQL to promtool: only the contract check knows mlmon_typo_total is exported by nobody.
    assert statuses(report) == expected({(METRIC_CONTRACT, RECORDING)})
    assert result(report, METRIC_CONTRACT, RECORDING).detail.splitlines() == [
        "group 'mlmon.rates.5m' record 'model:mlmon_typo:rate5m' selects mlmon_typo_total",
        "these are neither in the metric contract (mlmon.contract) "
        "nor recorded by a rule in prometheus/rules/",
    ]


@pytest.mark.prometheus
@pytest.mark.usefixtures("real_tools")
def test_alert_that_no_longer_fires_fails_the_rule_tests(generated: Path) -> None:
    def raise_threshold(doc: Any) -> None:
        for group in doc["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == "MlmonErrorRatioHigh":
                    rule["expr"] = rule["expr"].replace("> 0.05", "> 0.99")

    edit_yaml(generated / ALERTS, raise_threshold)

    report = check_output(generated, require_tools=True)

    assert statuses(report) == expected({(PROMTOOL_TESTS, TESTS)})
    assert "alertname: MlmonErrorRatioHigh" in result(report, PROMTOOL_TESTS, TESTS).detail


@pytest.mark.alertmanager
def test_broken_alertmanager_config_fails(generated: Path) -> None:
    require_tool("amtool")
    config = generated / "alertmanager/alertmanager.yml"
    config.write_text(config.read_text().replace("receiver: mlmon-unrouted", "receiver: nobody", 1))

    report = check_output(generated)

    assert result(report, AMTOOL_CONFIG, "alertmanager/alertmanager.yml") == CheckResult(
        AMTOOL_CONFIG, "alertmanager/alertmanager.yml", "failed", 'undefined receiver "nobody" used in route'
    )


# ----------------------------------------------------------------------------------------------------------
# Dashboards: structure


def _overlap(d: Any) -> None:
    d["panels"][1]["gridPos"] = dict(d["panels"][0]["gridPos"])


def _duplicate_id(d: Any) -> None:
    d["panels"][1]["id"] = d["panels"][0]["id"]


def _no_datasource_variable(d: Any) -> None:
    d["templating"]["list"] = [v for v in d["templating"]["list"] if v["type"] != "datasource"]


def _fixed_datasource(d: Any) -> None:
    d["panels"][2]["datasource"] = {"type": "prometheus", "uid": "abc"}


def _fixed_target_datasource(d: Any) -> None:
    d["panels"][2]["targets"][0]["datasource"] = "Prometheus"


def _off_grid(d: Any) -> None:
    d["panels"][5]["gridPos"].update(x=20, w=8)


def _float_width(d: Any) -> None:
    d["panels"][0]["gridPos"]["w"] = 4.5


def _no_targets(d: Any) -> None:
    d["panels"][3]["targets"] = [{"refId": "A", "expr": " "}]


def _long_uid(d: Any) -> None:
    d["uid"] = "x" * 41


def _text_schema_version(d: Any) -> None:
    d["schemaVersion"] = "39"


@pytest.mark.usefixtures("no_tools")
@pytest.mark.parametrize(
    ("break_dashboard", "problem"),
    [
        (
            _overlap,
            "panel 2 'Requests / s' (x=0 y=0 w=4 h=4) overlaps panel 1 'Targets up' (x=0 y=0 w=4 h=4)",
        ),
        (_duplicate_id, "panel id 1 is used by 2 panels: 'Targets up', 'Requests / s'"),
        (
            _no_datasource_variable,
            'has no templating variable of type "datasource", so its panels cannot follow the data source '
            "the user picks",
        ),
        (
            _fixed_datasource,
            'panel 3 \'Error ratio\' uses data source {"type": "prometheus", "uid": "abc"}, '
            "not the dashboard's datasource variable",
        ),
        (
            _fixed_target_datasource,
            "panel 3 'Error ratio' target A uses data source \"Prometheus\", "
            "not the dashboard's datasource variable",
        ),
        (_off_grid, "panel 6 'Firing alerts' (x=20 y=0 w=8 h=4) is off the 24-column grid"),
        (_float_width, "panel 1 'Targets up' has no gridPos with integer x, y, w, h"),
        (_no_targets, "panel 4 'p95 latency' has no query (no target with an expr)"),
        (_long_uid, f"uid '{'x' * 41}' is 41 characters long; Grafana allows 40"),
        (_text_schema_version, "schemaVersion is '39', not an integer"),
    ],
    ids=lambda value: getattr(value, "__name__", "")[1:] or None,
)
def test_broken_dashboard_fails_structure(
    generated: Path, break_dashboard: Callable[[Any], None], problem: str
) -> None:
    edit_json(generated / DASHBOARD, break_dashboard)

    report = check_output(generated)

    assert statuses(report) == expected({(DASHBOARD_STRUCTURE, DASHBOARD)}, tools=False)
    assert result(report, DASHBOARD_STRUCTURE, DASHBOARD).detail.splitlines() == [problem]


@pytest.mark.usefixtures("no_tools")
def test_dashboard_that_is_not_json_fails(generated: Path) -> None:
    (generated / DASHBOARD).write_text('{"uid": ', encoding="utf-8")

    report = check_output(generated)

    assert result(report, DASHBOARD_STRUCTURE, DASHBOARD).status == "failed"
    assert result(report, DASHBOARD_STRUCTURE, DASHBOARD).detail.startswith("cannot read as JSON: ")
    assert result(report, PROMQL_PARSE, DASHBOARD).status == "failed"
    assert result(report, METRIC_CONTRACT, DASHBOARD).status == "skipped"


@pytest.mark.usefixtures("no_tools")
def test_provisioning_with_another_api_version_fails(generated: Path) -> None:
    target = "grafana/provisioning/datasources/mlmon.yml"
    edit_yaml(generated / target, lambda doc: doc.update(apiVersion=2))

    report = check_output(generated)

    assert statuses(report) == expected({(GRAFANA_PROVISIONING, target)}, tools=False)
    assert result(report, GRAFANA_PROVISIONING, target).detail == (
        "apiVersion is 2; Grafana reads provisioning apiVersion 1"
    )


# ----------------------------------------------------------------------------------------------------------
# Dashboards: queries, with Grafana's variables


def set_expr(title: str, expr: str) -> Callable[[Any], None]:
    def change(dashboard: Any) -> None:
        panel(dashboard, title)["targets"][0]["expr"] = expr

    return change


@pytest.mark.usefixtures("no_tools")
def test_dashboard_selecting_a_metric_outside_the_contract_fails(generated: Path) -> None:
    expr = 'sum by (model) (rate(mlmon_typo_total{model=~"$model"}[$__rate_interval]))'
    edit_json(generated / DASHBOARD, set_expr("Traffic", expr))

    report = check_output(generated)

    assert statuses(report) == expected({(METRIC_CONTRACT, DASHBOARD)}, tools=False)
    assert result(report, METRIC_CONTRACT, DASHBOARD).detail.splitlines()[0] == (
        "panel 'Traffic' target A selects mlmon_typo_total"
    )


@pytest.mark.usefixtures("no_tools")
def test_dashboard_variable_selecting_a_metric_outside_the_contract_fails(generated: Path) -> None:
    def change(dashboard: Any) -> None:
        [model] = [v for v in dashboard["templating"]["list"] if v["name"] == "model"]
        model["query"]["query"] = 'label_values(mlmon_typo_info{job=~".+"}, model)'

    edit_json(generated / DASHBOARD, change)

    report = check_output(generated)

    assert statuses(report) == expected({(METRIC_CONTRACT, DASHBOARD)}, tools=False)
    assert result(report, METRIC_CONTRACT, DASHBOARD).detail.splitlines()[0] == (
        "variable $model selects mlmon_typo_info"
    )


@pytest.mark.usefixtures("no_tools")
def test_dashboard_query_that_does_not_parse_names_panel_and_ref_id(generated: Path) -> None:
    def change(dashboard: Any) -> None:
        panel(dashboard, "Latency quantiles")["targets"][1]["expr"] = (
            'max(model:mlmon_requests:rate5m{model=~"$model"}'
        )

    edit_json(generated / DASHBOARD, change)

    report = check_output(generated)

    assert statuses(report) == expected({(PROMQL_PARSE, DASHBOARD)}, tools=False)
    assert result(report, PROMQL_PARSE, DASHBOARD).detail == (
        "panel 'Latency quantiles' target B: unclosed left parenthesis in: "
        'max(model:mlmon_requests:rate5m{model=~".*"}'
    )


@pytest.mark.usefixtures("no_tools")
def test_dashboard_query_with_an_undefined_variable_says_so(generated: Path) -> None:
    edit_json(generated / DASHBOARD, set_expr("Traffic", 'model:mlmon_requests:rate$typo{model=~"$model"}'))

    report = check_output(generated)

    detail = result(report, PROMQL_PARSE, DASHBOARD).detail
    assert detail.startswith("panel 'Traffic' target A: ")
    assert "(the dashboard defines no variable $typo)" in detail


@pytest.mark.usefixtures("no_tools")
def test_grafana_macros_and_variable_forms_are_substituted_before_parsing(generated: Path) -> None:
    expr = (
        'sum(rate(mlmon_requests_total{model=~"${model:regex}",version=~"[[model]]"}[$__rate_interval]))'
        " / sum(increase(mlmon_requests_total[${__range}])) * $__range_s"
        " + sum(avg_over_time(model_feature:mlmon_feature_psi:$window[$__interval]))"
        ' + max(label_replace(up, "m", "$1", "job", "(.*)"))'
    )
    edit_json(generated / DASHBOARD, set_expr("Traffic", expr))

    report = check_output(generated)

    assert statuses(report) == expected(tools=False)


@pytest.mark.usefixtures("no_tools")
def test_window_variable_is_checked_with_every_option(generated: Path) -> None:
    # The minimal spec's drift window is 1h, the $window variable's only option; a second option (6h, the
    # feedback window) selects drift series no rule records, since a window counts only what is watched over it.
    def add_6h(dashboard: Any) -> None:
        [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "window"]
        variable["options"].append({"text": "6h", "value": "6h", "selected": False})

    edit_json(generated / DASHBOARD, add_6h)

    report = check_output(generated)

    assert statuses(report) == expected({(METRIC_CONTRACT, DASHBOARD)}, tools=False)
    lines = result(report, METRIC_CONTRACT, DASHBOARD).detail.splitlines()
    assert lines[0] == (
        "panel 'Worst feature PSI' target A with $window=6h selects model_feature:mlmon_feature_psi:6h"
    )
    assert not [line for line in lines if "$window=1h" in line]


@pytest.mark.usefixtures("no_tools")
def test_feedback_window_variable_reads_the_feedback_series(generated: Path) -> None:
    def drop_6h(doc: Any) -> None:
        for group in doc["groups"]:
            group["rules"] = [r for r in group["rules"] if not r["record"].endswith("6h")]

    edit_yaml(generated / RECORDING, drop_6h)

    report = check_output(generated)

    # The accuracy panel and the alert on feedback accuracy read the 6h series.
    assert statuses(report) == expected(
        {(METRIC_CONTRACT, DASHBOARD), (METRIC_CONTRACT, ALERTS)}, tools=False
    )
    lines = result(report, METRIC_CONTRACT, DASHBOARD).detail.splitlines()
    # The evidence panel's accuracy target, then the accuracy panel's, read the feedback window too.
    assert lines[:2] == [
        'panel "Drift evidence (z over $window; alerts above the model\'s z, about 5)" target E with '
        "$feedback_window=6h selects model:mlmon_accuracy:drop_z_6h",
        "panel 'Accuracy and macro F1 from feedback (over $feedback_window)' target A with $feedback_window=6h"
        " selects model:mlmon_feedback_accuracy:ratio_6h",
    ]
    assert not [line for line in lines if "$window=" in line]


# ----------------------------------------------------------------------------------------------------------
# Tools: missing, required, stuck


def test_missing_tools_are_skipped_or_failed_when_required(generated: Path, no_tools: Path) -> None:
    promtool_missing = "promtool not found on PATH; on Debian: apt-get install prometheus"
    amtool_missing = "amtool not found on PATH; on Debian: apt-get install prometheus-alertmanager"

    lenient = check_output(generated)
    strict = check_output(generated, require_tools=True)

    assert statuses(lenient) == expected(tools=False)
    assert lenient.failed is False
    assert [(r.name, r.detail) for r in lenient.skipped] == [
        (PROMTOOL_CONFIG, promtool_missing),
        (PROMTOOL_RULES, promtool_missing),
        (PROMTOOL_RULES, promtool_missing),
        (PROMTOOL_TESTS, promtool_missing),
        (AMTOOL_CONFIG, amtool_missing),
    ]
    assert statuses(strict) == expected({key for key in RESULT_KEYS if key[0] in TOOL_CHECKS})
    assert strict.skipped == ()
    assert result(strict, AMTOOL_CONFIG, "alertmanager/alertmanager.yml").detail == amtool_missing


def test_tool_that_hangs_fails_after_the_timeout(generated: Path, no_tools: Path) -> None:
    fake = no_tools / "promtool"
    fake.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(30)\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)

    report = check_output(generated, timeout=0.2)

    assert result(report, PROMTOOL_CONFIG, "prometheus/prometheus.yml") == CheckResult(
        PROMTOOL_CONFIG, "prometheus/prometheus.yml", "failed", "promtool did not finish within 0.2 s"
    )
    assert result(report, AMTOOL_CONFIG, "alertmanager/alertmanager.yml").status == "skipped"


# ----------------------------------------------------------------------------------------------------------
# The folder itself


def test_missing_folder_is_an_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(MlmonError) as info:
        check_output(tmp_path / "nowhere")
    assert info.value.message == f"{tmp_path / 'nowhere'} does not exist or is not a folder"
    assert info.value.hint is not None and "mlmon init" in info.value.hint


def test_folder_without_generated_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not monitoring config")
    with pytest.raises(MlmonError) as info:
        check_output(tmp_path)
    assert info.value.message.startswith(f"{tmp_path} holds none of the files mlmon generates")
    assert info.value.hint is not None and "mlmon init" in info.value.hint


@pytest.mark.usefixtures("no_tools")
def test_missing_file_in_a_generated_folder_fails(generated: Path) -> None:
    (generated / "alertmanager/alertmanager.yml").unlink()
    shutil.rmtree(generated / "grafana/dashboards")

    report = check_output(generated)

    assert result(report, AMTOOL_CONFIG, "alertmanager/alertmanager.yml") == CheckResult(
        AMTOOL_CONFIG,
        "alertmanager/alertmanager.yml",
        "failed",
        "missing: `mlmon init` writes alertmanager/alertmanager.yml; run it again",
    )
    assert result(report, DASHBOARD_STRUCTURE, "grafana/dashboards/*.json") == CheckResult(
        DASHBOARD_STRUCTURE,
        "grafana/dashboards/*.json",
        "failed",
        "missing: `mlmon init` writes grafana/dashboards/*.json; run it again",
    )
    assert report.failed is True


# ----------------------------------------------------------------------------------------------------------
# selected_metrics and unknown_metrics, for other tests to reuse


@pytest.mark.parametrize(
    ("expr", "metrics"),
    [
        (
            'sum(rate(mlmon_requests_total{status="error"}[5m])) / on () group_left up',
            {"mlmon_requests_total", "up"},
        ),
        ("max_over_time(model:mlmon_requests:rate5m[1h:5m] offset 5m)", {"model:mlmon_requests:rate5m"}),
        (
            "histogram_quantile(0.9, sum by (le) (rate(mlmon_request_duration_seconds_bucket[5m])))",
            {"mlmon_request_duration_seconds_bucket"},
        ),
        ('{__name__="mlmon_model_info"}', {"mlmon_model_info"}),
        ('{__name__=~"mlmon_model_info|up"}', {"mlmon_model_info", "up"}),
        ('{__name__=~"mlmon_.*"}', {'{__name__=~"mlmon_.*"}'}),
        ('{job="x"}', {'{job="x"}'}),
        ("vector(0) + time()", set()),
    ],
)
def test_selected_metrics(expr: str, metrics: set[str]) -> None:
    assert selected_metrics(expr) == metrics


def test_unknown_metrics_against_the_contract() -> None:
    known = contract.contract_series_names() | contract.PROMETHEUS_BUILTIN_SERIES
    assert unknown_metrics(
        "sum(rate(mlmon_typo_total[5m])) / sum(rate(mlmon_requests_total[5m]))", known
    ) == {"mlmon_typo_total"}
    assert unknown_metrics('count(ALERTS{alertstate="firing"}) + up', known) == set()


def test_selected_metrics_raises_value_error_with_the_parser_message() -> None:
    with pytest.raises(ValueError, match="unclosed left parenthesis"):
        selected_metrics("sum(up")
