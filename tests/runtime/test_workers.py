"""Several `matcha worker` processes sharing one run store (SQLite on this machine, or PostgreSQL as
they would across machines): each run is driven by exactly one of them, two runs at once, and a run
whose worker was killed is taken over by another from its last checkpoint."""

from __future__ import annotations

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
from test_faults import KILL_PIPELINE

pytestmark = pytest.mark.integration

HOLD = '''
import os, time

def hold(batch):
    start = time.time()
    time.sleep(2.0)
    with open(os.environ["COUNTER_DIR"] + "/hold", "a") as fh:
        fh.write(f"{os.getpid()},{start},{time.time()},{len(batch)}\\n")
    return batch
'''

TWO = """
name: held
source: {connector: messages}
settings: {batch_size: 6}
steps:
  - {id: hold, type: script, with: {function: "scripts/hold.py:hold"}}
  - {id: review, type: approval, with: {field: text}}
  - {id: publish, type: publish, with: {connector: outbox}}
"""


def _worker(project: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "matcha", "worker", *args], cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _status(cli: Cli, run_id: str) -> str:
    return str(json.loads(cli("runs", "show", run_id, "--json").stdout)["status"])


def _wait(condition: object, what: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not (callable(condition) and condition()):
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_two_workers_drive_two_runs_at_once(project: Path, cli: Cli) -> None:
    write(project / "scripts" / "hold.py", HOLD)
    write(project / "pipelines" / "held.yaml", TWO)
    for rid in ("q1", "q2"):
        queued = json.loads(cli("run", "pipelines/held.yaml", "--queue", "--run-id", rid, "--json").stdout)
        assert queued["status"] == "queued"
    workers = [_worker(project, "--interval", "0.5"), _worker(project, "--interval", "0.5")]
    try:
        _wait(lambda: all(_status(cli, r) == "waiting_for_approval" for r in ("q1", "q2")), "both runs")
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)  # ends the loop between runs
        for w in workers:
            assert w.wait(timeout=60) == 0
    spans = [line.split(",") for line in (project / "counters" / "hold").read_text().splitlines()]
    assert len(spans) == 2 and all(int(n) == 6 for *_rest, n in spans)  # each run's batch held once
    (pid_a, start_a, end_a, _), (pid_b, start_b, end_b, _) = spans
    assert pid_a != pid_b and {int(pid_a), int(pid_b)} == {w.pid for w in workers}
    assert float(start_b) < float(end_a) and float(start_a) < float(end_b)  # at the same time


def test_a_run_whose_worker_was_killed_is_taken_over_by_another(project: Path, cli: Cli) -> None:
    write(project / "pipelines" / "p.yaml", KILL_PIPELINE)
    cli("run", "pipelines/p.yaml", "--queue", "--run-id", "k1")
    first = _worker(project, "--interval", "0.5")
    # the first batch of `slow` finished and the second is sleeping: kill the worker right there
    _wait(lambda: len(counter(project, "slow")) >= 4 or first.poll() is not None, "the slow step")
    assert first.poll() is None, "the worker ended before it could be killed"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    shown = json.loads(cli("runs", "show", "k1", "--json").stdout)
    assert shown["status"] == "running" and not shown["active"]

    (project / "counters" / "no_sleep").touch()
    taken = json.loads(cli("worker", "--once", "--grace", "0", "--json").stdout)
    assert taken["driven"] == ["k1"]
    assert _status(cli, "k1") == "waiting_for_approval"
    assert counter(project, "upper") == ["m1", "m2", "m3", "m4", "m5", "m6"]  # never redone
    slow = counter(project, "slow")  # m1, m2 were written before the kill; only m3, m4 were in flight
    assert slow[:4] == ["m1", "m2", "m3", "m4"] and sorted(slow[4:]) == ["m3", "m4", "m5", "m6"]
    assert sorted(counter(project, "draft")) == ["m1", "m2", "m3", "m4", "m5", "m6"]

    done = json.loads(cli("approve", "k1", "--all", "--json").stdout)
    assert done["status"] == "succeeded"
    assert set(published(project)) == {"m1", "m2", "m3", "m4", "m5", "m6"}  # each once (published() checks)
    assert json.loads(cli("worker", "--once", "--json").stdout)["driven"] == []  # nothing left to drive
