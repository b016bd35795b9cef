"""``index`` and ``search`` in pipelines: source → embed → index → search, resume after SIGKILL, reruns.

Most tests use a small deterministic embedder (words of a topic share a dimension) so neighbours
are known in advance and the tests stay fast; one test runs the real offline default embedder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pytest
from support import write

from matcha import Pipeline, Run
from matcha.connectors.qdrant.edge import EdgeStore
from matcha.models.base import PROVIDERS, Embedder, ProviderConfig

TOPICS = {"parcel": 0, "package": 0, "colis": 0, "delivery": 0, "livraison": 0,
          "invoice": 1, "facture": 1, "charged": 1, "billing": 1,
          "password": 2, "login": 2, "passe": 2}


class FakeEmbedConfig(ProviderConfig):
    provider: Literal["fake-embed"] = "fake-embed"
    dim: int = 16


class FakeEmbedder(Embedder):
    """Topic words weigh 3 on their topic's dimension; other words 0.3 on a hashed one."""

    Config = FakeEmbedConfig
    capabilities: ClassVar[frozenset[str]] = frozenset({"embed"})

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        dim = self.config.dim
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace(",", " ").split():
                topic = TOPICS.get(word)
                if topic is None:
                    out[row, 3 + zlib.crc32(word.encode()) % (dim - 3)] += 0.3
                else:
                    out[row, topic] += 3.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture(autouse=True)
def fake_embedder() -> None:
    PROVIDERS.add("fake-embed", FakeEmbedder)


RECORDS = [
    {"id": "a1", "lang": "en", "text": "my parcel never arrived, where is the package"},
    {"id": "a2", "lang": "fr", "text": "mon colis est perdu, livraison en retard"},
    {"id": "a3", "lang": "en", "text": "the delivery was late and the parcel damaged"},
    {"id": "b1", "lang": "en", "text": "I was charged twice on my invoice"},
    {"id": "b2", "lang": "fr", "text": "erreur sur ma facture"},
    {"id": "b3", "lang": "fr", "text": "facture fausse, charged deux fois"},
    {"id": "c1", "lang": "en", "text": "I forgot my password and cannot login"},
    {"id": "c2", "lang": "fr", "text": "mot de passe oublié"},
]
TOPIC_OF = {r["id"]: r["id"][0] for r in RECORDS}

PIPELINE = """
name: neighbours
models: {{emb: {{provider: fake-embed{dim}}}}}
settings: {{batch_size: {batch}}}
steps:
  - {{id: embed, type: embed, with: {{model: emb}}}}
  - {{id: index, type: index, with: {{connector: vec, collection: tickets, payload: [text, lang]{index}}}}}
  - {{id: search, type: search, on_error: quarantine, with: {{connector: vec, collection: tickets, k: {k}{extra}}}}}
"""


def pipeline(project: Path, *, k: int = 2, extra: str = "", batch: int = 256, dim: str = "",
             index: str = "") -> Pipeline:
    write(project / "connectors" / "vec.yaml", "kind: qdrant\n")
    text = PIPELINE.format(k=k, extra=extra, batch=batch, dim=dim, index=index)
    return Pipeline.from_yaml(text, base_dir=project, home=project / ".matcha")


def points(project: Path) -> int:
    store = EdgeStore(project / ".matcha" / "qdrant" / "vec")
    try:
        return store.count("tickets")
    finally:
        store.close()


@pytest.mark.unit
def test_index_then_search_finds_each_records_neighbours(project: Path) -> None:
    run = pipeline(project).run(records=RECORDS)
    assert run.status == "succeeded", run.error
    got = {r["id"]: r for r in run.records("search")}
    assert set(got) == set(TOPIC_OF)
    for rid, rec in got.items():
        hits = rec["neighbors"]
        assert len(hits) == 2 and rid not in [h["id"] for h in hits]  # k neighbours, never itself
        assert TOPIC_OF[hits[0]["id"]] == TOPIC_OF[rid], (rid, hits)
        assert set(hits[0]) == {"id", "score", "text", "lang"}
        assert hits[0]["score"] >= hits[1]["score"]
        assert rec["indexed"]["collection"] == "tickets" and len(rec["indexed"]["point"]) == 36
    source = {r["id"]: r for r in RECORDS}
    first = got["a1"]["neighbors"][0]
    assert first["text"] == source[first["id"]]["text"]  # the payload fields asked for
    assert points(project) == 8


@pytest.mark.unit
def test_filter_takes_values_from_the_records_own_fields(project: Path) -> None:
    records = [*RECORDS, {"id": "x1", "text": "parcel without a language"}]
    run = pipeline(project, k=5, extra=", filter: {lang: {field: lang}}", index=", filterable: [lang]"
                   ).run(records=records)
    assert run.status == "succeeded", run.error
    got = {r["id"]: r for r in run.records("search")}
    for rid, rec in got.items():
        assert rec["neighbors"] and all(h["lang"] == rec["lang"] for h in rec["neighbors"]), rid
    assert "x1" not in got  # indexed, but it has no `lang` to filter on: set aside with the reason
    counts = {s.step_id: s for s in run.steps()}["search"]
    assert (counts.out, counts.quarantined) == (8, 1)
    assert "filter 'lang' takes its value from field 'lang', which is missing" in run.quarantine_path.read_text()
    store = EdgeStore(project / ".matcha" / "qdrant" / "vec")
    try:
        assert store._shard("tickets").info().payload_schema["lang"].points == 8  # indexed for the filter
    finally:
        store.close()


@pytest.mark.unit
def test_literal_filter_and_keeping_the_record_itself(project: Path) -> None:
    run = pipeline(project, k=3, extra=", filter: {lang: fr}, exclude_self: false").run(records=RECORDS)
    assert run.status == "succeeded", run.error
    got = {r["id"]: r for r in run.records("search")}
    assert got["b2"]["neighbors"][0]["id"] == "b2"  # itself first, score ~1
    assert got["b2"]["neighbors"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert all(h["lang"] == "fr" for rec in got.values() for h in rec["neighbors"])


@pytest.mark.unit
def test_running_again_updates_points_instead_of_adding_them(project: Path) -> None:
    assert pipeline(project).run(records=RECORDS).status == "succeeded"
    changed = [{**r, "lang": "de"} if r["id"] == "a1" else r for r in RECORDS]
    run = pipeline(project).run(records=changed)
    assert run.status == "succeeded", run.error
    assert points(project) == 8
    got = {r["id"]: r for r in run.records("search")}
    seen = {h["id"]: h["lang"] for rec in got.values() for h in rec["neighbors"]}
    assert seen.get("a1") == "de"


@pytest.mark.unit
def test_a_collection_of_another_dimension_fails_the_run_with_the_fix(project: Path) -> None:
    assert pipeline(project).run(records=RECORDS[:2]).status == "succeeded"
    run = pipeline(project, dim=", dim: 24").run(records=RECORDS[:2])
    assert run.status == "failed"
    assert "holds 16-dimension vectors" in (run.error or "") and "24-dimension" in (run.error or "")
    assert "`collection:`" in (run.error or "")


@pytest.mark.unit
def test_search_before_anything_was_indexed_says_so(project: Path) -> None:
    write(project / "connectors" / "vec.yaml", "kind: qdrant\n")
    run = Pipeline.from_yaml("""
name: s
models: {emb: {provider: fake-embed}}
steps:
  - {id: embed, type: embed, with: {model: emb}}
  - {id: search, type: search, with: {connector: vec, collection: nothing}}
""", base_dir=project, home=project / ".matcha").run(records=RECORDS[:1])
    assert run.status == "failed"
    assert "collection 'nothing' does not exist" in (run.error or "") and "`index` step" in (run.error or "")


@pytest.mark.unit
def test_records_without_a_vector_are_quarantined(project: Path) -> None:
    write(project / "connectors" / "vec.yaml", "kind: qdrant\n")
    run = Pipeline.from_yaml("""
name: s
steps:
  - {id: index, type: index, on_error: quarantine, with: {connector: vec, collection: c, vector: nope}}
""", base_dir=project, home=project / ".matcha").run(records=RECORDS[:2])
    assert run.status == "succeeded"
    counts = {s.step_id: s for s in run.steps()}["index"]
    assert (counts.out, counts.quarantined) == (0, 2)
    assert "field 'nope' holds no vector" in run.quarantine_path.read_text()


KILLED_RUN = """
import sys
sys.path[:0] = [{tests!r}, {steps!r}]
from matcha import Pipeline
from matcha.models.base import PROVIDERS
from test_vector_index import PIPELINE, RECORDS, FakeEmbedder
PROVIDERS.add("fake-embed", FakeEmbedder)
text = PIPELINE.format(k=2, extra="", batch=2, dim="", index="")
Pipeline.from_yaml(text, base_dir={project!r}, home={home!r}).run(records=RECORDS, run_id="k1")
"""


@pytest.mark.integration
def test_sigkill_after_an_upsert_then_resume_keeps_one_point_per_record(project: Path) -> None:
    pipeline(project)  # writes the connection file
    here = Path(__file__).resolve().parent
    script = KILLED_RUN.format(tests=str(here.parent), steps=str(here), project=str(project),
                               home=str(project / ".matcha"))
    proc = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MATCHA_CRASH_AT": "index.after_upsert"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    # the first batch reached the store (its WAL) but was not recorded as done in the run
    assert points(project) == 2
    run = Run.open("k1", home=project / ".matcha")
    index = {s.step_id: s for s in run.steps()}["index"]
    assert index.out == 0
    resumed = run.resume()
    assert resumed.status == "succeeded", resumed.error
    assert points(project) == 8  # the first batch was written again: same points, none added
    assert {s.step_id: s for s in resumed.steps()}["index"].out == 8
    assert {r["id"] for r in resumed.records("search")} == set(TOPIC_OF)


@pytest.mark.slow
def test_real_embedder_pipeline_from_a_source(project: Path) -> None:
    rows = [
        ("en-parcel", "en", "My parcel never arrived and nobody answers my emails."),
        ("fr-parcel", "fr", "Mon colis n'est jamais arrivé et personne ne répond à mes e-mails."),
        ("en-bill", "en", "I was charged twice for the same order, please refund me."),
        ("fr-bill", "fr", "J'ai été débité deux fois pour la même commande, remboursez-moi."),
        ("en-pass", "en", "I forgot my password and cannot log into my account."),
        ("fr-pass", "fr", "J'ai oublié mon mot de passe et je ne peux plus me connecter."),
    ]
    lines = [json.dumps({"id": rid, "lang": lang, "text": text}, ensure_ascii=False) for rid, lang, text in rows]
    write(project / "data" / "tickets.jsonl", "\n".join(lines) + "\n")
    write(project / "connectors" / "tickets.yaml", "kind: jsonl\npath: data/tickets.jsonl\n")
    write(project / "connectors" / "vec.yaml", "kind: qdrant\npath: vectors\n")
    write(project / "pipelines" / "similar.yaml", """
        name: similar
        source: {connector: tickets}
        steps:
          - {id: embed, type: embed}
          - {id: index, type: index, with: {connector: vec, collection: tickets, payload: [lang]}}
          - {id: search, type: search, with: {connector: vec, collection: tickets, k: 1}}
    """)
    run = Pipeline.load(project / "pipelines" / "similar.yaml", home=project / ".matcha").run()
    assert run.status == "succeeded", run.error
    got: dict[str, Any] = {r["id"]: r["neighbors"] for r in run.records("search")}
    # each ticket's nearest other ticket is the same request in the other language
    for rid, hits in got.items():
        topic = rid.split("-")[1]
        assert hits[0]["id"] != rid and hits[0]["id"].endswith(topic), (rid, hits)
    assert (project / "vectors" / "tickets" / "edge_config.json").is_file()
