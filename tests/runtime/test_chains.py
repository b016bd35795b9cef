"""Chains of per-batch steps share each batch: which steps chain, and a chained step sees exactly
what it would see alone (the records as the store holds them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import write

from matcha import Pipeline, secrets
from matcha.runtime import batches, executor

pytestmark = pytest.mark.unit

STEPS_PY = '''
import datetime

def stamp(batch):
    for r in batch:
        r["at"] = datetime.date(2026, 1, 2)   # not JSON: stored as its string
        r["tags"] = ("a", "b")                # stored as a list
        r["n"] = int(r["id"][1:])
    return batch

def check(batch):
    for r in batch:
        assert isinstance(r["at"], str) and isinstance(r["tags"], list), r
        r["seen"] = f"{r['at']}/{len(r['tags'])}"
        r.pop("text")
    return batch
'''
CHAIN = """
name: chain
source: {connector: messages}
settings: {batch_size: 2}
steps:
  - {id: stamp, type: script, with: {function: "scripts/chain.py:stamp"}}
  - {id: odd, type: filter, with: {condition: "n != 2"}}
  - {id: check, type: script, with: {function: "scripts/chain.py:check"}}
  - {id: draft, type: map, with: {set: {draft: "{{ seen }} {{ id }}"}}}
  - {id: review, type: approval}
  - {id: publish, type: publish, with: {connector: outbox}}
"""


def _ids(text: str, project: Path) -> dict[str, list[str]]:
    plan = Pipeline.from_yaml(text, base_dir=project)._plan
    return {head: [ps.id for ps in chain] for head, chain in executor.chains(plan).items()}


def test_which_steps_chain(project: Path) -> None:
    write(project / "scripts" / "chain.py", STEPS_PY)
    assert _ids(CHAIN, project) == {"stamp": ["stamp", "odd", "check", "draft"]}
    fan_out = CHAIN.replace("{id: check, type: script,", "{id: check, type: script, needs: [stamp],")
    assert _ids(fan_out, project) == {"check": ["check", "draft"]}  # stamp feeds two steps: no chain from it
    dataset = CHAIN.replace('{id: odd, type: filter, with: {condition: "n != 2"}}',
                            "{id: odd, type: embed, with: {model: words}}").replace(
        "settings:", "models: {words: {provider: hashing, dim: 8}}\nsettings:")
    assert _ids(dataset, project) == {"stamp": ["stamp", "odd", "check", "draft"]}  # embed is per batch
    cluster = dataset.replace('{id: check, type: script, with: {function: "scripts/chain.py:check"}}',
                              "{id: check, type: cluster, with: {k: 2}}")
    assert _ids(cluster, project) == {"stamp": ["stamp", "odd"]}  # a dataset-scoped step ends the chain


def test_a_chained_step_sees_what_it_would_see_alone(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(project / "scripts" / "chain.py", STEPS_PY)
    chained = Pipeline.from_yaml(CHAIN, base_dir=project).run(run_id="chained")
    monkeypatch.setattr(executor, "chains", lambda plan: {})
    alone = Pipeline.from_yaml(CHAIN, base_dir=project).run(run_id="alone")
    assert chained.status == alone.status == "waiting_for_approval", (chained.error, alone.error)
    for step in ("stamp", "odd", "check", "draft"):
        assert list(chained.records(step)) == list(alone.records(step)), step
    counts = {s.step_id: (s.received, s.out, s.dropped, s.quarantined) for s in chained.steps()}
    assert counts == {s.step_id: (s.received, s.out, s.dropped, s.quarantined) for s in alone.steps()}
    assert counts["odd"] == (6, 5, 1, 0) and counts["draft"] == (5, 5, 0, 0)
    assert [i.ai_text for i in chained.pending()][:2] == ["2026-01-02/2 m1", "2026-01-02/2 m3"]


def _outcome(run: Any) -> tuple[dict[str, list[dict[str, Any]]], dict[str, tuple[int, ...]]]:
    records = {s: list(run.records(s)) for s in ("stamp", "odd", "check", "draft")}
    counts = {s.step_id: (s.received, s.out, s.dropped, s.quarantined) for s in run.steps()}
    return records, counts


def test_records_just_ingested_are_fed_to_the_chain_without_changing_its_outcome(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(project / "scripts" / "chain.py", STEPS_PY)
    monkeypatch.setattr(secrets, "_longest_first", ())  # no secret known (other tests may have registered some)
    fed: list[int] = []
    feed = batches.Chain.feed
    monkeypatch.setattr(batches.Chain, "feed", lambda self, rows: (fed.append(len(rows)), feed(self, rows))[1])
    with_feed = Pipeline.from_yaml(CHAIN, base_dir=project).run(run_id="fed")
    assert fed == [2, 2, 2]  # every batch of the source went to the chain as it was stored
    monkeypatch.setattr(executor.Runner, "feed_chains", False)
    read_back = Pipeline.from_yaml(CHAIN, base_dir=project).run(run_id="read")
    assert len(fed) == 3
    assert with_feed.status == read_back.status == "waiting_for_approval"
    assert _outcome(with_feed) == _outcome(read_back)


FAILING_PY = STEPS_PY + '''
def fail_on_m5(batch):
    for r in batch:
        if r["id"] == "m5":
            raise ValueError("m5 is bad")
    return batch
'''


def test_a_step_failing_while_fed_fails_as_itself_after_the_source(project: Path) -> None:
    write(project / "scripts" / "chain.py", FAILING_PY)
    text = CHAIN.replace('{id: odd, type: filter, with: {condition: "n != 2"}}',
                         '{id: odd, type: script, with: {function: "scripts/chain.py:fail_on_m5"}}')
    run = Pipeline.from_yaml(text, base_dir=project).run(run_id="failing")
    assert run.status == "failed" and "m5" in (run.error or "")
    steps = {s.step_id: s for s in run.steps()}
    assert steps["source"].status == "done" and steps["source"].out == 6
    assert steps["odd"].status == "failed"
    assert (steps["stamp"].out, steps["odd"].out) == (6, 4)  # the batches before m5's went through
