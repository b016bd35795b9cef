"""`voice_profile`, `voice_score`, `generate` with `voice:` and `repeat:` loops, with a fake writer.

The profile is real (the example brand's pages); the writer is a fake that answers in the voice (a
passage of the brand's own) only when told how its last attempt was judged, and never for prompts
that say "stubborn"; embeddings come from the hashing provider (no model)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from support import CORPORATE, IN_VOICE

from matcha import Pipeline, PipelineError
from matcha.models.base import PROVIDERS, Generator, ProviderConfig

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


class WriterConfig(ProviderConfig):
    provider: Literal["fake-writer"] = "fake-writer"


class FakeWriter(Generator):
    Config = WriterConfig
    capabilities: ClassVar[frozenset[str]] = frozenset({"generate"})
    prompts: ClassVar[list[str]] = []

    async def agenerate(self, prompt: str, **kw: Any) -> str:
        type(self).prompts.append(prompt)
        if kw.get("schema"):  # the profile's do/don't rules
            return json.dumps({"do": ["Ask the reader a question", " "], "dont": ["Use jargon"]})
        if "stubborn" not in prompt and "was judged" in prompt:
            return IN_VOICE
        return CORPORATE


@pytest.fixture(autouse=True)
def writer() -> None:
    PROVIDERS.add("fake-writer", FakeWriter)
    FakeWriter.prompts = []


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "examples" / "site", tmp_path / "site")
    (tmp_path / "connectors").mkdir()
    (tmp_path / "connectors" / "site.yaml").write_text("kind: pages\npath: site\n")
    (tmp_path / "connectors" / "vectors.yaml").write_text("kind: qdrant\n")
    (tmp_path / "connectors" / "out.yaml").write_text("kind: file\npath: out/copy.jsonl\n")
    return tmp_path


MODELS = "models: {writer: {provider: fake-writer}, default-embedder: {provider: hashing, dim: 32}}"
PRODUCTS = [{"id": "p1", "name": "Copper Hill Oolong"}, {"id": "p2", "name": "stubborn Lapsang"},
            {"id": "p3", "name": "Harbour Fog Earl Grey"}]


def pipeline(project: Path, steps: str, models: str = MODELS) -> Pipeline:
    return Pipeline.from_yaml(f"name: v\n{models}\nsteps:\n{steps}", base_dir=project, home=project / ".matcha")


LOOP = """
  - {id: voice, type: voice_profile, with: {pages: site, connector: vectors, collection: brand}}
  - {id: draft, type: generate, with: {model: writer, prompt: "Describe {{ name }}.", voice: voice, examples: 2}}
  - {id: score, type: voice_score, repeat: {from: draft, until: "voice_score >= 70", max_attempts: 3}}
  - {id: review, type: approval, with: {field: draft, context: [voice_score, voice_notes, flagged, attempts]}}
  - {id: publish, type: publish, with: {connector: out}}
"""


def test_the_loop_rewrites_below_the_threshold_keeps_attempts_and_flags_the_rest(project: Path) -> None:
    p = pipeline(project, LOOP)
    assert p.steps == ["voice", "draft", "score", "draft@2", "score@2", "draft@3", "score@3", "review", "publish"]
    run = p.run(records=PRODUCTS)
    assert run.status == "waiting_for_approval"
    items = {it.id: it for it in run.pending()}
    assert set(items) == {"p1", "p2", "p3"}  # none dropped: the record still below goes to review
    ok, stubborn = items["p1"].context, items["p2"].context
    assert ok["voice_score"] >= 70 and not ok.get("flagged")
    assert [a["attempt"] for a in ok["attempts"]] == [1] and ok["attempts"][0]["voice_score"] < 70
    assert ok["attempts"][0]["draft"] == CORPORATE and items["p1"].ai_text == IN_VOICE
    assert stubborn["voice_score"] < 70 and "still not met after 3 attempts" in stubborn["flagged"]
    assert [a["attempt"] for a in stubborn["attempts"]] == [1, 2]
    # attempt 1 for all, attempt 2 for the three below, attempt 3 for the stubborn one
    assert len(FakeWriter.prompts) == 3 + 3 + 1
    retry = next(pr for pr in FakeWriter.prompts if "stubborn" in pr and "was judged" in pr)
    assert "voice_score:" in retry and "voice_notes:" in retry
    # the passages nearest the topic came from the Qdrant collection, and were put in the prompt
    assert "Passages from the pages of voice:" in FakeWriter.prompts[0]
    first = next(iter(run.records("draft")))
    assert len(first["exemplars"]) == 2 and all(e["id"].count("#") == 1 for e in first["exemplars"])
    counts = {s.step_id: s for s in run.steps()}
    assert all(c.received == c.out + c.dropped + c.quarantined for c in counts.values() if c.status == "done")
    assert counts["draft@2"].extra.get("model_calls") == 3 and counts["draft@3"].extra.get("model_calls") == 1
    run.approve(all=True)
    assert run.refresh().status == "succeeded"
    published = [json.loads(line) for line in (project / "out" / "copy.jsonl").read_text().splitlines()]
    assert {r["id"] for r in published} == {"p1", "p2", "p3"}


def test_a_resumed_or_repeated_run_pays_no_model_call_twice(project: Path) -> None:
    p = pipeline(project, LOOP)
    p.run(records=PRODUCTS)
    calls = len(FakeWriter.prompts)
    p.run(records=PRODUCTS)  # same prompts, same attempts, same judgements: all from the cache
    assert len(FakeWriter.prompts) == calls


def test_profile_from_input_records_and_scores_with_the_profile_hash(project: Path) -> None:
    from matcha.voice import read_passages

    passages = list(read_passages([project / "site"]))
    steps = """
  - {id: voice, type: voice_profile}
  - {id: score, type: voice_score, on_error: quarantine, with: {text: text}}
"""
    run = pipeline(project, steps).run(records=[*passages, {"id": "blank", "page": "x", "text": ""}])
    assert run.status == "succeeded"
    scored = list(run.records("score"))
    assert len(scored) == len(passages)  # the blank one is quarantined, with its reason
    assert json.loads(run.quarantine_path.read_text())["reason"] == "field 'text' is empty: nothing to score"
    profile = run.artifact("voice.yaml")
    from matcha.voice import Voice

    assert {r["voice_profile"] for r in scored} == {Voice.load(profile).hash}


def test_generate_reads_a_profile_file(project: Path) -> None:
    from matcha.voice import Voice

    Voice.build(project / "site").save(project / "brand.yaml")
    steps = """
  - {id: draft, type: generate, with: {model: writer, prompt: "About {{ name }}: {{ examples[0].text }}",
                                       voice: brand.yaml, examples: 1, examples_field: null}}
"""
    run = pipeline(project, steps).run(records=PRODUCTS[:1])
    assert run.status == "succeeded"
    prompt = FakeWriter.prompts[0]
    assert prompt.startswith("About Copper Hill Oolong: ") and "Passages from the pages" not in prompt
    assert "exemplars" not in next(iter(run.records("draft")))


@pytest.mark.parametrize(("steps", "where", "message"), [
    ("""
  - {id: draft, type: generate, with: {model: writer, prompt: "x", voice: missing.yaml}}
""", "steps[0].with.voice", "cannot read the voice profile"),
    ("""
  - {id: draft, type: generate, with: {model: writer, prompt: "x", voice: nowhere}}
""", "steps[0].with", "'nowhere' is not a step of this pipeline"),
    ("""
  - {id: draft, type: generate, with: {model: writer, prompt: "x", voice: voice}}
  - {id: voice, type: voice_profile, with: {pages: site}}
""", "steps[0].with", "step 'voice' is not upstream of 'draft'"),
    ("""
  - {id: score, type: voice_score}
""", "steps[0].with.voice", "no step upstream of 'score' makes voice"),
    ("""
  - {id: voice, type: voice_profile, with: {pages: vectors}}
""", "steps[0].with.pages", "is a vectors (qdrant), not a source"),
    ("""
  - {id: voice, type: voice_profile, with: {pages: site, rules_model: default-embedder}}
""", "steps[0].with.rules_model", "cannot generate"),
])
def test_voice_config_errors_are_located(project: Path, steps: str, where: str, message: str) -> None:
    with pytest.raises(PipelineError) as err:
        pipeline(project, steps)
    found = [i for i in err.value.issues if i.path == where]
    assert found and message in found[0].message, err.value.issues


@pytest.mark.parametrize(("repeat", "where", "message"), [
    ('{from: nope, until: "voice_score >= 70"}', "steps[2].repeat.from", "'nope' is not upstream of 'score'"),
    ('{from: draft, until: "voice_score >>= 70"}', "steps[2].repeat.until", "invalid condition syntax"),
    ('{from: draft, until: "voice_score >= 70", max_attempts: 1}', "steps[2].repeat.max_attempts",
     "greater than or equal to 2"),
    ('{from: voice, until: "voice_score >= 70"}', "steps[2].repeat", "step 'voice' (voice_profile) cannot be repeated"),
    ('{until: "voice_score >= 70"}', "steps[2].repeat.from", "this required field is missing"),
])
def test_repeat_config_errors_are_located(project: Path, repeat: str, where: str, message: str) -> None:
    steps = f"""
  - {{id: voice, type: voice_profile, with: {{pages: site}}}}
  - {{id: draft, type: generate, with: {{model: writer, prompt: "x", voice: voice}}}}
  - {{id: score, type: voice_score, repeat: {repeat}}}
"""
    with pytest.raises(PipelineError) as err:
        pipeline(project, steps)
    found = [i for i in err.value.issues if i.path == where]
    assert found and message in found[0].message, err.value.issues


def test_a_step_inside_the_loop_cannot_feed_another_branch(project: Path) -> None:
    steps = """
  - {id: voice, type: voice_profile, with: {pages: site}}
  - {id: draft, type: generate, with: {model: writer, prompt: "x", voice: voice}}
  - {id: score, type: voice_score, repeat: {from: draft, until: "voice_score >= 70"}}
  - {id: other, type: voice_score, needs: [draft]}
"""
    with pytest.raises(PipelineError) as err:
        pipeline(project, steps)
    assert any("also feeds 'other'" in i.message for i in err.value.issues)


def test_loop_copies_ignore_when_and_a_batch_retried_record_by_record_keeps_one_attempt_each(project: Path) -> None:
    # a per-record system prompt makes generate isolate the batch record by record: the loop's
    # bookkeeping must not be done twice; `when` on the looped step must not drop records that passed
    steps = """
  - {id: voice, type: voice_profile, with: {pages: site}}
  - {id: draft, type: generate, when: "name != 'skip me'",
     with: {model: writer, prompt: "Describe {{ name }}.", system: "For {{ name }}", voice: voice, examples: 1}}
  - {id: score, type: voice_score, repeat: {from: draft, until: "voice_score >= 70", max_attempts: 3}}
"""
    run = pipeline(project, steps).run(records=[*PRODUCTS, {"id": "p4", "name": "skip me"}])
    assert run.status == "succeeded"
    out = {r["id"]: r for r in run.records("score@3")}
    assert set(out) == {"p1", "p2", "p3"}  # p4: dropped by `when` on attempt 1 only
    assert [a["attempt"] for a in out["p1"]["attempts"]] == [1]
    assert [a["attempt"] for a in out["p2"]["attempts"]] == [1, 2] and out["p2"]["flagged"]
    assert out["p1"]["voice_score"] >= 70 and "flagged" not in out["p1"]


def test_a_record_whose_own_field_is_named_attempts_is_quarantined_with_the_reason(project: Path) -> None:
    steps = """
  - {id: voice, type: voice_profile, with: {pages: site}}
  - {id: draft, type: generate, on_error: quarantine,
     with: {model: writer, prompt: "Describe {{ name }}.", voice: voice}}
  - {id: score, type: voice_score, repeat: {from: draft, until: "voice_score >= 70", max_attempts: 2}}
"""
    run = pipeline(project, steps).run(records=[{"id": "p1", "name": "Oolong", "attempts": 5}])
    assert run.status == "succeeded"
    reason = json.loads(run.quarantine_path.read_text())["reason"]
    assert "field 'attempts' holds int, but a repeat loop keeps its attempts there" in reason


def test_rules_written_by_a_model_go_in_the_profile_and_the_prompts(project: Path) -> None:
    steps = """
  - {id: voice, type: voice_profile, with: {pages: site, rules_model: writer, name: Kettle}}
  - {id: draft, type: generate, with: {model: writer, prompt: "Describe {{ name }}.", voice: voice}}
"""
    run = pipeline(project, steps).run(records=PRODUCTS[:1])
    assert run.status == "succeeded"
    from matcha.voice import Voice

    profile = Voice.load(run.artifact("voice.yaml")).profile
    assert profile.rules == {"do": ["Ask the reader a question"], "dont": ["Use jargon"]}  # blanks left out
    prompt = FakeWriter.prompts[-1]
    assert "Do: Ask the reader a question." in prompt and "Don't: Use jargon." in prompt
    assert prompt.index("Passages from the pages of Kettle") < prompt.index("Describe Copper Hill Oolong.")
