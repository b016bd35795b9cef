"""A pipeline publishing through the webhook connector to a real local server: refused while the
host is not allow-listed (nothing sent, the run fails with the fix), then allow-listed and resumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import Cli, Receiver, clear_proxies, write

from matcha.connectors.webhook import verify_signature

pytestmark = pytest.mark.integration
SECRET = "pipeline-hook-secret"


def test_webhook_publish_end_to_end(project: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxies(monkeypatch)
    env = {"HOOK_SECRET": SECRET}
    with Receiver([503]) as server:
        write(project / "connectors" / "hook.yaml", f"url: {server.url}\nkind: webhook\nsecret_env: HOOK_SECRET\n"
                                                    "backoff: 0\n")
        write(project / "pipelines" / "w.yaml", """
            name: w
            source: {connector: messages}
            steps:
              - {id: draft, type: script, with: {function: "scripts/steps.py:draft"}}
              - {id: review, type: approval}
              - {id: publish, type: publish, with: {connector: hook}}
        """)
        run_id = json.loads(cli("run", "pipelines/w.yaml", "--json", env=env).stdout)["run_id"]
        refused = cli("approve", run_id, "--all", "--json", env=env, check=False)
        assert refused.returncode == 1
        failed = json.loads(refused.stdout)
        assert failed["status"] == "failed" and "loopback" in failed["error"] and "allowed_hosts" in failed["error"]
        assert server.requests == []  # refused before any connection

        (project / "connectors" / "hook.yaml").write_text(
            (project / "connectors" / "hook.yaml").read_text() + "allowed_hosts: [127.0.0.1]\n")
        done = json.loads(cli("resume", run_id, "--json", env=env).stdout)
        assert done["status"] == "succeeded"
    bodies = [json.loads(body) for _, body in server.requests]
    # the first request got a 503 and was retried with the same body and key
    assert len(bodies) == 7 and bodies[0] == bodies[1]
    assert sorted({b["record_id"] for b in bodies}) == ["m1", "m2", "m3", "m4", "m5", "m6"]
    for headers, body in server.requests:
        assert verify_signature(body, headers["X-Matcha-Signature"], SECRET)
    keys = {json.loads(body)["record_id"]: headers["Idempotency-Key"] for headers, body in server.requests}
    lines = cli("runs", "export", run_id, "--step", "publish").stdout.splitlines()
    exported = {r["id"]: r for r in map(json.loads, lines)}
    assert {rid: rec["published"]["key"] for rid, rec in exported.items()} == keys
