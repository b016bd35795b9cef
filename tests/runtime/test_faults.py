"""Fault injection: SIGKILL in the middle of a step, and crashes right after publishing."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import Cli, counter, write
from test_approval_flow import published

pytestmark = pytest.mark.integration

KILL_PIPELINE = """
name: killme
source: {connector: messages}
settings: {batch_size: 2}
steps:
  - {id: upper, type: script, with: {function: "scripts/steps.py:upper"}}
  - {id: slow, type: script, with: {function: "scripts/steps.py:slow"}}
  - {id: draft, type: script, with: {function: "scripts/steps.py:draft"}}
  - {id: review, type: approval}
  - {id: publish, type: publish, with: {connector: outbox}}
"""


def test_sigkill_mid_step_then_resume(project: Path, cli: Cli) -> None:
    write(project / "pipelines" / "p.yaml", KILL_PIPELINE)
    proc = subprocess.Popen([sys.executable, "-m", "matcha", "run", "pipelines/p.yaml", "--run-id", "k1"],
                            cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    # the first batch of `slow` finished and the second is sleeping: kill the process right there
    while len(counter(project, "slow")) < 4:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline, "the step never started"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    shown = json.loads(cli("runs", "show", "k1", "--json").stdout)
    assert shown["status"] == "running" and not shown["active"]  # killed: nobody could mark it otherwise
    assert "matcha resume k1" in cli("runs", "show", "k1").stdout
    assert "interrupted" in cli("runs").stdout
    slow = {s["id"]: s for s in shown["steps"]}["slow"]
    assert slow["out"] == 2  # the first batch was written before the kill

    (project / "counters" / "no_sleep").touch()
    resumed = json.loads(cli("resume", "k1", "--json").stdout)
    assert resumed["status"] == "waiting_for_approval"
    assert counter(project, "upper") == ["m1", "m2", "m3", "m4", "m5", "m6"]  # what it wrote: never redone
    # m1, m2 were done before the kill; m3, m4 were in flight and are redone; nothing else twice.
    # upper, slow and draft run as a chain: on resume the chain takes m5, m6 through both steps first,
    # then slow's own pass redoes m3, m4, so the order after the kill may vary
    slow = counter(project, "slow")
    assert slow[:4] == ["m1", "m2", "m3", "m4"] and sorted(slow[4:]) == ["m3", "m4", "m5", "m6"]
    assert sorted(counter(project, "draft")) == ["m1", "m2", "m3", "m4", "m5", "m6"]  # each once
    done = json.loads(cli("approve", "k1", "--all", "--json").stdout)
    assert done["status"] == "succeeded"
    assert set(published(project)) == {"m1", "m2", "m3", "m4", "m5", "m6"}
    assert counter(project, "upper") == ["m1", "m2", "m3", "m4", "m5", "m6"]


@pytest.mark.parametrize("crash_at", ["publish.after_send", "publish.after_ledger"])
def test_crash_right_after_publish_never_publishes_twice(project: Path, cli: Cli, crash_at: str) -> None:
    write(project / "pipelines" / "p.yaml", KILL_PIPELINE.replace("settings: {batch_size: 2}\n", ""))
    (project / "counters" / "no_sleep").touch()
    cli("run", "pipelines/p.yaml", "--run-id", "c1")
    crashed = cli("approve", "c1", "--all", env={"MATCHA_CRASH_AT": crash_at}, check=False)
    assert crashed.returncode == -signal.SIGKILL
    assert set(published(project)) == {"m1", "m2", "m3", "m4", "m5", "m6"}  # sent before the crash
    resumed = json.loads(cli("resume", "c1", "--json").stdout)
    assert resumed["status"] == "succeeded"
    assert set(published(project)) == {"m1", "m2", "m3", "m4", "m5", "m6"}  # and not a second time
    assert len((project / "out" / "published.jsonl").read_text().splitlines()) == 6
    again = json.loads(cli("resume", "c1", "--json").stdout)
    assert again["status"] == "succeeded"
    assert len((project / "out" / "published.jsonl").read_text().splitlines()) == 6


def test_quarantine_counts_add_up(project: Path, cli: Cli) -> None:
    (project / "data" / "messages.csv").write_text(
        "id,text\nm1,fine\nm2,bad one\nm3,also fine\n,no id here\nm1,duplicate id\nm6,bad again\n")
    write(project / "pipelines" / "q.yaml", """
        name: q
        source: {connector: messages}
        steps:
          - {id: picky, type: script, on_error: quarantine, with: {function: "scripts/steps.py:picky"}}
    """)
    shown = json.loads(cli("run", "pipelines/q.yaml", "--json").stdout)
    assert shown["status"] == "succeeded"
    steps = {s["id"]: s for s in shown["steps"]}
    assert steps["source"]["received"] == 6 and steps["source"]["out"] == 4 and steps["source"]["quarantined"] == 2
    assert steps["picky"] == {**steps["picky"], "received": 4, "out": 2, "quarantined": 2}
    for s in shown["steps"]:
        assert s["received"] == s["out"] + s["dropped"] + s["quarantined"]
    lines = [json.loads(x) for x in Path(shown["quarantine_file"]).read_text().splitlines()]
    reasons = {(x["step"], x["id"]): x["reason"] for x in lines}
    assert "cannot handle m2" in reasons[("picky", "m2")]
    assert any("duplicate id 'm1'" in r for r in reasons.values())
    assert any("no value in id field" in r for r in reasons.values())
    text = cli("runs", "show", shown["run_id"]).stdout
    assert "quarantine.jsonl" in text


def test_failing_step_fails_the_run_and_resume_retries(project: Path, cli: Cli) -> None:
    write(project / "pipelines" / "f.yaml", """
        name: f
        source: {connector: messages}
        steps:
          - {id: picky, type: script, with: {function: "scripts/steps.py:picky"}}
    """)
    (project / "data" / "messages.csv").write_text("id,text\nm1,fine\nm2,bad one\n")
    failed = cli("run", "pipelines/f.yaml", "--run-id", "f1", "--json", check=False)
    assert failed.returncode == 1
    shown = json.loads(failed.stdout)
    assert shown["status"] == "failed" and "cannot handle m2" in shown["error"] and "on_error" in shown["error"]
    (project / "data" / "messages.csv").write_text("id,text\nm1,fine\nm2,good now\n")
    # the source was already read: the run keeps its records, so fix the script instead
    write(project / "scripts" / "steps.py", (project / "scripts" / "steps.py").read_text().replace(
        '"bad" in r["text"]', 'False'))
    assert json.loads(cli("resume", "f1", "--json").stdout)["status"] == "succeeded"


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "markdown"])
def test_sigkill_mid_file_write_leaves_no_torn_record_after_resume(project: Path, cli: Cli, fmt: str) -> None:
    # texts of different lengths (published as a field), so that half the batch ends mid-record
    rows = "".join(f"m{i},{'word ' * i * i}\n" for i in range(1, 7))
    write(project / "data" / "messages.csv", "id,text\n" + rows)
    write(project / "connectors" / "outbox.yaml",
          f"kind: file\npath: out/published.txt\nformat: {fmt}\nfields: [shout]\n")
    pipeline = KILL_PIPELINE.replace("settings: {batch_size: 2}\n", "")
    pipeline = pipeline.replace("type: approval}", "type: approval, with: {context: [shout]}}")
    write(project / "pipelines" / "p.yaml", pipeline)
    (project / "counters" / "no_sleep").touch()
    cli("run", "pipelines/p.yaml", "--run-id", "t1")
    crashed = cli("approve", "t1", "--all", env={"MATCHA_CRASH_AT": "file_publisher.mid_write"}, check=False)
    assert crashed.returncode == -signal.SIGKILL
    out = project / "out" / "published.txt"
    assert out.stat().st_size > 0 and not out.read_text().endswith("\n")  # half a batch, cut mid-record

    resumed = json.loads(cli("resume", "t1", "--json").stdout)
    assert resumed["status"] == "succeeded"
    text = out.read_text()
    if fmt == "jsonl":
        ids = [json.loads(line)["id"] for line in text.splitlines()]
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
        assert rows[0] == ["id", "text", "sha256", "run_id", "key", "shout"] and all(len(r) == 6 for r in rows)
        ids = [r[0] for r in rows[1:]]
    else:
        sections = text.split("## ")[1:]
        ids = [section.split("\n", 1)[0] for section in sections]
        # whole sections only: a torn one could keep its key line and still look published
        assert all(s.endswith(f"Reply to {i}: thanks for writing.\n\n") for s, i in zip(sections, ids, strict=True))
    assert ids == ["m1", "m2", "m3", "m4", "m5", "m6"]  # each exactly once, nothing torn in between
