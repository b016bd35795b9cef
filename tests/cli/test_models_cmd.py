"""`matcha models check`: a preflight table with a fix hint per failure."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from support import Cli, write

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_models_check_reports_each_model(project: Path, cli: Cli) -> None:
    write(project / "pipelines" / "m.yaml", f"""
        name: m
        models:
          writer: {{provider: ollama, model: mistral, host: "http://127.0.0.1:{closed_port()}", max_retries: 0}}
        steps:
          - {{id: mood, type: sentiment}}
          - {{id: draft, type: generate, with: {{model: writer, prompt: "Reply to {{{{ text }}}}"}}}}
          - {{id: draft2, type: generate, needs: [mood], with: {{prompt: "Reply to {{{{ text }}}}"}}}}
    """)
    proc = cli("models", "check", "pipelines/m.yaml", "--json", check=False)
    assert proc.returncode == 1
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert set(rows) == {"default-embedder", "default-generator", "writer"}
    assert rows["default-embedder"]["ok"] and rows["default-embedder"]["call_seconds"] > 0
    assert rows["default-generator"]["ok"]
    assert not rows["writer"]["ok"] and "ollama serve" in rows["writer"]["hint"]
    table = cli("models", "check", "pipelines/m.yaml", check=False).stdout
    assert "default-embedder" in table and "NO" in table
