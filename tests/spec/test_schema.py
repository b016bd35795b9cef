"""``matcha schema`` is a valid JSON Schema that accepts every shipped pipeline and rejects broken ones,
and the committed ``matcha.schema.json`` is exactly what the command prints, so editors never see a
stale schema. When this fails after changing a step, connector or provider config, regenerate it:
``.venv/bin/matcha schema -o matcha.schema.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from matcha.cli.main import app

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PIPELINES = sorted(p.name for p in (REPO / "pipelines").glob("*.yaml"))
SCHEMA_LINE = "# yaml-language-server: $schema=../matcha.schema.json"
REGENERATE = "regenerate it: .venv/bin/matcha schema -o matcha.schema.json"


@pytest.fixture(scope="module")
def generated() -> str:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def validator(generated: str) -> jsonschema.protocols.Validator:
    schema = json.loads(generated)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_schema_is_valid_draft_2020_12(generated: str) -> None:
    schema = json.loads(generated)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_committed_schema_is_up_to_date(generated: str) -> None:
    committed = (REPO / "matcha.schema.json").read_text(encoding="utf-8")
    assert committed == generated, f"matcha.schema.json is stale; {REGENERATE}"


def test_output_option_writes_the_same_text(generated: str, tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    result = CliRunner().invoke(app, ["schema", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == generated


def test_there_are_pipelines() -> None:
    assert "triage.yaml" in PIPELINES


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_names_the_schema_on_its_first_line(name: str) -> None:
    first = (REPO / "pipelines" / name).read_text(encoding="utf-8").splitlines()[0]
    assert first == SCHEMA_LINE


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_validates_against_schema(name: str, validator: jsonschema.protocols.Validator) -> None:
    data = yaml.safe_load((REPO / "pipelines" / name).read_text(encoding="utf-8"))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]
    assert not errors, errors


GATE: list[dict[str, Any]] = [
    {"id": "review", "type": "approval", "with": {"field": "draft"}},
    {"id": "out", "type": "publish", "with": {"connector": "outbox"}},
]


def pipeline(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": "t", "source": {"connector": "messages"},
                           "steps": [{"id": "a", "type": "script", "with": {"function": "scripts/s.py:f"}}, *GATE]}
    doc.update(fields)
    return doc


def test_a_small_complete_pipeline_is_accepted(validator: jsonschema.protocols.Validator) -> None:
    doc = pipeline(models={"m": {"provider": "ollama", "model": "llama3.2"}}, settings={"batch_size": 64})
    assert not list(validator.iter_errors(doc))


@pytest.mark.parametrize("doc", [
    pytest.param({"steps": GATE}, id="missing-name"),
    pytest.param({"name": "t"}, id="missing-steps"),
    pytest.param(pipeline(steps=[]), id="empty-steps"),
    pytest.param(pipeline(schedule="daily"), id="unknown-top-level-field"),
    pytest.param(pipeline(steps=[{"id": "a", "type": "aproval"}]), id="unknown-step-type"),
    pytest.param(pipeline(steps=[{"id": "1st", "type": "approval"}]), id="bad-step-id"),
    pytest.param(pipeline(steps=[{"id": "a", "type": "script", "with": {}}]), id="script-without-function"),
    pytest.param(pipeline(steps=[{"id": "a", "type": "script", "with": {"function": "s.py:f", "argz": {}}}]),
                 id="unknown-with-field"),
    pytest.param(pipeline(steps=[{"id": "a", "type": "approval", "on_error": "skip"}]), id="bad-on-error"),
    pytest.param(pipeline(settings={"batch_size": 0}), id="batch-size-zero"),
    pytest.param(pipeline(models={"m": {"provider": "olama"}}), id="unknown-provider"),
    pytest.param(pipeline(models={"m": {"model": "x"}}), id="model-without-provider"),
    pytest.param(pipeline(models={"m": {"provider": "ollama", "model": "x", "temprature": 1}}),
                 id="unknown-provider-field"),
])
def test_schema_rejects_broken_pipelines(doc: dict[str, Any], validator: jsonschema.protocols.Validator) -> None:
    assert list(validator.iter_errors(doc)), "the schema accepted a broken pipeline"
