"""`mlmon status` against the real thing: a Prometheus scraping instrumented services on 127.0.0.1 and a
real MLflow sqlite store with aliases. Four models: a healthy one, one whose income and debt ratio drifted,
one that fails a fifth of its requests, and one whose target is down. The verdicts, the JSON and the exit
code must say so."""

from __future__ import annotations

import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from mlmon.demo.model import FEATURES, make_credit_data, reference_profile, rows, train
from mlmon.render import PROMETHEUS_CONFIG
from mlmon.spec import spec_from_dict
from tests.helpers import render_into, run_cli
from tests.servers import free_port, poll, prometheus, running

pytestmark = pytest.mark.slow

WINDOW = "5m"
REQUESTS_TOTAL, FEEDBACK_TOTAL = "mlmon_requests_total", "mlmon_feedback_total"
# When the recording rules were last evaluated: the oldest sample of any recorded series (their names have a
# colon); the name is copied to a label first, as timestamp() drops it and the label sets would collide.
RECORDED_AT = 'min(timestamp(label_replace({__name__=~".+:.+"}, "name", "$1", "__name__", "(.+)")))'
REQUESTS = 300
FAILING_EVERY = 5  # the failing model fails one request in five


def _register(tracking_uri: str) -> None:
    """healthy and drifting: champion is the served version 1. failing: champion moved on to version 2
    while version 1 is still served. down: never registered."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("status-test")
    for name, versions, champion in (("healthy", 1, "1"), ("drifting", 1, "1"), ("failing", 2, "2")):
        client.create_registered_model(name)
        for version in range(1, versions + 1):
            run = client.create_run(experiment, run_name=f"{name}-v{version}")
            client.log_metric(run.info.run_id, "val_auc", 0.8 + version / 100)
            client.set_terminated(run.info.run_id)
            client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
        client.set_registered_model_alias(name, "champion", champion)


def _feedback_posts(fail_every: int) -> int:
    """How many feedbacks _send posts: every second request that did not fail."""
    return sum(1 for i in range(REQUESTS) if i % 2 == 0 and not (fail_every and i % fail_every == 0))


def _send(port: int, data: dict[str, Any], fail_every: int = 0) -> None:
    outcomes = [str(o) for o in data["outcome"]]

    def call(item: tuple[int, dict[str, Any]]) -> None:
        i, row = item
        fail = bool(fail_every) and i % fail_every == 0
        session = requests.Session()
        answer = session.post(
            f"http://127.0.0.1:{port}/predict", data=json.dumps({"features": row, "fail": fail}), timeout=10
        ).json()
        if not fail and i % 2 == 0:
            session.post(
                f"http://127.0.0.1:{port}/feedback",
                json={"predicted": answer["prediction"], "actual": outcomes[i]},
                timeout=10,
            )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(call, enumerate(rows(data))))


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    return list(answer["data"]["result"])


def _groups_evaluated_after(url: str, moment: float) -> bool:
    groups = requests.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    return all(_rfc3339_seconds(g["lastEvaluation"]) > moment for g in groups)


def _rfc3339_seconds(stamp: str) -> float:
    """Prometheus writes nanoseconds and a zone (2026-12-03T22:17:38.123456789Z); Python parses microseconds."""
    day, _, rest = stamp.partition("T")
    clock, zone = re.match(r"([\d:.]+)(.*)", rest).groups()  # type: ignore[union-attr]
    whole, _, fraction = clock.partition(".")
    parsed = datetime.fromisoformat(f"{day}T{whole}{'+00:00' if zone == 'Z' else zone}")
    return parsed.timestamp() + float(f"0.{fraction or 0}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, prometheus_binary: str) -> Any:
    tmp = tmp_path_factory.mktemp("status")
    reference = make_credit_data(5_000, seed=1)
    model = train(reference)
    (tmp / "model.json").write_text(model.to_json())
    tracking_uri = f"sqlite:///{tmp / 'mlflow.db'}"
    _register(tracking_uri)

    names = ("healthy", "drifting", "failing", "down")
    ports = {name: free_port() for name in names}
    spec_dict = {
        "prometheus": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "mlflow": {"tracking_uri": tracking_uri},
        "defaults": {
            "thresholds": {
                "drift_window": WINDOW,
                "feedback_window": WINDOW,
                "drift_for": "0s",
                "min_drift_samples": 50,
            }
        },
        "models": [
            {"name": n, "targets": [f"127.0.0.1:{ports[n]}"], "features": list(FEATURES)} for n in names
        ],
    }
    spec = spec_from_dict(spec_dict)
    (tmp / "mlmon.yaml").write_text(yaml.safe_dump(spec_dict))
    out = render_into(spec, tmp / "monitoring")
    # A second Prometheus scrapes the same services without mlmon's rules: status must fall back to the raw
    # expressions there and find the same numbers.
    bare_config = yaml.safe_load((out / PROMETHEUS_CONFIG).read_text())
    bare_config.pop("rule_files", None)
    bare_config.pop("alerting", None)
    (tmp / "bare.yml").write_text(yaml.safe_dump(bare_config))

    services = []
    for name in ("healthy", "drifting", "failing"):
        (tmp / f"{name}.profile.json").write_text(reference_profile(model, reference, name).to_json())
        command = [sys.executable, "-m", "mlmon.demo.service", "--model", str(tmp / "model.json")]
        command += ["--profile", str(tmp / f"{name}.profile.json"), "--name", name, "--version", "1"]
        command += ["--trained-at", str(time.time() - 2 * 86400), "--port", str(ports[name])]
        services.append(running(command, tmp / f"{name}.log"))
    with (
        services[0],
        services[1],
        services[2],
        prometheus(prometheus_binary, out / PROMETHEUS_CONFIG, tmp / "prometheus") as url,
        prometheus(prometheus_binary, tmp / "bare.yml", tmp / "bare") as bare_url,
    ):
        for u in (url, bare_url):
            poll(lambda u=u: True if len(_query(u, "up == 1")) == 3 else None, 60, "three services scraped")
        _send(ports["healthy"], make_credit_data(REQUESTS, seed=2))
        _send(ports["drifting"], make_credit_data(REQUESTS, seed=3, shift=1.5))
        _send(ports["failing"], make_credit_data(REQUESTS, seed=4), fail_every=FAILING_EVERY)

        def settled() -> bool | None:
            seen = _query(url, f"sum by (model) (model:mlmon_prediction_observations:count{WINDOW})")
            firing = _query(url, 'ALERTS{alertstate="firing", alertname="MlmonFeatureDriftCritical"}')
            bare_seen = _query(bare_url, "sum(mlmon_requests_total)")
            if len(seen) < 3 or not firing or not bare_seen:
                return None
            done = all(float(s["value"][1]) >= REQUESTS * 0.79 for s in seen)
            return True if done and float(bare_seen[0]["value"][1]) == 3 * REQUESTS else None

        poll(settled, 90, "the rules to see all traffic", tmp / "prometheus" / "prometheus.log")

        # Recorded and raw numbers agree only once every recording rule has been evaluated on the final counts:
        # wait until both servers have scraped every request and every feedback, then until each recorded
        # series carries a later timestamp (a scrape and a rule evaluation can otherwise fall either way).
        feedback = sum(_feedback_posts(every) for every in (0, 0, FAILING_EVERY))

        def final() -> float | None:
            at = None
            for u in (url, bare_url):
                [answer] = _query(u, f"sum({REQUESTS_TOTAL}) * 1e6 + sum({FEEDBACK_TOTAL})") or [None]
                if answer is None or float(answer["value"][1]) != 3 * REQUESTS * 1e6 + feedback:
                    return None
                at = at or float(answer["value"][0])
            return at

        final_at = poll(final, 60, "both servers to scrape the final counts")
        poll(
            lambda: True if float(_query(url, RECORDED_AT)[0]["value"][1]) > final_at else None,
            60,
            "the recording rules to evaluate the final counts",
            tmp / "prometheus" / "prometheus.log",
        )
        # Alert groups run on their own schedule (window alerts once per counting step): one evaluated before
        # the counts were final may still hold an alert fired on a partial window. Wait for every group's next
        # evaluation.
        counts_final = time.time()
        poll(
            lambda: True if _groups_evaluated_after(url, counts_final) else None,
            60,
            "every rule group to evaluate the final counts",
            tmp / "prometheus" / "prometheus.log",
        )
        yield {"url": url, "bare_url": bare_url, "dir": tmp, "tracking_uri": tracking_uri}


def _status(stack: dict[str, Any], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run_cli("status", "--json", *args, cwd=stack["dir"], env=_env(stack))
    assert out, err
    return code, json.loads(out)


def _env(stack: dict[str, Any]) -> dict[str, str]:
    """The spec says 127.0.0.1:9090; the test's Prometheus listens on a free port."""
    return {"MLMON_PROMETHEUS_URL": stack["url"]}


def _model(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in report["models"] if m["name"] == name)


def _check(model: dict[str, Any], name: str, feature: str | None = None) -> dict[str, Any]:
    return next(c for c in model["checks"] if c["name"] == name and c["feature"] == feature)


def test_verdicts_match_each_scenario(stack: dict[str, Any]) -> None:
    code, report = _status(stack)
    assert code == 0
    assert report["schema_version"] == 1
    assert report["prometheus"]["ok"] and report["mlflow"]["ok"], (report["prometheus"], report["mlflow"])
    verdicts = {m["name"]: m["verdict"] for m in report["models"]}
    assert verdicts == {"healthy": "OK", "drifting": "CRIT", "failing": "CRIT", "down": "CRIT"}, _not_ok(
        report
    )

    healthy = _model(report, "healthy")
    assert {c["verdict"] for c in healthy["checks"] if c["name"] == "feature_psi"} == {"OK"}
    assert _check(healthy, "targets_up")["value"] == 1
    assert _check(healthy, "error_ratio")["value"] == 0
    assert _check(healthy, "latency_p95")["verdict"] == "OK"
    assert 0.5 < _check(healthy, "accuracy")["value"] <= 1
    assert _check(healthy, "f1")["value"] is not None
    assert 1.9 < _check(healthy, "model_age")["value"] < 2.1
    assert _check(healthy, "registry")["verdict"] == "OK"
    registry = healthy["registry"]
    assert registry["aliases"] == {"champion": "1"} and registry["served_versions"] == ["1"]
    assert registry["matches"] is True and registry["metrics"] == {"val_auc": pytest.approx(0.81)}

    drifting = _model(report, "drifting")
    psi_checks = [c for c in drifting["checks"] if c["name"] == "feature_psi"]
    assert [c["feature"] for c in psi_checks[:2]] in (["income", "debt_ratio"], ["debt_ratio", "income"])
    assert psi_checks[0]["verdict"] == "CRIT" and psi_checks[1]["verdict"] in ("WARN", "CRIT")
    assert {c["verdict"] for c in psi_checks[2:]} == {"OK"}
    assert psi_checks == sorted(psi_checks, key=lambda c: -c["value"])
    assert any(
        a["name"] == "MlmonFeatureDriftCritical"
        and a["state"] == "firing"
        and a["feature"] in FEATURES
        and a["active_since"]
        for a in drifting["alerts"]
    )

    failing = _model(report, "failing")
    ratio = _check(failing, "error_ratio")
    assert ratio["verdict"] == "CRIT" and ratio["value"] == pytest.approx(1 / FAILING_EVERY, abs=0.01)
    assert _check(failing, "registry")["verdict"] == "WARN"
    assert failing["registry"]["matches"] is False and failing["registry"]["watched_version"] == "2"

    down = _model(report, "down")
    assert _check(down, "targets_up")["verdict"] == "CRIT" and _check(down, "targets_up")["value"] == 0
    assert _check(down, "registry")["verdict"] == "NO DATA"
    assert "not found" in down["registry_error"]


def _not_ok(report: dict[str, Any]) -> list[Any]:
    """What made each verdict: the checks that are not OK and the alerts that fire."""
    return [
        (
            m["name"],
            [
                (c["name"], c["feature"], c["verdict"], c["value"])
                for c in m["checks"]
                if c["verdict"] != "OK"
            ],
            [(a["name"], a.get("feature"), a["state"]) for a in m["alerts"] if a["state"] == "firing"],
        )
        for m in report["models"]
    ]


def test_check_exit_codes_and_model_filter(stack: dict[str, Any]) -> None:
    assert _status(stack, "--check")[0] == 3
    code, report = _status(stack, "--check", "--model", "healthy")
    assert code == 0 and [m["name"] for m in report["models"]] == ["healthy"]
    code, _, err = run_cli("status", "--model", "nonesuch", cwd=stack["dir"], env=_env(stack))
    assert code == 1 and "nonesuch" in err and "healthy" in err


def test_human_view(stack: dict[str, Any]) -> None:
    code, out, err = run_cli("status", "--window", "5m", cwd=stack["dir"], env=_env(stack))
    assert code == 0, err
    for text in ("healthy", "drifting", "failing", "down", "CRIT", "feature_psi income", "MlmonFeatureDrift"):
        assert text in out
    assert re.search(r"^  traffic .* p95 latency .* worst drift ", out, re.MULTILINE), out


def test_without_recording_rules_the_raw_expressions_give_the_same_numbers(stack: dict[str, Any]) -> None:
    # The raw window sums its steps as a subquery at 5 s points aligned to the clock: wait one step, so that
    # the last point comes after the final scrape, as the recorded window's last evaluation does.
    time.sleep(6)
    _, recorded = _status(stack)
    _, raw = _status(stack, "--prometheus-url", stack["bare_url"])
    for name in ("healthy", "drifting", "failing"):
        for check in (
            "error_ratio",
            "feature_psi",
            "missing_ratio",
            "prediction_psi",
            "accuracy",
            "confidence",
        ):
            # By feature: two features of near-equal PSI may come in either order (most drifted first).
            ours = {c["feature"]: c for c in _model(recorded, name)["checks"] if c["name"] == check}
            theirs = {c["feature"]: c for c in _model(raw, name)["checks"] if c["name"] == check}
            assert ours.keys() == theirs.keys()
            # Not to the last digit: the two servers scrape at their own moments, and over a window younger
            # than the data rate() extrapolates each series (all requests, the failed ones; a bin's counter
            # and its feature's total) by a factor that depends on when its first sample came and when the
            # query runs. A PSI, a sum of differences between shares, moves by an amount rather than a
            # ratio (0.0135 against 0.0148 seen for an undrifted feature, 1.04% for a drifted one). And now
            # and then one server's window holds one request fewer than the other's (59/299 against 60/300
            # for the error ratio, 7/299 against 8/300 for a missing ratio; the cause is not found yet).
            # Hence 0.005 (under one request in 300, and far below any threshold) or 1% (5% for PSI),
            # whichever is larger: a wrong expression is off by far more.
            rel = 0.05 if check.endswith("psi") else 0.01
            for feature, a in ours.items():
                b = theirs[feature]
                assert a["value"] == pytest.approx(b["value"], rel=rel, abs=0.005), (name, check, a, b)
        # Macro F1 has no raw form: it says which rule is missing instead of guessing.
        f1 = _check(_model(raw, name), "f1")
        assert f1["verdict"] == "NO DATA" and "mlmon-recording.yml" in f1["detail"]


def test_without_a_spec_status_covers_the_models_prometheus_knows(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    code, out, err = run_cli(
        "status",
        "--json",
        "--prometheus-url",
        stack["url"],
        "--mlflow-uri",
        stack["tracking_uri"],
        cwd=tmp_path,
    )
    assert code == 0, err
    report = json.loads(out)
    assert [m["name"] for m in report["models"]] == ["drifting", "failing", "healthy"]
    assert _model(report, "drifting")["verdict"] == "CRIT"
    assert _model(report, "healthy")["registry"]["watched_version"] == "1"
    assert not (tmp_path / "mlflow.db").exists()


def test_mlflow_down_still_shows_prometheus(stack: dict[str, Any]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    code, report = _status(stack, "--mlflow-uri", dead)
    assert code == 0
    assert report["prometheus"]["ok"] and not report["mlflow"]["ok"]
    assert dead in report["mlflow"]["error"]
    assert all(m["registry"] is None and m["registry_error"] for m in report["models"])
    assert _model(report, "drifting")["verdict"] == "CRIT"
    assert _model(report, "healthy")["verdict"] == "OK", _not_ok(report)


def test_a_service_exporting_another_model_name_is_named_and_warned(
    prometheus_binary: str, tmp_path: Path
) -> None:
    """The spec says `bc-typo`, the service's ModelMonitor says `bc_typo`: every check of the spec's model finds
    nothing, and status must say why instead of reading OK."""
    reference = make_credit_data(2_000, seed=1)
    model = train(reference)
    (tmp_path / "model.json").write_text(model.to_json())
    (tmp_path / "profile.json").write_text(reference_profile(model, reference, "bc_typo").to_json())
    port = free_port()
    spec_dict = {
        "prometheus": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "models": [{"name": "bc-typo", "targets": [f"127.0.0.1:{port}"], "features": list(FEATURES)}],
    }
    (tmp_path / "mlmon.yaml").write_text(yaml.safe_dump(spec_dict))
    out = render_into(spec_from_dict(spec_dict), tmp_path / "monitoring")
    command = [sys.executable, "-m", "mlmon.demo.service", "--model", str(tmp_path / "model.json")]
    command += ["--profile", str(tmp_path / "profile.json"), "--name", "bc_typo", "--port", str(port)]
    with (
        running(command, tmp_path / "service.log"),
        prometheus(prometheus_binary, out / PROMETHEUS_CONFIG, tmp_path / "prometheus") as url,
    ):
        poll(
            lambda: True if _query(url, "up == 1") else None,
            60,
            "the service scraped",
            tmp_path / "service.log",
        )
        _send(port, make_credit_data(50, seed=2))
        poll(
            lambda: True if _query(url, 'mlmon_requests_total{mlmon_model="bc-typo"}') else None,
            30,
            "the requests scraped",
        )
        code, stdout, err = run_cli(
            "status", "--json", "--check", "--strict", cwd=tmp_path, env={"MLMON_PROMETHEUS_URL": url}
        )
    report = json.loads(stdout)
    [only] = report["models"]
    assert only["name"] == "bc-typo" and only["verdict"] == "WARN", _not_ok(report)
    mismatch = _check(only, "exported_model")
    assert mismatch["verdict"] == "WARN" and "'bc_typo', not 'bc-typo'" in mismatch["detail"], mismatch
    assert code == 3, err  # --strict: a WARN fails the check
