"""`generate` with a fake provider: concurrency bound, schema retries, quarantine, cache across runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from pydantic import Field

from matcha import Pipeline, PipelineError
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


@pytest.mark.parametrize(
    ("prompt", "reason"),
    [
        ("{% if text == 't1' %}{{ 'x' * 10**9 }}{% endif %}{{ text }}",
         "prompt template: `*` would make a value of about 1,000,000,000 characters"),
        ("{% if text == 't1' %}{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
         "{% endif %}{{ text }}", "prompt template: template took longer than 1 s to render"),
        ("{% macro f(n) %}{{ f(n + 1) if text == 't1' else '' }}{% endmacro %}{{ text }}{{ f(0) }}",
         "prompt template: template recursion went too deep"),
        ("{% if text == 't1' %}{{ tags.append('x') }}{% endif %}{{ text }}",
         "prompt template: access to attribute 'append' of 'list' object is unsafe"),
    ],
)
def test_template_bomb_quarantines_only_that_record(tmp_path: Path, prompt: str, reason: str) -> None:
    records = [{"id": f"r{i}", "text": f"t{i}", "tags": ["a"]} for i in range(3)]
    run = pipeline(tmp_path, f"prompt: {json.dumps(prompt)}").run(records=records)
    assert run.status == "succeeded"
    assert {r["id"] for r in run.records("draft")} == {"r0", "r2"}
    (row,) = [json.loads(line) for line in run.quarantine_path.read_text().splitlines()]
    assert row["id"] == "r1" and reason in row["reason"]
    assert row["record"]["tags"] == ["a"]  # unchanged, even by the template that tried
    assert sorted(FakeGen.calls) == ["t0", "t2"]  # the bad record never reached the model


def test_system_template_failure_says_so(tmp_path: Path) -> None:
    run = pipeline(tmp_path, 'prompt: "{{ text }}", system: "{{ lipsum(10**6) }}"').run(records=RECORDS[:1])
    reason = json.loads(run.quarantine_path.read_text())["reason"]
    assert reason.startswith("system template: lipsum(1000000, max=100) is too long")


@pytest.mark.parametrize(
    ("with_", "where"),
    [
        ('prompt: "{{ ' + "(" * 1000 + "text" + ")" * 1000 + ' }}"', "prompt"),
        ('prompt: "{{ text }}", system: "{{ ' + "(" * 1000 + "text" + ")" * 1000 + ' }}"', "system"),
    ],
)
def test_template_nested_too_deeply_is_a_located_config_error(tmp_path: Path, with_: str, where: str) -> None:
    with pytest.raises(PipelineError, match=rf"steps\[0\]\.with\.{where}: template is nested too deeply to compile"):
        pipeline(tmp_path, with_)


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
