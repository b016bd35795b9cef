"""A project-level models.yaml is shared by every pipeline; a pipeline's own `models:` wins."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import write

from matcha import Pipeline, PipelineError

pytestmark = pytest.mark.unit

PIPELINE = """
name: p
steps:
  - {id: draft, type: generate, with: {model: writer, prompt: "Reply to {{ text }}"}}
"""


def test_shared_models_file_is_used_and_overridden(tmp_path: Path) -> None:
    (tmp_path / "connectors").mkdir()
    write(tmp_path / "models.yaml", """
        models:
          writer: {provider: ollama, model: mistral, host: "http://10.0.0.5:11434"}
    """)
    p = Pipeline.from_yaml(PIPELINE, base_dir=tmp_path)
    assert p._plan.models["writer"].model == "mistral"
    own = Pipeline.from_yaml(PIPELINE + "models:\n  writer: {provider: ollama, model: qwen2.5}\n", base_dir=tmp_path)
    assert own._plan.models["writer"].model == "qwen2.5"
    assert own._plan.used_models() == ["writer"]


def test_mistake_in_shared_models_file_is_located_there(tmp_path: Path) -> None:
    write(tmp_path / "models.yaml", """
        models:
          writer: {provider: olama, model: mistral}
    """)
    with pytest.raises(PipelineError) as err:
        Pipeline.from_yaml(PIPELINE, base_dir=tmp_path)
    assert f"{tmp_path / 'models.yaml'}:2:12: models.writer.provider: unknown model provider 'olama'" in str(err.value)
    assert "Did you mean 'ollama'?" in str(err.value)
