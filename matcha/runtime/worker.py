"""``matcha worker``: drive the runs that wait for a process, on any machine sharing the run store.

A worker takes, one at a time, runs that are

* ``queued`` (``matcha run --queue``, ``Pipeline.run(queue=True)``),
* ``running`` with no process holding their lock for longer than ``grace`` seconds (their process
  died: a SIGKILL, a lost machine), resumed from their last checkpoint,
* ``waiting_for_approval`` with every item decided (reviewers decided while no process resumed it).

Several workers can run at once, on one machine with the SQLite store or on several with PostgreSQL:
the run lock (a file lock, or an advisory lock that the database releases when its holder dies)
lets exactly one of them drive a run; the others pass over it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import structlog

from matcha.errors import MatchaError
from matcha.runtime.run import Run, Workspace
from matcha.runtime.store import RunRow

log = structlog.get_logger("matcha.worker")


def candidates(ws: Workspace, grace: float = 30.0, limit: int = 10_000) -> Iterator[RunRow]:
    """Runs a worker could drive now, oldest first."""
    store, now = ws.store, time.time()
    for row in reversed(store.list_runs(limit=limit)):
        orphan = row.status == "running" and now - row.updated_at >= grace and not Run(ws, row).active
        decided = row.status == "waiting_for_approval" and not store.has_pending(row.run_id)
        if row.status == "queued" or orphan or decided:
            yield row


def work_once(ws: Workspace, grace: float = 30.0) -> list[str]:
    """Drive every run that waits for a process (see :func:`candidates`); returns the ids driven."""
    done: list[str] = []
    for row in candidates(ws, grace):
        run = Run(ws, row)
        try:
            log.info("driving run", run=row.run_id, status=row.status)
            # checked again under the run's lock: another worker may have driven it meanwhile
            run.resume(only_if={row.status})
        except MatchaError as exc:  # another worker holds it, or it waits for reviewers again
            log.info("passed over run", run=row.run_id, reason=str(exc))
            continue
        if not run.drove:
            continue  # its status had changed: left alone
        log.info("run driven", run=row.run_id, status=run.status)
        done.append(row.run_id)
    return done


def work(ws: Workspace, *, interval: float = 30.0, grace: float = 30.0,
         stop: Callable[[], bool] = lambda: False) -> None:
    """Poll the store every ``interval`` seconds until ``stop()`` (a signal, in the CLI)."""
    log.info("worker started", interval=interval, grace=grace)
    while not stop():
        try:
            work_once(ws, grace)
        except Exception:  # the database restarting, a bug: log it and look again at the next turn
            log.exception("worker turn failed")
        deadline = time.monotonic() + interval
        while not stop() and time.monotonic() < deadline:
            time.sleep(min(1.0, interval))
