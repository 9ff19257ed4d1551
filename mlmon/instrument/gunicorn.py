"""gunicorn server hooks for a model service with several worker processes.

Each worker counts into its own files in ``PROMETHEUS_MULTIPROC_DIR``, and /metrics merges them. Two
things need the master's help, which these hooks give. Put in ``gunicorn.conf.py``::

    from mlmon.instrument.gunicorn import child_exit, on_starting  # noqa: F401

- ``on_starting`` (once, when the master starts, not on a reload): makes the folder and empties it of files
  an earlier run left, whose counters would otherwise be added to this run's.
- ``child_exit`` (whenever a worker exits: a crash, ``max_requests``, a ``kill -HUP`` reload): tells
  prometheus_client that the worker is dead, so that the gauges it set (which model version it served,
  the reference shares, the training time) leave with it. Its counters stay: what it counted was counted,
  and the window rules need the sums to keep growing, not to drop.

After a reload to a new model version, the old version's gauges are gone as soon as its last worker has
exited, so the next scrape sees one served version.
"""

from __future__ import annotations

import logging
from typing import Any

from mlmon.instrument.counters import multiprocess_dir

log = logging.getLogger("mlmon.instrument")


def on_starting(server: Any) -> None:
    """gunicorn's ``on_starting`` hook: an empty metrics folder for this run of the master."""
    folder = multiprocess_dir()
    if folder is None:
        log.warning(
            "mlmon: PROMETHEUS_MULTIPROC_DIR is not set; each gunicorn worker will export its own counts and "
            "/metrics will show only the worker that answers the scrape"
        )
        return
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook: the worker's live gauges leave with it. Never raises."""
    if multiprocess_dir() is None:
        return
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
    except Exception as exc:  # a hook that raises would take the master down
        log.warning("mlmon: could not mark worker %s dead: %r", getattr(worker, "pid", "?"), exc)


__all__ = ["child_exit", "on_starting"]
