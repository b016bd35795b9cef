"""The review server's background worker: resumes a run once its last pending item is decided.

A request only records decisions; the pipeline never runs inside it. Runs to resume are queued and
resumed one at a time by a daemon thread. A run already driven by another process (``matcha approve``
resuming it from a terminal) is left to that process: the run's file lock refuses a second driver.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import structlog

from matcha.errors import MatchaError
from matcha.runtime.run import Run

log = structlog.get_logger("matcha.serve")


class Resumer:
    def __init__(self, home: Path, *, enabled: bool = True):
        self.home = home
        self.enabled = enabled
        self._queue: queue.Queue[str] = queue.Queue()
        self._queued: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.idle = threading.Event()
        self.idle.set()

    def after_decision(self, run: Run) -> None:
        """Queue ``run`` for resuming when it waits for approval and nothing of it is pending any more."""
        if not self.enabled or run.refresh().status != "waiting_for_approval" or run._ws.store.has_pending(run.id):
            return
        self._queue_run(run.id)

    def resume_waiting(self) -> None:
        """Queue every run waiting for approval with nothing pending (decided while no server ran)."""
        if not self.enabled:
            return
        from matcha.runtime.run import Workspace

        store = Workspace(self.home).store
        for r in store.list_runs(limit=10_000):
            if r.status == "waiting_for_approval" and not store.has_pending(r.run_id):
                self._queue_run(r.run_id)

    def _queue_run(self, run_id: str) -> None:
        with self._lock:
            if run_id in self._queued:
                return
            self._queued.add(run_id)
            self.idle.clear()
            self._queue.put(run_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="matcha-resumer", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            try:
                run_id = self._queue.get(timeout=5)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        self.idle.set()
                        return
                continue
            try:
                log.info("resuming after the last decision", run=run_id)
                Run.open(run_id, home=self.home).resume()
            except MatchaError as exc:  # e.g. another process drives it
                log.warning("could not resume", run=run_id, error=str(exc))
            except Exception:  # a bug must not kill the worker
                log.exception("resume failed", run=run_id)
            finally:
                with self._lock:
                    self._queued.discard(run_id)
                    if self._queue.empty():
                        self.idle.set()
