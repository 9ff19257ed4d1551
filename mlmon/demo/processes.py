"""The processes the demo starts, and stopping exactly those: by the process id it recorded, never by name.

Each process runs in its own session, so a Ctrl-C in the terminal reaches only the demo, which then stops
its children itself (terminate, then kill after a timeout). The list is also written to the workspace, so a
stack left running with ``--keep`` can be stopped later by ``mlmon demo --stop`` after checking that each
process id still belongs to the command the demo started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlmon.errors import MlmonError

PROCESSES_FILE = "processes.json"
STOP_TIMEOUT_SECONDS = 10.0


class DemoError(MlmonError):
    """The demo could not start or run a part of its stack."""


@dataclass
class StartedProcess:
    name: str
    args: list[str]
    log: Path
    popen: subprocess.Popen[bytes]
    url: str | None = None
    output: Path | None = None  # a command's stdout, apart from its log (stderr)

    @property
    def server(self) -> bool:
        """A server runs until stopped; a command (``output`` set) ends by itself."""
        return self.output is None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:].strip()
        except OSError:
            return ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "pid": self.pid, "url": self.url, "log": str(self.log), "args": self.args}


@dataclass
class ProcessGroup:
    """Starts processes with their output in ``log_dir`` and stops them, and only them, by process id."""

    log_dir: Path
    processes: list[StartedProcess] = field(default_factory=list)

    def start(
        self,
        name: str,
        args: Sequence[str],
        url: str | None = None,
        *,
        command: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> StartedProcess:
        """Start a server (output and errors to ``log_dir``/NAME.log), or with ``command`` a command that
        ends by itself (its stdout to NAME.out, apart from the errors in NAME.log)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        output = self.log_dir / f"{name}.out" if command else None
        with log.open("wb") as errors, (output or Path(os.devnull)).open("wb") as out:
            try:
                popen = subprocess.Popen(
                    list(args),
                    stdin=subprocess.DEVNULL,
                    stdout=out if command else errors,
                    stderr=errors,
                    env=dict(env) if env is not None else None,
                    start_new_session=True,  # the terminal's Ctrl-C goes to the demo, which stops it in order
                )
            except OSError as exc:
                raise DemoError(f"cannot start {name} ({args[0]}): {exc}") from None
        started = StartedProcess(name, list(args), log, popen, url, output)
        self.processes.append(started)
        return started

    def check_running(self) -> None:
        """Raise with the end of its log if a server has exited."""
        for process in self.processes:
            if process.server and not process.running():
                raise DemoError(
                    f"{process.name} exited with code {process.popen.returncode}: {process.log_tail() or '(no output)'}",
                    f"its full log is {process.log}",
                )

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> list[str]:
        """Terminate every process still running, wait up to ``timeout`` seconds in all, then kill what is
        left. Returns the names of the processes that had to be killed."""
        for process in self.processes:
            if process.running():
                process.popen.terminate()
        deadline = time.monotonic() + timeout
        killed = []
        for process in self.processes:
            try:
                process.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait(timeout=timeout)
                killed.append(process.name)
        return killed

    def record(self, path: Path) -> None:
        """Write the servers to ``path``, for ``mlmon demo --stop``."""
        servers = [p.to_dict() for p in self.processes if p.server]
        path.write_text(json.dumps(servers, indent=2) + "\n", encoding="utf-8")


def _command_line(pid: int) -> list[str] | None:
    """The argv of a running process, or None when it is gone (or this system has no /proc)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def recorded_processes_alive(path: Path) -> list[dict[str, Any]]:
    """The processes listed in ``path`` that still run the command the demo started them with."""
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [p for p in recorded if _command_line(int(p["pid"])) == p["args"]]


def stop_recorded(path: Path, timeout: float = STOP_TIMEOUT_SECONDS) -> list[dict[str, Any]]:
    """Stop the processes listed in ``path`` whose process id still runs the recorded command line (so a
    reused process id is never signalled). Returns the ones stopped."""
    alive = recorded_processes_alive(path)
    for process in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(process["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_command_line(int(p["pid"])) == p["args"] for p in alive):
        time.sleep(0.1)
    for process in alive:
        if _command_line(int(process["pid"])) == process["args"]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(process["pid"]), signal.SIGKILL)
    return alive
