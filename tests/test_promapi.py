"""The Prometheus API client against real HTTP servers on 127.0.0.1: a scripted one that answers like
Prometheus (and like a broken one), and a real Prometheus."""

from __future__ import annotations

import base64
import math
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mlmon.backends.prometheus import Credentials, PrometheusClient, PrometheusError
from tests.fake_prometheus import Answer, FakePrometheus, Request, Route, handler, serving, vector
from tests.helpers import require_tool
from tests.servers import free_port, poll, prometheus


@pytest.fixture
def fake() -> Iterator[FakePrometheus]:
    with serving(FakePrometheus("")) as served:
        yield served


def raises(call: Callable[[], object]) -> PrometheusError:
    with pytest.raises(PrometheusError) as caught:
        call()
    return caught.value


# Answers and values


def test_query_posts_the_promql_and_reads_every_kind_of_value(fake: FakePrometheus) -> None:
    fake.answer(
        "/api/v1/query",
        vector(
            {"metric": {"model": "a"}, "value": [1700000000.5, "0.25"]},
            {"metric": {"model": "b"}, "value": [1700000000.5, "NaN"]},
            {"metric": {"model": "c"}, "value": [1700000000.5, "+Inf"]},
            {"metric": {"model": "d"}, "value": [1700000000.5, "-Inf"]},
            {"metric": {}, "value": [1700000000.5, "1e-05"]},
            {"value": [1700000000.5, "3"]},  # a series may come without "metric" at all
        ),
    )
    promql = 'sum by (model) (rate(mlmon_requests_total{status="error"}[5m]))'
    with fake.client() as client:
        samples = client.query(promql, at=1700000000.5)
        assert client.requests_made == 1
    assert [dict(s.labels) for s in samples] == [{"model": m} for m in "abcd"] + [{}, {}]
    values = [s.value for s in samples]
    assert values[0] == 0.25 and math.isnan(values[1]) and values[2] == math.inf and values[3] == -math.inf
    assert values[4:] == [1e-05, 3.0]
    [request] = fake.requests
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.form == {"query": [promql], "time": ["1700000000.500000"]}


def test_scalar_and_empty_results(fake: FakePrometheus) -> None:
    fake.answer(
        "/api/v1/query", {"status": "success", "data": {"resultType": "scalar", "result": [1.5, "42"]}}
    )
    fake.answer("/api/v1/query_range", {"status": "success", "data": {"resultType": "matrix", "result": []}})
    with fake.client() as client:
        [sample] = client.query("scalar(vector(42))")
        assert (dict(sample.labels), sample.value) == ({}, 42.0)
        fake.answer("/api/v1/query", vector())
        assert client.query("absent_metric") == []
        assert client.query_range("absent_metric", 0, 60, 15) == []


def test_query_range_reads_points_and_skips_native_histograms(fake: FakePrometheus) -> None:
    fake.answer(
        "/api/v1/query_range",
        {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": [
                    {"metric": {"model": "a"}, "values": [[100, "1"], [115, "NaN"], [130.5, "2.5"]]},
                    {"metric": {"model": "b"}, "values": []},
                    {"values": [[100, "-Inf"]]},
                    {"metric": {"model": "h"}, "histograms": [[100, {"count": "1", "sum": "1"}]]},
                ],
            },
        },
    )
    with fake.client() as client:
        series = client.query_range("up", start=100, end=130.5, step=15)
    assert [dict(s.labels) for s in series] == [{"model": "a"}, {"model": "b"}, {}]
    assert series[0].points[0] == (100.0, 1.0) and series[0].points[2] == (130.5, 2.5)
    assert math.isnan(series[0].points[1][1])
    assert series[1].points == () and series[2].points == ((100.0, -math.inf),)
    assert fake.requests[0].form == {
        "query": ["up"],
        "start": ["100.000000"],
        "end": ["130.500000"],
        "step": ["15"],
    }


def test_warnings_are_kept_for_the_caller(fake: FakePrometheus) -> None:
    fake.answer("/api/v1/query", vector() | {"warnings": ["partial response: store 2 down"]})
    with fake.client() as client:
        client.query("up")
        assert client.warnings == ["partial response: store 2 down"]


def test_alerts_read_nanosecond_times_and_values(fake: FakePrometheus) -> None:
    alert = {"labels": {"alertname": "HighPSI", "model": "a"}, "annotations": {"summary": "drift"}}
    fake.answer(
        "/api/v1/alerts",
        {
            "status": "success",
            "data": {
                "alerts": [
                    alert
                    | {"state": "firing", "activeAt": "2024-05-01T12:34:56.123456789Z", "value": "1e+00"},
                    alert | {"state": "pending", "activeAt": "2024-05-01T14:34:56.5+02:00", "value": "NaN"},
                    {"labels": {"alertname": "X"}, "state": "firing", "activeAt": "2024-05-01T12:00:00Z"},
                ]
            },
        },
    )
    with fake.client() as client:
        firing, pending, bare = client.alerts()
    assert (
        firing.state == "firing" and firing.value == 1.0 and dict(firing.annotations) == {"summary": "drift"}
    )
    assert firing.active_at == datetime(2024, 5, 1, 12, 34, 56, 123456, tzinfo=timezone.utc)
    assert pending.state == "pending" and pending.value is not None and math.isnan(pending.value)
    assert pending.active_at == datetime(2024, 5, 1, 12, 34, 56, 500000, tzinfo=timezone.utc)
    assert pending.active_at.utcoffset() == timedelta(0)
    assert (
        bare.value is None
        and dict(bare.annotations) == {}
        and bare.active_at == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    )
    assert fake.requests[0].method == "GET"


def test_rule_names_filter_by_kind_even_when_the_server_ignores_the_type_parameter(
    fake: FakePrometheus,
) -> None:
    fake.answer(
        "/api/v1/rules",
        {
            "status": "success",
            "data": {
                "groups": [
                    {"name": "g1", "rules": [{"name": "model:x:rate5m", "type": "recording"}]},
                    {
                        "name": "g2",
                        "rules": [
                            {"name": "HighPSI", "type": "alerting"},
                            {"name": "m:y", "type": "recording"},
                        ],
                    },
                ]
            },
        },
    )
    with fake.client() as client:
        assert client.rule_names() == {"model:x:rate5m", "m:y"}
        assert client.rule_names("alert") == {"HighPSI"}
    assert [r.params for r in fake.requests] == [{"type": ["record"]}, {"type": ["alert"]}]


# Reaching the server


def test_a_path_prefix_is_kept_and_a_missing_one_is_explained(fake: FakePrometheus) -> None:
    fake.prefix = "/select/0/prometheus"
    fake.answer("/api/v1/query", vector({"metric": {"job": "x"}, "value": [1, "1"]}))
    with PrometheusClient(f"{fake.url}/select/0/prometheus/") as client:
        assert [s.value for s in client.query("up")] == [1.0]
    assert fake.requests[0].path == "/select/0/prometheus/api/v1/query"
    error = raises(lambda: PrometheusClient(fake.url).query("up"))
    assert error.status_code == 404
    assert f"Prometheus at {fake.url} has no /api/v1/query (HTTP 404)" in error.message
    assert error.hint and "/select/0/prometheus" in error.hint and "/prometheus" in error.hint


def test_a_refused_connection_names_the_url_and_the_setting(fake: FakePrometheus) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # bound and closed again: nothing listens there
    error = raises(lambda: PrometheusClient(url, timeout=2).query("up"))
    assert error.message == f"cannot reach Prometheus at {url} (Connection refused)"
    assert error.hint and "--prometheus-url" in error.hint and "MLMON_PROMETHEUS_URL" in error.hint


def test_a_server_slower_than_the_timeout_is_an_error(fake: FakePrometheus) -> None:
    fake.answer("/api/v1/query", vector(), delay=30)
    client = fake.client(timeout=0.5)
    error = raises(lambda: client.query("up"))
    assert error.message == f"cannot reach Prometheus at {fake.url} (no whole answer within 0.5 s)"
    assert error.hint and "MLMON_PROMETHEUS_URL" in error.hint
    assert client.requests_made == 1  # not retried


def test_the_budget_bounds_all_calls_together(fake: FakePrometheus) -> None:
    """Each call may take up to the timeout; together they may take no more than the budget."""
    fake.answer("/api/v1/query", vector(), delay=0.4)
    client = PrometheusClient(fake.url, timeout=5, budget=1.0)
    client.query("up")
    client.query("up")
    error = raises(lambda: [client.query("up") for _ in range(3)])
    assert "no whole answer within" in error.message or "used up the time allowed" in error.message
    assert client.requests_made <= 3


def test_a_body_dribbled_past_the_timeout_is_an_error(fake: FakePrometheus) -> None:
    # Each byte comes well within the read timeout; only the deadline on the whole call stops it.
    fake.answer("/api/v1/query", vector({"metric": {}, "value": [1, "1"]}), dribble=0.1)
    error = raises(lambda: fake.client(timeout=0.5).query("up"))
    assert error.message == f"cannot reach Prometheus at {fake.url} (no whole answer within 0.5 s)"


# Failures the server reports


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_point_at_the_environment_variables(fake: FakePrometheus, status: int) -> None:
    fake.answer("/api/v1/query", "Unauthorized", status, "text/plain")
    error = raises(lambda: fake.client().query("up"))
    assert error.message == f"Prometheus at {fake.url} refused the credentials (HTTP {status})"
    assert (
        error.hint
        and "MLMON_PROMETHEUS_PASSWORD_FILE" in error.hint
        and "MLMON_PROMETHEUS_BEARER_TOKEN" in error.hint
    )


@pytest.mark.parametrize(
    ("status", "error_type"), [(400, "bad_data"), (422, "execution"), (503, "timeout"), (200, "execution")]
)
def test_a_query_prometheus_rejects_shows_its_error_and_the_query(
    fake: FakePrometheus, status: int, error_type: str
) -> None:
    fake.answer(
        "/api/v1/query",
        {"status": "error", "errorType": error_type, "error": "parse error: unexpected\x1b[31m }"},
        status,
    )
    promql = "sum(rate(" + "x" * 400 + "[5m]))"
    error = raises(lambda: fake.client().query(promql))
    assert (error.status_code, error.error_type) == (status, error_type)
    first, second = error.message.split("\n")
    assert (
        first
        == f"Prometheus at {fake.url} could not run the query ({error_type}: parse error: unexpected [31m }})"
    )
    assert second == "query: " + promql[:197] + "..."


def test_a_server_failure_shows_the_status_and_a_clean_excerpt(fake: FakePrometheus) -> None:
    fake.answer("/api/v1/alerts", "upstream\r\n\x1b]0;evil\x07 connect error " + "z" * 500, 502, "text/plain")
    error = raises(lambda: fake.client().alerts())
    assert error.status_code == 502
    prefix = (
        f"Prometheus at {fake.url} answered /api/v1/alerts with HTTP 502: upstream ]0;evil connect error "
    )
    assert error.message.startswith(prefix) and error.message.endswith("zzz...")
    assert (
        len(error.message) == len(f"Prometheus at {fake.url} answered /api/v1/alerts with HTTP 502: ") + 200
    )
    assert not any(ord(ch) < 32 for ch in error.message)


@pytest.mark.parametrize(
    ("body", "content_type", "detail"),
    [
        ('{"status": "success", "data": ', "application/json", "application/json: {"),
        ("<html><body>Sign in</body></html>", "text/html", "text/html: <html><body>Sign in"),
        ([1, 2], "application/json", "application/json: [1, 2]"),
        ({"status": "success"}, "application/json", "application/json: {"),
        (
            {"status": "success", "data": {"resultType": "matrix", "result": []}},
            "application/json",
            "resultType 'matrix', expected vector or scalar",
        ),
        ({"status": "success", "data": {"resultType": "vector"}}, "application/json", "result is not a list"),
        (
            {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": "1"}]}},
            "application/json",
            'a point is not [time, value]: "1"',
        ),
        (
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "many"]}]},
            },
            "application/json",
            "a value is not a number: 'many'",
        ),
        (
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {"a": 1}, "value": [1, "1"]}]},
            },
            "application/json",
            'labels are not a map of strings: {"a": 1}',
        ),
        (
            {"status": "success", "data": {"resultType": "vector", "result": ["x"]}},
            "application/json",
            "a result item is not an object",
        ),
        (
            {"status": "success", "data": {"resultType": "scalar", "result": None}},
            "application/json",
            "a point is not [time, value]: null",
        ),
    ],
)
def test_an_answer_that_is_not_the_prometheus_api_is_named_as_such(
    fake: FakePrometheus, body: Any, content_type: str, detail: str
) -> None:
    fake.answer("/api/v1/query", body, content_type=content_type)
    error = raises(lambda: fake.client().query("up"))
    assert error.message.startswith(
        f"Prometheus at {fake.url} answered /api/v1/query with something that is not a Prometheus API response ("
    )
    assert detail in error.message
    assert error.hint and "/api/v1/query" in error.hint


@pytest.mark.parametrize(
    ("path", "call", "data"),
    [
        (
            "/api/v1/alerts",
            lambda c: c.alerts(),
            {"alerts": [{"labels": {}, "state": "firing", "activeAt": "yesterday"}]},
        ),
        ("/api/v1/alerts", lambda c: c.alerts(), {"groups": []}),
        ("/api/v1/rules", lambda c: c.rule_names(), {"groups": [{"name": "g"}]}),
        (
            "/api/v1/query_range",
            lambda c: c.query_range("up", 0, 1, 1),
            {"resultType": "matrix", "result": [{"metric": {}}]},
        ),
    ],
)
def test_malformed_alerts_rules_and_ranges(
    fake: FakePrometheus, path: str, call: Callable[[PrometheusClient], object], data: Any
) -> None:
    fake.answer(path, {"status": "success", "data": data})
    error = raises(lambda: call(fake.client()))
    assert "is not a Prometheus API response" in error.message


def test_an_error_from_a_non_query_endpoint(fake: FakePrometheus) -> None:
    fake.answer("/api/v1/rules", {"status": "error", "errorType": "unavailable", "error": "ruler down"}, 503)
    error = raises(lambda: fake.client().rule_names())
    assert (
        error.message
        == f"Prometheus at {fake.url} answered /api/v1/rules with an error (unavailable: ruler down)"
    )
    assert (error.status_code, error.error_type) == (503, "unavailable")


# Credentials and secrets

PASSWORD = "s3cr3t-Pa55word"
TOKEN = "tok.en-abc_123~XYZ"


def _require_auth(expected: str) -> Route:
    def route(request: Request) -> Answer:
        if request.headers.get("Authorization") != expected:
            return Answer("no", 401, "text/plain")
        return Answer(vector({"metric": {}, "value": [1, "1"]}))

    return route


def test_basic_auth_and_bearer_token_are_sent(fake: FakePrometheus) -> None:
    fake.routes["/api/v1/query"] = _require_auth(
        "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    )
    assert len(fake.client(credentials=Credentials("alice", PASSWORD)).query("up")) == 1
    assert raises(lambda: fake.client().query("up")).status_code == 401
    fake.routes["/api/v1/query"] = _require_auth(f"Bearer {TOKEN}")
    assert len(fake.client(credentials=Credentials(bearer_token=TOKEN)).query("up")) == 1


@pytest.mark.parametrize("credentials", [Credentials("alice", PASSWORD), Credentials(bearer_token=TOKEN)])
def test_secrets_never_show_in_errors_or_reprs(fake: FakePrometheus, credentials: Credentials) -> None:
    # A server that echoes the request headers and the password into its error page.
    fake.routes["/api/v1/query"] = lambda r: Answer(f"bad gateway {r.headers} {PASSWORD}", 502, "text/plain")
    client = fake.client(credentials=credentials)
    error = str(raises(lambda: client.query("up")))
    assert "bad gateway" in error and "'Authorization': '" in error
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    for text in (error, repr(client), repr(credentials), str(credentials)):
        assert PASSWORD not in text and TOKEN not in text and basic[:12] not in text
    assert (
        repr(Credentials("alice", PASSWORD))
        == "Credentials(username='alice', password=***, bearer_token=None)"
    )
    assert (
        repr(Credentials(bearer_token=TOKEN)) == "Credentials(username=None, password=None, bearer_token=***)"
    )


def test_a_url_with_a_password_is_refused_without_repeating_it() -> None:
    error = raises(lambda: PrometheusClient(f"https://alice:{PASSWORD}@prom.example.org"))
    assert PASSWORD not in str(error)
    assert error.message == "the Prometheus URL holds a user name or password"
    assert error.hint and "MLMON_PROMETHEUS_PASSWORD" in error.hint


@pytest.mark.parametrize("url", ["127.0.0.1:9090", "ftp://host", "http://", "http://host:9090/?x=1"])
def test_urls_that_are_not_http_are_refused(url: str) -> None:
    assert raises(lambda: PrometheusClient(url)).message.startswith(
        ("not an http(s) URL", "the Prometheus URL")
    )


def test_credentials_from_environment_variables_and_files(tmp_path: Path) -> None:
    (tmp_path / "password").write_text(PASSWORD + "\n")
    (tmp_path / "token").write_text(TOKEN + "\r\n")
    assert Credentials.from_environment({}) == Credentials()
    assert Credentials.from_environment(
        {"MLMON_PROMETHEUS_USERNAME": "alice", "MLMON_PROMETHEUS_PASSWORD_FILE": str(tmp_path / "password")}
    ) == Credentials("alice", PASSWORD)
    assert Credentials.from_environment(
        {"MLMON_PROMETHEUS_USERNAME": "alice", "MLMON_PROMETHEUS_PASSWORD": "x\n"}
    ) == Credentials("alice", "x\n")
    assert Credentials.from_environment(
        {"MLMON_PROMETHEUS_BEARER_TOKEN_FILE": str(tmp_path / "token"), "MLMON_PROMETHEUS_PASSWORD": ""}
    ) == Credentials(bearer_token=TOKEN)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {
                "MLMON_PROMETHEUS_USERNAME": "a",
                "MLMON_PROMETHEUS_PASSWORD": "p",
                "MLMON_PROMETHEUS_BEARER_TOKEN": "t",
            },
            "both basic auth (MLMON_PROMETHEUS_USERNAME/PASSWORD) and a bearer token are set",
        ),
        (
            {"MLMON_PROMETHEUS_PASSWORD": "p"},
            "basic auth needs both a username and a password: MLMON_PROMETHEUS_USERNAME is not set",
        ),
        (
            {"MLMON_PROMETHEUS_USERNAME": "a"},
            "basic auth needs both a username and a password: MLMON_PROMETHEUS_PASSWORD is not set",
        ),
        (
            {"MLMON_PROMETHEUS_BEARER_TOKEN": "t", "MLMON_PROMETHEUS_BEARER_TOKEN_FILE": "/f"},
            "both MLMON_PROMETHEUS_BEARER_TOKEN and MLMON_PROMETHEUS_BEARER_TOKEN_FILE are set",
        ),
    ],
)
def test_contradictory_credentials_are_refused(environ: dict[str, str], message: str) -> None:
    assert raises(lambda: Credentials.from_environment(environ)).message == message


def test_an_unreadable_secret_file_is_named_but_not_read_out(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    error = raises(lambda: Credentials.from_environment({"MLMON_PROMETHEUS_BEARER_TOKEN_FILE": str(missing)}))
    assert (
        error.message
        == f"cannot read MLMON_PROMETHEUS_BEARER_TOKEN_FILE {missing} (No such file or directory)"
    )
    (tmp_path / "empty").write_text("\n")
    error = raises(
        lambda: Credentials.from_environment({"MLMON_PROMETHEUS_BEARER_TOKEN_FILE": str(tmp_path / "empty")})
    )
    assert error.message == f"MLMON_PROMETHEUS_BEARER_TOKEN_FILE {tmp_path / 'empty'} is empty"
    (tmp_path / "binary").write_bytes(b"\xff\xfe" + PASSWORD.encode())
    error = raises(
        lambda: Credentials.from_environment(
            {"MLMON_PROMETHEUS_USERNAME": "a", "MLMON_PROMETHEUS_PASSWORD_FILE": str(tmp_path / "binary")}
        )
    )
    assert (
        error.message
        == f"cannot read MLMON_PROMETHEUS_PASSWORD_FILE {tmp_path / 'binary'} (UnicodeDecodeError)"
    )


def test_a_token_that_cannot_go_in_a_header_is_refused_without_showing_it() -> None:
    error = raises(
        lambda: PrometheusClient(
            "http://127.0.0.1:9", credentials=Credentials(bearer_token=TOKEN + "\nX-Evil: 1")
        )
    )
    assert error.message == "the bearer token holds spaces or characters an HTTP header cannot carry"


# TLS


@pytest.fixture
def tls_fake(fake: FakePrometheus, tmp_path: Path) -> Iterator[tuple[FakePrometheus, Path]]:
    """The scripted server again, behind TLS with a self-signed certificate for 127.0.0.1."""
    openssl = require_tool("openssl", "openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(fake))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    tls = FakePrometheus(
        f"https://127.0.0.1:{server.server_address[1]}",
        routes=fake.routes,
        requests=fake.requests,
        stop=fake.stop,
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield tls, cert
    finally:
        server.shutdown()
        server.server_close()


def test_tls_is_verified_against_the_system_or_a_given_ca(
    tls_fake: tuple[FakePrometheus, Path], tmp_path: Path
) -> None:
    tls, cert = tls_fake
    tls.answer("/api/v1/query", vector({"metric": {}, "value": [1, "1"]}))
    error = raises(lambda: tls.client().query("up"))
    assert error.message.startswith(f"cannot reach Prometheus at {tls.url} (TLS: ")
    assert "certificate verify failed" in error.message
    assert len(tls.client(ca_file=str(cert)).query("up")) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the caller warns about verify_tls=False, once; the client does not
        assert len(tls.client(verify_tls=False).query("up")) == 1
    error = raises(lambda: tls.client(ca_file=str(tmp_path / "missing.pem")))
    assert error.message == f"cannot read the CA file {tmp_path / 'missing.pem'} (No such file or directory)"
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    # A file that holds no certificate is refused when the client is made, before any request.
    error = raises(lambda: tls.client(ca_file=str(tmp_path / "junk.pem")))
    assert error.message.startswith(f"cannot read the CA file {tmp_path / 'junk.pem'} (")
    assert "no certificate" in error.message


# A real Prometheus

RULES = """
groups:
  - name: mlmon-test
    interval: 1s
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: AlwaysFiring
        expr: vector(1)
        for: 0s
        labels: {severity: info}
        annotations: {summary: "always firing"}
"""


@pytest.mark.prometheus
@pytest.mark.slow
def test_against_a_real_prometheus(prometheus_binary: str, fake: FakePrometheus, tmp_path: Path) -> None:
    fake.answer("/metrics", "mlmon_test_metric 1\n", content_type="text/plain; version=0.0.4")
    (tmp_path / "rules.yml").write_text(RULES)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{tmp_path / 'rules.yml'}']\n"
        f"scrape_configs: [{{job_name: fake, static_configs: [{{targets: ['{urlsplit(fake.url).netloc}']}}]}}]\n"
    )
    log = tmp_path / "run" / "prometheus.log"
    started = datetime.now(timezone.utc).replace(microsecond=0)
    with prometheus(prometheus_binary, config, tmp_path / "run") as url, PrometheusClient(url) as client:
        [one] = client.query("vector(1)")
        assert (dict(one.labels), one.value) == ({}, 1.0)
        [up] = poll(lambda: client.query("up") or None, 30, "the first scrape", log)
        assert (up.labels["job"], up.value) == ("fake", 1.0)
        now = time.time()
        [series] = client.query_range("vector(2)", now - 5, now, 1)
        assert len(series.points) == 6 and {value for _, value in series.points} == {2.0}
        assert client.rule_names() == {"job:up:sum"}
        assert client.rule_names("alert") == {"AlwaysFiring"}
        [alert] = poll(
            lambda: [a for a in client.alerts() if a.state == "firing"] or None, 30, "a firing alert", log
        )
        assert alert.labels["alertname"] == "AlwaysFiring" and alert.annotations["summary"] == "always firing"
        assert alert.value == 1.0
        assert alert.active_at is not None and started <= alert.active_at <= datetime.now(timezone.utc)
        error = raises(lambda: client.query("sum(rate(up[5m]"))
        assert (error.status_code, error.error_type) == (400, "bad_data")
        assert error.message.endswith("\nquery: sum(rate(up[5m]")
