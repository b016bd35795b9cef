"""Model steps with real models: the offline embedder and Gemma 3 270M in-process (llama.cpp)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import write

from matcha import Pipeline, PipelineError

pytestmark = pytest.mark.slow

MESSAGES = [
    {"id": "en-neg", "text": "Terrible service, my parcel is lost and nobody answers. I want my money back."},
    {"id": "en-pos", "text": "Wonderful experience, the staff were lovely and the food was delicious!"},
    {"id": "fr-neg", "text": "Service client nul, colis perdu et aucune réponse. Je veux être remboursé."},
    {"id": "fr-pos", "text": "Super expérience, livraison rapide et produit parfait, merci !"},
    {"id": "empty", "text": ""},
]


def test_sentiment_zero_config_on_real_embedder(project: Path) -> None:
    run = Pipeline.from_yaml("""
        name: s
        steps:
          - {id: sentiment, type: sentiment, on_error: quarantine}
    """.replace("\n        ", "\n"), base_dir=project).run(records=MESSAGES)
    assert run.status == "succeeded"
    got = {r["id"]: r for r in run.records("sentiment")}
    for rid in ("en-neg", "fr-neg"):
        assert got[rid]["sentiment"] == "negative", got[rid]
    for rid in ("en-pos", "fr-pos"):
        assert got[rid]["sentiment"] == "positive", got[rid]
        assert 0.0 < got[rid]["sentiment_score"] <= 1.0
    steps = {s.step_id: s for s in run.steps()}
    assert steps["sentiment"].quarantined == 1  # the empty text, with its reason
    assert "missing or empty" in json.loads(run.quarantine_path.read_text().splitlines()[0])["reason"]


def test_embed_then_classify_reuses_vectors(project: Path) -> None:
    write(project / "examples.csv", "text,label\n" + "\n".join(
        [f"Where is my parcel number {i}?,delivery" for i in range(3)]
        + [f"I was charged {i} times for one order,billing" for i in range(2, 5)]
        + ["Can I pay by bank transfer?,billing", "The courier left my box in the rain,delivery"]) + "\n")
    run = Pipeline.from_yaml("""
name: c
steps:
  - {id: embed, type: embed}
  - {id: topic, type: classify, with: {examples_file: examples.csv, labels: [delivery, billing]}}
""", base_dir=project).run(records=[
        {"id": "a", "text": "My package never arrived, where is it?"},
        {"id": "b", "text": "You billed my credit card twice"},
    ])
    assert run.status == "succeeded"
    got = {r["id"]: r for r in run.records("topic")}
    assert got["a"]["label"] == "delivery" and got["b"]["label"] == "billing"
    assert got["a"]["embedding"]["dim"] == 512  # the offline default: USE multilingual v3
    topic = {s.step_id: s for s in run.steps()}["topic"]
    assert topic.extra["cache_hits"] >= 2  # the two records' vectors came from the embed step


def test_classify_examples_validated_at_load(project: Path) -> None:
    with pytest.raises(PipelineError) as err:
        Pipeline.from_yaml("""
name: c
steps:
  - id: topic
    type: classify
    with:
      labels: [delivery, billing]
      examples: [{text: "where is my parcel", label: delivery}, {text: "refund", label: biling}]
""", base_dir=project, file="c.yaml")
    text = str(err.value)
    assert "c.yaml:8:7: steps[0].with.examples:" in text
    assert "did you mean 'billing'" in text and "at least 3" in text


def test_generate_with_json_schema_on_gemma(project: Path) -> None:
    run = Pipeline.from_yaml("""
name: g
steps:
  - id: tag
    type: generate
    on_error: quarantine
    with:
      prompt: "Review: {{ text }}\\nIs this review positive or negative? Answer in JSON.\\n"
      schema: {type: object, properties: {label: {enum: [positive, negative]}}, required: [label]}
      max_tokens: 24
""", base_dir=project).run(records=MESSAGES[:2])
    assert run.status == "succeeded"
    got = {r["id"]: r for r in run.records("tag")}
    for rec in got.values():
        assert rec["draft"]["label"] in ("positive", "negative")


def test_classify_llm_constrained_to_labels_on_gemma(project: Path) -> None:
    run = Pipeline.from_yaml("""
name: l
steps:
  - id: topic
    type: classify
    on_error: quarantine
    with: {method: llm, labels: [delivery, billing, other], retries: 1}
""", base_dir=project).run(records=MESSAGES[:2])
    assert run.status == "succeeded"
    for rec in run.records("topic"):
        assert rec["label"] in ("delivery", "billing", "other")
        assert rec["label_score"] is None
