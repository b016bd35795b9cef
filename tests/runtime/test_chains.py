"""Chains of per-batch steps share each batch: which steps chain, and a chained step sees exactly
what it would see alone (the records as the store holds them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import write

from matcha import Pipeline
from matcha.runtime import executor

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
