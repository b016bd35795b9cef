"""The segmentation steps in pipelines: cluster, describe_segments, report.

Fast tests use the ``hashing`` embedder (deterministic, no model file); the SIGKILL test runs the
real default embedder, Qdrant's embedded engine and Gemma, killing the process in each of index,
cluster and describe_segments, and compares the resumed run with an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from support import write

from matcha import Pipeline
from matcha.errors import PipelineError

REPO = Path(__file__).resolve().parents[2]

FAST = """
name: seg
models: {words: {provider: hashing, dim: 256}}
source: {connector: customers}
settings: {batch_size: 100}
steps:
  - {id: embed, type: embed, with: {model: words, field: feedback}}
  - {id: cluster, type: cluster, with: {k: 6, numeric: [orders, revenue], labels_field: topic}}
  - {id: segments, type: describe_segments, with: {text: feedback, numeric: [orders, revenue]}}
  - {id: report, type: report}
  - {id: draft, type: map, with: {set: {draft: "{{ size }} customers: {{ keywords[0][0] }}"}}}
  - {id: review, type: approval, with: {context: [segment, size]}}
  - {id: publish, type: publish, with: {connector: outbox}}
"""


@pytest.fixture
def customers(project: Path) -> Path:
    write(project / "connectors" / "customers.yaml", f"kind: csv\npath: {REPO / 'examples/data/customers.csv'}\n")
    return project


@pytest.mark.unit
def test_segments_flow_to_approval_and_publish(customers: Path) -> None:
    run = Pipeline.from_yaml(FAST, base_dir=customers).run()
    assert run.status == "waiting_for_approval", run.error
    steps = {s.step_id: s for s in run.steps()}
    assert steps["cluster"].out == 1200 and steps["cluster"].extra["k"] == 6
    assert 0 <= steps["cluster"].extra["nmi"] <= 1 and "ari" in steps["cluster"].extra
    seg = steps["segments"]
    assert (seg.received, seg.grouped, seg.made, seg.out) == (1200, 1200, 6, 6)
    segments = run.segments()
    assert [s["segment"] for s in segments] == list(range(6))
    assert sum(s["size"] for s in segments) == 1200 and abs(sum(s["share"] for s in segments) - 1) < 1e-9
    assert sizes_are_sorted([s["size"] for s in segments])  # segment 0 is the largest
    for s in segments:
        assert s["keywords"] and len(s["examples"]) == 3 and {n["field"] for n in s["numeric"]} == {"orders", "revenue"}
        assert len(list(run.members(s["id"]))) == s["size"]
    grouped = {why for _rid, _seq, _st, why, *_ in run._ws.store.step_rows(run.id, "segments", "grouped")}
    assert grouped == {f"grouped into {s['id']}" for s in segments}  # the reason, told from the link
    records = list(run.records("cluster"))
    assert all(0 <= r["segment_score"] <= 1 and isinstance(r["segment_outlier"], bool) for r in records)
    assert run.report is not None and "segment-0" in run.report.read_text()
    assert len(run.pending()) == 6
    run.approve(all=True)
    assert run.status == "succeeded"
    assert len((customers / "out" / "published.jsonl").read_text().splitlines()) == 6


def sizes_are_sorted(sizes: list[int]) -> bool:
    return sizes == sorted(sizes, reverse=True)


@pytest.mark.unit
def test_same_seed_same_segments_and_k_auto(customers: Path) -> None:
    auto = FAST.replace("k: 6, ", "")
    with capture_logs() as logs:
        a = Pipeline.from_yaml(auto, base_dir=customers).run()
    # the cluster step ran a column at a time: no batch fell back to records
    assert not [e for e in logs if e.get("event") == "batch failed, isolating records"]
    b = Pipeline.from_yaml(auto, base_dir=customers).run()
    seg = {r["id"]: r["segment"] for r in a.records("cluster")}
    assert seg == {r["id"]: r["segment"] for r in b.records("cluster")}
    extra = {s.step_id: s for s in a.steps()}["cluster"].extra
    assert 4 <= extra["k"] <= 12 and len(extra["k_scores"]) == 9


@pytest.mark.unit
@pytest.mark.parametrize(("steps", "message"), [
    ("  - {id: cluster, type: cluster}\n", "no step upstream of 'cluster' makes vectors"),
    ("  - {id: e, type: embed}\n  - {id: cluster, type: cluster, with: {k: 1}}\n", "k must be at least 2"),
    ("  - {id: e, type: embed}\n  - {id: cluster, type: cluster, with: {algorithm: hdbscan, k: 4}}\n",
     "hdbscan finds the number"),
    ("  - {id: e, type: embed}\n  - {id: cluster, type: cluster, with: {k_range: [5, 3]}}\n", "k_range"),
    ("  - {id: e, type: embed}\n  - {id: r, type: report}\n", "no step upstream of 'r' makes assignments"),
    ("  - {id: e, type: embed}\n  - {id: c, type: cluster}\n  - {id: r, type: report, with: {name: ../x}}\n",
     "with.name"),
])
def test_segmentation_config_errors_are_located(project: Path, steps: str, message: str) -> None:
    text = "name: bad\nsource: {connector: messages}\nsteps:\n" + steps
    with pytest.raises(PipelineError) as err:
        Pipeline.from_yaml(text, base_dir=project)
    assert message in str(err.value)
    assert ":5:" in str(err.value) or ":4:" in str(err.value) or ":6:" in str(err.value)


REAL = """
name: seg-real
source: {connector: customers, limit: 240}
settings: {batch_size: 40, column_batch_size: 80}
steps:
  - {id: embed, type: embed, with: {field: feedback}}
  - {id: index, type: index, with: {connector: vectors, collection: customers, payload: [lang]}}
  - {id: cluster, type: cluster, with: {k: 3, seed: 7}}
  - id: segments
    type: describe_segments
    with: {text: feedback, model: default-generator}
  - {id: review, type: approval, with: {field: name, context: [brief]}}  # a name is always there (model or keywords)
  - {id: publish, type: publish, with: {connector: outbox}}
"""


def _matcha(project: Path, *args: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MATCHA_LOG_LEVEL": "warning"}
    env.pop("MATCHA_CRASH_AT", None)
    if crash:
        env["MATCHA_CRASH_AT"] = crash
    return subprocess.run([sys.executable, "-m", "matcha", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=900)


def _state(project: Path, run_id: str) -> dict[str, Any]:
    from matcha.runtime.run import Run

    run = Run.open(run_id)
    steps = {s.step_id: s for s in run.steps()}
    return {"segments": {r["id"]: r["segment"] for r in run.records("cluster")},
            "names": {s["id"]: (s["name"], s["brief"]) for s in run.segments()},
            "hits": steps["segments"].extra.get("cache_hits", 0),
            "model_calls": steps["segments"].extra.get("model_calls", 0), "status": run.status}


@pytest.mark.slow
@pytest.mark.integration
def test_sigkill_in_index_cluster_and_describe_then_resume(customers: Path) -> None:
    write(customers / "connectors" / "vectors.yaml", "kind: qdrant\n")
    write(customers / "pipelines" / "seg.yaml", REAL)
    # killed in each step that keeps state, and once right after a model call was paid for
    for i, crash in enumerate(["batch.written:index#3", "fit.done:cluster", "batch.written:cluster#2",
                               "batch.written:segments#2", "generate.cached"]):
        args = ("run", "pipelines/seg.yaml", "--run-id", "killed") if i == 0 else ("resume", "killed")
        proc = _matcha(customers, *args, crash=crash)
        assert proc.returncode == -signal.SIGKILL, (crash, proc.stderr[-2000:])
    resumed = _matcha(customers, "resume", "killed", "--json")
    assert json.loads(resumed.stdout)["status"] == "waiting_for_approval", resumed.stderr
    killed = _state(customers, "killed")
    # the answer paid for right before the last kill came from the cache on resume (unusable answers,
    # retried, are never cached: Gemma 270M produces some)
    assert killed["hits"] >= 1
    done = _matcha(customers, "run", "pipelines/seg.yaml", "--run-id", "whole", "--json")
    assert json.loads(done.stdout)["status"] == "waiting_for_approval", done.stderr
    whole = _state(customers, "whole")
    assert killed["segments"] == whole["segments"]  # same seed: the same segments, for every customer
    assert whole["model_calls"] == 0 and killed["names"] == whole["names"]
    from matcha.connectors.qdrant.edge import EdgeStore  # the embedded collection holds each customer once

    store = EdgeStore(customers / ".matcha" / "qdrant" / "vectors")
    try:
        assert store.count("customers") == 240
    finally:
        store.close()


def test_the_map_from_the_cluster_sample_matches_one_the_report_draws_itself(customers: Path) -> None:
    """The report's map comes from the sample the cluster step drew while it fitted (no pass over
    every record); with `vectors` naming another field, the report draws and projects its own. With
    every customer on the map, both show each customer once, in the same segment."""
    import re
    from collections import Counter

    twice = FAST.replace("  - {id: cluster,", "  - {id: again, type: embed, with: {model: words, field: feedback, "
                         "output: again}}\n  - {id: cluster,").replace(
        "type: cluster, with: {k: 6,", "type: cluster, with: {vectors: embedding, k: 6,")
    maps = []
    for report in ("{id: report, type: report}", "{id: report, type: report, with: {vectors: again}}"):
        run = Pipeline.from_yaml(twice.replace("{id: report, type: report}", report), base_dir=customers).run()
        assert run.report is not None
        html = run.report.read_text(encoding="utf-8")
        maps.append(Counter(re.findall(r'<circle class="pt ([^"]+)"', html)))  # outliers too
    assert maps[0] == maps[1] and sum(maps[0].values()) == 1200


def test_a_column_batch_that_fails_goes_through_records_with_the_same_result(customers: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from matcha.steps.cluster import ClusterStep

    pipeline = FAST.replace("settings: {batch_size: 100}", "settings: {batch_size: 100, column_batch_size: 500}")
    whole = Pipeline.from_yaml(pipeline, base_dir=customers).run()
    expected = {r["id"]: r["segment"] for r in whole.records("cluster")}
    original, warm = ClusterStep.process_columns, ClusterStep.warm_up
    warmed: list[int] = []

    def failing(self: ClusterStep, batch: Any, ctx: Any) -> Any:
        if batch.seqs is not None:  # the column driver's call (records come without seqs)
            raise RuntimeError("a column batch that fails")
        return original(self, batch, ctx)

    monkeypatch.setattr(ClusterStep, "process_columns", failing)
    monkeypatch.setattr(ClusterStep, "warm_up", lambda self, ctx: (warmed.append(1), warm(self, ctx))[1])
    run = Pipeline.from_yaml(pipeline, base_dir=customers).run()
    assert {r["id"]: r["segment"] for r in run.records("cluster")} == expected
    assert len(warmed) == 2  # once before fitting, once before the first batch: not again per failing batch
