"""What the reviewer sees is exactly what is published: literal review output, publish sends only the
reviewed content, tampered decisions are refused, plugin approval steps count."""

from __future__ import annotations

import array
import json
import sqlite3
from pathlib import Path

import pytest
from support import Cli, Receiver, clear_proxies, write

from matcha import Pipeline
from matcha.runtime.store import sha256_text
from matcha.steps.approval import ApprovalStep
from matcha.steps.base import STEPS

pytestmark = pytest.mark.integration


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_review_shows_control_characters_and_shortcodes_literally(project: Path, cli: Cli) -> None:
    write(project / "scripts" / "sneaky.py", r'''
def drafts(batch):
    for r in batch:
        r["draft"] = "Refund :x: granted \x1b[8mhidden words\x1b[0m and \u202egnp.exe"
        r["note"] = "\x07bell"
    return batch
''')
    write(project / "pipelines" / "s.yaml", """
        name: s
        source: {connector: messages, limit: 1}
        steps:
          - {id: draft, type: script, with: {function: "scripts/sneaky.py:drafts"}}
          - {id: review, type: approval, with: {context: [note]}}
          - {id: publish, type: publish, with: {connector: outbox}}
    """)
    run_id = json.loads(cli("run", "pipelines/s.yaml", "--json").stdout)["run_id"]
    shown = cli("review", run_id, env={"FORCE_COLOR": "1", "TERM": "xterm-256color"}).stdout
    assert ":x:" in shown and "❌" not in shown
    assert "\x1b[8m" not in shown and "\\x1b[8mhidden words\\x1b[0m" in shown
    assert "\u202e" not in shown and "\\u202egnp.exe" in shown
    assert "note: \\x07bell" in shown


APPROVE_THEN_CHANGE = """
name: sneaky
source: {connector: messages}
steps:
  - {id: draft, type: script, with: {function: "scripts/steps.py:draft"}}
  - {id: label, type: map, with: {set: {customer: "{{ id }}-customer", note: "internal"}}}
  - {id: review, type: approval, with: {field: draft, context: [customer]}}
  - id: change
    type: map
    with:
      set: {customer: "HACKED", note: "smuggled",
            draft: "{% if id == 'm2' %}Changed!{% else %}{{ draft }}{% endif %}"}
  - {id: publish, type: publish, with: {connector: CONNECTOR}}
"""


def test_publish_sends_only_reviewed_content(project: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxies(monkeypatch)
    write(project / "connectors" / "tofile.yaml", "kind: file\npath: out/p.jsonl\nfields: [customer]\n")
    write(project / "pipelines" / "f.yaml", APPROVE_THEN_CHANGE.replace("CONNECTOR", "tofile"))
    run_id = json.loads(cli("run", "pipelines/f.yaml", "--json").stdout)["run_id"]
    done = json.loads(cli("approve", run_id, "--all", "--json").stdout)
    assert done["status"] == "succeeded"
    out = {r["id"]: r for r in lines(project / "out" / "p.jsonl")}
    assert set(out) == {"m1", "m3", "m4", "m5", "m6"}  # m2's text changed after approval: not sent
    assert {r["customer"] for r in out.values()} == {f"{i}-customer" for i in out}  # as reviewed, not HACKED
    quarantined = {q["id"]: q["reason"] for q in map(json.loads, (project / ".matcha" / "runs" / run_id /
                                                                  "quarantine.jsonl").read_text().splitlines())}
    assert "content changed after approval" in quarantined["m2"]

    with Receiver([]) as server:
        write(project / "connectors" / "hook.yaml", f"kind: webhook\nurl: {server.url}\nallowed_hosts: [127.0.0.1]\n")
        write(project / "pipelines" / "w.yaml", APPROVE_THEN_CHANGE.replace("CONNECTOR", "hook"))
        run_id = json.loads(cli("run", "pipelines/w.yaml", "--json").stdout)["run_id"]
        cli("approve", run_id, "--all")
    records = [json.loads(body)["record"] for _, body in server.requests]
    assert len(records) == 5
    for rec in records:  # only the reviewed fields, with the values the reviewer saw
        assert set(rec) == {"id", "customer", "draft"}
        assert rec["customer"] == f"{rec['id']}-customer" and "smuggled" not in json.dumps(rec)


@pytest.mark.sqlite_only  # forges rows with SQLite's JSON functions
def test_tampered_decisions_are_not_published(project: Path, cli: Cli) -> None:
    write(project / "pipelines" / "t.yaml", """
        name: t
        source: {connector: messages}
        steps:
          - {id: draft, type: script, with: {function: "scripts/steps.py:draft"}}
          - {id: review, type: approval}
          - {id: publish, type: publish, with: {connector: outbox}}
    """)
    run_id = json.loads(cli("run", "pipelines/t.yaml", "--json").stdout)["run_id"]
    cli("reject", run_id, "--item", "m1", "--reason", "off-brand")
    cli("approve", run_id, "--item", "m2")
    db = sqlite3.connect(project / ".matcha" / "runs.db")
    with db:
        # flip a rejection into an approval, with a plausible text and hash
        text = "Reply to m1: thanks for writing."
        db.execute("UPDATE approvals SET status='approved', final_text=?, sha256=?, reason=NULL "
                   "WHERE run_id=? AND record_id='m1'", (text, sha256_text(text), run_id))
        # change an approved text and its hash together
        forged = "Reply to m2: you win a prize, send your bank details."
        db.execute("UPDATE approvals SET final_text=?, sha256=? WHERE run_id=? AND record_id='m2'",
                   (forged, sha256_text(forged), run_id))
        # and the draft as the draft step stored it (its part: one JSON list, aligned with its seqs)
        seq = db.execute("SELECT i.seq FROM items i JOIN keys k ON k.kind='run' AND k.key=i.run "
                         "WHERE k.name=? AND i.record_id='m2'", (run_id,)).fetchone()[0]
        pid, lo, seqs = db.execute("SELECT p.id, p.lo, p.seqs FROM parts p JOIN keys s ON s.kind='step' "
                                   "AND s.key=p.step AND s.run=p.run JOIN keys r ON r.kind='run' AND r.key=p.run "
                                   "WHERE r.name=? "
                                   "AND s.name='draft' AND p.lo<=? AND p.hi>=?", (run_id, seq, seq)).fetchone()
        at = seq - lo if seqs is None else list(array.array("q", seqs)).index(seq)
        table = db.execute("SELECT json_type(data) = 'object' FROM parts WHERE id=?", (pid,)).fetchone()[0]
        path = f"$.rows[{at}][0]" if table else f"$[{at}].draft"  # a table: field names once, then values
        db.execute(f"UPDATE parts SET data=json_set(data, '{path}', ?) WHERE id=?", (forged, pid))
    db.close()
    done = json.loads(cli("approve", run_id, "--all", "--json").stdout)
    assert done["status"] == "succeeded"
    published = {r["id"] for r in lines(project / "out" / "published.jsonl")}
    assert published == {"m3", "m4", "m5", "m6"}
    reasons = {q["id"]: q["reason"] for q in map(json.loads, (project / ".matcha" / "runs" / run_id /
                                                              "quarantine.jsonl").read_text().splitlines())}
    assert "integrity check" in reasons["m1"] and "integrity check" in reasons["m2"]


class _SignOff(ApprovalStep):
    """A third-party approval step: a subclass registered under another type name."""


def test_plugin_approval_step_gates_and_publishes(project: Path) -> None:
    STEPS.add("sign_off", _SignOff)
    try:
        p = Pipeline.from_yaml("""
name: plug
source: {connector: messages}
steps:
  - {id: draft, type: script, with: {function: "scripts/steps.py:draft"}}
  - {id: boss, type: sign_off}
  - {id: publish, type: publish, with: {connector: outbox}}
""", base_dir=project)
        run = p.run()
        assert run.status == "waiting_for_approval"
        run.approve(all=True)
        assert run.status == "succeeded"
    finally:
        STEPS._items.pop("sign_off", None)
    assert len(lines(project / "out" / "published.jsonl")) == 6
