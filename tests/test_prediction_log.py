"""The prediction log: record shape, hashing, redaction, sampling, rotation, retention, threads, failures.

Everything runs on real files in tmp_path; only the clock and the random source are injected.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from mlmon.errors import MlmonError
from mlmon.instrument.prediction_log import (
    _BATCH_LINES,
    LogReadStats,
    PredictionLog,
    read_prediction_log,
)
from tests.log_writer_child import kill_once

LOGGER = "mlmon.instrument.prediction_log"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
SALT = "pepper-SECRET-5f2a"


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y%m%dT%H%M%S.%f")


def strict_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a file, parsed; fails on a partial line or a NaN/Infinity token."""

    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token} in {path}")

    text = path.read_text("utf-8")
    assert text == "" or text.endswith("\n"), f"{path} ends mid-line"
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


def warnings_from(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def make_log(path: Path, **kwargs: Any) -> PredictionLog:
    kwargs.setdefault("model", "churn")
    kwargs.setdefault("version", "7")
    kwargs.setdefault("salt", SALT)
    kwargs.setdefault("clock", FakeClock())
    return PredictionLog(path, **kwargs)


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    monkeypatch.delenv("MLMON_LOG_SALT", raising=False)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    yield


# -- the record ---------------------------------------------------------------------------------------------


def test_record_has_exact_keys_and_values(tmp_path: Path) -> None:
    path = tmp_path / "preds.jsonl"
    with make_log(path, clock=FakeClock(T0 + 0.123456)) as plog:
        plog.log(
            {"tenure": 12, "plan": "pro", "ünïcødé": "模型"},
            0.81,
            request_id="req-1",
            user="alice",
            confidence=0.9,
            latency_seconds=0.012,
        )
    [record] = strict_lines(path)
    assert list(record) == [
        "ts",
        "model",
        "version",
        "request_id",
        "user",
        "features",
        "prediction",
        "confidence",
        "latency_seconds",
        "error",
    ]
    assert record == {
        "ts": "2023-11-14T22:13:20.123456Z",
        "model": "churn",
        "version": "7",
        "request_id": "req-1",
        "user": hmac.new(SALT.encode(), b"alice", hashlib.sha256).hexdigest(),
        "features": {"tenure": 12, "plan": "pro", "ünïcødé": "模型"},
        "prediction": 0.81,
        "confidence": 0.9,
        "latency_seconds": 0.012,
        "error": None,
    }


def test_line_is_complete_in_the_file_as_soon_as_log_returns(tmp_path: Path) -> None:
    path = tmp_path / "preds.jsonl"
    plog = make_log(path)
    plog.log({"x": 1}, 1)
    # Read through a separate handle before flush() or close(): nothing may sit in a buffer.
    first = path.read_bytes()
    assert first.endswith(b"\n") and first.count(b"\n") == 1
    plog.log({"x": 2}, 2)
    assert path.read_bytes().startswith(first) and path.read_bytes().count(b"\n") == 2
    plog.close()


def test_caller_features_are_not_mutated(tmp_path: Path) -> None:
    features: dict[str, Any] = {"ssn": "123", "x": float("nan")}
    with make_log(tmp_path / "preds.jsonl", redact=["ssn"]) as plog:
        plog.log(features, 1)
    assert list(features) == ["ssn", "x"] and math.isnan(features["x"])


# -- hashing ------------------------------------------------------------------------------------------------


def test_same_user_and_salt_give_the_same_hash_and_another_salt_another(tmp_path: Path) -> None:
    with make_log(tmp_path / "a.jsonl") as a, make_log(tmp_path / "b.jsonl", salt="other-salt") as b:
        a.log({}, 0, user="alice@example.com")
        a.log({}, 0, user="alice@example.com")
        a.log({}, 0, user="bob@example.com")
        b.log({}, 0, user="alice@example.com")
    alice1, alice2, bob = (r["user"] for r in strict_lines(tmp_path / "a.jsonl"))
    [alice_other_salt] = (r["user"] for r in strict_lines(tmp_path / "b.jsonl"))
    assert alice1 == alice2 == hmac.new(SALT.encode(), b"alice@example.com", hashlib.sha256).hexdigest()
    assert len(alice1) == 64 and int(alice1, 16) >= 0
    assert bob != alice1
    assert alice_other_salt != alice1
    for name in ("a.jsonl", "b.jsonl"):
        raw = (tmp_path / name).read_bytes()
        assert b"alice" not in raw and b"bob" not in raw and SALT.encode() not in raw


def test_salt_comes_from_the_environment_and_the_argument_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLMON_LOG_SALT", "env-salt")
    monkeypatch.setenv("MY_SALT", "custom-env-salt")
    with (
        make_log(tmp_path / "env.jsonl", salt=None) as from_env,
        make_log(tmp_path / "custom.jsonl", salt=None, salt_env="MY_SALT") as from_custom_env,
        make_log(tmp_path / "arg.jsonl", salt="arg-salt") as from_arg,
    ):
        for plog in (from_env, from_custom_env, from_arg):
            plog.log({}, 0, user="alice")

    def user_in(name: str) -> str:
        [record] = strict_lines(tmp_path / name)
        return str(record["user"])

    def digest(salt: str) -> str:
        return hmac.new(salt.encode(), b"alice", hashlib.sha256).hexdigest()

    assert user_in("env.jsonl") == digest("env-salt")
    assert user_in("custom.jsonl") == digest("custom-env-salt")
    assert user_in("arg.jsonl") == digest("arg-salt")


@pytest.mark.parametrize("salt", [None, ""])
def test_without_a_salt_the_user_is_left_out_and_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, salt: str | None
) -> None:
    path = tmp_path / "preds.jsonl"
    with make_log(path, salt=salt) as plog:
        for _ in range(3):
            plog.log({"x": 1}, 0, user="alice@example.com")
        plog.log({"x": 1}, 0)
        assert plog.dropped == 0
    with_user, _, _, without_user = strict_lines(path)
    assert "user" not in with_user and with_user["redacted"] == ["user"]
    assert without_user["user"] is None and "redacted" not in without_user
    assert b"alice" not in path.read_bytes()
    [warning] = warnings_from(caplog)
    assert "no salt" in warning and "MLMON_LOG_SALT" in warning and "alice" not in warning


# -- redaction and sampling ---------------------------------------------------------------------------------


def test_redaction_removes_features_and_top_level_fields_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "preds.jsonl"
    with make_log(path, redact=["ssn", "email", "request_id", "user"]) as plog:
        plog.log({"ssn": "123-45-6789", "email": "a@b.c", "age": 40}, 1, request_id="req-9", user="alice")
        plog.log({"age": 41}, 1, request_id="req-10")
    first, second = strict_lines(path)
    assert first["features"] == {"age": 40}
    assert "request_id" not in first and "user" not in first
    assert first["redacted"] == ["email", "request_id", "ssn", "user"]
    # Only what this record actually carried is listed among the features; top-level fields always are.
    assert second["features"] == {"age": 41}
    assert second["redacted"] == ["request_id", "user"]
    raw = path.read_bytes()
    assert b"123-45-6789" not in raw and b"a@b.c" not in raw and b"req-9" not in raw


def test_redaction_refuses_fields_readers_need(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot redact ts"):
        make_log(tmp_path / "preds.jsonl", redact=["ts", "ssn"])


def test_sampling_uses_the_injected_random_and_always_keeps_errors(tmp_path: Path) -> None:
    draws = iter([0.05, 0.5, 0.0999, 0.1, 0.95])
    calls: list[float] = []

    def rand() -> float:
        calls.append(next(draws))
        return calls[-1]

    path = tmp_path / "preds.jsonl"
    with make_log(path, sample_rate=0.1, random=rand) as plog:
        for i in range(5):
            plog.log({"i": i}, i)
        plog.log({"i": 99}, None, error="TimeoutError: upstream")
    records = strict_lines(path)
    assert [r["features"]["i"] for r in records] == [0, 2, 99]
    assert records[-1]["error"] == "TimeoutError: upstream"
    assert len(calls) == 5  # the error did not consume a draw
    assert plog.dropped == 0


def test_sample_rate_zero_keeps_only_errors(tmp_path: Path) -> None:
    path = tmp_path / "preds.jsonl"
    with make_log(path, sample_rate=0.0, random=lambda: 0.0) as plog:
        plog.log({"i": 1}, 1)
        plog.log({"i": 2}, None, error="boom")
    assert [r["features"]["i"] for r in strict_lines(path)] == [2]


# -- values -------------------------------------------------------------------------------------------------


def test_nan_and_infinity_become_null_everywhere(tmp_path: Path) -> None:
    path = tmp_path / "preds.jsonl"
    nan, inf = float("nan"), float("inf")
    with make_log(path) as plog:
        plog.log(
            {"a": nan, "b": inf, "c": -inf, "nested": {"d": [1.5, nan, (inf, 2)]}, 3: "int key"},  # type: ignore[dict-item]
            nan,
            confidence=inf,
            latency_seconds=nan,
        )
    [record] = strict_lines(path)
    assert record["features"] == {
        "a": None,
        "b": None,
        "c": None,
        "nested": {"d": [1.5, None, [None, 2]]},
        "3": "int key",
    }
    assert record["prediction"] is None and record["confidence"] is None and record["latency_seconds"] is None


def test_numpy_scalars_and_arrays_are_converted(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    path = tmp_path / "preds.jsonl"
    with make_log(path) as plog:
        plog.log(
            {
                "f32": np.float32(1.5),
                "i64": np.int64(3),
                "flag": np.bool_(True),
                "nan64": np.float64("nan"),
                "vector": np.array([1.0, np.nan, np.inf]),
                "name": np.str_("pro"),
                "wide": np.longdouble(2.5),
            },
            np.array([[0.25, 0.75]], dtype=np.float32),
            confidence=np.float32(0.75),
        )
    [record] = strict_lines(path)
    assert record["features"] == {
        "f32": 1.5,
        "i64": 3,
        "flag": True,
        "nan64": None,
        "vector": [1.0, None, None],
        "name": "pro",
        "wide": 2.5,
    }
    assert record["prediction"] == [[0.25, 0.75]]
    assert record["confidence"] == 0.75
    assert plog.dropped == 0


# -- rotation and retention ---------------------------------------------------------------------------------


def line_length(tmp_path: Path, features: dict[str, Any]) -> int:
    probe = tmp_path / "probe" / "preds.jsonl"
    with make_log(probe) as plog:
        plog.log(features, 0)
    return probe.stat().st_size


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_size_rotation_with_exact_names(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    size = line_length(tmp_path, {"i": 0})
    clock = FakeClock(T0)
    with make_log(folder / "preds.jsonl", clock=clock, max_bytes=3 * size - 1, keep_files=None) as plog:
        plog.log({"i": 0}, 0)
        plog.log({"i": 1}, 0)
        clock.now = T0 + 1.5
        plog.log({"i": 2}, 0)
        plog.log({"i": 3}, 0)
        clock.now = T0 + 2.25
        plog.log({"i": 4}, 0)
    assert names(folder) == [
        "preds.20231114T221321.500000.jsonl",
        "preds.20231114T221322.250000.jsonl",
        "preds.jsonl",
    ]

    def seq(name: str) -> list[int]:
        return [r["features"]["i"] for r in strict_lines(folder / name)]

    assert seq("preds.20231114T221321.500000.jsonl") == [0, 1]
    assert seq("preds.20231114T221322.250000.jsonl") == [2, 3]
    assert seq("preds.jsonl") == [4]
    assert all((folder / n).stat().st_size <= 3 * size - 1 for n in names(folder))


def test_time_rotation_with_exact_names(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    with make_log(tmp_path / "preds.jsonl", clock=clock, max_bytes=None, rotate_every=60) as plog:
        for offset in (0, 59.9, 60, 119, 120.5):
            clock.now = T0 + offset
            plog.log({"offset": offset}, 0)
    assert names(tmp_path) == [
        "preds.20231114T221420.000000.jsonl",
        "preds.20231114T221520.500000.jsonl",
        "preds.jsonl",
    ]
    assert [
        r["features"]["offset"] for r in strict_lines(tmp_path / "preds.20231114T221420.000000.jsonl")
    ] == [0, 59.9]
    assert [
        r["features"]["offset"] for r in strict_lines(tmp_path / "preds.20231114T221520.500000.jsonl")
    ] == [60, 119]
    assert [r["features"]["offset"] for r in strict_lines(tmp_path / "preds.jsonl")] == [120.5]


def test_rotation_names_stay_unique_when_the_clock_does_not_move(tmp_path: Path) -> None:
    with make_log(tmp_path / "preds.log", max_bytes=1, keep_files=None) as plog:
        for i in range(4):
            plog.log({"i": i}, 0)
    # A live file not ending in .jsonl keeps its whole name as the prefix.
    assert names(tmp_path) == [
        "preds.log",
        "preds.log.20231114T221320.000000.jsonl",
        "preds.log.20231114T221320.000001.jsonl",
        "preds.log.20231114T221320.000002.jsonl",
    ]
    assert [r["features"]["i"] for r in read_prediction_log(sorted(tmp_path.iterdir())[1:])] == [0, 1, 2]


def test_retention_keeps_the_newest_files_and_leaves_other_files_alone(tmp_path: Path) -> None:
    unrelated = [
        "notes.txt",
        "preds.backup.jsonl",
        "preds.2020-01-01.jsonl",
        "other.20200101T000000.000000.jsonl",
        "preds.20200101T000000.000000.jsonl.gz",
    ]
    for name in unrelated:
        (tmp_path / name).write_text("keep me\n")
    clock = FakeClock(T0)
    with make_log(tmp_path / "preds.jsonl", clock=clock, max_bytes=1, keep_files=2) as plog:
        for i in range(6):
            clock.now = T0 + i
            plog.log({"i": i}, 0)
    rotated = [f"preds.{stamp(T0 + 4)}.jsonl", f"preds.{stamp(T0 + 5)}.jsonl"]
    assert names(tmp_path) == sorted([*unrelated, *rotated, "preds.jsonl"])
    assert [r["features"]["i"] for r in strict_lines(tmp_path / rotated[0])] == [3]
    assert [r["features"]["i"] for r in strict_lines(tmp_path / "preds.jsonl")] == [5]


def test_retention_by_age_reads_the_stamp_in_the_name_against_the_injected_clock(tmp_path: Path) -> None:
    day = 86400.0
    too_old = [f"preds.{stamp(T0 - 3 * day)}.jsonl", f"preds.{stamp(T0 - day - 1)}.jsonl"]
    young = [f"preds.{stamp(T0 - day / 2)}.jsonl"]
    unrelated = ["preds.19990101.jsonl", f"other.{stamp(T0 - 3 * day)}.jsonl"]
    # All files are fresh on disk (mtime now): only the names say how old they are.
    for name in [*too_old, *young, *unrelated]:
        (tmp_path / name).write_text("{}\n")
    with make_log(tmp_path / "preds.jsonl", max_bytes=1, keep_files=None, keep_days=1) as plog:
        plog.log({"i": 0}, 0)
        plog.log({"i": 1}, 0)  # rotates at T0, then retention runs
    assert names(tmp_path) == sorted([*young, *unrelated, f"preds.{stamp(T0)}.jsonl", "preds.jsonl"])


# -- background mode ----------------------------------------------------------------------------------------


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mlmon-prediction-log"]


def test_background_mode_writes_everything_by_close(tmp_path: Path) -> None:
    before = len(writer_threads())
    path = tmp_path / "preds.jsonl"
    plog = make_log(path, background=True)
    for i in range(500):
        plog.log({"i": i}, i)
    plog.flush()
    assert len(strict_lines(path)) == 500
    for i in range(500, 1000):
        plog.log({"i": i}, i)
    plog.close()
    plog.close()
    assert [r["features"]["i"] for r in strict_lines(path)] == list(range(1000))
    assert plog.dropped == 0
    assert len(writer_threads()) == before


def test_background_mode_drops_and_counts_when_the_queue_is_full(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "preds.jsonl"
    plog = make_log(path, background=True, queue_size=2)
    # Holding the write lock blocks the writer thread, so the queue fills deterministically.
    with plog._write_lock:
        plog.log({"i": 0}, 0)
        deadline = time.monotonic() + 10
        while plog._queue is not None and plog._queue.qsize() > 0:  # the writer took line 0 and now waits
            assert time.monotonic() < deadline, "the writer thread never took the first line"
            time.sleep(0.001)

        # From another thread, so that a log() that blocks fails the test instead of hanging it.
        def fill() -> None:
            for i in range(1, 6):
                plog.log({"i": i}, i)

        started = time.monotonic()
        filler = threading.Thread(target=fill)
        filler.start()
        filler.join(timeout=10)
        assert not filler.is_alive(), "log() blocked on a full queue"
        # Five calls take microseconds; a second means log() waited for room in the queue.
        assert time.monotonic() - started < 1.0, "log() waited on a full queue"
        assert plog.dropped == 3
    plog.close()
    assert [r["features"]["i"] for r in strict_lines(path)] == [0, 1, 2]
    assert plog.dropped == 3
    [warning] = warnings_from(caplog)
    assert "queue is full" in warning


def test_background_mode_writes_what_is_queued_when_the_interpreter_exits(tmp_path: Path) -> None:
    path = tmp_path / "preds.jsonl"
    script = (
        "import sys\n"
        "from mlmon.instrument.prediction_log import PredictionLog\n"
        "plog = PredictionLog(sys.argv[1], model='churn', version='7', background=True)\n"
        "for i in range(5000):\n"
        "    plog.log({'i': i}, i)\n"
        # no close(): a service that simply exits
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)
    assert [r["features"]["i"] for r in strict_lines(path)] == list(range(5000))


@pytest.mark.parametrize("mode", ["direct", "background"])
def test_sigkill_loses_no_acknowledged_line_directly_and_at_most_the_queue_in_background(
    tmp_path: Path, mode: str
) -> None:
    """Ten SIGKILLs at seeded moments into a process logging as fast as it can. Direct mode writes before
    log() returns, so no acknowledged line may be lost. Background mode can lose only what is queued or in
    the writer's hand: at most queue_size + _BATCH_LINES lines (the README gives the figures measured)."""
    rng = random.Random(13)
    # Small enough that a writer which falls behind (one write() per line did) fills it and fails here.
    queue_size = 2000
    kills = [kill_once(tmp_path, mode, rng.uniform(0.2, 0.8), queue_size) for _ in range(10)]
    assert all(k.acknowledged > 1000 for k in kills), kills  # the child was really logging
    worst = max(k.lost for k in kills)
    if mode == "direct":
        assert worst == 0, kills
    else:
        assert worst <= queue_size + _BATCH_LINES, kills


# -- threads ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("background", [False, True], ids=["direct", "background"])
def test_concurrent_threads_write_only_whole_lines(tmp_path: Path, background: bool) -> None:
    threads, per_thread = 8, 2000
    folder = tmp_path / "logs"
    max_bytes = 64 * 1024
    plog = PredictionLog(
        folder / "preds.jsonl",
        model="churn",
        version="7",
        salt=SALT,
        max_bytes=max_bytes,
        keep_files=None,
        background=background,
        queue_size=threads * per_thread,
    )
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            # Lines of different lengths make a torn or interleaved write show up as bad JSON.
            plog.log({"t": t, "i": i, "pad": "x" * (i % 97)}, i, user=f"user-{t}", request_id=f"{t}-{i}")

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    plog.close()

    seen: list[tuple[int, int]] = []
    files = sorted(folder.iterdir())
    assert len(files) > 2, "the test should cross several rotations"
    for file in files:
        assert file.stat().st_size <= max_bytes
        seen.extend((r["features"]["t"], r["features"]["i"]) for r in strict_lines(file))
    assert sorted(seen) == [(t, i) for t in range(threads) for i in range(per_thread)]
    assert plog.dropped == 0


# -- reading ------------------------------------------------------------------------------------------------


def test_reader_reads_a_folder_log_by_log_oldest_first(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    # "preds.eu" sorts between preds' rotated files and its live file, so a plain sort by name would split
    # the preds log in two.
    with (
        make_log(tmp_path / "preds.jsonl", clock=clock, max_bytes=1, keep_files=None) as preds,
        make_log(tmp_path / "preds.eu.jsonl", model="eu", clock=clock, max_bytes=1, keep_files=None) as eu,
    ):
        for i in range(4):
            clock.now = T0 + i
            preds.log({"i": i}, 0)
            eu.log({"i": i}, 0)
    (tmp_path / "notes.txt").write_text("not a log\n")
    stats = LogReadStats()
    records = [(r["model"], r["features"]["i"]) for r in read_prediction_log([tmp_path], stats=stats)]
    assert records == [("churn", i) for i in range(4)] + [("eu", i) for i in range(4)]
    assert stats == LogReadStats(files=8, records=8, skipped_lines=0)


def test_reader_takes_a_single_path_and_reads_each_file_once(tmp_path: Path) -> None:
    path = tmp_path / "preds.jsonl"
    with make_log(path) as plog:
        plog.log({"i": 0}, 0)
    assert len(list(read_prediction_log(str(path)))) == 1
    assert len(list(read_prediction_log([path, tmp_path, str(path)]))) == 1


def test_reader_skips_a_truncated_last_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "preds.jsonl"
    with make_log(path) as plog:
        for i in range(3):
            plog.log({"i": i}, i)
    with open(path, "ab") as file:  # a writer that died halfway through a line
        file.write(b'{"ts":"2023-11-14T22:13:20.0000')
    stats = LogReadStats()
    assert [r["features"]["i"] for r in read_prediction_log([path], stats=stats)] == [0, 1, 2]
    assert stats == LogReadStats(files=1, records=3, skipped_lines=1)
    [warning] = warnings_from(caplog)
    assert "truncated last line" in warning


def test_reader_skips_and_reports_malformed_lines_in_the_middle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "preds.jsonl"
    path.write_bytes(b'{"a": 1}\n[1, 2]\nnot json\n\n\xff\xfe\n{"a": 2}\n')
    stats = LogReadStats()
    assert list(read_prediction_log([path], stats=stats)) == [{"a": 1}, {"a": 2}]
    assert stats.skipped_lines == 3
    [warning] = warnings_from(caplog)
    assert "3 malformed line(s)" in warning and "lines 2, 3, 5" in warning


def test_a_restart_after_a_crash_keeps_the_next_line_readable(tmp_path: Path) -> None:
    path = tmp_path / "preds.jsonl"
    with make_log(path) as plog:
        plog.log({"i": 0}, 0)
    with open(path, "ab") as file:
        file.write(b'{"ts":"2023-11-14T22:13:20.000000Z","model":"ch')
    with make_log(path) as plog:  # the restarted service appends to the same file
        plog.log({"i": 1}, 1)
    stats = LogReadStats()
    assert [r["features"]["i"] for r in read_prediction_log([path], stats=stats)] == [0, 1]
    assert stats.skipped_lines == 1


def test_reader_names_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(MlmonError, match="prediction log not found"):
        list(read_prediction_log([tmp_path / "nope"]))


# -- log() never raises -------------------------------------------------------------------------------------


class Unserialisable:
    def __repr__(self) -> str:
        return "PERSONAL-DATA-IN-REPR"


def test_unserialisable_values_are_dropped_counted_and_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    bad_calls: list[tuple[Any, Any, dict[str, Any]]] = [
        ({"x": Unserialisable()}, 1, {}),
        ({"x": {1, 2}}, 1, {}),
        ({"x": complex(1, 2)}, 1, {}),
        ({(1, 2): 3}, 1, {}),
        (None, 1, {}),
        ([("x", 1)], 1, {}),
        ({"x": 1}, Unserialisable(), {}),
        ({"x": cyclic}, 1, {}),
        ({"x": 1}, 1, {"user": Unserialisable()}),
        ({"x": "\ud800 lone surrogate"}, 1, {}),
    ]
    path = tmp_path / "preds.jsonl"
    with make_log(path) as plog:
        for features, prediction, kwargs in bad_calls:
            plog.log(features, prediction, **kwargs)
        assert plog.dropped == len(bad_calls)
        plog.log({"x": 1}, 1)
    assert [r["features"] for r in strict_lines(path)] == [{"x": 1}]
    [warning] = warnings_from(caplog)
    assert "could not be serialised" in warning
    assert "PERSONAL-DATA" not in caplog.text


def test_log_after_close_is_dropped_counted_and_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    direct = make_log(tmp_path / "direct.jsonl")
    queued = make_log(tmp_path / "queued.jsonl", background=True)
    for plog in (direct, queued):
        plog.close()
        for _ in range(3):
            plog.log({"x": 1}, 1)
        plog.flush()
        assert plog.dropped == 3
    assert (tmp_path / "direct.jsonl").read_bytes() == b""
    assert (tmp_path / "queued.jsonl").read_bytes() == b""
    assert len(warnings_from(caplog)) == 2  # one per log instance
    assert all("after close()" in w for w in warnings_from(caplog))


def test_an_unwritable_path_drops_counts_warns_once_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the log folder should be\n")
    path = blocker / "preds.jsonl"
    plog = make_log(path)  # must not raise either: the service starts even if its log cannot be written
    for _ in range(3):
        plog.log({"x": 1}, 1)
    assert plog.dropped == 3
    [warning] = warnings_from(caplog)
    assert str(blocker) in warning
    blocker.unlink()
    plog.log({"x": 2}, 2)
    plog.close()
    assert plog.dropped == 3
    assert [r["features"] for r in strict_lines(path)] == [{"x": 2}]


def test_a_full_disk_drops_counts_and_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if not Path("/dev/full").is_char_device():
        pytest.skip("/dev/full (a device that always reports a full disk) exists on Linux only")
    # Through a link in tmp_path, so a faulty rotation could only ever rename the link, never the device.
    path = tmp_path / "preds.jsonl"
    path.symlink_to("/dev/full")
    for background in (False, True):
        caplog.clear()
        with make_log(path, background=background, max_bytes=10) as plog:
            for _ in range(4):
                plog.log({"x": 1}, 1)
            plog.flush()
            assert plog.dropped == 4
        [warning] = warnings_from(caplog)
        assert "No space left on device" in warning
    assert names(tmp_path) == ["preds.jsonl"] and path.is_symlink()


def test_a_device_is_never_rotated(tmp_path: Path) -> None:
    if not Path("/dev/null").is_char_device():
        pytest.skip("needs /dev/null")
    path = tmp_path / "preds.jsonl"
    path.symlink_to("/dev/null")
    with make_log(path, max_bytes=1, rotate_every=1, keep_files=0) as plog:
        for i in range(3):
            plog.log({"i": i}, i)
        assert plog.dropped == 0
    assert names(tmp_path) == ["preds.jsonl"] and path.is_symlink()


def test_a_failing_injected_random_is_contained(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> float:
        raise RuntimeError("entropy pool on fire")

    with make_log(tmp_path / "preds.jsonl", sample_rate=0.5, random=broken) as plog:
        plog.log({"x": 1}, 1)
        plog.log({"x": 1}, 1)
        assert plog.dropped == 2
    [warning] = warnings_from(caplog)
    assert "RuntimeError" in warning


def test_secrets_and_raw_users_never_reach_logs_or_repr(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "preds.jsonl"
    plog = make_log(path)
    plog.log({"x": 1}, 1, user="alice@example.com")
    plog.log({"x": Unserialisable()}, 1, user="alice@example.com")
    plog.close()
    plog.log({"x": 1}, 1, user="alice@example.com")
    assert len(warnings_from(caplog)) == 2
    for text in (caplog.text, repr(plog), path.read_text("utf-8")):
        assert SALT not in text and "alice" not in text


@pytest.mark.parametrize(
    "setting",
    [
        {"sample_rate": 1.5},
        {"sample_rate": -0.1},
        {"max_bytes": 0},
        {"rotate_every": 0},
        {"keep_files": -1},
        {"keep_days": 0},
        {"queue_size": 0},
    ],
)
def test_bad_settings_fail_at_construction(tmp_path: Path, setting: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(setting))):
        make_log(tmp_path / "preds.jsonl", **setting)


def test_new_log_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    """The lines hold model inputs, which may be personal data: new files are 0600 unless asked otherwise,
    rotated files keep that mode, and a file that exists keeps the mode its owner gave it."""
    import os
    import stat as stat_module

    def mode(path: Path) -> int:
        return stat_module.S_IMODE(path.stat().st_mode)

    old_umask = os.umask(0o022)
    try:
        with make_log(tmp_path / "a" / "preds.jsonl", max_bytes=1, keep_files=None) as plog:
            for i in range(3):
                plog.log({"i": i}, 0)
        files = sorted((tmp_path / "a").iterdir())
        assert len(files) == 3 and {mode(f) for f in files} == {0o600}
        with make_log(tmp_path / "b.jsonl", file_mode=0o640) as plog:
            plog.log({"i": 1}, 0)
        assert mode(tmp_path / "b.jsonl") == 0o640
        existing = tmp_path / "c.jsonl"
        existing.write_text("")
        existing.chmod(0o644)
        with make_log(existing) as plog:
            plog.log({"i": 1}, 0)
        assert mode(existing) == 0o644
        with pytest.raises(ValueError, match="file_mode"):
            make_log(tmp_path / "d.jsonl", file_mode=0o1777)
    finally:
        os.umask(old_umask)
