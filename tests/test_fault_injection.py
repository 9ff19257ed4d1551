"""Servers that misbehave (tests/fault_servers.py) in front of `mlmon status` and `mlmon compare-runs`: each
command ends within its deadline plus one second, exits 1 with one error line and its hint, shows no
traceback, and never prints a credential it holds, even when a server echoes the request's headers."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
import yaml

from tests.fault_servers import BEHAVIOURS, misbehaving
from tests.helpers import run_cli

TOKEN = "prom-token-must-not-be-printed"
USER, PASSWORD = "alice", "mlflow-password-must-not-be-printed"
SECRETS = (
    TOKEN,
    PASSWORD,
    f"{USER}:{PASSWORD}",
    base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
)
CREDENTIALS = {
    "MLMON_PROMETHEUS_BEARER_TOKEN": TOKEN,
    "MLFLOW_TRACKING_USERNAME": USER,
    "MLFLOW_TRACKING_PASSWORD": PASSWORD,
}
TIMEOUT = 1.0
SLACK = 1.0  # start-up, and the answer's parsing after the last byte


def _assert_one_clean_error(code: int, out: str, err: str) -> None:
    assert code == 1, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert [line.split(":", 1)[0] for line in lines] == ["error", "hint"], err
    assert "Traceback" not in out + err
    for secret in SECRETS:
        assert secret not in out + err, f"a credential was printed: {err}"


def _timed(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str, float]:
    """Run the CLI with the credentials set: (exit code, stdout, stderr, seconds it took)."""
    started = time.monotonic()
    code, out, err = run_cli(*args, cwd=cwd, env={**CREDENTIALS, **(env or {})})
    return code, out, err, time.monotonic() - started


def _status(prometheus: str, mlflow: str, cwd: Path) -> tuple[int, str, str, float]:
    timeout = str(TIMEOUT)
    return _timed(
        "status", "--prometheus-url", prometheus, "--mlflow-uri", mlflow, "--timeout", timeout, cwd=cwd
    )


def _compare_runs(mlflow: str, cwd: Path) -> tuple[int, str, str, float]:
    return _timed(
        "compare-runs", "run-a", "run-b", "--mlflow-uri", mlflow, "--timeout", str(TIMEOUT), cwd=cwd
    )


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
def test_status_against_misbehaving_servers(behaviour: str, tmp_path: Path) -> None:
    spec = {"models": [{"name": "credit-risk", "targets": ["127.0.0.1:9"]}]}
    (tmp_path / "mlmon.yaml").write_text(yaml.safe_dump(spec))
    with misbehaving(behaviour) as prometheus, misbehaving(behaviour) as mlflow:
        code, out, err, took = _status(prometheus, mlflow, tmp_path)
    # Prometheus' answers and the registry's are each allowed 1.5 timeouts in all, side by side.
    assert took < 1.5 * TIMEOUT + SLACK, f"{behaviour}: {took:.2f} s"
    _assert_one_clean_error(code, out, err)
    assert out == ""  # no view of nothing


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
def test_compare_runs_against_a_misbehaving_server(behaviour: str, tmp_path: Path) -> None:
    with misbehaving(behaviour) as mlflow:
        code, out, err, took = _compare_runs(mlflow, tmp_path)
    assert took < TIMEOUT + SLACK, f"{behaviour}: {took:.2f} s"
    _assert_one_clean_error(code, out, err)


@pytest.mark.parametrize(
    ("behaviour", "said"),
    [
        ("stall", "no whole answer within 1 s"),
        ("trickle", "no whole answer within 1 s"),
        ("huge", "more than the 33,554,432 bytes allowed"),
        ("huge_declared", "83,886,080 bytes, more than the 33,554,432 allowed"),
        ("gzip_bomb", "unpacks to more than the 33,554,432 bytes allowed"),
        ("echo", "Authorization: Bearer ***"),
        ("redirect", "redirect (HTTP 302) to 'http://127.0.0.1:9/elsewhere', which mlmon does not follow"),
        ("close", "closed the connection without answering"),
        ("close_mid_body", "closed the connection in the middle of its answer"),
    ],
)
def test_status_says_what_the_server_did(behaviour: str, said: str, tmp_path: Path) -> None:
    with misbehaving(behaviour) as prometheus:
        code, out, err, _ = _status(prometheus, "sqlite:///absent.db", tmp_path)
    _assert_one_clean_error(code, out, err)
    assert said in err, err


@pytest.mark.parametrize(
    ("behaviour", "said"),
    [
        ("stall", "gave no whole answer to run 'run-a' within"),
        ("huge", "more than the 67,108,864 bytes allowed"),
        ("echo_json", "Basic ***"),
        ("redirect", "a redirect to 'http://127.0.0.1:9/elsewhere' that mlmon does not follow"),
        ("close", "closed the connection without answering"),
    ],
)
def test_compare_runs_says_what_the_server_did(behaviour: str, said: str, tmp_path: Path) -> None:
    with misbehaving(behaviour) as mlflow:
        code, out, err, _ = _compare_runs(mlflow, tmp_path)
    _assert_one_clean_error(code, out, err)
    assert said in err, err


# -- the paths through MLflow's own client: a drift reference from the registry, and logging to a run --------

# Each ends within its deadline (MLMON_TIMEOUT for a lookup) plus the slack; a transfer would be allowed
# TRANSFER_FACTOR times that, but a bad server fails these at their first lookup.
MLFLOW_CLIENT_CASES = {
    "drift models:/": lambda data, url: ["drift", "models:/credit@champion", str(data), "--mlflow-uri", url],
    "drift --log-to-mlflow": lambda data, url: [
        "drift",
        str(data),
        str(data),
        "--log-to-mlflow",
        "0123abcd",
        "--mlflow-uri",
        url,
    ],
    "profile --log-to-mlflow": lambda data, url: [
        "profile",
        str(data),
        "-m",
        "credit",
        "-o",
        str(data.parent / "p.json"),
        "--log-to-mlflow",
        "0123abcd",
        "--mlflow-uri",
        url,
    ],
}


@pytest.mark.parametrize("case", MLFLOW_CLIENT_CASES)
@pytest.mark.parametrize("behaviour", BEHAVIOURS)
def test_mlflow_client_paths_against_a_misbehaving_server(behaviour: str, case: str, tmp_path: Path) -> None:
    import mlflow  # noqa: F401  (imported before the clock starts: it takes seconds, whatever the server does)

    data = tmp_path / "current.csv"
    data.write_text("x,colour\n" + "".join(f"{i % 7},c{i % 3}\n" for i in range(50)))
    with misbehaving(behaviour) as mlflow_url:
        args = MLFLOW_CLIENT_CASES[case](data, mlflow_url)
        code, out, err, took = _timed(*args, cwd=tmp_path, env={"MLMON_TIMEOUT": str(TIMEOUT)})
    assert took < TIMEOUT + SLACK, f"{case}, {behaviour}: {took:.2f} s"
    _assert_one_clean_error(code, out, err)
    assert not (tmp_path / "p.json").exists()  # the run is checked before the profile is written
