"""The Ray executor: the batches of portable steps (models, scripts) run on Ray actors.

The driver (the process running the pipeline) keeps what must happen once: reading batches from the
run store, writing each batch's outcome, checkpoints, approval and publish. For each portable batch
step it starts a few actors; each builds the step from the pipeline's text, warms it up once
(loads its model) and then handles batches. A batch goes out as plain records and comes back as
what the step changed (fields set, fields removed, drops and quarantine with their reasons), which
the driver applies and writes exactly as the local executor would: same records out, same counts.

Actors open the run store themselves for what steps keep there (the model cache, vectors), so a
generation an actor paid for is cached before its batch is written: a run resumed after its driver
was killed finds it there and does not pay for it again. Ray's usage statistics are switched off
(``RAY_USAGE_STATS_ENABLED=0``) unless set otherwise.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from matcha.errors import RunError, StepError
from matcha.steps.base import BatchOutcome, Record, Step

if TYPE_CHECKING:
    from matcha.runtime.executor import Runner
    from matcha.spec.load import PlannedStep

log = structlog.get_logger("matcha.ray")
_CONNECTING = threading.Lock()
#: seconds to wait for a step's actors to start (scheduled, model loaded) before saying why not
ACTOR_START_TIMEOUT = float(os.environ.get("MATCHA_RAY_START_TIMEOUT", "600"))

EXECUTORS = ("local", "ray")
#: variables an actor needs besides those the project's YAML names (${env:NAME}, *_env: NAME)
_PASSED = ("MATCHA_HOME", "MATCHA_CACHE_DIR", "MATCHA_CRASH_AT", "HF_HUB_OFFLINE", "HTTP_PROXY", "HTTPS_PROXY",
           "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
_NAMED = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}|_env:\s*[\"']?([A-Za-z_][A-Za-z0-9_]*)")


def executor_of(setting: str) -> str:
    """The executor a run uses: ``$MATCHA_EXECUTOR`` (``--executor`` of this process) over ``setting``
    (the executor the run was started with, else the pipeline's ``settings.executor``)."""
    chosen = os.environ.get("MATCHA_EXECUTOR") or setting
    if chosen not in EXECUTORS:
        raise RunError(f"unknown executor {chosen!r} (MATCHA_EXECUTOR or --executor): use local or ray")
    return chosen


def runs_remotely(step: Step) -> bool:
    """Whether the Ray executor sends this step's batches to actors (by the step's capabilities)."""
    from matcha.steps.base import Step as Base

    return (type(step).execute is Base.execute and step.scope == "batch" and not step.aggregates
            and not step.approves and not step.publishes and step.portable)


def actor_environment(spec_text: str, base_dir: Path) -> dict[str, str]:
    """The variables an actor gets: those the pipeline, its connections and models name, and a few of
    Matcha's own. Nothing else of the driver's environment leaves it."""
    texts = [spec_text]
    for folder in (base_dir, base_dir / "connectors"):
        if folder.is_dir():
            texts += [p.read_text(encoding="utf-8", errors="replace") for p in sorted(folder.glob("*.yaml"))[:200]]
    names = {a or b for text in texts for a, b in _NAMED.findall(text)}
    return {k: os.environ[k] for k in sorted(names.union(_PASSED)) if k in os.environ}


class StepActor:
    """One step's worker on Ray: built from the pipeline, warmed up once, then handles batches."""

    def __init__(self, spec_text: str, pipeline_path: str, base_dir: str, store: str, run_id: str,
                 params: dict[str, Any], step_id: str):
        from matcha.logs import configure_library_default
        from matcha.runtime.batches import processing
        from matcha.runtime.executor import Runner
        from matcha.runtime.store import RunStore
        from matcha.spec.load import load_plan

        configure_library_default()
        plan = load_plan(spec_text, pipeline_path, Path(base_dir))
        self.store = RunStore(store)
        self.runner = Runner(plan, self.store, run_id, params)
        ps = plan.steps[step_id]
        self.step, self.ctx = ps.step, self.runner._context(ps)
        self.step.warm_up(self.ctx)  # the model loads once, when the actor starts
        self.handle = processing(ps.step, self.ctx, ps.step.spec.on_error, warmed=True)

    def pid(self) -> int:
        return os.getpid()

    def process(self, records: list[Record]) -> dict[str, Any]:
        from matcha.errors import MatchaError
        from matcha.runtime.batches import Before, changes, describe

        ids = [r["id"] for r in records]
        before = Before(records, ids, deep=self.step.mutates_nested)
        try:
            result = self.handle(records)
        except MatchaError as exc:
            return {"error": str(exc)}
        except Exception as exc:
            return {"error": f"step '{self.ctx.step_id}' failed: {describe(exc)}"}

        def diff(rec: Record) -> tuple[Any, Record, list[str]]:
            rid = rec.get("id")
            changed, removed = changes(before.get(rid) if isinstance(rid, str) else None, rec)
            return rid, changed, removed

        return {"out": [diff(r) for r in result.out],
                "dropped": [(*diff(r), why) for r, why in result.dropped],
                "quarantined": [(dict(r), why) for r, why in result.quarantined]}

    def close(self) -> None:
        self.runner.close()
        self.store.close()


def apply(batch: list[Record], payload: dict[str, Any]) -> BatchOutcome:
    """What an actor sent back, applied to the driver's own records of the batch."""
    if "error" in payload:
        raise StepError(payload["error"])
    mine = {r["id"]: r for r in batch}

    def record(rid: Any, changed: Record, removed: list[str]) -> Record:
        rec = mine.get(rid)
        if rec is None:  # not one of the batch: the driver's id check says so
            return {"id": rid, **changed}
        for k, v in changed.items():
            rec[k] = v
        for k in removed:
            rec.pop(k, None)
        return rec

    out = BatchOutcome()
    out.out = [record(rid, changed, removed) for rid, changed, removed in payload["out"]]
    out.dropped = [(record(rid, changed, removed), why) for rid, changed, removed, why in payload["dropped"]]
    out.quarantined = [({**r, "id": r.get("id")}, why) for r, why in payload["quarantined"]]
    return out


def connect(address: str | None) -> Any:
    """Ray, joined (``address``, else ``$RAY_ADDRESS``) or started on this machine on loopback."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no telemetry
    try:
        import ray
    except ImportError:
        raise RunError("the Ray executor needs Ray: pip install 'matcha[ray]'") from None
    with _CONNECTING:  # parallel branches of a graph may both get here first
        return _init(ray, address)


def _init(ray: Any, address: str | None) -> Any:
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
        if address is None:
            kwargs["_node_ip_address"] = "127.0.0.1"
        try:
            ray.init(address=address, **kwargs)
        except Exception as exc:  # a wrong address, a cluster down
            raise RunError(f"cannot join the Ray cluster at {address or 'a new local cluster'}: {exc}. "
                           "Check settings.ray.address or RAY_ADDRESS, or run with --executor local") from None
    return ray


@contextmanager
def actors_for(runner: Runner, ps: PlannedStep) -> Iterator[tuple[Callable[[list[Record]], Callable[[], BatchOutcome]],
                                                                  int]]:
    """Start the actors of one step; yields ``submit`` (a batch out, a function waiting for its
    outcome back) and how many batches to keep in flight. The actors end with the step."""
    settings = runner.plan.spec.settings.ray
    ray = connect(settings.address)
    if runner.store.url is None and len([n for n in ray.nodes() if n.get("Alive")]) > 1:
        raise RunError("the Ray executor on a cluster of several machines needs the run store in PostgreSQL "
                       "(MATCHA_DATABASE_URL): actors on other machines cannot share this SQLite file")
    free = ray.available_resources().get("CPU", 1)
    n = settings.actors or max(1, min(16, int(free // settings.num_cpus)))
    store = runner.store.url or str(runner.store.path)
    env = actor_environment(runner.plan.text, runner.plan.base_dir)
    remote = ray.remote(StepActor).options(num_cpus=settings.num_cpus, max_restarts=1, max_task_retries=1,
                                           runtime_env={"env_vars": env})
    pool = [remote.remote(runner.plan.text, runner.plan.file, str(runner.plan.base_dir), store, runner.run_id,
                          runner.params, ps.id) for _ in range(n)]
    try:  # each actor loads its model as it starts: wait for all, and say so when they cannot start
        ray.get([actor.pid.remote() for actor in pool], timeout=ACTOR_START_TIMEOUT)
    except Exception as exc:
        for actor in pool:
            ray.kill(actor)
        raise StepError(f"step '{ps.id}': {n} Ray actor(s) of {settings.num_cpus} CPU each did not start within "
                        f"{ACTOR_START_TIMEOUT:.0f} s ({_last_line(exc)}); the cluster has {free:g} CPU free. "
                        "Lower settings.ray.actors or num_cpus, or add machines") from None
    log.info("ray actors started", step=ps.id, actors=n)
    turn = 0

    def submit(batch: list[Record]) -> Callable[[], BatchOutcome]:
        nonlocal turn
        actor = pool[turn % n]
        turn += 1
        future = actor.process.remote([dict(r) for r in batch])

        def wait() -> BatchOutcome:
            try:
                payload = ray.get(future)
            except Exception as exc:  # the actor died twice, or could not start (its step's warm-up failed)
                raise StepError(f"step '{ps.id}' failed on Ray: {_last_line(exc)}. Fix the cause, then "
                                f"`matcha resume {runner.run_id}` (done batches are kept)") from None
            return apply(batch, payload)

        return wait

    try:
        yield submit, 2 * n
    finally:
        for actor in pool:
            try:
                ray.get(actor.close.remote(), timeout=30)
            except Exception:  # a dead actor has nothing to close
                log.debug("ray actor not closed", step=ps.id)
            ray.kill(actor)


def _last_line(exc: BaseException) -> str:
    """The last line of a Ray error (its own traceback comes first, the cause last)."""
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]
