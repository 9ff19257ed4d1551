"""A process that logs predictions until it is killed, for the SIGKILL tests and bench/prediction_log_kill.py.

    python -m tests.log_writer_child LOG ACKED background|direct QUEUE_SIZE RATE

``kill_once`` runs it, kills it with SIGKILL after a delay and says what the kill lost.

Line i carries ``request_id=str(i)``. After each ``log()`` returns, the count of acknowledged lines is
stored in the 8-byte file ACKED (memory-mapped, so it survives the kill), followed by the time of that
acknowledgement, so the parent can tell how many acknowledged lines a kill lost and how old they were.
RATE is lines per second, 0 for as fast as possible. It prints ``ready`` once the log is open.
"""

from __future__ import annotations

import json
import mmap
import os
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mlmon.instrument.prediction_log import PredictionLog

RECORD = struct.Struct("<Qd")  # acknowledged lines, time.time() of the last acknowledgement


@dataclass(frozen=True)
class Kill:
    acknowledged: int  # lines whose log() had returned
    written: int  # whole lines in the file, which must be lines 0..written-1
    seconds: float  # from ready to the kill

    @property
    def lost(self) -> int:
        return max(self.acknowledged - self.written, 0)


def kill_once(workdir: Path, mode: str, delay: float, queue_size: int = 10000, rate: float = 0) -> Kill:
    log, acked = workdir / f"{mode}.jsonl", workdir / f"{mode}.acked"
    log.unlink(missing_ok=True)
    acked.write_bytes(bytes(RECORD.size))
    args = [
        sys.executable,
        "-m",
        "tests.log_writer_child",
        str(log),
        str(acked),
        mode,
        str(queue_size),
        str(rate),
    ]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, cwd=Path(__file__).parents[1])
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        started = time.monotonic()
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        seconds = time.monotonic() - started
    finally:
        child.kill()
        child.wait(timeout=30)
    acknowledged, _ = RECORD.unpack(acked.read_bytes())
    ids = [json.loads(line)["request_id"] for line in log.read_bytes().splitlines() if line.endswith(b"}")]
    if ids != [str(i) for i in range(len(ids))]:
        raise AssertionError(f"{mode}: the file is not lines 0..{len(ids) - 1} in order")
    return Kill(acknowledged, len(ids), seconds)


def main(log: str, acked: str, mode: str, queue_size: str, rate: str) -> None:
    with open(acked, "r+b") as file:
        shared = mmap.mmap(file.fileno(), RECORD.size)
    plog = PredictionLog(
        log,
        model="m",
        version="1",
        background=mode == "background",
        queue_size=int(queue_size),
        max_bytes=None,
    )
    pause = 1 / float(rate) if float(rate) else 0.0
    features = {f"f{j}": j * 0.5 for j in range(20)}
    print("ready", flush=True)
    i = 0
    while True:
        plog.log(features, 1, request_id=str(i), confidence=0.9, latency_seconds=0.01)
        i += 1
        shared[:] = RECORD.pack(i, time.time())
        if pause:
            time.sleep(pause)


if __name__ == "__main__":
    main(*sys.argv[1:6])
