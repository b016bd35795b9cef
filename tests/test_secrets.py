"""Secrets from ${env:...} never show up in logs, errors or run records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import Cli, write

from matcha import secrets

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-token-value-42"


def test_mask_replaces_registered_values() -> None:
    secrets.register_secret(SECRET)
    assert secrets.mask(f"url=http://u:{SECRET}@host") == "url=http://u:***@host"
    assert secrets.mask_obj({"a": [SECRET]}) == {"a": ["***"]}


def test_secret_is_masked_in_errors_logs_and_records(project: Path, cli: Cli) -> None:
    write(project / "scripts" / "leak.py", """
        def leak(batch, token):
            raise RuntimeError("could not call https://api.example/?key=" + token)
    """)
    write(project / "pipelines" / "leak.yaml", """
        name: leak
        source: {connector: messages}
        steps:
          - id: leak
            type: script
            with: {function: "scripts/leak.py:leak", args: {token: "${env:API_TOKEN}"}}
    """)
    proc = cli("--log-format", "json", "run", "pipelines/leak.yaml", "--json", env={"API_TOKEN": SECRET}, check=False)
    assert proc.returncode == 1
    summary = json.loads(proc.stdout)
    assert summary["status"] == "failed" and "key=***" in summary["error"]
    assert SECRET not in proc.stdout and SECRET not in proc.stderr
    for line in proc.stderr.splitlines():
        json.loads(line)  # --log-format json: one JSON object per line
    shown = cli("runs", "show", summary["run_id"], "--json", env={"API_TOKEN": SECRET})
    assert SECRET not in shown.stdout
    assert SECRET.encode() not in (project / ".matcha" / "runs.db").read_bytes()
