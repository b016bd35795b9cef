"""`matcha runs prune`: old runs go with everything only they used; runs waiting for a reviewer,
and what remaining runs still use (vectors, shared artifact files), stay."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import Cli

from matcha import Pipeline, Run
from matcha.runtime.executor import open_checkpointer
from matcha.runtime.prune import prune
from matcha.runtime.run import Workspace
from matcha.steps.base import STEPS, BatchOutcome, Record, Step, StepConfig, StepContext

pytestmark = pytest.mark.unit

EMBED = """
name: embed-and-save
models:
  fast: {provider: hashing, dim: 16}
steps:
  - {id: embed, type: embed, with: {model: fast}}
  - {id: save, type: test_save}
"""
REVIEW = """
name: review
steps:
  - {id: review, type: approval, with: {field: text}}
  - {id: publish, type: publish, with: {connector: outbox}}
"""


class SaveStep(Step):
    """Saves two artifacts: one the same in every run (one shared file), one naming the run's records."""

    Config = StepConfig

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        ctx.save_artifact("same.txt", b"the same in every run", "text/plain")
        ctx.save_artifact("own.txt", " ".join(r["id"] for r in batch).encode(), "text/plain")
        return BatchOutcome(out=batch)


@pytest.fixture(autouse=True)
def _save_step() -> Any:
    STEPS._load()
    STEPS.add("test_save", SaveStep)
    yield
    STEPS._items.pop("test_save", None)


def _db(project: Path) -> sqlite3.Connection:
    return Workspace(project / ".matcha").store._conn()  # SQLite or PostgreSQL, as the suite chose


def _vector_keys(project: Path) -> set[str]:
    return {r[0] for r in _db(project).execute("SELECT key FROM vector_keys")}


def _run(project: Path, spec: str, records: list[dict[str, str]]) -> Run:
    return Pipeline.from_yaml(spec, base_dir=project).run(records=records)


def test_prune_deletes_old_runs_and_only_what_they_alone_used(project: Path, cli: Cli) -> None:
    old = _run(project, EMBED, [{"id": "a1", "text": "shared words"}, {"id": "a2", "text": "only in the old run"}])
    new = _run(project, EMBED, [{"id": "b1", "text": "shared words"}, {"id": "b2", "text": "only in the new run"}])
    waiting = _run(project, REVIEW, [{"id": "w1", "text": "please review me"}])
    assert (old.status, new.status, waiting.status) == ("succeeded", "succeeded", "waiting_for_approval")
    old_files = {a.name: a.path for a in old.artifacts()}
    vectors = _vector_keys(project)
    assert len(vectors) == 3

    dry = json.loads(cli("runs", "prune", "--keep", "2", "--dry-run", "--json").stdout)
    assert dry["runs"] == [old.id] and dry["dry_run"] is True
    assert Run.open(old.id).status == "succeeded" and _vector_keys(project) == vectors  # nothing deleted

    report = prune(Workspace(project / ".matcha"), older_than_days=None, keep=2)
    assert report["runs"] == [old.id] and report["kept"] == 2
    assert report["cache_entries"] == 1  # the vector of "only in the old run"
    ws = Workspace(project / ".matcha")
    assert [r.run_id for r in ws.store.list_runs()] == [waiting.id, new.id]
    db = _db(project)
    run_keys = [r[0] for r in db.execute("SELECT key FROM keys WHERE kind='run'")]
    for table in ("items", "parts"):
        assert {r[0] for r in db.execute(f"SELECT DISTINCT run FROM {table}")} <= set(run_keys)
    assert db.execute("SELECT COUNT(*) FROM artifacts WHERE run_id=?", (old.id,)).fetchone()[0] == 0
    assert old_files["same.txt"].exists()  # the new run lists the same file
    assert not old_files["own.txt"].exists()
    # the remaining run still reads its vectors, shared one included
    assert len(_vector_keys(project)) == 2
    refs = [r["embedding"]["key"] for r in Run.open(new.id).records()]
    assert set(refs) == _vector_keys(project)
    assert all(np.frombuffer(v, np.float32).shape == (16,) for (v,) in db.execute("SELECT value FROM cache"))
    saver = open_checkpointer(ws.checkpoints)
    try:
        assert saver.get_tuple({"configurable": {"thread_id": old.id}}) is None
        assert saver.get_tuple({"configurable": {"thread_id": new.id}}) is not None
    finally:
        saver.conn.close()

    # a run waiting for its reviewer is never deleted, however old
    report = prune(ws, older_than_days=0, keep=None)
    assert report["runs"] == [new.id] and report["waiting"] == 1
    assert [r.run_id for r in ws.store.list_runs()] == [waiting.id]
    assert _vector_keys(project) == set()
    Run.open(waiting.id).approve(all=True)
    assert Run.open(waiting.id).status == "succeeded"


def test_prune_needs_to_be_told_which_runs(cli: Cli) -> None:
    proc = cli("runs", "prune", check=False)
    assert proc.returncode != 0
    assert "--older-than DAYS and/or --keep N" in proc.stderr
    assert "Traceback" not in proc.stderr
