"""Names that look alike must be alike: a model or feature name with an invisible character, or not in Unicode's
composed form, is refused by the spec and by `mlmon profile`, and shown escaped when a client sends it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from mlmon.drift.build import ProfileBuildError, build_profile
from mlmon.errors import SpecError
from mlmon.instrument.monitor import ModelMonitor
from mlmon.names import hidden_characters, visible
from mlmon.spec import spec_from_yaml
from tests.helpers import MONITOR_PROFILE as PROFILE
from tests.helpers import run_cli

NFC, NFD = "caf\u00e9", "cafe\u0301"


@pytest.mark.parametrize(
    ("name", "said"),
    [
        (
            NFD,
            "is not in Unicode's composed form (NFC): it has a combining character (U+0301 COMBINING ACUTE "
            "ACCENT); write it as 'café'",
        ),
        (
            "pay\u200bment",
            "holds the invisible character U+200B ZERO WIDTH SPACE, so it looks like 'payment'",
        ),
        (
            "ab\u202ecd",
            "holds the invisible character U+202E RIGHT-TO-LEFT OVERRIDE, so it looks like 'abcd'",
        ),
        ("\ufeffincome", "holds the invisible character U+FEFF ZERO WIDTH NO-BREAK SPACE"),
        ("in\u00adcome\u200d", "holds the invisible character U+00AD SOFT HYPHEN and 1 more"),
    ],
)
def test_hidden_characters_are_named(name: str, said: str) -> None:
    problem = hidden_characters(name)
    assert problem is not None and said in problem
    assert visible(name).isascii() and visible(name) != name


@pytest.mark.parametrize("name", [NFC, "名前", "Ωmega", "income", "mean radius", "ﬁle", "صافي"])
def test_ordinary_names_of_any_script_pass(name: str) -> None:
    assert hidden_characters(name) is None
    assert visible(name) == name


def test_the_spec_refuses_look_alike_model_and_feature_names() -> None:
    model = f'models:\n  - name: "{NFD}"\n    targets: ["127.0.0.1:8000"]\n'
    with pytest.raises(SpecError) as info:
        spec_from_yaml(model)
    assert "mlmon.yaml:2: models[0].name: 'cafe\\u0301' is not in Unicode's composed form" in str(info.value)

    feature = 'models:\n  - name: m\n    targets: ["127.0.0.1:8000"]\n    features: ["pay\\u200bment"]\n'
    with pytest.raises(SpecError) as info:
        spec_from_yaml(feature)
    assert "models[0].features[0].name: 'pay\\u200bment' holds the invisible character U+200B" in str(
        info.value
    )

    fine = f'models:\n  - name: "{NFC}"\n    targets: ["127.0.0.1:8000"]\n    features: ["{NFC}"]\n'
    assert spec_from_yaml(fine).models[0].features[0].name == NFC


def test_profile_refuses_a_look_alike_column_and_says_how(tmp_path: Path) -> None:
    with pytest.raises(ProfileBuildError) as info:
        build_profile({NFD: [1.0, 2.0, 3.0]}, "m")
    assert "feature 'cafe\\u0301' is not in Unicode's composed form" in info.value.message

    data = tmp_path / "reference.jsonl"
    data.write_text("".join(json.dumps({"x\u200b": i, "y": i}) + "\n" for i in range(30)))
    code, _, err = run_cli("profile", str(data), "-m", "m", "-o", str(tmp_path / "p.json"))
    assert code == 1
    assert "error: feature 'x\\u200b' holds the invisible character U+200B ZERO WIDTH SPACE" in err
    assert "Traceback" not in err
    assert not (tmp_path / "p.json").exists()
    code, _out, err = run_cli(
        "profile", str(data), "-m", "m", "-o", str(tmp_path / "p.json"), "--feature", "y"
    )
    assert code == 0, err


def test_the_monitor_counts_a_look_alike_name_as_unknown_and_shows_it_escaped() -> None:
    registry = CollectorRegistry()
    monitor = ModelMonitor("credit", "3", PROFILE, registry=registry)
    monitor.observe({"income": 1.0, "region": "north", "inc\u200bome": 2.0}, prediction="repaid")
    labels = {"model": "credit", "version": "3", "reason": "unknown_feature"}
    assert registry.get_sample_value("mlmon_invalid_input_total", {**labels, "feature": "inc\\u200bome"}) == 1
    assert monitor.internal_errors == 0
