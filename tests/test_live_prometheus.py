"""A real Prometheus loads the generated configuration and evaluates every rule without error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
import yaml

from mlmon.render import ALERT_RULES, PROMETHEUS_CONFIG, RECORDING_RULES
from mlmon.spec import spec_from_dict
from tests.helpers import full_spec_dict, hostile_spec_dict, render_into
from tests.servers import poll, prometheus


def _fast(spec: dict[str, Any]) -> dict[str, Any]:
    spec.setdefault("prometheus", {}).update(scrape_interval="1s", evaluation_interval="1s")
    return spec


def _all_rules_healthy(url: str) -> list[dict[str, Any]] | None:
    groups = requests.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    evaluated = [r for r in rules if not r["lastEvaluation"].startswith("0001-")]
    if not rules or len(evaluated) < len(rules):
        return None
    return rules


def test_prometheus_evaluates_every_generated_rule(prometheus_binary: str, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name, spec_dict in (("full", full_spec_dict(secrets)), ("hostile", hostile_spec_dict())):
        out = render_into(spec_from_dict(_fast(spec_dict)), tmp_path / name)
        with prometheus(prometheus_binary, out / PROMETHEUS_CONFIG, tmp_path / f"{name}-run") as url:
            log = tmp_path / f"{name}-run" / "prometheus.log"
            # The counting group runs once a minute at most: its first evaluation may come a minute after start.
            rules = poll(lambda: _all_rules_healthy(url), 150, "every rule evaluated", log)
            unhealthy = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
            assert unhealthy == []
            expected = sum(
                len(g["rules"])
                for path in (RECORDING_RULES, ALERT_RULES)
                for g in yaml.safe_load((out / path).read_text())["groups"]
            )
            assert len(rules) == expected
            # Each model's static targets carry the model's name in the label that ties `up` to the model.
            wanted = {m["name"] for m in spec_dict["models"] if "targets" in m}
            models = poll(lambda: _target_models(url) or None, 30, "scrape targets", log)
            assert models == wanted


def _target_models(url: str) -> set[str]:
    targets = requests.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    return {t["labels"]["mlmon_model"] for t in targets if "mlmon_model" in t["labels"]}
