"""Fan-out and fan-in: parallel branches run once each; a merge receives the records every branch
passed on (a join), with their fields merged by record id."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import counter, write

from matcha import Pipeline

pytestmark = pytest.mark.integration


def test_fan_out_fan_in_merges_fields(project: Path) -> None:
    write(project / "scripts" / "more.py", """
        def length(batch):
            for r in batch:
                r["length"] = len(r["text"])
            return batch

        def merge_check(batch):
            for r in batch:
                assert "shout" in r and "length" in r, r
                r["draft"] = r["shout"] + f" ({r['length']})"
            return batch
    """)
    p = Pipeline.from_yaml("""
name: shapes
source: {connector: messages}
steps:
  - {id: upper, type: script, with: {function: "scripts/steps.py:upper"}}
  - {id: length, type: script, needs: [source], with: {function: "scripts/more.py:length"}}
  - {id: short, type: filter, needs: [length], with: {condition: "id != 'm3'"}}
  - {id: merged, type: script, needs: [upper, short], with: {function: "scripts/more.py:merge_check"}}
  - {id: review, type: approval}
  - {id: publish, type: publish, with: {connector: outbox}}
""", base_dir=project)
    assert "upper --> merged" in p.mermaid() and "short --> merged" in p.mermaid()
    run = p.run()
    assert run.status == "waiting_for_approval"
    assert counter(project, "upper") == ["m1", "m2", "m3", "m4", "m5", "m6"]
    steps = {s.step_id: s for s in run.steps()}
    assert steps["short"].out == 5 and steps["short"].dropped == 1
    assert steps["merged"].received == 5 and steps["merged"].out == 5  # m3 was dropped by one branch
    assert run.pending()[0].ai_text == "MESSAGE NUMBER 1 (16)"
    run.approve(all=True)
    assert run.status == "succeeded"
    published = (project / "out" / "published.jsonl").read_text()
    assert '"m3"' not in published and published.count("\n") == 5
    for s in run.steps():
        assert s.received == s.out + s.dropped + s.quarantined
    assert counter(project, "upper") == ["m1", "m2", "m3", "m4", "m5", "m6"]  # not re-run by the resume
