"""A throwaway Matcha project for pipeline-file tests.

``project`` is a folder laid out like a real project (``connectors/``, ``data/``, ``scripts/``,
``pipelines/``) with one connection of each role, so each test case only writes its pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

CONNECTORS = {
    "messages": "kind: csv\npath: data/messages.csv\n",
    "outbox": "kind: file\npath: out/replies.jsonl\nformat: jsonl\n",
    "hook": "kind: webhook\nurl: https://hooks.example.com/matcha\nsecret_env: MATCHA_TEST_HOOK_SECRET\n",
}
SCRIPT = '''"""Test script: one batch function."""


def f(batch):
    return batch
'''
CSV = "id,customer,text\nm1,Ann,My order is late\nm2,Bob,All good\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Project root with connectors messages (csv source), outbox (file publisher), hook (webhook)."""
    (tmp_path / "connectors").mkdir()
    for name, text in CONNECTORS.items():
        (tmp_path / "connectors" / f"{name}.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "messages.csv").write_text(CSV, encoding="utf-8")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "s.py").write_text(SCRIPT, encoding="utf-8")
    (tmp_path / "pipelines").mkdir()
    return tmp_path


@pytest.fixture
def write_pipeline(project: Path) -> Callable[..., Path]:
    """Write ``pipelines/p.yaml`` (and any ``extra`` files, relative to the project) and return its path."""

    def write(text: str, extra: dict[str, str] | None = None) -> Path:
        for rel, content in (extra or {}).items():
            target = project / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        path = project / "pipelines" / "p.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write
