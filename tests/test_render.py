"""Rendering, escaping and the file plan: what lands on disk, and what never does."""

from __future__ import annotations

import json
import os
from pathlib import Path

import promql_parser
import pytest
import yaml

from mlmon.errors import OutputConflict, TemplateError, UnsafePath
from mlmon.render import (
    ALERT_RULES,
    ALERTMANAGER_CONFIG,
    ALL_OUTPUTS,
    CONFLICT_SUFFIX,
    GRAFANA_DASHBOARD,
    GRAFANA_DATASOURCE,
    MANIFEST_NAME,
    PROMETHEUS_CONFIG,
    RECORDING_RULES,
    NewModel,
    apply_plan,
    inputs_fingerprint,
    plan_outputs,
    render_outputs,
    render_spec_file,
    unchanged_plan,
)
from mlmon.spec import Spec, spec_from_dict, spec_from_yaml
from tests.helpers import HOSTILE_MODEL_NAMES, full_spec_dict


def label_matchers(expr: str) -> dict[str, str]:
    """Label matchers of every selector in a PromQL expression, as the real parser reads them."""
    found: dict[str, str] = {}

    def visit(node: object) -> None:
        matchers = getattr(node, "matchers", None)
        for matcher in getattr(matchers, "matchers", []) or []:
            found[matcher.name] = matcher.value

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return found


def test_every_output_parses(full_spec: Spec) -> None:
    outputs = render_outputs(full_spec)
    assert list(outputs) == list(ALL_OUTPUTS)
    for path, text in outputs.items():
        if path.endswith(".json"):
            json.loads(text)
        else:
            assert isinstance(yaml.safe_load(text), dict), path


def test_hostile_names_survive_every_language(hostile_spec: Spec) -> None:
    outputs = render_outputs(hostile_spec)
    alerts = yaml.safe_load(outputs[ALERT_RULES])
    groups = {g["name"]: g for g in alerts["groups"]}
    for name in HOSTILE_MODEL_NAMES:
        rules = groups[f"mlmon.alerts.{name}"]["rules"] + groups[f"mlmon.window-alerts.{name}"]["rules"]
        for rule in rules:
            # The PromQL string literal decodes back to the exact name.
            matchers = label_matchers(rule["expr"])
            assert name in (matchers.get("model"), matchers.get("mlmon_model")), rule["alert"]
            # Labels are Go templates: a literal {{ is written as an action that prints it.
            assert rule["labels"]["model"] == name.replace("{{", '{{ "{{" }}')
    prometheus = yaml.safe_load(outputs[PROMETHEUS_CONFIG])
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    for name in HOSTILE_MODEL_NAMES:
        assert jobs[f"mlmon/{name}"]["relabel_configs"][0]["replacement"] == name.replace("$", "$$")
    alertmanager = yaml.safe_load(outputs[ALERTMANAGER_CONFIG])
    assert [r["name"] for r in alertmanager["receivers"]] == ["mlmon-unrouted", 'hook "{{ x }}" #1']
    datasource = yaml.safe_load(outputs[GRAFANA_DATASOURCE])
    assert datasource["datasources"][0]["name"] == "Prometheus (mlmon)"
    assert json.loads(outputs[GRAFANA_DASHBOARD])["title"] == 'mlmon: evil "project" {{ x }}'


def test_grafana_provisioning_escapes_dollar(full_spec: Spec) -> None:
    datasource = yaml.safe_load(render_outputs(full_spec)[GRAFANA_DATASOURCE])
    assert datasource["datasources"][0]["name"] == "Prometheus $$prod"


def test_secrets_are_referenced_by_file_never_inlined(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    spec = spec_from_dict(full_spec_dict(secrets))
    text = render_outputs(spec)[ALERTMANAGER_CONFIG]
    assert "not-a-real-secret" not in text
    config = yaml.safe_load(text)
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["oncall"]["slack_configs"][0]["api_url_file"] == str(secrets / "slack-url")
    assert receivers["oncall"]["pagerduty_configs"][0]["routing_key_file"] == str(secrets / "pagerduty-key")
    assert receivers["team"]["email_configs"][0]["auth_password_file"] == str(secrets / "smtp-password")
    webhook = receivers["team"]["webhook_configs"][0]
    assert webhook["http_config"]["authorization"]["credentials_file"] == str(secrets / "webhook-token")
    routes = config["route"]["routes"]
    assert routes[0] == {"receiver": "oncall", "matchers": ['severity=~"critical"'], "continue": True}


def test_recording_rules_count_every_distinct_window_in_one_group(full_spec: Spec) -> None:
    recording = yaml.safe_load(render_outputs(full_spec)[RECORDING_RULES])
    groups = {g["name"]: g for g in recording["groups"]}
    assert list(groups) == ["mlmon.rates.5m", "mlmon.counts"]
    # The shortest window (30m) in 60 steps would be 30s, below the spec's 10s evaluation interval: 30s.
    assert groups["mlmon.counts"]["interval"] == "30s" and "interval" not in groups["mlmon.rates.5m"]
    records = [r["record"] for r in groups["mlmon.counts"]["rules"]]
    steps = [r for r in records if r.endswith(":step")]
    assert records[: len(steps)] == steps  # every window reads steps recorded before it, at the same time
    # Each window counts what is watched over it: drift over the drift windows (30m, 2h), accuracy over the
    # feedback windows (the default 6h, 1d).
    for window in ("30m", "2h"):
        assert f"model_feature:mlmon_feature_psi:{window}" in records
        assert f"model:mlmon_feedback_accuracy:ratio_{window}" not in records
    for window in ("6h", "1d"):
        assert f"model:mlmon_feedback_accuracy:ratio_{window}" in records
        assert not [r for r in records if r.startswith("model_feature") and r.endswith(window)]
    windows = {r["record"]: r["expr"] for r in groups["mlmon.counts"]["rules"]}
    # A whole number of 30s steps: 60 for 30m, 2880 for 1d, each range half a step short.
    assert windows["model_feature_bin:mlmon_feature_bin:count30m"] == (
        "sum_over_time(model_feature_bin:mlmon_feature_bin:step[29m45s])"
    )
    assert windows["model_outcome:mlmon_feedback:count1d"] == (
        "sum_over_time(model_outcome:mlmon_feedback:step[23h59m45s])"
    )


def test_psi_rule_matches_the_documented_shape(minimal_spec: Spec) -> None:
    recording = yaml.safe_load(render_outputs(minimal_spec)[RECORDING_RULES])
    rules = {r["record"]: r["expr"] for g in recording["groups"] for r in g["rules"]}
    psi = " ".join(rules["model_feature:mlmon_feature_psi:1h"].split())
    assert psi == (
        "sum by (model, version, feature) ( ( clamp_min(model_feature_bin:mlmon_feature_bin:ratio_1h, 0.0001) "
        "- on (model, version, feature, bin) model_feature_bin:mlmon_feature_reference_ratio:clamped ) "
        "* ln( clamp_min(model_feature_bin:mlmon_feature_bin:ratio_1h, 0.0001) "
        "/ on (model, version, feature, bin) model_feature_bin:mlmon_feature_reference_ratio:clamped ) )"
    )
    # The reference, recorded once per step for every window: a few failed scrapes do not take it away.
    assert " ".join(rules["model_feature_bin:mlmon_feature_reference_ratio:last"].split()) == (
        "max by (model, version, feature, bin) (last_over_time(mlmon_feature_reference_ratio[10m]))"
    )
    assert rules["model_feature_bin:mlmon_feature_reference_ratio:clamped"] == (
        "clamp_min(model_feature_bin:mlmon_feature_reference_ratio:last, 0.0001)"
    )


def test_every_alert_has_severity_annotations_and_for(full_spec: Spec) -> None:
    alerts = yaml.safe_load(render_outputs(full_spec)[ALERT_RULES])
    tasks = {m.name: m.task for m in full_spec.models}
    assert sorted(tasks.values()) == ["classification", "regression"]
    fast = ["MlmonTargetDown", "MlmonNoTraffic", "MlmonErrorRatioHigh", "MlmonLatencyP95High"]
    fast += ["MlmonLatencyP99High", "MlmonModelStale"]
    on_windows = ["MlmonFeatureDriftWarning", "MlmonFeatureDriftCritical", "MlmonPredictionDrift"]
    on_windows += ["MlmonMissingValuesHigh", "MlmonInvalidInput", "MlmonConfidenceDrop", "MlmonAccuracyDrop"]
    classification_only = {"MlmonConfidenceDrop", "MlmonAccuracyDrop"}
    step = recording_step(full_spec)
    expected_groups = []
    for model in tasks:
        expected_groups += [f"mlmon.alerts.{model}", f"mlmon.window-alerts.{model}"]
    assert [g["name"] for g in alerts["groups"]] == expected_groups
    for group in alerts["groups"]:
        kind, model = group["name"].split(".", 2)[1:]
        names = [r["alert"] for r in group["rules"]]
        if kind == "alerts":
            expected = fast
            assert "interval" not in group  # every evaluation interval
        else:
            # The window alerts run with the counts they read, once per counting step.
            expected = on_windows
            assert group["interval"] == step
        if tasks[model] == "regression":
            expected = [name for name in expected if name not in classification_only]
        assert names == expected
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("warning", "critical")
            assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
            assert rule["for"]


def recording_step(spec: Spec) -> str:
    recording = yaml.safe_load(render_outputs(spec)[RECORDING_RULES])
    return next(g["interval"] for g in recording["groups"] if g["name"] == "mlmon.counts")


def test_thresholds_reach_the_alerts(full_spec: Spec) -> None:
    alerts = yaml.safe_load(render_outputs(full_spec)[ALERT_RULES])
    rules = {(g["name"], r["alert"]): r["expr"] for g in alerts["groups"] for r in g["rules"]}
    assert (
        'model:mlmon_request_errors:ratio_rate5m{model="credit-risk"} > 0.01'
        in rules[("mlmon.alerts.credit-risk", "MlmonErrorRatioHigh")]
    )
    assert (
        'model_feature:mlmon_feature_psi:2h{model="credit-risk"} > 0.3'
        in rules[("mlmon.window-alerts.credit-risk", "MlmonFeatureDriftCritical")]
    )
    assert (
        'model_feature:mlmon_feature_psi:30m{model="churn"} > 0.3'
        in rules[("mlmon.window-alerts.churn", "MlmonFeatureDriftCritical")]
    )
    assert ">= 5000" in rules[("mlmon.window-alerts.churn", "MlmonFeatureDriftCritical")]


def test_the_dashboard_colours_each_model_by_its_own_thresholds(full_spec: Spec) -> None:
    dashboard = json.loads(render_outputs(full_spec)["grafana/dashboards/mlmon-overview.json"])
    stats = {p["title"]: p for p in dashboard["panels"] if p["type"] == "stat"}

    def steps(panel: dict, model: str) -> list[tuple[float | None, str]]:
        [override] = [o for o in panel["fieldConfig"]["overrides"] if o["matcher"]["options"] == model]
        assert override["matcher"]["id"] == "byName"
        [thresholds] = [p["value"] for p in override["properties"] if p["id"] == "thresholds"]
        return [(step["value"], step["color"]) for step in thresholds["steps"]]

    # One value per model (named after it), each against that model's thresholds, not the first model's.
    for title in ("Error ratio", "p95 latency", "Worst feature PSI"):
        [target] = stats[title]["targets"]
        assert target["expr"].startswith("max by (model) (") and target["legendFormat"] == "{{model}}"
    assert steps(stats["Error ratio"], "credit-risk") == [(None, "green"), (0.01, "red")]
    assert steps(stats["Error ratio"], "churn") == [(None, "green"), (0.05, "red")]
    assert steps(stats["p95 latency"], "credit-risk") == [(None, "green"), (0.2, "red")]
    assert steps(stats["p95 latency"], "churn") == [(None, "green"), (0.5, "red")]
    psi = [(None, "green"), (0.1, "orange"), (0.3, "red")]  # the spec's defaults: psi_critical 0.3
    assert (
        steps(stats["Worst feature PSI"], "credit-risk") == steps(stats["Worst feature PSI"], "churn") == psi
    )


def test_plan_create_identical_update_conflict(tmp_path: Path, minimal_spec: Spec) -> None:
    out = tmp_path / "out"
    first = plan_outputs(minimal_spec, out)
    assert {c.action for c in first.changes} == {"create"}
    apply_plan(first)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert set(manifest["files"]) == set(ALL_OUTPUTS)

    assert {c.action for c in plan_outputs(minimal_spec, out).changes} == {"identical"}

    changed = spec_from_dict(
        {
            "models": [
                {"name": "credit-risk", "targets": ["127.0.0.1:8000"], "thresholds": {"error_ratio": 0.2}}
            ]
        }
    )
    edited = out / ALERTMANAGER_CONFIG
    edited.write_text(edited.read_text() + "# tuned by hand\n")
    plan = plan_outputs(changed, out)
    actions = {c.path: c.action for c in plan.changes}
    assert actions[ALERT_RULES] == "update"
    assert actions[ALERTMANAGER_CONFIG] == "conflict"
    assert actions[RECORDING_RULES] == "identical"

    with pytest.raises(OutputConflict) as info:
        apply_plan(plan)
    assert "alertmanager/alertmanager.yml" in info.value.message
    assert edited.read_text().endswith("# tuned by hand\n"), "the user's edit must survive"
    assert (out / (ALERTMANAGER_CONFIG + CONFLICT_SUFFIX)).exists()
    assert "> 0.2" in (out / ALERT_RULES).read_text(), "untouched files are still updated"

    # Still a conflict next time: the manifest keeps what mlmon wrote, not the user's version.
    assert {c.path: c.action for c in plan_outputs(changed, out).changes}[ALERTMANAGER_CONFIG] == "conflict"
    apply_plan(plan_outputs(changed, out), force=True)
    assert not edited.read_text().endswith("# tuned by hand\n")
    assert {c.action for c in plan_outputs(changed, out).changes} == {"identical"}


def test_file_written_by_someone_else_is_a_conflict(tmp_path: Path, minimal_spec: Spec) -> None:
    target = tmp_path / PROMETHEUS_CONFIG
    target.parent.mkdir(parents=True)
    target.write_text("global: {}\n")
    plan = plan_outputs(minimal_spec, tmp_path)
    assert {c.path: c.action for c in plan.changes}[PROMETHEUS_CONFIG] == "conflict"


def test_diff_shows_the_change(tmp_path: Path, minimal_spec: Spec) -> None:
    apply_plan(plan_outputs(minimal_spec, tmp_path))
    changed = spec_from_dict(
        {
            "models": [
                {"name": "credit-risk", "targets": ["127.0.0.1:8000"], "thresholds": {"error_ratio": 0.2}}
            ]
        }
    )
    change = next(c for c in plan_outputs(changed, tmp_path).changes if c.path == ALERT_RULES)
    diff = change.diff()
    assert diff.startswith(f"--- a/{ALERT_RULES}\n+++ b/{ALERT_RULES}\n")
    assert '-          model:mlmon_request_errors:ratio_rate5m{model="credit-risk"} > 0.05' in diff
    assert '+          model:mlmon_request_errors:ratio_rate5m{model="credit-risk"} > 0.2' in diff


def test_symlink_out_of_the_output_folder_is_refused(tmp_path: Path, minimal_spec: Spec) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(outside, out / "prometheus")
    with pytest.raises(UnsafePath) as info:
        plan_outputs(minimal_spec, out)
    assert "outside the output folder" in info.value.message
    assert list(outside.iterdir()) == []


def test_templates_dir_overrides_one_file(tmp_path: Path, minimal_spec: Spec) -> None:
    override = tmp_path / "templates" / "grafana" / "provisioning" / "dashboards"
    override.mkdir(parents=True)
    (override / "mlmon.yml.j2").write_text("apiVersion: 1\nproviders: []  # {{ spec.project | yaml }}\n")
    outputs = render_outputs(minimal_spec, tmp_path / "templates")
    assert outputs["grafana/provisioning/dashboards/mlmon.yml"] == 'apiVersion: 1\nproviders: []  # "mlmon"\n'
    assert outputs[ALERT_RULES] == render_outputs(minimal_spec)[ALERT_RULES]


def test_broken_override_template_is_named(tmp_path: Path, minimal_spec: Spec) -> None:
    folder = tmp_path / "templates" / "alertmanager"
    folder.mkdir(parents=True)
    (folder / "alertmanager.yml.j2").write_text("route:\n  receiver: {{ spec.nope }}\n")
    with pytest.raises(TemplateError) as info:
        render_outputs(minimal_spec, tmp_path / "templates")
    assert "alertmanager/alertmanager.yml.j2" in info.value.message
    (folder / "alertmanager.yml.j2").write_text("route: [{{ spec.project }}\n")
    with pytest.raises(TemplateError) as info:
        render_outputs(minimal_spec, tmp_path / "templates")
    assert "does not parse" in info.value.message


def test_a_missing_include_is_named_with_the_line_that_asks_for_it(
    tmp_path: Path, minimal_spec: Spec
) -> None:
    folder = tmp_path / "templates" / "alertmanager"
    folder.mkdir(parents=True)
    (folder / "alertmanager.yml.j2").write_text(
        "route:\n  receiver: x\n{% include 'alertmanager/receivers.yml.j2' %}\n"
    )
    with pytest.raises(TemplateError) as info:
        render_outputs(minimal_spec, tmp_path / "templates")
    assert info.value.message == (
        f"template {folder / 'alertmanager.yml.j2'}:3 includes alertmanager/receivers.yml.j2, which is not found"
    )
    assert "put alertmanager/receivers.yml.j2 in --templates-dir" in (info.value.hint or "")


def test_missing_templates_dir(tmp_path: Path, minimal_spec: Spec) -> None:
    with pytest.raises(TemplateError) as info:
        render_outputs(minimal_spec, tmp_path / "nope")
    assert "does not exist" in info.value.message


def test_a_value_is_data_never_template_code(tmp_path: Path) -> None:
    spec = spec_from_dict({"project": "{{ 7 * 7 }}", "models": [{"name": "{% raw %}", "targets": ["h:1"]}]})
    outputs = render_outputs(spec)
    assert "49" not in json.loads(outputs[GRAFANA_DASHBOARD])["title"]
    assert json.loads(outputs[GRAFANA_DASHBOARD])["title"] == "mlmon: {{ 7 * 7 }}"
    assert "{% raw %}" in outputs[ALERT_RULES]


def test_new_spec_file_round_trips() -> None:
    text, spec = render_spec_file(
        "payments",
        [
            NewModel(
                'fraud "v2"',
                ("127.0.0.1:8000",),
                "classification",
                (("amount", "numerical"), ("mcc", "categorical")),
            )
        ],
    )
    again = spec_from_yaml(text)
    assert again == spec
    assert spec.models[0].name == 'fraud "v2"'
    assert [(f.name, f.type) for f in spec.models[0].features] == [
        ("amount", "numerical"),
        ("mcc", "categorical"),
    ]


def test_unchanged_inputs_are_recognised_without_rendering(tmp_path: Path, minimal_spec: Spec) -> None:
    spec_text = b"models: [{name: credit-risk, targets: ['127.0.0.1:8000']}]\n"
    fingerprint = inputs_fingerprint(spec_text, None)
    out = tmp_path / "out"
    apply_plan(plan_outputs(minimal_spec, out), fingerprint=fingerprint)

    plan = unchanged_plan(out, fingerprint, ALL_OUTPUTS)
    assert plan is not None
    assert [(c.path, c.action) for c in plan.changes] == [(p, "identical") for p in ALL_OUTPUTS]

    assert unchanged_plan(out, inputs_fingerprint(spec_text + b"# edit\n", None), ALL_OUTPUTS) is None
    override = tmp_path / "templates"
    override.mkdir()
    (override / "extra.j2").write_text("x")
    assert unchanged_plan(out, inputs_fingerprint(spec_text, override), ALL_OUTPUTS) is None

    edited = out / ALERTMANAGER_CONFIG
    edited.write_text(edited.read_text() + "# mine\n")
    assert unchanged_plan(out, fingerprint, ALL_OUTPUTS) is None, "an edited file needs the full plan"
    edited.unlink()
    assert unchanged_plan(out, fingerprint, ALL_OUTPUTS) is None, "a deleted file needs the full plan"


def test_a_plan_applied_without_fingerprint_never_takes_the_shortcut(
    tmp_path: Path, minimal_spec: Spec
) -> None:
    apply_plan(plan_outputs(minimal_spec, tmp_path))
    assert unchanged_plan(tmp_path, inputs_fingerprint(b"", None), ALL_OUTPUTS) is None


def test_self_scrape_jobs_follow_the_urls_scheme_and_path_prefix() -> None:
    spec = spec_from_dict(
        {
            "prometheus": {"url": "https://prom.example.org:9443/prometheus/"},
            "alertmanager": {"url": "http://127.0.0.1:9093"},
            "models": [{"name": "m", "targets": ["127.0.0.1:8000"]}],
        }
    )
    jobs = {
        j["job_name"]: j for j in yaml.safe_load(render_outputs(spec)[PROMETHEUS_CONFIG])["scrape_configs"]
    }
    assert (jobs["prometheus"]["scheme"], jobs["prometheus"]["metrics_path"]) == (
        "https",
        "/prometheus/metrics",
    )
    assert jobs["prometheus"]["static_configs"][0]["targets"] == ["prom.example.org:9443"]
    assert (jobs["alertmanager"]["scheme"], jobs["alertmanager"]["metrics_path"]) == ("http", "/metrics")
