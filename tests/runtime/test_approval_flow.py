"""A run pauses for approval in one process; decisions come from other processes; publish writes
exactly the approved (and edited) texts, never the rejected one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from support import Cli, write

pytestmark = pytest.mark.integration

PIPELINE = """
name: replies
source: {connector: messages}
steps:
  - {id: draft, type: script, with: {function: "scripts/steps.py:draft"}}
  - {id: review, type: approval, with: {field: draft, context: [text]}}
  - {id: publish, type: publish, with: {connector: outbox}}
"""


def published(project: Path) -> dict[str, dict[str, str]]:
    path = project / "out" / "published.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    ids = [rec["id"] for rec in lines]
    assert len(ids) == len(set(ids)), f"something was published twice: {ids}"
    return {rec["id"]: rec for rec in lines}


def test_pause_then_decide_from_other_processes(project: Path, cli: Cli) -> None:
    write(project / "pipelines" / "replies.yaml", PIPELINE)
    first = cli("run", "pipelines/replies.yaml", "--json")
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["status"] == "waiting_for_approval"
    run_id = summary["run_id"]
    assert not (project / "out" / "published.jsonl").exists()

    pending = json.loads(cli("review", run_id, "--json").stdout)
    assert [p["id"] for p in pending] == ["m1", "m2", "m3", "m4", "m5", "m6"]
    assert pending[0]["context"] == {"text": "message number 1"}

    edited = "Hello! A person from our team rewrote this reply."
    write(project / "edit.txt", edited + "\n")
    cli("approve", run_id, "--item", "m2", "--edit", "edit.txt", "--reviewer", "ana")
    cli("reject", run_id, "--item", "m3", "--reason", "wrong tone", "--reviewer", "ana")
    still = json.loads(cli("runs", "show", run_id, "--json").stdout)
    assert still["status"] == "waiting_for_approval" and still["pending_review"] == 4
    done = json.loads(cli("approve", run_id, "--all", "--reviewer", "bob", "--json").stdout)
    assert done["status"] == "succeeded"

    out = published(project)
    assert set(out) == {"m1", "m2", "m4", "m5", "m6"}
    assert out["m2"]["text"] == edited
    assert out["m1"]["text"] == "Reply to m1: thanks for writing."
    for rec in out.values():
        assert rec["sha256"] == hashlib.sha256(rec["text"].encode()).hexdigest()

    decisions = {d["id"]: d for d in json.loads(cli("review", run_id, "--all", "--json").stdout)}
    assert decisions["m2"]["reviewer"] == "ana" and decisions["m2"]["final_text"] == edited
    assert decisions["m2"]["ai_text"] == "Reply to m2: thanks for writing."
    assert decisions["m3"]["status"] == "rejected" and decisions["m3"]["reason"] == "wrong tone"
    assert decisions["m1"]["reviewer"] == "bob" and decisions["m1"]["decided_at"]

    steps = {s["id"]: s for s in done["steps"]}
    assert steps["review"]["out"] == 5 and steps["review"]["dropped"] == 1
    for s in done["steps"]:
        assert s["received"] == s["out"] + s["dropped"] + s["quarantined"]


def test_decisions_are_validated(project: Path, cli: Cli) -> None:
    write(project / "pipelines" / "replies.yaml", PIPELINE)
    run_id = json.loads(cli("run", "pipelines/replies.yaml", "--json").stdout)["run_id"]
    bad = cli("approve", run_id, "--item", "nope", check=False)
    assert bad.returncode == 1 and "no review item 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    cli("reject", run_id, "--item", "m1", "--reason", "no")
    again = cli("approve", run_id, "--item", "m1", check=False)
    assert again.returncode == 1 and "already rejected" in again.stderr
    missing = cli("approve", run_id, check=False)
    assert missing.returncode == 1 and "--all" in missing.stderr
    unknown = cli("runs", "show", "does-not-exist", check=False)
    assert unknown.returncode == 1 and "no run 'does-not-exist'" in unknown.stderr


def test_publish_refuses_text_changed_after_approval(project: Path) -> None:
    """A step between approval and publish that alters the text cannot get it published."""
    from matcha import Pipeline

    write(project / "scripts" / "tamper.py", """
        def tamper(batch):
            for r in batch:
                if r["id"] == "m1":
                    r["draft"] = "Something the reviewer never saw"
            return batch
    """)
    p = Pipeline.from_yaml(PIPELINE.replace(
        "  - {id: publish, type: publish, with: {connector: outbox}}",
        "  - {id: tamper, type: script, with: {function: 'scripts/tamper.py:tamper'}}\n"
        "  - {id: publish, type: publish, on_error: quarantine, with: {connector: outbox}}"), base_dir=project)
    run = p.run()
    assert run.status == "waiting_for_approval"
    run.approve(all=True)
    assert run.status == "succeeded"
    out = published(project)
    assert "m1" not in out and set(out) == {"m2", "m3", "m4", "m5", "m6"}
    summary = run.summary()
    assert summary["quarantined"] == 1
    line = json.loads(Path(summary["quarantine_file"]).read_text().splitlines()[0])
    assert line["id"] == "m1" and "changed after approval" in line["reason"]


def test_run_without_any_source_is_refused_before_starting(project: Path, cli: Cli) -> None:
    write(project / "pipelines" / "nosource.yaml", """
        name: nosource
        steps:
          - {id: draft, type: script, with: {function: "scripts/steps.py:draft"}}
    """)
    proc = cli("run", "pipelines/nosource.yaml", check=False)
    assert proc.returncode == 1 and "has no `source:`" in proc.stderr and "--input" in proc.stderr
    assert json.loads(cli("runs", "--json").stdout) == []
    missing = cli("run", "pipelines/nosource.yaml", "--input", "nope.csv", check=False)
    assert missing.returncode == 1 and "input file not found" in missing.stderr
    ok = json.loads(cli("run", "pipelines/nosource.yaml", "--input", "data/messages.csv", "--json").stdout)
    assert ok["status"] == "succeeded" and ok["steps"][1]["out"] == 6
