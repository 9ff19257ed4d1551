"""mlmon.yaml validation: defaults, and errors that name the file, line, key path and fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlmon.errors import SpecError
from mlmon.spec import Thresholds, load_spec, spec_from_dict, spec_from_yaml

MINIMAL = """\
models:
  - name: credit-risk
    targets: [127.0.0.1:8000]
"""


def error_of(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        spec_from_yaml(text, "mlmon.yaml")
    return info.value


def test_minimal_spec_gets_documented_defaults() -> None:
    spec = spec_from_yaml(MINIMAL)
    model = spec.models[0]
    assert model.registered_model == "credit-risk"
    assert model.alias == "champion"
    assert model.task == "classification"
    assert model.metrics_path == "/metrics"
    assert model.thresholds == Thresholds()
    t = model.thresholds
    assert (t.drift_test, t.false_alarms_per_week, t.drift_min_psi, t.psi_critical, t.drift_window) == (
        "evidence",
        0.05,
        0.01,
        0.2,
        "1h",
    )
    assert (t.psi_warning, t.missing_ratio, t.missing_min_increase) == (0.1, 0.1, 0.02)
    assert spec.prometheus.url == "http://127.0.0.1:9090"
    assert spec.mlflow.tracking_uri == "sqlite:///mlflow.db"
    assert spec.windows() == ("1h", "6h")


def test_unknown_key_names_line_path_and_closest_key() -> None:
    err = error_of(MINIMAL + "    thresholds:\n      psi_warnng: 0.2\n")
    assert err.message == "mlmon.yaml:5: models[0].thresholds.psi_warnng: unknown key 'psi_warnng'"
    assert err.hint == "did you mean 'psi_warning'?"


def test_unknown_top_level_key_lists_valid_keys_when_nothing_is_close() -> None:
    err = error_of(MINIMAL + "zzzz: 1\n")
    assert err.message == "mlmon.yaml:4: zzzz: unknown key 'zzzz'"
    assert err.hint is not None and "models" in err.hint and "prometheus" in err.hint


def test_wrong_type_names_the_value() -> None:
    err = error_of(MINIMAL + "    thresholds: {error_ratio: lots}\n")
    assert err.message == "mlmon.yaml:4: models[0].thresholds.error_ratio: must be a number, got str 'lots'"


def test_ratio_out_of_range() -> None:
    err = error_of(MINIMAL + "    thresholds: {missing_ratio: 1.5}\n")
    assert "models[0].thresholds.missing_ratio: must be at most 1, got 1.5" in err.message


def test_bad_duration_and_window_bounds() -> None:
    assert (
        "must be a Prometheus duration"
        in error_of(MINIMAL + "    thresholds: {drift_window: 1 hour}\n").message
    )
    assert (
        "must be between 5m and 1d, got 7d"
        in error_of(MINIMAL + "    thresholds: {drift_window: 7d}\n").message
    )


def test_drift_for_accepts_zero_and_refuses_more_than_a_day() -> None:
    spec = spec_from_yaml(MINIMAL + "    thresholds: {drift_for: 0s}\n")
    assert spec.models[0].thresholds.drift_for == "0s"
    assert Thresholds().drift_for == "15m"
    error = error_of(MINIMAL + "    thresholds: {drift_for: 2d}\n")
    assert "models[0].thresholds.drift_for" in str(error) and "0s to 1d" in str(error)


def test_metric_directions_for_compare_runs() -> None:
    spec = spec_from_yaml(MINIMAL + "mlflow: {metrics: {val_loss: min, auc: max}}\n")
    assert spec.mlflow.metrics == (("val_loss", "min"), ("auc", "max"))
    error = error_of(MINIMAL + "mlflow:\n  metrics: {auc: highest}\n")
    assert "mlflow.metrics.auc" in str(error) and "mlmon.yaml:5" in str(error)
    assert error.hint is not None and "min" in error.hint


def test_drift_test_settings_are_checked() -> None:
    base = "models:\n  - name: m\n    targets: ['h:1']\n    thresholds:\n"
    assert "drift_test: must be one of" in error_of(base + "      drift_test: ks\n").message
    assert (
        "drift_min_psi (0.3) must be below psi_critical (0.2)"
        in error_of(base + "      drift_min_psi: 0.3\n").message
    )
    assert (
        "false_alarms_per_week: must be at least"
        in error_of(base + "      false_alarms_per_week: 0\n").message
    )


def test_seasonal_baseline_settings_are_checked() -> None:
    base = "models:\n  - name: m\n    targets: ['h:1']\n    thresholds:\n"
    t = spec_from_yaml(base + "      drift_baseline: seasonal\n").models[0].thresholds
    assert (t.drift_baseline, t.seasonal_period) == ("seasonal", "1d")
    assert "did you mean 'seasonal'" in error_of(base + "      drift_baseline: seasonl\n").message
    assert (
        "seasonal_period: must be between 1h and 14d, got 30d"
        in error_of(base + "      drift_baseline: seasonal\n      seasonal_period: 30d\n").message
    )
    # The window one period earlier must predate a change for a whole window and drift_for (1h + 15m + 5m).
    error = error_of(base + "      drift_baseline: seasonal\n      seasonal_period: 1h\n").message
    assert "seasonal_period (1h) must be at least drift_window + drift_for + 5m (80m)" in error
    assert spec_from_yaml(base + "      drift_baseline: seasonal\n      seasonal_period: 80m\n")


def test_psi_warning_must_be_below_critical() -> None:
    err = error_of(MINIMAL + "    thresholds: {psi_warning: 0.3, psi_critical: 0.2}\n")
    assert "psi_warning (0.3) must be below psi_critical (0.2)" in err.message


def test_defaults_thresholds_errors_point_at_defaults() -> None:
    err = error_of("defaults:\n  thresholds:\n    psi_critcal: 0.3\n" + MINIMAL)
    assert err.message == "mlmon.yaml:3: defaults.thresholds.psi_critcal: unknown key 'psi_critcal'"


def test_model_thresholds_override_defaults_key_by_key() -> None:
    spec = spec_from_yaml(
        "defaults:\n  thresholds: {psi_critical: 0.4, error_ratio: 0.2}\n"
        + MINIMAL
        + "    thresholds: {error_ratio: 0.01}\n"
    )
    t = spec.models[0].thresholds
    assert (t.psi_critical, t.error_ratio, t.psi_warning) == (0.4, 0.01, 0.1)


def test_model_without_targets() -> None:
    err = error_of("models:\n  - name: m\n")
    assert err.message == "mlmon.yaml:2: models[0]: model 'm' has no targets"
    assert err.hint is not None and "targets:" in err.hint


def test_bad_target() -> None:
    err = error_of("models:\n  - name: m\n    targets: [localhost]\n")
    assert "models[0].targets[0]: must be host:port such as 127.0.0.1:8000, got 'localhost'" in err.message


def test_duplicate_model_and_feature() -> None:
    assert (
        "model 'm' is defined twice"
        in error_of("models:\n  - {name: m, targets: ['h:1']}\n  - {name: m, targets: ['h:2']}\n").message
    )
    assert (
        "feature 'x' is listed twice"
        in error_of("models:\n  - {name: m, targets: ['h:1'], features: [x, {name: x}]}\n").message
    )


def test_duplicate_yaml_key() -> None:
    err = error_of("models: []\nmodels: []\n")
    assert err.message == "mlmon.yaml:2: key 'models' appears twice"


def test_invalid_yaml_points_at_the_line() -> None:
    err = error_of("models:\n  - name: m\n   targets: [h:1]\n")
    assert err.message.startswith("mlmon.yaml:3: not valid YAML")


def test_empty_and_missing_files(tmp_path: Path) -> None:
    assert error_of("").message == "mlmon.yaml: is empty"
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "absent.yaml")
    assert info.value.message == f"{tmp_path / 'absent.yaml'} not found"
    assert info.value.hint is not None and "mlmon init" in info.value.hint


def test_control_characters_are_refused_with_the_field_named() -> None:
    err = error_of('models:\n  - name: "a\\nb"\n    targets: [h:1]\n')
    assert "models[0].name: must not contain control characters" in err.message


@pytest.mark.parametrize(
    ("receiver", "hint_fragment"),
    [
        ("{name: s, slack: {api_url: 'https://hooks.slack.com/x', channel: '#a'}}", "api_url_file"),
        ("{name: p, pagerduty: {routing_key: abc}}", "routing_key_file"),
        ("{name: w, webhook: {url: 'http://127.0.0.1:1/', bearer_token: abc}}", "bearer_token_file"),
        (
            "{name: e, email: {to: a@b.c, from: d@e.f, smarthost: 'h:25', auth_password: pw}}",
            "auth_password_file",
        ),
    ],
)
def test_inline_secrets_are_refused_with_the_file_key_to_use(receiver: str, hint_fragment: str) -> None:
    err = error_of(MINIMAL + f"alertmanager:\n  receivers:\n    - {receiver}\n")
    assert "unknown key" in err.message
    assert err.hint is not None and hint_fragment in err.hint


def test_unknown_task_suggests_closest() -> None:
    err = error_of(MINIMAL + "    task: clasification\n")
    assert (
        "must be one of classification, regression, got 'clasification' (did you mean 'classification'?)"
        in (err.message)
    )


def test_spec_from_dict_validates_like_yaml() -> None:
    with pytest.raises(SpecError) as info:
        spec_from_dict({"models": [{"name": "m", "targets": ["h:1"], "thresholdz": {}}]})
    assert info.value.message == "<dict>: models[0].thresholdz: unknown key 'thresholdz'"
    assert info.value.hint == "did you mean 'thresholds'?"


printable = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\x85"),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip())


@given(name=printable)
def test_any_printable_name_loads_unchanged_or_is_refused_as_a_look_alike(name: str) -> None:
    """A name loads as it is, unless it hides a character (mlmon.names): then the error says which."""
    from mlmon.names import hidden_characters

    document = {"models": [{"name": name, "targets": ["127.0.0.1:1"], "features": [name]}]}
    problem = hidden_characters(name)
    if problem is not None:
        with pytest.raises(SpecError) as info:
            spec_from_dict(document)
        assert problem in info.value.message
        return
    spec = spec_from_dict(document)
    assert spec.models[0].name == name
    assert spec.models[0].features[0].name == name
