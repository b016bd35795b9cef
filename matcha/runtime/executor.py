"""Compile a :class:`Plan` into a LangGraph ``StateGraph`` and drive it with a persistent checkpointer.

The graph state is tiny: the run id and the list of completed node ids. Each node runs one step
over the run store. The checkpointer (SqliteSaver) records each finished super-step, so a killed
process resumes at the first unfinished step and finished steps never run again.
"""

from __future__ import annotations

import operator
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

import structlog

from matcha.connectors.base import Connector, Source
from matcha.errors import ConnectorError, RunError
from matcha.models.base import Provider
from matcha.runtime.batches import Chain, Feed, drive_elsewhere, run_chain, upstream_view
from matcha.runtime.ingest import ingest
from matcha.runtime.remote import actors_for, executor_of, runs_remotely
from matcha.runtime.store import RunStore
from matcha.spec.graph import SOURCE
from matcha.spec.load import Plan, PlannedStep
from matcha.steps.base import DatasetView, Step, StepContext

log = structlog.get_logger("matcha.run")

Progress = Callable[[str, int, int], None]


class GraphState(TypedDict):
    run_id: str
    completed: Annotated[list[str], operator.add]


class Runner:
    """Everything one run needs at execution time: plan, store, models and connectors (lazy)."""

    def __init__(self, plan: Plan, store: RunStore, run_id: str, params: dict[str, Any],
                 progress: Progress | None = None, artifact_dir: Path | None = None):
        self.plan = plan
        self.store = store
        self.run_id = run_id
        self.params = params
        self.progress: Progress = progress or (lambda s, d, t: None)
        self._artifact_dir = artifact_dir
        self._models: dict[str, Provider] = {}
        self._lock = threading.Lock()
        self._executor: str | None = None

    @property
    def executor(self) -> str:
        """Where portable batch steps run: "local" (here) or "ray" (see :mod:`matcha.runtime.remote`)."""
        if self._executor is None:
            self._executor = executor_of(self.params.get("executor") or self.plan.spec.settings.executor)
        return self._executor

    def model(self, name: str) -> Provider:
        with self._lock:
            if name not in self._models:
                provider = self.plan.build_model(name)
                provider.load()
                self._models[name] = provider
            return self._models[name]

    def connector(self, name: str) -> Connector:
        return self.plan.connections[name].build(self.plan.base_dir)

    @property
    def artifact_dir(self) -> Path:
        return self._artifact_dir or Path(self.store.path).parent / "artifacts"

    def view(self, ctx: StepContext, step_id: str) -> DatasetView:
        """The output of ``step_id`` as a dataset (a side input of another step)."""
        sid = SOURCE if step_id == "source" else step_id
        lineage = [SOURCE] if sid == SOURCE else [*self.plan.lineage(sid), sid]
        return upstream_view(ctx, sid, lineage)

    def close(self) -> None:
        for provider in self._models.values():
            provider.close()
        self._models.clear()

    # -- nodes ------------------------------------------------------------------------------
    def run_source(self) -> None:
        if self.params.get("records_ingested"):
            return
        spec = self.plan.spec.source
        source = self._source()
        id_field = spec.id_field if spec else "id"
        limit = spec.limit if spec else None
        self.store.step_started(self.run_id, SOURCE)
        log.info("reading source", run=self.run_id, source=source.describe())
        feed = self._feed()
        try:
            ingest(self.store, self.run_id, source.read(), id_field, limit,
                   progress=lambda n: self.progress("source", n, 0), written=feed.written if feed else None)
            if feed is not None:
                feed.finish()
        except Exception:
            self.store.step_finished(self.run_id, SOURCE, status="failed")
            raise
        self.store.step_finished(self.run_id, SOURCE)

    #: hand the records just ingested to the chain that reads only the source (see :class:`Feed`)
    feed_chains = True

    def _feed(self) -> Feed | None:
        consumers = [ps for ps in self.plan.steps.values() if SOURCE in ps.needs]
        # on Ray each step runs its own pass, its batches on actors: no chain to feed
        if not self.feed_chains or self.executor == "ray" or len(consumers) != 1 or \
                list(consumers[0].needs) != [SOURCE]:
            return None
        chain = chains(self.plan).get(consumers[0].id)
        if chain is None:
            return None
        for ps in chain:
            self.store.step_started(self.run_id, ps.id)
        links: list[tuple[Step, StepContext, Any, str]] = [
            (ps.step, self._context(ps), ps.when, ps.step.spec.on_error) for ps in chain]
        for _step, ctx, _when, _on_error in links:
            ctx.open_view = _no_view  # the source is not all stored yet
        return Feed(Chain(links), self.plan.spec.settings.batch_size)

    def _source(self) -> Source:
        from pydantic import ValidationError

        from matcha.connectors.files import CsvSource, JsonlSource, TextFileSource

        path = self.params.get("input")
        if path:
            p = Path(path)
            encoding = self.params.get("input_encoding") or "utf-8"
            delimiter = self.params.get("input_delimiter")
            source: TextFileSource
            try:
                if p.suffix.lower() == ".jsonl":
                    if delimiter:
                        raise ConnectorError(f"--delimiter applies to CSV files, but {p.name} is read as JSON Lines; "
                                             "run again without --delimiter")
                    config: Any = JsonlSource.Config(kind="jsonl", path=str(p), encoding=encoding)
                    source = JsonlSource("input", config, base_dir=Path.cwd())
                else:
                    config = CsvSource.Config(kind="csv", path=str(p), delimiter=delimiter or ",", encoding=encoding)
                    source = CsvSource("input", config, base_dir=Path.cwd())
            except ValidationError as exc:
                why = "; ".join(f"--{e['loc'][0]}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
                raise ConnectorError(f"cannot read --input {p.name}: {why}") from None
            # there is no connection file to edit: the fix for a wrong encoding is the option
            source.encoding_hint = "run again with --encoding"
            return source
        spec = self.plan.spec.source
        if spec is None:
            raise ConnectorError("this pipeline has no `source:`; pass records (library) or --input FILE (CLI)")
        conn = self.connector(spec.connector)
        assert isinstance(conn, Source)
        return conn

    def _context(self, ps: PlannedStep) -> StepContext:
        sid = ps.id
        upstream = self.plan.upstream(sid)
        ctx = StepContext(
            run_id=self.run_id, step_id=sid, store=self.store, base_dir=self.plan.base_dir,
            batch_size=self.plan.spec.settings.batch_size,
            column_batch_size=self.plan.spec.settings.column_batch_size, needs=ps.needs, models=self.model,
            connectors=self.connector, upstream=upstream,
            approvals={s for s in upstream if self.plan.steps[s].step.approves}, progress=self.progress,
            lineage=self.plan.lineage(sid), pipeline=self.plan.spec.name,
        )
        ctx.open_view = lambda step_id: self.view(ctx, step_id)
        ctx.artifact_sink = lambda name, content, media: self.store.add_artifact(
            self.run_id, sid, name, content, media, self.artifact_dir)
        return ctx

    def run_step(self, ps: PlannedStep) -> None:
        sid = ps.id
        self.store.step_started(self.run_id, sid)
        ctx = self._context(ps)
        log.info("step started", run=self.run_id, step=sid, type=ps.step.spec.type)
        try:
            if self.executor == "ray" and runs_remotely(ps.step):
                with actors_for(self, ps) as (submit, window):
                    drive_elsewhere(ps.step, ctx, ps.when, submit, window)
            else:
                ps.step.execute(ctx, ps.when, ps.step.spec.on_error)
        except Exception as exc:
            # LangGraph's interrupt is an exception too: a paused approval step is waiting, not failed
            if not _is_interrupt(exc):
                self.store.step_finished(self.run_id, sid, status="failed")
            raise
        self.store.step_finished(self.run_id, sid)
        c = self.store.step_counts(self.run_id, sid, ps.needs)
        log.info("step finished", run=self.run_id, step=sid, received=c.received, out=c.out,
                 dropped=c.dropped, quarantined=c.quarantined)

    def run_chain(self, chain: list[PlannedStep]) -> None:
        """Consecutive per-batch steps on each batch in turn (see :func:`batches.run_chain`); then the
        first step finishes as usual, and each later step's own node picks up what is left (nothing,
        unless the run is resumed) and finishes it. On Ray each step runs its own pass."""
        if self.executor == "ray":
            self.run_step(chain[0])
            return
        for ps in chain:
            self.store.step_started(self.run_id, ps.id)
        log.info("steps started together", run=self.run_id, steps=[ps.id for ps in chain])
        failed: list[str] = []
        try:
            run_chain([(ps.step, self._context(ps), ps.when, ps.step.spec.on_error) for ps in chain], failed.append)
        except Exception:
            for sid in failed:
                self.store.step_finished(self.run_id, sid, status="failed")
            raise
        self.run_step(chain[0])


def chains(plan: Plan) -> dict[str, list[PlannedStep]]:
    """Runs of consecutive per-batch steps that can share each batch, by their first step: each step
    of a run is the only consumer of the one before and needs nothing else; approval, publish,
    dataset-scoped and aggregating steps, and steps with their own way of running, are never in one."""
    consumers: dict[str, list[str]] = {sid: [] for sid in plan.steps}
    for ps in plan.steps.values():
        for need in ps.needs:
            if need in consumers:
                consumers[need].append(ps.id)

    def fusible(ps: PlannedStep) -> bool:
        step = ps.step
        return (type(step).execute is Step.execute and step.scope == "batch" and not step.aggregates
                and not step.approves and not step.publishes)

    found: dict[str, list[PlannedStep]] = {}
    member: set[str] = set()
    for sid in plan.order():
        ps = plan.steps[sid]
        if sid in member or not fusible(ps):
            continue
        chain = [ps]
        while len(consumers[chain[-1].id]) == 1:
            nxt = plan.steps[consumers[chain[-1].id][0]]
            if not fusible(nxt) or list(nxt.needs) != [chain[-1].id]:
                break
            chain.append(nxt)
        if len(chain) > 1:
            found[sid] = chain
            member.update(p.id for p in chain)
    return found


def _no_view(step_id: str) -> DatasetView:
    raise RuntimeError(f"the output of '{step_id}' is read after ingest, not while it is fed")


def _is_interrupt(exc: BaseException) -> bool:
    from langgraph.errors import GraphInterrupt

    return isinstance(exc, GraphInterrupt)


def compile_graph(plan: Plan, runner_for: Callable[[str], Runner], checkpointer: Any) -> Any:
    """Build and compile the LangGraph graph. ``runner_for(run_id)`` gives the runner of a run."""
    from langgraph.graph import END, START, StateGraph

    builder: Any = StateGraph(GraphState)

    def source_node(state: GraphState) -> dict[str, Any]:
        runner_for(state["run_id"]).run_source()
        return {"completed": [SOURCE]}

    builder.add_node(SOURCE, source_node)
    builder.add_edge(START, SOURCE)
    needed: set[str] = set()
    heads = chains(plan)
    for ps in plan.steps.values():
        builder.add_node(ps.id, _step_node(ps, runner_for, heads.get(ps.id)))
        needs = ps.needs
        needed.update(needs)
        builder.add_edge(needs[0] if len(needs) == 1 else list(needs), ps.id)
    for sid in plan.steps:
        if sid not in needed:
            builder.add_edge(sid, END)
    return builder.compile(checkpointer=checkpointer)


def _step_node(ps: PlannedStep, runner_for: Callable[[str], Runner],
               chain: list[PlannedStep] | None = None) -> Callable[[GraphState], dict[str, Any]]:
    def node(state: GraphState) -> dict[str, Any]:
        runner = runner_for(state["run_id"])
        if chain:
            runner.run_chain(chain)
        else:
            runner.run_step(ps)
        return {"completed": [ps.id]}

    node.__name__ = f"step_{ps.id}"
    return node


def open_checkpointer(path: Path | str) -> Any:
    """LangGraph's saver on the run store's database: SQLite (a file) or PostgreSQL (a URL)."""
    if isinstance(path, str):
        return _postgres_saver(path)
    from langgraph.checkpoint.sqlite import SqliteSaver

    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    return SqliteSaver(conn)


_PG_READY: set[str] = set()


def _postgres_saver(url: str) -> Any:
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    from matcha.runtime.sql import CONNECT_OPTIONS, first_line, lock_key, redact

    try:
        conn = psycopg.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row, **CONNECT_OPTIONS)
    except psycopg.Error as exc:
        raise RunError(f"cannot connect to {redact(url)} for checkpoints: {first_line(exc)}") from None
    saver = PostgresSaver(conn)  # type: ignore[arg-type]
    if url not in _PG_READY:  # create or migrate its tables once per process, one process at a time
        conn.execute("SELECT pg_advisory_lock(%s)", (lock_key("setup:checkpoints"),))
        try:
            saver.setup()
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key("setup:checkpoints"),))
        _PG_READY.add(url)
    return saver
