"""Runs: start, resume, review and inspect. The CLI and the library both go through here."""

from __future__ import annotations

import contextlib
import gc
import getpass
import json
import os
import re
import secrets as _secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

from matcha.errors import ApprovalError, MatchaError, RunError
from matcha.runtime.sql import RunLock, is_url
from matcha.runtime.store import Artifact, RunRow, RunStore, StepCounts, sha256_bytes, sha256_text
from matcha.secrets import mask
from matcha.spec.graph import SOURCE
from matcha.spec.load import Plan, load_plan

log = structlog.get_logger("matcha.run")

#: A run id names a folder under MATCHA_HOME: no separators, no leading dot, bounded length.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_run_id(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id):
        raise RunError(f"invalid run id {run_id[:80]!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a "
                       "letter or digit (a run id names a folder under MATCHA_HOME)")
    return run_id


class Workspace:
    """The state folder (``.matcha/`` in the current directory, or ``$MATCHA_HOME``) and the
    database of runs and checkpoints: SQLite files in that folder, or the PostgreSQL database
    ``$MATCHA_DATABASE_URL`` names (then several workers on several machines share the runs; the
    folder keeps artifacts and quarantine files, so give them a shared volume)."""

    def __init__(self, home: str | Path | None = None, database_url: str | None = None):
        self.home = Path(home or os.environ.get("MATCHA_HOME") or Path.cwd() / ".matcha").resolve()
        url = database_url or os.environ.get("MATCHA_DATABASE_URL") or None
        if url is not None and not is_url(url):
            raise RunError("MATCHA_DATABASE_URL must be a postgresql://USER:PASSWORD@HOST:PORT/DATABASE URL "
                           "(unset it to keep runs in SQLite under MATCHA_HOME)")
        self.database_url = url
        self._store: RunStore | None = None

    @property
    def store(self) -> RunStore:
        if self._store is None:
            self._store = RunStore(self.database_url or self.home / "runs.db")
        return self._store

    @property
    def checkpoints(self) -> Path | str:
        """Where LangGraph's checkpoints are: a SQLite file, or the PostgreSQL URL."""
        return self.database_url or self.home / "checkpoints.db"

    def run_lock(self, run_id: str) -> RunLock:
        return self.store.run_lock(run_id, self.run_dir(run_id))

    def run_dir(self, run_id: str) -> Path:
        return self.home / "runs" / check_run_id(run_id)


@dataclass
class ReviewItem:
    """One item awaiting (or having received) a human decision."""

    run_id: str
    step: str
    id: str
    status: str
    ai_text: str
    final_text: str | None
    sha256: str | None
    reviewer: str | None
    decided_at: float | None
    reason: str | None
    context: dict[str, Any]
    seq: int = 0  # position in the queue (with ``step``, the key of the next page)


def _new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + _secrets.token_hex(3)



@contextlib.contextmanager
def fewer_collections(first_generation: int = 50_000) -> Iterator[None]:
    """Run with the garbage collector's youngest generation collected less often, then restore it.

    A batch makes thousands of small dicts that live until it is written, and with the default
    threshold (700 allocations) the collector walks them over and over: measured, a third of the
    time of a chain of cheap steps. Records are plain JSON-like data without reference cycles, so
    collecting them later costs nothing in memory that the batch size does not already bound."""
    old = gc.get_threshold()
    if old[0] >= first_generation:
        yield
        return
    gc.set_threshold(first_generation, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)

class Run:
    """A run of a pipeline. Obtain one from ``Pipeline.run()`` or ``Run.open(run_id)``."""

    def __init__(self, workspace: Workspace, row: RunRow, plan: Plan | None = None):
        self._ws = workspace
        self._row = row
        self._plan = plan
        self._executable = plan is not None  # a plan handed in was validated to run, env included
        #: this object executed the run's graph (False when it found nothing to do)
        self.drove = False

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def open(cls, run_id: str, home: str | Path | None = None, *, workspace: Workspace | None = None) -> Run:
        """The run ``run_id`` of the state folder ``home`` (or of ``workspace``, whose store and its
        connections are then shared: a server opening runs for each request)."""
        from matcha.logs import configure_library_default

        configure_library_default()
        ws = workspace or Workspace(home)
        row = ws.store.get_run(check_run_id(run_id))
        if row is None:
            known = ", ".join(r.run_id for r in ws.store.list_runs(5)) or "none"
            raise RunError(f"no run '{run_id}' in {ws.home}. Recent runs: {known} (see `matcha runs`)")
        return cls(ws, row)

    @property
    def plan(self) -> Plan:
        """The run's pipeline, for inspection: environment variables it names need not be set."""
        if self._plan is None:
            self._plan = load_plan(self._row.spec_text, self._row.pipeline_path, Path(self._row.base_dir),
                                   require_env=False)
        return self._plan

    def _executable_plan(self) -> Plan:
        """The run's pipeline, validated to run: every variable set (validated once per Run)."""
        if not self._executable or self._plan is None:
            self._plan = load_plan(self._row.spec_text, self._row.pipeline_path, Path(self._row.base_dir))
            self._executable = True
        return self._plan

    # -- state ------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._row.run_id

    @property
    def status(self) -> str:
        return self._row.status

    @property
    def error(self) -> str | None:
        return self._row.error

    @property
    def pipeline(self) -> str:
        return self._row.name

    @property
    def quarantine_path(self) -> Path:
        return self._ws.run_dir(self.id) / "quarantine.jsonl"

    def refresh(self) -> Run:
        row = self._ws.store.get_run(self.id)
        assert row is not None
        self._row = row
        return self

    def steps(self) -> list[StepCounts]:
        """Per-step counts (received = out + dropped + quarantined once a step is done) and timings."""
        store = self._ws.store
        out = [store.step_counts(self.id, SOURCE, [])]
        out[0].step_id = "source"
        out += [store.step_counts(self.id, sid, ps.needs) for sid, ps in self.plan.steps.items()]
        return out

    @property
    def active(self) -> bool:
        """True while some process is executing this run (holds its lock)."""
        return self._ws.run_lock(self.id).held_elsewhere()

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description: what ``--json`` prints."""
        quarantined = sum(c.quarantined for c in self.steps())
        return {
            "run_id": self.id,
            "pipeline": self.pipeline,
            "status": self.status,
            "active": self.status == "running" and self.active,
            "error": self.error,
            "steps": [{"id": c.step_id, "status": c.status, "received": c.received, "out": c.out,
                       "dropped": c.dropped, "quarantined": c.quarantined, "seconds": c.seconds,
                       **({"grouped": c.grouped, "made": c.made} if c.made or c.grouped else {}), **c.extra}
                      for c in self.steps()],
            "pending_review": self._ws.store.count_approvals(self.id, status="pending"),
            "quarantined": quarantined,
            "quarantine_file": str(self.quarantine_path) if quarantined else None,
            "artifacts": [{"name": a.name, "step": a.step, "sha256": a.sha256, "size": a.size,
                           "media_type": a.media_type, "path": str(a.path)} for a in self.artifacts()],
            "segments": [{k: seg.get(k) for k in ("id", "segment", "name", "size", "share", "keywords")}
                         for seg in self.segments()],
        }

    def raise_for_status(self) -> Run:
        """Raise :class:`RunError` if the run failed (like ``httpx.Response.raise_for_status``)."""
        if self.status == "failed":
            raise RunError(f"run {self.id} failed: {self.error}. Fix the cause, then `matcha resume {self.id}`")
        return self

    # -- review -----------------------------------------------------------------------------
    def items(self, status: str | None = None, step: str | None = None, *, limit: int | None = None,
              after: tuple[str, int] | None = None) -> list[ReviewItem]:
        """Review items in queue order; ``limit``/``after`` read one page (``after`` = the ``(step, seq)``
        of the last item of the previous page, see :meth:`iter_items`)."""
        if limit is None and after is None:
            return list(self.iter_items(status, step))
        rows = self._ws.store.approvals_page(self.id, step_id=step, status=status, after=after, limit=limit or 100)
        return [self._item(r) for r in rows]

    def iter_items(self, status: str | None = None, step: str | None = None) -> Iterator[ReviewItem]:
        """Every review item, read a page at a time (memory bounded whatever the size of the queue)."""
        for r in self._ws.store.iter_approvals(self.id, step_id=step, status=status):
            yield self._item(r)

    def _item(self, r: dict[str, Any]) -> ReviewItem:
        return ReviewItem(run_id=self.id, step=r["step_id"], id=r["record_id"], status=r["status"],
                          ai_text=r["ai_text"], final_text=r["final_text"], sha256=r["sha256"],
                          reviewer=r["reviewer"], decided_at=r["decided_at"], reason=r["reason"],
                          context=r["context"], seq=r["seq"])

    def _approval_steps(self) -> list[str]:
        return [sid for sid, ps in self.plan.steps.items() if ps.step.approves]

    def pending(self, step: str | None = None, *, limit: int | None = None) -> list[ReviewItem]:
        """Items waiting for a decision (the first ``limit`` of them)."""
        return self.items(status="pending", step=step, limit=limit)

    def _pending_count(self) -> int:
        return self._ws.store.count_approvals(self.id, status="pending")

    def pending_count(self) -> int:
        """How many items wait for a decision."""
        return self._pending_count()

    def _target(self, item: str, step: str | None) -> ReviewItem:
        # one record's rows, not the whole queue: deciding one of a million items stays cheap
        matches = [self._item(r) for rows in self._ws.store.decisions_for(
            self.id, [step] if step else self._approval_steps(), [item]).values() for r in rows]
        if not matches:
            raise ApprovalError(f"run {self.id} has no review item '{item}'. See `matcha review {self.id}`")
        pending = [i for i in matches if i.status == "pending"]
        if not pending:
            m = matches[0]
            raise ApprovalError(f"item '{item}' was already {m.status} by {m.reviewer}")
        if len(pending) > 1:
            raise ApprovalError(f"item '{item}' is pending in several approval steps "
                                f"({', '.join(i.step for i in pending)}); pass step=")
        return pending[0]

    def approve(self, item: str | Iterable[str] | None = None, *, all: bool = False, edit: str | None = None,
                step: str | None = None, reviewer: str | None = None, resume: bool = True,
                progress: Any = None) -> Run:
        """Approve one item, several, or ``all=True`` pending ones. ``edit`` replaces the AI text
        (one item only). When nothing is left pending the run resumes (unless ``resume=False``)."""
        who = reviewer or os.environ.get("MATCHA_REVIEWER") or getpass.getuser()
        if all:
            if edit is not None:
                raise ApprovalError("an edit applies to exactly one item; name it with --item")
            self._approve_all(step, who)
            return self._maybe_resume(resume, progress)
        if item is None:
            raise ApprovalError("name an item to approve, or approve all pending items (all=True / --all)")
        else:
            targets = [self._target(i, step) for i in ([item] if isinstance(item, str) else list(item))]
        if edit is not None and len(targets) != 1:
            raise ApprovalError("an edit applies to exactly one item; name it with --item")
        for t in targets:
            final = edit if edit is not None else t.ai_text
            if not self._ws.store.decide(self.id, t.step, t.id, status="approved", final_text=final,
                                         sha256=sha256_text(final), reviewer=who, reason=None):
                raise ApprovalError(f"item '{t.id}' is no longer pending")
            log.info("approved", run=self.id, step=t.step, item=t.id, reviewer=who, edited=edit is not None)
        return self._maybe_resume(resume, progress)

    def _approve_all(self, step: str | None, who: str) -> int:
        """Approve every pending item a page at a time: memory bounded by the page, one transaction each."""
        store, n = self._ws.store, 0
        while page := store.approvals_page(self.id, step_id=step, status="pending", limit=1000):
            n += store.decide_many(self.id, [(r["step_id"], r["record_id"], "approved", r["ai_text"],
                                              sha256_text(r["ai_text"]), None) for r in page], who)
        log.info("approved all pending", run=self.id, step=step, items=n, reviewer=who)
        return n

    def reject(self, item: str, *, reason: str, step: str | None = None, reviewer: str | None = None,
               resume: bool = True, progress: Any = None) -> Run:
        """Reject one item with a reason; rejected items are never published."""
        if not reason.strip():
            raise ApprovalError("a rejection needs a reason (--reason TEXT)")
        who = reviewer or os.environ.get("MATCHA_REVIEWER") or getpass.getuser()
        t = self._target(item, step)
        if not self._ws.store.decide(self.id, t.step, t.id, status="rejected", final_text=None, sha256=None,
                                     reviewer=who, reason=reason):
            raise ApprovalError(f"item '{t.id}' is no longer pending")
        log.info("rejected", run=self.id, step=t.step, item=t.id, reviewer=who)
        return self._maybe_resume(resume, progress)

    def _maybe_resume(self, resume: bool, progress: Any) -> Run:
        if resume and self.refresh().status == "waiting_for_approval" and not self._ws.store.has_pending(self.id):
            return self.resume(progress)
        return self

    # -- driving ----------------------------------------------------------------------------
    def resume(self, progress: Any = None, *, only_if: set[str] | None = None) -> Run:
        """Continue the run from its last completed step (after a crash, a failure or approval).
        ``only_if``: only when its status (checked again under the run's lock) is one of these."""
        self.refresh()
        if self.status == "succeeded":
            return self
        if self.status == "waiting_for_approval" and self._ws.store.has_pending(self.id):
            n = self._pending_count()
            raise RunError(f"run {self.id} is waiting for approval of {n} item(s). "
                           f"Review with `matcha review {self.id}`, then approve or reject them")
        return self._drive(None, progress, only_if=only_if)

    def _drive(self, initial: dict[str, Any] | None, progress: Any, *, held: RunLock | None = None,
               only_if: set[str] | None = None) -> Run:
        """Execute the run's graph under its lock (``held``: the caller holds it). ``only_if``: drive
        it only if, once locked, its status is one of these (a worker's view may be stale)."""
        from langgraph.types import Command

        from matcha.runtime.executor import Runner, compile_graph, open_checkpointer

        with contextlib.nullcontext() if held is not None else self._lock(), fewer_collections():
            store = self._ws.store
            if initial is None and self.refresh().status == "succeeded":
                return self  # another process finished it while this one waited for the lock
            if only_if is not None and self.status not in only_if:
                return self
            self.drove = True
            try:
                plan = self._executable_plan()
            except MatchaError as exc:  # e.g. a variable this process lacks: say so on the run, not "running"
                store.set_status(self.id, "failed", str(exc))
                raise
            store.set_status(self.id, "running")
            runner = Runner(plan, store, self.id, self._row.params, progress,
                            artifact_dir=self._ws.home / "artifacts")
            saver = open_checkpointer(self._ws.checkpoints)
            config = {"configurable": {"thread_id": self.id}}
            try:
                graph = compile_graph(self.plan, lambda _rid: runner, saver)
                snapshot = graph.get_state(config)
                if initial is not None or not snapshot.values:
                    arg: Any = {"run_id": self.id, "completed": []}
                elif snapshot.interrupts:
                    arg = Command(resume=True)
                else:
                    arg = None
                graph.invoke(arg, config)
                snapshot = graph.get_state(config)
                status = "waiting_for_approval" if snapshot.next else "succeeded"
                store.set_status(self.id, status)
            except MatchaError as exc:
                store.set_status(self.id, "failed", str(exc))
                log.error("run failed", run=self.id, error=mask(str(exc)))
            except Exception as exc:
                store.set_status(self.id, "failed", f"{type(exc).__name__}: {exc}")
                log.exception("run failed", run=self.id)
            finally:
                runner.close()
                saver.conn.close()
                self._write_quarantine()
        return self.refresh()

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        lock = self._ws.run_lock(self.id)
        if not lock.acquire():
            raise RunError(f"run {self.id} is being executed by another process; wait for it to finish")
        try:
            yield
        finally:
            lock.release()

    def _write_quarantine(self) -> None:
        rows = self._ws.store.quarantined(self.id)
        if rows:
            self.quarantine_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.quarantine_path, "w", encoding="utf-8") as fh:
                for r in rows:
                    fh.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")

    # -- export -----------------------------------------------------------------------------
    def records(self, step: str | None = None) -> Iterator[dict[str, Any]]:
        """Every record as it left ``step`` (default: each record merged over every step it went through)."""
        store = self._ws.store
        if step and step not in self.plan.steps and step != "source":
            raise RunError(f"run {self.id} has no step '{step}'. Steps: {', '.join(self.plan.steps)}")
        if step == "source":
            lineage, needs = [SOURCE], [SOURCE]
        elif step:
            lineage, needs = [*self.plan.lineage(step), step], [step]
        else:
            lineage = needs = [SOURCE, *self.plan.order()]
        for batch in store.iter_input(self.id, lineage, needs, 1000, join=False):
            for _rid, _seq, rec in batch:
                yield rec

    # -- what a run produced ----------------------------------------------------------------
    def artifacts(self) -> list[Artifact]:
        """Files the run produced (reports, profiles), each with its sha256."""
        return self._ws.store.artifacts(self.id)

    def artifact(self, name: str) -> Path:
        """The path of an artifact, after checking its content still has the recorded sha256."""
        for a in self.artifacts():
            if a.name == name:
                if not a.path.is_file() or sha256_bytes(a.path.read_bytes()) != a.sha256:
                    raise RunError(f"artifact '{name}' of run {self.id} is missing or was changed on disk "
                                   f"({a.path}); run the step that made it again")
                return a.path
        names = ", ".join(a.name for a in self.artifacts()) or "none"
        raise RunError(f"run {self.id} has no artifact '{name}'. Artifacts: {names}")

    @property
    def report(self) -> Path | None:
        """The HTML report the run produced (the last one), or None."""
        html = [a for a in self.artifacts() if a.media_type == "text/html"]
        return self.artifact(html[-1].name) if html else None

    def segments(self) -> list[dict[str, Any]]:
        """The segment records of the run (the output of its steps that describe segments)."""
        steps = [sid for sid, ps in self.plan.steps.items() if ps.step.produces == "segments"]
        return [rec for sid in steps for rec in self.records(sid)]

    def members(self, record_id: str, step: str | None = None) -> Iterator[str]:
        """Ids of the input records an aggregating step summarised into ``record_id`` (e.g. a segment)."""
        steps = [step] if step else [sid for sid, ps in self.plan.steps.items() if ps.step.aggregates]
        for sid in steps:
            yield from self._ws.store.members(self.id, sid, record_id)

    def export(self, path: str | Path, format: str = "jsonl", step: str | None = None) -> int:
        """Write every record (see :meth:`records`) to ``path`` as ``jsonl`` or ``csv``; returns the count."""
        from matcha.runtime.export import export_records

        return export_records(self.records(step), format, Path(path))

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.pipeline} {self.status}>"


def start_run(plan: Plan, ws: Workspace, *, records: Iterable[dict[str, Any]] | None = None,
              input_path: str | None = None, run_id: str | None = None, progress: Any = None,
              encoding: str = "utf-8", delimiter: str | None = None, queue: bool = False) -> Run:
    from matcha.runtime.ingest import ingest, records_as_rows

    if records is None and input_path is None and plan.spec.source is None:
        raise RunError(f"pipeline '{plan.spec.name}' has no `source:`. Add one (source: {{connector: NAME}}), "
                       "or pass records (library: run(records=...)) or a file (CLI: --input FILE.csv)")
    if input_path is not None and not Path(input_path).is_file():
        raise RunError(f"input file not found: {input_path}")
    rid = check_run_id(run_id) if run_id is not None else _new_run_id()
    if ws.store.get_run(rid) is not None:
        raise RunError(f"a run with id '{rid}' already exists; use `matcha resume {rid}` or another id")
    params: dict[str, Any] = {}
    if input_path:
        params.update(input=str(Path(input_path).resolve()), input_encoding=_encoding(encoding))
        if delimiter is not None:  # CSV only: a JSONL input given a delimiter is refused by the source
            params["input_delimiter"] = _delimiter(delimiter)
    if records is not None:
        params["records_ingested"] = True
    if os.environ.get("MATCHA_EXECUTOR"):  # --executor: kept with the run, for the worker that drives it
        params["executor"] = os.environ["MATCHA_EXECUTOR"]
    # the run is locked from its creation: no worker takes it while its records are being stored
    lock = ws.run_lock(rid)
    if not lock.acquire():
        raise RunError(f"a run with id '{rid}' is being created by another process; choose another id")
    try:
        ws.store.create_run(rid, plan.spec.name, plan.file, str(plan.base_dir), plan.text, params)
        if records is not None:
            spec = plan.spec.source
            ingest(ws.store, rid, records_as_rows(records), spec.id_field if spec else "id")
        row = ws.store.get_run(rid)
        assert row is not None
        run = Run(ws, row, plan)
        if queue:
            ws.store.set_status(rid, "queued")
            log.info("run queued", run=rid, pipeline=plan.spec.name)
            return run.refresh()
        log.info("run started", run=rid, pipeline=plan.spec.name)
        return run._drive({}, progress, held=lock)
    finally:
        lock.release()


def _encoding(name: str) -> str:
    from matcha.connectors.files import check_encoding

    try:
        return check_encoding(name)
    except ValueError as exc:
        raise RunError(str(exc)) from None


def _delimiter(value: str) -> str:
    if len(value) != 1 or value in "\r\n\"":
        raise RunError(f"invalid CSV delimiter {value!r}: give one character such as ',' ';' or a tab")
    return value


def as_dicts(items: list[ReviewItem]) -> list[dict[str, Any]]:
    return [asdict(i) for i in items]
