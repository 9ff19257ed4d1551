"""`mlmon demo`: the whole loop on this machine in about a minute: MLflow runs and registry, the generated
monitoring files, an instrumented service, Prometheus, Alertmanager, drift, `mlmon status` and
`mlmon compare-runs`."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlmon.cli import output
from mlmon.cli.output import escape, handles_errors

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from mlmon.demo.run import DemoResult

# Without a terminal, a waiting loop reports at most this often.
PLAIN_PROGRESS_EVERY_SECONDS = 3.0


@handles_errors
def demo_command(
    workspace: Annotated[
        Path, typer.Option("--workspace", "-w", help="Folder for everything the demo writes.")
    ] = Path("mlmon-demo"),
    keep: Annotated[
        bool,
        typer.Option(
            "--keep", help="Leave the service, Prometheus and Alertmanager running; print URLs and PIDs."
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print a summary as JSON on stdout (progress stays on stderr).")
    ] = False,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="Skip the service, Prometheus and Alertmanager even when installed."),
    ] = False,
    alert_timeout: Annotated[
        float, typer.Option("--alert-timeout", min=1, help="Seconds to wait for the drift alert to fire.")
    ] = 45.0,
    stop: Annotated[
        bool, typer.Option("--stop", help="Stop a demo left running with --keep in --workspace, and exit.")
    ] = False,
) -> None:
    """Run mlmon end to end on this machine: train and register two model versions in a local MLflow,
    scaffold the monitoring files, start an instrumented service with Prometheus and Alertmanager, send
    traffic that drifts in two features, then show `mlmon status` and `mlmon compare-runs`.

    Prometheus and Alertmanager come from PATH; without them the MLflow, scaffolding and offline drift parts
    still run. Everything listens on 127.0.0.1 and is stopped at the end (or on Ctrl-C) unless --keep.
    """
    if stop:
        _stop_kept(workspace)
        return
    from mlmon.demo.run import DemoOptions, run_demo

    console = output.stdout()
    options = DemoOptions(
        workspace=workspace,
        keep=keep,
        live=not offline,
        machine_output=json_output,
        color=console.is_terminal and not console.no_color,
        columns=console.width if console.is_terminal else None,
        alert_timeout=alert_timeout,
    )
    reporter = ProgressReporter()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = run_demo(options, reporter)
    except KeyboardInterrupt:
        reporter.close()
        output.info("interrupted: stopped the processes the demo started")
        raise typer.Exit(130) from None
    finally:
        reporter.close()
        signal.signal(signal.SIGTERM, previous)
    if json_output:
        output.print_json(result.to_dict())
    else:
        _print_result(result)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the demo's processes the way Ctrl-C does


def _stop_kept(workspace: Path) -> None:
    from mlmon.demo.processes import PROCESSES_FILE, stop_recorded

    stopped = stop_recorded(workspace / PROCESSES_FILE)
    if not stopped:
        output.info(f"no demo process is running from {escape(workspace)}")
        return
    for process in stopped:
        output.info(f"stopped {escape(process['name'])} (pid {process['pid']})")


class ProgressReporter:
    """Steps as lines on stderr; long waits as a progress bar on a terminal, else as occasional lines."""

    def __init__(self) -> None:
        self.console = output.stderr()
        self.start = time.monotonic()
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._task_name = ""
        self._last_plain = 0.0

    def _elapsed(self) -> str:
        return f"[dim]{time.monotonic() - self.start:5.1f}s[/]"

    def step(self, message: str) -> None:
        self._end_bar()
        self.console.print(f"{self._elapsed()} {escape(message)}")

    def warn(self, message: str) -> None:
        self._end_bar()
        self.console.print(f"{self._elapsed()} [yellow]warning:[/] {escape(message)}")

    def progress(self, task: str, done: float, total: float, detail: str = "") -> None:
        if not self.console.is_terminal:
            now = time.monotonic()
            if (
                task != self._task_name
                or done >= total
                or now - self._last_plain >= PLAIN_PROGRESS_EVERY_SECONDS
            ):
                self._task_name, self._last_plain = task, now
                shown = f"{done:.0f}/{total:.0f}" if total >= 1 else ""
                self.console.print(f"{self._elapsed()} {escape(task)} {shown} {escape(detail)}".rstrip())
            return
        from rich.progress import BarColumn, Progress, TextColumn

        if self._bar is None or task != self._task_name:
            self._end_bar()
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:.0f}/{task.total:.0f}"),
                TextColumn("[dim]{task.fields[detail]}"),
                console=self.console,
                transient=True,
            )
            self._task = self._bar.add_task(escape(task), total=total, detail="")
            self._task_name = task
            self._bar.start()
        assert self._task is not None
        self._bar.update(self._task, completed=done, total=total, detail=escape(detail))

    def _end_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            self._task_name = ""

    def close(self) -> None:
        self._end_bar()


def _print_result(result: DemoResult) -> None:
    console = output.stdout()
    summary = result.to_dict()
    if result.status is not None:
        console.print(f"\n[bold]$ {escape(result.status.shown)}[/]")
        _print_command(result.status)
    elif result.offline_report is not None:
        from mlmon.cli.drift import print_report

        console.print("\n[bold]offline drift[/] (data/drifted.csv against data/reference.csv):")
        print_report(result.offline_report)
    if result.compare is not None:
        console.print(f"\n[bold]$ {escape(result.compare.shown)}[/]")
        _print_command(result.compare)

    console.print("\n[bold]What happened[/]")
    drifted, source = result.drifted_features()
    offline_found = ", ".join(sorted((result.offline_drift or {}).get("drifted_features", []))) or "none"
    found = f"  drifted features: [bold]{escape(', '.join(drifted) or 'none')}[/]"
    if source == "offline":
        console.print(f"{found} (offline drift report of data/drifted.csv against data/reference.csv)")
    else:
        where = "mlmon status" if source == "status" else "Prometheus' recording rules"
        console.print(
            f"{found} (live, from {where}); the offline drift report finds: {escape(offline_found)}"
        )
    if result.live:
        firing = [a for a in result.alerts_firing if a["name"].startswith("Mlmon")]
        names = ", ".join(f"{a['name']}" + (f" ({a['feature']})" if a["feature"] else "") for a in firing)
        console.print(f"  alerts firing in Prometheus: {escape(names or 'none')}")
        delivered = [a for a in result.alerts_delivered if a["status"] == "firing"]
        if result.alertmanager_url:
            console.print(f"  routed by Alertmanager to the demo's webhook: {len(delivered)} firing alerts")
        latency = result.latency
        p95 = f" (p95 {latency['p95'] * 1000:.1f} ms)" if "p95" in latency else ""
        console.print(f"  latency: {escape(summary['latency_verdict'])}{p95}")
    else:
        console.print(f"  live part skipped: {escape(result.install_hint or 'run without --offline')}")
    versions = ", ".join(f"{v.alias} = version {v.version}" for v in result.versions)
    console.print(
        f"  MLflow: {escape(result.registered_model)} {escape(versions)} in {escape(result.tracking_uri)}"
    )
    console.print(f"  took {result.duration_seconds:.0f}s")

    ws = result.workspace
    console.print("\n[bold]Try next[/]")
    console.print(
        f"  mlmon drift {escape(ws / 'data' / 'reference.csv')} {escape(ws / 'data' / 'drifted.csv')}"
    )
    console.print(f"  mlmon check {escape(ws / 'monitoring')}")
    if result.kept:
        console.print(f"  mlmon status --spec {escape(result.spec_path)}")
        console.print("\n[bold]Still running[/] (--keep)")
        for process in result.processes:
            if process.get("url"):
                console.print(
                    f"  {escape(process['name']):<13} {escape(process['url'])}  pid {process['pid']}"
                )
        console.print(f"  stop them with: mlmon demo --stop --workspace {escape(ws)}")


def _print_command(command: Any) -> None:
    sys.stdout.write(command.stdout)
    sys.stdout.flush()
    if command.returncode not in (0, 3):
        output.warn(
            f"`{escape(command.shown)}` exited with {command.returncode}: {escape(command.stderr.strip()[-800:])}"
        )
