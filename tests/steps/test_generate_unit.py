"""`generate` with a fake provider: concurrency bound, schema retries, quarantine, cache across runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from pydantic import Field

from matcha import Pipeline
from matcha.models.base import PROVIDERS, Generator, ProviderConfig

pytestmark = pytest.mark.unit


class FakeConfig(ProviderConfig):
    provider: Literal["fake-gen"] = "fake-gen"
    answers: dict[str, list[str]] = Field(default_factory=dict)


class FakeGen(Generator):
    Config = FakeConfig
    capabilities: ClassVar[frozenset[str]] = frozenset({"generate"})
    calls: ClassVar[list[str]] = []
    in_flight = 0
    peak = 0

    async def agenerate(self, prompt: str, **kw: Any) -> str:
        cls = type(self)
        cls.calls.append(prompt)
        cls.in_flight += 1
        cls.peak = max(cls.peak, cls.in_flight)
        await asyncio.sleep(0.02)
        cls.in_flight -= 1
        scripted = self.config.answers.get(prompt)
        if scripted:
            return scripted.pop(0)
        return json.dumps({"reply": "ok " + prompt}) if kw.get("schema") else "text for " + prompt


@pytest.fixture(autouse=True)
def fake_provider() -> None:
    PROVIDERS.add("fake-gen", FakeGen)
    FakeGen.calls = []
    FakeGen.peak = 0


def pipeline(tmp_path: Path, with_: str, model: str = "{provider: fake-gen}") -> Pipeline:
    return Pipeline.from_yaml(f"""
name: g
models: {{w: {model}}}
steps:
  - {{id: draft, type: generate, on_error: quarantine, with: {{model: w, {with_}}}}}
""", base_dir=tmp_path, home=tmp_path / "home")


RECORDS = [{"id": f"r{i}", "text": f"t{i}"} for i in range(8)]


def test_concurrency_is_bounded(tmp_path: Path) -> None:
    run = pipeline(tmp_path, 'prompt: "{{ text }}", concurrency: 3').run(records=RECORDS)
    assert run.status == "succeeded"
    assert FakeGen.peak == 3 and len(FakeGen.calls) == 8
    assert {r["id"]: r["draft"] for r in run.records("draft")}["r0"] == "text for t0"


def test_default_concurrency_is_one(tmp_path: Path) -> None:
    pipeline(tmp_path, 'prompt: "{{ text }}"').run(records=RECORDS)
    assert FakeGen.peak == 1


def test_schema_answers_are_validated_retried_then_quarantined(tmp_path: Path) -> None:
    model = '{provider: fake-gen, answers: {t0: ["not json", "{\\"reply\\": \\"fixed\\"}"], t1: ["[]", "[]", "[]"]}}'
    schema = 'schema: {type: object, properties: {reply: {type: string}}, required: [reply]}, retries: 2'
    run = pipeline(tmp_path, 'prompt: "{{ text }}", ' + schema, model).run(records=RECORDS[:3])
    assert run.status == "succeeded"
    got = {r["id"]: r for r in run.records("draft")}
    assert got["r0"]["draft"] == {"reply": "fixed"} and got["r2"]["draft"] == {"reply": "ok t2"}
    assert "r1" not in got
    reason = json.loads(run.quarantine_path.read_text())["reason"]
    assert "after 3 attempt(s)" in reason and "does not match the schema" in reason
    counts = {s.step_id: s for s in run.steps()}["draft"]
    assert (counts.received, counts.out, counts.quarantined) == (3, 2, 1)


def test_undefined_template_field_quarantines_the_record(tmp_path: Path) -> None:
    run = pipeline(tmp_path, 'prompt: "{{ text }} for {{ customer }}"').run(
        records=[{"id": "a", "text": "x", "customer": "Ann"}, {"id": "b", "text": "y"}])
    got = {r["id"] for r in run.records("draft")}
    assert got == {"a"}
    assert "'customer' is undefined" in json.loads(run.quarantine_path.read_text())["reason"]


def test_rerun_reuses_cached_generations(tmp_path: Path) -> None:
    p = pipeline(tmp_path, 'prompt: "{{ text }}"')
    p.run(records=RECORDS)
    assert len(FakeGen.calls) == 8
    second = p.run(records=RECORDS)
    assert len(FakeGen.calls) == 8  # nothing asked again
    extra = {s.step_id: s for s in second.steps()}["draft"].extra
    assert extra["cache_hits"] == 8 and extra["model_calls"] == 0


def test_sandbox_blocks_python_internals(tmp_path: Path) -> None:
    run = pipeline(tmp_path, 'prompt: "{{ text.__class__.__mro__[1].__subclasses__() }}"').run(records=RECORDS[:1])
    assert run.status == "succeeded"
    assert FakeGen.calls == []  # the template never rendered, so nothing reached the model
    reason = json.loads(run.quarantine_path.read_text())["reason"]
    assert "__class__" in reason


def test_classify_llm_retries_answers_outside_the_label_set_then_quarantines(tmp_path: Path) -> None:
    prompt_of = "Classify the text.\\nAllowed labels: spam, ham.\\n"  # the step's prompt starts like this
    answers = ('{"label": "eggs"}', '{"label": "spam"}')
    p = Pipeline.from_yaml("""
name: c
models: {w: {provider: fake-gen}}
steps:
  - {id: c, type: classify, on_error: quarantine, with: {method: llm, model: w, labels: [spam, ham], retries: 1}}
""", base_dir=tmp_path, home=tmp_path / "home")
    model_answers: dict[str, list[str]] = {}

    async def scripted(self: FakeGen, prompt: str, **kw: Any) -> str:
        FakeGen.calls.append(prompt)
        assert prompt.startswith(prompt_of.replace("\\n", "\n"))
        assert kw["schema"]["properties"]["label"]["enum"] == ["spam", "ham"]
        queue = model_answers.setdefault(prompt, list(answers) if "good" in prompt else ["nope", "[]"])
        return queue.pop(0)

    original = FakeGen.agenerate
    FakeGen.agenerate = scripted  # type: ignore[method-assign]
    try:
        run = p.run(records=[{"id": "a", "text": "good one"}, {"id": "b", "text": "bad one"}])
    finally:
        FakeGen.agenerate = original  # type: ignore[method-assign]
    got = {r["id"]: r for r in run.records("c")}
    assert got["a"]["label"] == "spam" and got["a"]["label_score"] is None
    assert "b" not in got and len(FakeGen.calls) == 4
    reason = json.loads(run.quarantine_path.read_text())["reason"]
    assert "unusable model answer after 2 attempt(s)" in reason
