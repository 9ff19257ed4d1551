"""The prediction log: one JSON line per prediction, written by the model service, read by ``mlmon drift``.

Each line is a JSON object with these keys, in this order:

``ts``
    When ``log()`` was called: ISO 8601 UTC with microseconds and a ``Z``, e.g. ``2023-11-14T22:13:20.123456Z``.
``model``, ``version``
    The model and the version this service runs, as given to :class:`PredictionLog`.
``request_id``
    The caller's request id, or null.
``user``
    The hex HMAC-SHA256 of the user id keyed with the configured salt, or null when no user was given. The raw
    id is never written: when a user is given but no salt is configured (neither ``salt=`` nor the ``salt_env``
    variable), the key is left out, ``"user"`` is listed under ``redacted`` and one warning is logged.
``features``
    The model's inputs as a JSON object. NaN and infinite floats become null so the line stays valid JSON (a
    reader counts them as missing); numpy scalars and arrays become numbers and lists; dates become ISO strings.
``prediction``
    The model's output, converted like a feature value.
``confidence``, ``latency_seconds``
    Numbers or null.
``error``
    The error message of a failed prediction, or null.
``redacted``
    Only present when something was withheld: the sorted names removed from this record, whether features or
    top-level fields (``redact=["ssn", "request_id"]``). A reader tells "redacted" apart from "missing" by it.

Example::

    log = PredictionLog("/var/log/model/predictions.jsonl", model="churn", version="7", redact=["email"])
    log.log({"tenure": 12, "plan": "pro"}, 0.81, request_id=rid, user=user_id, latency_seconds=0.012)

Lines are appended with one unbuffered ``write()`` each, so a crash loses at most the line being written, and
readers see every line as soon as ``log()`` returns. With ``background=True`` a writer thread appends what is
queued, up to 1,000 lines per ``write()``; a SIGKILL loses what was still queued (at most ``queue_size`` plus
that batch). Files rotate by size or age into
``NAME.YYYYmmddTHHMMSS.ffffff.jsonl`` (UTC), where NAME is the live file's name without ``.jsonl``.

One process per file: rotation renames the live file, which two processes sharing one path would race on, so
a service with several worker processes gives each its own path (for example with the pid in the name) and
creates its ``PredictionLog`` after the fork.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import queue
import random
import re
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from mlmon.errors import MlmonError

__all__ = ["LogReadStats", "PredictionLog", "read_prediction_log"]

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_ROTATED = re.compile(r"^(?P<name>.+)\.(?P<stamp>\d{8}T\d{6}\.\d{6})\.jsonl$")
_STAMP_FORMAT = "%Y%m%dT%H%M%S.%f"
# Fields every reader relies on to place a record; redacting them would make the log useless to `mlmon drift`.
_UNREDACTABLE = frozenset({"ts", "model", "version", "redacted"})
# The most lines the background writer takes from its queue for one write().
_BATCH_LINES = 1000
_TOP_LEVEL = ("request_id", "user", "features", "prediction", "confidence", "latency_seconds", "error")


class _Unserialisable(TypeError):
    """A value with no JSON form; its message names the type and where it was, never the value."""


def _utc(microseconds: int) -> datetime:
    # Integer microseconds rather than datetime.fromtimestamp(float): file names and timestamps must not
    # depend on how a float rounds.
    return _EPOCH + timedelta(microseconds=microseconds)


def _microseconds(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _iso_timestamp(seconds: float) -> str:
    # isoformat() on a naive datetime costs a third of strftime(), and this runs on every prediction.
    naive = _NAIVE_EPOCH + timedelta(microseconds=_microseconds(seconds))
    return naive.isoformat(timespec="microseconds") + "Z"


def _stem(path: Path) -> str:
    return path.name[: -len(".jsonl")] if path.name.endswith(".jsonl") else path.name


def _json_default(value: Any) -> Any:
    """The JSON form of what the json module cannot encode itself; TypeError when there is none."""
    # numpy is converted only when the service already imported it: importing it here would cost every
    # service that does not use it a second of start-up.
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(value, numpy.ndarray):
            return value.tolist()
        if isinstance(value, numpy.generic):
            item = value.item()
            # longdouble.item() returns a longdouble again, which would come straight back here.
            return float(item) if isinstance(item, numpy.generic) else item
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    raise _Unserialisable(f"a {type(value).__name__} has no JSON form")


def _json_value(value: Any) -> Any:
    """``value`` made of JSON types only, with NaN and infinities as None."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {_json_key(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    return _json_value(_json_default(value))


def _json_key(key: Any) -> Any:
    if isinstance(key, (str, bool, int, float)) or key is None:
        return key  # the json module writes these as strings, as it does on the fast path
    raise _Unserialisable(f"a {type(key).__name__} key has no JSON form")


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(
        record, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_default
    )


class PredictionLog:
    """Appends one JSON line per prediction to ``path``; see the module docstring for the record.

    ``log()`` never raises: a failure (a value with no JSON form, a full disk, an unwritable path, a call
    after ``close()``, a full queue in background mode) drops the line, counts it in :attr:`dropped` and is
    logged once per kind of failure through :mod:`logging`. The constructor does raise ``ValueError`` on a bad
    setting, since that happens at start-up, not on the prediction path.

    ``sample_rate`` keeps that share of the predictions (errors are always kept). Rotation starts a new file
    when the current one would pass ``max_bytes`` or is ``rotate_every`` seconds old (checked when a line is
    written); retention then keeps the newest ``keep_files`` rotated files and deletes those rotated more than
    ``keep_days`` ago. ``background=True`` hands lines to one writer thread through a queue of ``queue_size``
    lines, so a slow disk never delays a prediction; lines that find the queue full are dropped and counted.
    New files are created with ``file_mode`` (default ``0o600``, readable by the service's user only, as the
    lines hold model inputs), less the umask. ``clock`` and ``random`` are injectable for tests.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        model: str,
        version: str,
        salt: str | None = None,
        salt_env: str = "MLMON_LOG_SALT",
        redact: Iterable[str] = (),
        sample_rate: float = 1.0,
        max_bytes: int | None = 100 * 2**20,
        rotate_every: float | None = None,
        keep_files: int | None = 10,
        keep_days: float | None = None,
        background: bool = False,
        queue_size: int = 10000,
        file_mode: int = 0o600,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = random.random,
    ) -> None:
        names = [redact] if isinstance(redact, str) else list(redact)
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be between 0 and 1, got {sample_rate!r}")
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive or None, got {max_bytes!r}")
        if rotate_every is not None and rotate_every <= 0:
            raise ValueError(
                f"rotate_every must be a positive number of seconds or None, got {rotate_every!r}"
            )
        if keep_files is not None and keep_files < 0:
            raise ValueError(f"keep_files must be 0 or more, or None, got {keep_files!r}")
        if keep_days is not None and keep_days <= 0:
            raise ValueError(f"keep_days must be positive or None, got {keep_days!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size!r}")
        if not 0 <= file_mode <= 0o777:
            raise ValueError(f"file_mode must be permission bits such as 0o600, got {file_mode!r}")
        self._file_mode = file_mode
        protected = sorted(_UNREDACTABLE.intersection(names))
        if protected:
            raise ValueError(f"cannot redact {', '.join(protected)}: readers need them to place each record")

        self.path = Path(path)
        self.model = model
        self.version = version
        # An empty salt would make the hash a plain lookup table of user ids, so it counts as no salt.
        secret = salt if salt else os.environ.get(salt_env, "")
        self._user_key = secret.encode("utf-8") if secret else None
        self._salt_env = salt_env
        self._redact_features = frozenset(names)
        self._redact_fields = frozenset(name for name in names if name in _TOP_LEVEL)
        self._sample_rate = sample_rate
        self._max_bytes = max_bytes
        self._rotate_every = rotate_every
        self._keep_files = keep_files
        self._keep_days = keep_days
        self._clock = clock
        self._random = random
        self._stem = _stem(self.path)
        self._rotated_name = re.compile(rf"^{re.escape(self._stem)}\.(\d{{8}}T\d{{6}}\.\d{{6}})\.jsonl$")

        self._write_lock = threading.Lock()  # one line at a time, and rotation never races a write
        self._state_lock = threading.Lock()  # counters, warn-once flags, and closing vs. enqueueing
        self._file: Any = None  # an unbuffered binary file (io.FileIO) while open
        self._size = 0
        self._regular = True
        self._opened_at = 0.0
        self._closed = False
        self._dropped = 0
        self._warned: set[str] = set()

        with self._write_lock:
            self._open_quietly()

        self._queue: queue.Queue[bytes | None] | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._queue = queue.Queue(maxsize=queue_size)
            self._thread = threading.Thread(
                target=self._drain, args=(self._queue,), name="mlmon-prediction-log", daemon=True
            )
            self._thread.start()
            # The writer is a daemon thread, so without this a normal interpreter exit would lose what is
            # still queued. (The thread holds the log alive until close() anyway, so a strong reference here
            # costs nothing.)
            atexit.register(self.close)

    def __repr__(self) -> str:
        return f"PredictionLog({str(self.path)!r}, model={self.model!r}, version={self.version!r})"

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def dropped(self) -> int:
        """Lines lost: the queue was full (background mode), or a line failed to serialise or to be written."""
        return self._dropped

    def log(
        self,
        features: Mapping[str, Any],
        prediction: Any,
        *,
        request_id: str | None = None,
        user: str | None = None,
        confidence: float | None = None,
        latency_seconds: float | None = None,
        error: str | None = None,
    ) -> None:
        """Record one prediction. Never raises; a line that cannot be written is counted in :attr:`dropped`."""
        try:
            # A failed prediction is rarer and more telling than a good one, so errors bypass sampling.
            if error is None and self._sample_rate < 1.0 and self._random() >= self._sample_rate:
                return
            try:
                line = self._line(features, prediction, request_id, user, confidence, latency_seconds, error)
            except (TypeError, ValueError, RecursionError) as exc:
                self._fail("serialise", f"a record could not be serialised ({_describe(exc)})")
                return
            if self._queue is None:
                with self._write_lock:
                    if self._closed:
                        closed = True
                    else:
                        closed = False
                        self._write_line(line)
            else:
                with self._state_lock:
                    closed = self._closed
                    full = False
                    if not closed:
                        try:
                            self._queue.put_nowait(line)
                        except queue.Full:
                            full = True
                if full:
                    self._fail("queue_full", "the background queue is full, so lines are being dropped")
            if closed:
                self._fail("closed", "log() was called after close(), so the line was dropped")
        except Exception as exc:  # monitoring must never break the prediction it monitors
            self._fail("internal", f"log() failed unexpectedly ({type(exc).__name__})")

    def flush(self) -> None:
        """Return once every line logged so far is in the file (in background mode, once the queue is empty).

        Lines reach the operating system as they are written; this does not fsync.
        """
        with contextlib.suppress(Exception):
            if self._queue is not None and self._thread is not None and self._thread.is_alive():
                self._queue.join()

    def close(self) -> None:
        """Write what is queued, then close the file. Idempotent; later ``log()`` calls are dropped."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(Exception):
            if self._queue is not None and self._thread is not None:
                # Nothing is enqueued after the flag flipped, so this end marker is the last item.
                self._queue.put(None)
                self._thread.join()
            if self._thread is not None:
                atexit.unregister(self.close)  # bound methods compare by instance: other logs stay registered
        with self._write_lock:
            self._close_file()

    # -- building a line --------------------------------------------------------------------------------

    def _line(
        self,
        features: Mapping[str, Any],
        prediction: Any,
        request_id: str | None,
        user: str | None,
        confidence: float | None,
        latency_seconds: float | None,
        error: str | None,
    ) -> bytes:
        if not isinstance(features, Mapping):
            raise _Unserialisable(f"features must be a mapping, got {type(features).__name__}")
        redacted = set(self._redact_fields)
        if self._redact_features:
            withheld = {name for name in self._redact_features if name in features}
            if withheld:
                redacted.update(withheld)
                features = {name: value for name, value in features.items() if name not in withheld}

        record: dict[str, Any] = {
            "ts": _iso_timestamp(self._clock()),
            "model": self.model,
            "version": self.version,
            "request_id": request_id,
            "user": None,
            "features": features,
            "prediction": prediction,
            "confidence": confidence,
            "latency_seconds": latency_seconds,
            "error": error,
        }
        if user is not None and "user" not in redacted:
            if self._user_key is None:
                redacted.add("user")
                self._fail(
                    "no_salt",
                    f"user ids are left out of the log because no salt is configured "
                    f"(pass salt= or set {self._salt_env})",
                    dropped=False,
                )
            else:
                if not isinstance(user, (str, int)) or isinstance(user, bool):
                    raise _Unserialisable(f"user must be a str or int, got {type(user).__name__}")
                digest = hmac.new(self._user_key, str(user).encode("utf-8"), hashlib.sha256)
                record["user"] = digest.hexdigest()
        for field in redacted.intersection(_TOP_LEVEL):
            del record[field]
        if redacted:
            record["redacted"] = sorted(redacted)
        try:
            # The json module's C encoder handles the common case; the caller's mapping is serialised
            # right here, so it is never stored or changed.
            text = _dumps(record)
        except (TypeError, ValueError):
            # A NaN or infinity (allow_nan=False refuses them), or a value with no JSON form: walk the record
            # in Python, turning non-finite floats into null and naming the field that cannot be encoded.
            text = _dumps(_sanitised(record))
        return (text + "\n").encode("utf-8")

    # -- writing (always under _write_lock) ---------------------------------------------------------------

    def _write_line(self, line: bytes) -> None:
        self._write_lines([line])

    def _write_lines(self, lines: list[bytes]) -> None:
        """Append whole lines, as few write() calls as rotation allows (one, unless a rotation falls inside)."""
        start = 0
        while start < len(lines):
            end = start + 1
            sent = 0  # bytes of lines[start:end] the OS has taken
            try:
                if self._file is None:
                    self._open()
                self._rotate_if_due(len(lines[start]))
                # The run of lines that fits in the current file before the next rotation by size.
                size = len(lines[start])
                while end < len(lines) and not self._would_pass_max_bytes(size + len(lines[end])):
                    size += len(lines[end])
                    end += 1
                view = memoryview(b"".join(lines[start:end]))
                # The loop only matters if the OS accepts part of the write (a nearly full disk).
                while view:
                    written = self._file.write(view)
                    if not written:
                        raise OSError(f"no bytes written to {self.path}")
                    sent += written
                    view = view[written:]
                self._size += size
            except Exception as exc:
                # The lines the OS took whole are in the file; the rest of the run is lost. Reopening later
                # ends a partial line, so the next line cannot be glued onto it.
                whole = 0
                for line in lines[start:end]:
                    if sent < len(line):
                        break
                    sent -= len(line)
                    whole += 1
                self._close_file()
                self._fail(
                    "write", f"writing {self.path} failed ({_describe(exc)})", count=end - start - whole
                )
            start = end

    def _would_pass_max_bytes(self, incoming: int) -> bool:
        return self._regular and self._max_bytes is not None and self._size + incoming > self._max_bytes

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A new file gets file_mode (owner only by default: the lines hold features, which may be personal
        # data); an existing file keeps the mode its owner gave it.
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self._file_mode)
        file = os.fdopen(descriptor, "ab", buffering=0)  # held open across calls, closed in close()
        try:
            status = os.fstat(file.fileno())
            size = status.st_size
            # Only a regular file is rotated: renaming a device such as /dev/null (a way to turn logging
            # off) would break it for the whole machine.
            self._regular = stat.S_ISREG(status.st_mode)
            if self._regular and size and not _ends_with_newline(self.path, size):
                # A crash left half a line. Ending it here keeps the next line parseable; readers skip the half.
                file.write(b"\n")
                size += 1
        except BaseException:
            file.close()
            raise
        self._file = file
        self._size = size
        self._opened_at = self._clock()

    def _open_quietly(self) -> None:
        try:
            self._open()
        except Exception as exc:
            # Not counted as dropped: no line was lost yet, and the next log() tries again.
            self._fail("write", f"opening {self.path} failed ({_describe(exc)})", dropped=False)

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(Exception):
                file.close()

    def _rotate_if_due(self, incoming: int) -> None:
        if self._size == 0 or not self._regular:
            # An empty file is never rotated, so a line larger than max_bytes still gets written somewhere.
            return
        now = self._clock()
        too_big = self._max_bytes is not None and self._size + incoming > self._max_bytes
        too_old = self._rotate_every is not None and now - self._opened_at >= self._rotate_every
        if not (too_big or too_old):
            return
        self._close_file()
        try:
            os.rename(self.path, self._rotation_target(now))
        except OSError as exc:
            # Keep writing to the live file: a log that grows too big beats losing lines. Waiting a full
            # interval before the next time-based attempt stops a failure from being retried on every line.
            self._fail("rotate", f"rotating {self.path} failed ({_describe(exc)})", dropped=False)
            self._open()
            self._opened_at = now
            return
        self._open()
        self._apply_retention(now)

    def _rotation_target(self, now: float) -> Path:
        stamp = _microseconds(now)
        while True:
            # Two rotations within one microsecond (or a frozen test clock) move on to the next free stamp,
            # which keeps names unique and still in order.
            target = self.path.with_name(f"{self._stem}.{_utc(stamp).strftime(_STAMP_FORMAT)}.jsonl")
            if not target.exists():
                return target
            stamp += 1

    def _apply_retention(self, now: float) -> None:
        if self._keep_files is None and self._keep_days is None:
            return
        try:
            rotated: list[tuple[datetime, Path]] = []
            for entry in self.path.parent.iterdir():
                match = self._rotated_name.match(entry.name)
                if match and entry.is_file():
                    stamp = datetime.strptime(match.group(1), _STAMP_FORMAT).replace(tzinfo=timezone.utc)
                    rotated.append((stamp, entry))
            rotated.sort()
            doomed: list[Path] = []
            if self._keep_files is not None and len(rotated) > self._keep_files:
                doomed.extend(path for _, path in rotated[: len(rotated) - self._keep_files])
            if self._keep_days is not None:
                cutoff = _utc(_microseconds(now)) - timedelta(days=self._keep_days)
                doomed.extend(path for stamp, path in rotated if stamp < cutoff and path not in doomed)
            for path in doomed:
                path.unlink(missing_ok=True)
        except Exception as exc:
            self._fail("retention", f"deleting old rotated logs failed ({_describe(exc)})", dropped=False)

    def _drain(self, lines: queue.Queue[bytes | None]) -> None:
        while True:
            # Whatever is queued goes out in one write(): under a burst the writer keeps up with far more
            # lines per second than one write() per line allows, so fewer lines wait in memory, which is
            # what a SIGKILL loses.
            batch = [lines.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < _BATCH_LINES and batch[-1] is not None:
                    batch.append(lines.get_nowait())
            try:
                done = batch[-1] is None  # close() puts None last
                with self._write_lock:
                    self._write_lines([line for line in batch if line is not None])
            except Exception as exc:  # the writer thread must outlive any one bad batch
                self._fail("internal", f"the writer thread failed on a line ({type(exc).__name__})")
            finally:
                for _ in batch:
                    lines.task_done()
            if done:
                return

    # -- failures ---------------------------------------------------------------------------------------

    def _fail(self, kind: str, message: str, *, dropped: bool = True, count: int = 1) -> None:
        with self._state_lock:
            if dropped:
                self._dropped += count
            first = kind not in self._warned
            self._warned.add(kind)
        if first:
            logger.warning(
                "prediction log %s: %s; later failures of this kind are not logged again (lines dropped are "
                "counted in PredictionLog.dropped)",
                self.path,
                message,
            )


def _sanitised(record: dict[str, Any]) -> dict[str, Any]:
    clean = dict(record)
    for field, value in record.items():
        if field == "features":
            features: dict[Any, Any] = {}
            for name, item in value.items():
                key = _json_key(name)  # first, so that only a plain key ever appears in a message
                features[key] = _located(item, f"features.{key}")
            clean[field] = features
        else:
            clean[field] = _located(value, field)
    return clean


def _located(value: Any, where: str) -> Any:
    try:
        return _json_value(value)
    except _Unserialisable as exc:
        # Names of fields and features only: a value could be personal data.
        raise _Unserialisable(f"{exc} (in {where})") from None


def _describe(exc: BaseException) -> str:
    # Our own errors and OSErrors name types and paths only. Other messages may quote a feature value,
    # which could be personal data, so only their type is shown.
    if isinstance(exc, _Unserialisable):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


def _ends_with_newline(path: Path, size: int) -> bool:
    with open(path, "rb") as file:
        file.seek(size - 1)
        return file.read(1) == b"\n"


# -- reading ------------------------------------------------------------------------------------------------


@dataclass
class LogReadStats:
    """What :func:`read_prediction_log` read: pass one in and it is filled in as the records are yielded."""

    files: int = 0
    records: int = 0
    skipped_lines: int = 0


def read_prediction_log(
    paths: Iterable[str | Path] | str | Path, *, stats: LogReadStats | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the records of prediction logs, file by file.

    A path may be a file, read as it is, or a folder, whose ``*.jsonl`` files are read log by log: for each
    log the rotated files oldest first, then the live file. A line that is not a JSON object, such as the half
    line a crashed writer leaves at the end, is skipped, counted in ``stats.skipped_lines`` and reported in one
    warning per file. A missing path raises :class:`~mlmon.errors.MlmonError`.

    Example::

        stats = LogReadStats()
        for record in read_prediction_log(["logs/"], stats=stats):
            ...
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    stats = stats if stats is not None else LogReadStats()
    seen: set[Path] = set()
    for given in paths:
        for path in _log_files(Path(given)):
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                yield from _read_file(path, stats)


def _log_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise MlmonError(
            f"prediction log not found: {path}", hint="pass a log file or the folder the service logs into"
        )

    def order(file: Path) -> tuple[str, int, str]:
        rotated = _ROTATED.match(file.name)
        if rotated:
            return (rotated.group("name"), 0, rotated.group("stamp"))
        return (_stem(file), 1, "")

    return sorted((file for file in path.glob("*.jsonl") if file.is_file()), key=order)


def _read_file(path: Path, stats: LogReadStats) -> Iterator[dict[str, Any]]:
    stats.files += 1
    skipped: list[int] = []
    last_line = 0
    with open(path, "rb") as file:
        for number, raw in enumerate(file, start=1):
            last_line = number
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:  # JSONDecodeError and UnicodeDecodeError both
                record = None
            if not isinstance(record, dict):
                skipped.append(number)
                continue
            stats.records += 1
            yield record
    if skipped:
        stats.skipped_lines += len(skipped)
        if skipped == [last_line]:
            logger.warning("skipped the truncated last line of %s (its writer stopped mid-line)", path)
        else:
            logger.warning(
                "skipped %d malformed line(s) in %s (lines %s)",
                len(skipped),
                path,
                ", ".join(str(number) for number in skipped[:10]) + (", ..." if len(skipped) > 10 else ""),
            )
