"""The kernel's step shapes: dataset-scoped steps, aggregating steps, side inputs, artifacts, and a
store that keeps only what each step changed. Small plugin steps stand in for the real ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import store_location

from matcha import Pipeline
from matcha.errors import RunError
from matcha.runtime.store import RunStore
from matcha.steps.base import STEPS, BatchOutcome, DatasetView, Record, Step, StepConfig, StepContext

pytestmark = pytest.mark.unit
FITS: list[str] = []
FAIL_ON: set[str] = set()  # record ids CentreStep.process fails on (a crash in the middle of the step)


class MeanConfig(StepConfig):
    field: str = "n"


class CentreStep(Step):
    """Dataset scope: learns the mean of a field, then tells each record how far it is from it."""

    Config = MeanConfig
    scope = "dataset"

    def fit(self, data: DatasetView, ctx: StepContext) -> dict[str, Any]:
        FITS.append(ctx.run_id)
        values = [float(r[self.config.field]) for batch in data.batches(2) for r in batch]
        return {"mean": sum(values) / len(values), "seen": len(values)}

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        assert ctx.state is not None
        if FAIL_ON & {r["id"] for r in batch}:
            raise RuntimeError("interrupted")
        for r in batch:
            r["above"] = float(r[self.config.field]) > ctx.state["mean"]
        return BatchOutcome(out=batch)


class GroupStep(Step):
    """Aggregating: one record per value of `above`, carrying how many went into it."""

    Config = MeanConfig
    scope = "dataset"
    aggregates = True
    produces = "segments"

    def fit(self, data: DatasetView, ctx: StepContext) -> dict[str, Any]:
        sizes: dict[str, int] = {}
        for batch in data.batches():
            for r in batch:
                sizes[str(r["above"])] = sizes.get(str(r["above"]), 0) + 1
        assert ctx.state_of("centre") is not None  # side input: what an upstream step learned
        side = sum(len(b) for b in ctx.view("centre").batches())
        return {"sizes": sizes, "side": side}

    def make_records(self, ctx: StepContext) -> list[Record]:
        assert ctx.state is not None
        return [{"id": f"group-{k}", "size": n} for k, n in sorted(ctx.state["sizes"].items())]

    def group_of(self, batch: list[Record], ctx: StepContext) -> list[str | None]:
        return [f"group-{r['above']}" for r in batch]

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        for r in batch:
            r["draft"] = f"{r['size']} record(s) in {r['id']}"
        art = ctx.save_artifact("sizes.json", json.dumps({r["id"]: r["size"] for r in batch}).encode(),
                                "application/json")
        for r in batch:
            r["artifact"] = art.sha256
        return BatchOutcome(out=batch)


@pytest.fixture(autouse=True)
def plugin_steps() -> Any:
    STEPS._load()
    STEPS.add("test_centre", CentreStep)
    STEPS.add("test_group", GroupStep)
    yield
    STEPS._items.pop("test_centre", None)
    STEPS._items.pop("test_group", None)


PIPELINE = """
name: shapes
source: {connector: numbers}
settings: {batch_size: 3}
steps:
  - {id: centre, type: test_centre}
  - {id: groups, type: test_group}
  - {id: review, type: approval}
  - {id: publish, type: publish, with: {connector: outbox}}
"""


@pytest.fixture
def numbers(project: Path) -> Path:
    rows = "\n".join(f"r{i},{i},{'x' * 40}" for i in range(1, 11))
    (project / "data" / "numbers.csv").write_text("id,n,padding\n" + rows + "\n")
    (project / "connectors" / "numbers.yaml").write_text("kind: csv\npath: data/numbers.csv\n")
    return project


def test_dataset_and_aggregating_steps_account_for_every_record(numbers: Path) -> None:
    run = Pipeline.from_yaml(PIPELINE, base_dir=numbers).run()
    assert run.status == "waiting_for_approval", run.error
    steps = {s.step_id: s for s in run.steps()}
    assert steps["centre"].out == 10 and steps["centre"].extra == {}
    groups = steps["groups"]
    assert (groups.received, groups.grouped, groups.made, groups.out) == (10, 10, 2, 2)
    assert groups.pending == 0 and steps["review"].received == 2
    assert sorted(i.ai_text for i in run.pending()) == ["5 record(s) in group-False", "5 record(s) in group-True"]
    assert sorted(run.members("group-True")) == ["r10", "r6", "r7", "r8", "r9"]  # lineage, queryable
    assert [s["id"] for s in run.segments()] == ["group-False", "group-True"]
    run.approve(all=True)
    assert run.status == "succeeded"
    assert len((numbers / "out" / "published.jsonl").read_text().splitlines()) == 2


def test_a_resumed_dataset_step_reuses_what_it_learned(numbers: Path) -> None:
    FITS.clear()
    FAIL_ON.add("r7")
    try:
        run = Pipeline.from_yaml(PIPELINE, base_dir=numbers).run(run_id="once")
    finally:
        FAIL_ON.clear()
    assert run.status == "failed" and "r7" in str(run.error)
    assert {s.step_id: s.out for s in run.steps()}["centre"] == 6  # two batches of 3 were written
    run.resume()
    assert run.status == "waiting_for_approval"
    assert FITS == ["once"]  # the state fitted before the failure was read back, not fitted again
    assert [r["above"] for r in run.records("centre")] == [False] * 5 + [True] * 5


def test_the_store_keeps_only_what_each_step_changed(numbers: Path) -> None:
    run = Pipeline.from_yaml(PIPELINE, base_dir=numbers).run(run_id="small")
    store = RunStore(store_location(numbers / ".matcha" / "runs.db"))
    rows = list(store.step_rows("small", "centre"))
    store.close()
    assert len(rows) == 10 and all(data.keys() == {"above"} for _rid, _seq, _st, _why, data, _g, _l in rows)
    first = next(run.records("centre"))
    assert first == {"id": "r1", "n": "1", "padding": "x" * 40, "above": False}  # merged back on reading


def test_artifacts_are_listed_hashed_and_checked(numbers: Path) -> None:
    run = Pipeline.from_yaml(PIPELINE, base_dir=numbers).run()
    (art,) = run.artifacts()
    assert art.name == "sizes.json" and art.step == "groups"
    assert json.loads(run.artifact("sizes.json").read_text()) == {"group-False": 5, "group-True": 5}
    assert run.summary()["artifacts"][0]["sha256"] == art.sha256
    art.path.write_text("{}")  # changed on disk behind Matcha's back
    with pytest.raises(RunError, match="changed on disk"):
        run.artifact("sizes.json")
    with pytest.raises(RunError, match="no artifact 'nope'"):
        run.artifact("nope")
