"""A NUL character where a person must read (an id, a text to review) is quarantined with its
reason on both run stores (PostgreSQL cannot store one in text at all), and the run goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from matcha import Pipeline

pytestmark = pytest.mark.integration

PIPELINE = """
name: nul
steps:
  - {id: review, type: approval, with: {field: text}}
  - {id: publish, type: publish, with: {connector: outbox}}
"""


def test_nul_in_an_id_or_a_text_to_review_is_quarantined(project: Path) -> None:
    run = Pipeline.from_yaml(PIPELINE, base_dir=project).run(
        records=[{"id": "a", "text": "x\x00y"}, {"id": "b\x00c", "text": "fine"}, {"id": "d", "text": "fine too"}])
    assert run.status == "waiting_for_approval", run.error
    assert [i.id for i in run.pending()] == ["d"]
    reasons = {q["step"]: q["reason"] for q in map(json.loads, run.quarantine_path.read_text().splitlines())}
    assert reasons["source"] == "line 2: the id holds a NUL character (\\x00); remove it from field 'id'"
    assert "holds a NUL character" in reasons["review"]
    run.approve(all=True)
    assert run.refresh().status == "succeeded"
    steps = {c.step_id: c for c in run.steps()}
    assert (steps["source"].out, steps["source"].quarantined) == (2, 1)
    assert (steps["review"].out, steps["review"].quarantined) == (1, 1)
