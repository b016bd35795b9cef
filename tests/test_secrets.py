"""Secrets from ${env:...} never show up in logs, errors or run records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import Cli, clear_proxies, write

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


def test_validate_masks_resolved_values_in_type_errors(project: Path, cli: Cli) -> None:
    write(project / "pipelines" / "typed.yaml", """
        name: typed
        settings: {batch_size: "${env:API_TOKEN}"}
        steps:
          - {id: a, type: filter, with: {condition: "x == 1"}}
    """)
    proc = cli("validate", "pipelines/typed.yaml", env={"API_TOKEN": SECRET}, check=False)
    assert proc.returncode == 1 and "settings.batch_size" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr and "***" in proc.stderr


def test_a_secret_used_in_a_step_is_never_stored_or_sent(project: Path, cli: Cli,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from support import Receiver

    clear_proxies(monkeypatch)
    env = {"API_TOKEN": SECRET}
    with Receiver([]) as server:
        write(project / "connectors" / "hook.yaml", f"kind: webhook\nurl: {server.url}\nallowed_hosts: [127.0.0.1]\n")
        write(project / "scripts" / "sign.py", """
            def sign(batch, token):
                for r in batch:
                    r["draft"] = f"Token {token} for {r['id']}"
                    r["auth"] = token
                return batch
        """)
        write(project / "pipelines" / "m.yaml", """
            name: m
            source: {connector: messages}
            steps:
              - {id: sign, type: script, with: {function: "scripts/sign.py:sign", args: {token: "${env:API_TOKEN}"}}}
              - {id: review, type: approval, with: {context: [auth]}}
              - {id: publish, type: publish, with: {connector: hook}}
        """)
        run_id = json.loads(cli("run", "pipelines/m.yaml", "--json", env=env).stdout)["run_id"]
        review = cli("review", run_id, "--json", env=env).stdout
        cli("approve", run_id, "--all", env=env)
        exported = cli("runs", "export", run_id, env=env).stdout
    assert len(server.requests) == 6
    for _, body in server.requests:
        assert SECRET.encode() not in body
    assert SECRET not in review and SECRET not in exported and "***" in exported
    for f in (project / ".matcha").rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f

    # inspecting the run works without the variable in the environment
    bare = {k: v for k, v in os.environ.items() if k != "API_TOKEN"}
    for args in (("runs", "show", run_id, "--json"), ("runs", "export", run_id), ("review", run_id, "--all")):
        proc = subprocess.run([sys.executable, "-m", "matcha", *args], cwd=project, env=bare, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
