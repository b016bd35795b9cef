"""Runs refuse what cannot work, and say so: failed steps show as failed, run ids cannot escape
MATCHA_HOME, a taken run id is a clean error, bad CLI options are refused, --input has an encoding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import Cli, write

from matcha import Pipeline, RunError
from matcha.runtime.run import Workspace

pytestmark = pytest.mark.integration

FAILING = """
name: failing
source: {connector: messages}
steps:
  - {id: picky, type: script, with: {function: "scripts/steps.py:picky"}}
"""


def test_a_failed_step_shows_failed(project: Path, cli: Cli) -> None:
    write(project / "data" / "messages.csv", "id,text\nm1,fine\nm2,bad one\n")
    write(project / "pipelines" / "f.yaml", FAILING)
    proc = cli("run", "pipelines/f.yaml", "--json", check=False)
    assert proc.returncode == 1
    summary = json.loads(cli("runs", "show", json.loads(proc.stdout)["run_id"], "--json").stdout)
    assert summary["status"] == "failed"
    assert {s["id"]: s["status"] for s in summary["steps"]} == {"source": "done", "picky": "failed"}


@pytest.mark.parametrize("run_id", ["../../x", "/tmp/abs", "a/b", ".hidden", "..", "x" * 200, "sp ace", ""])
def test_run_ids_cannot_name_paths(project: Path, cli: Cli, run_id: str) -> None:
    write(project / "pipelines" / "f.yaml", FAILING)
    proc = cli("run", "pipelines/f.yaml", "--run-id", run_id, check=False)
    assert proc.returncode == 1 and "invalid run id" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(RunError, match="invalid run id"):
        Pipeline.load(project / "pipelines" / "f.yaml").run(run_id=run_id)
    assert not (project / "x").exists() and not Path("/tmp/abs").exists()
    assert not (project / ".matcha" / "runs").exists() or not any((project / ".matcha" / "runs").iterdir())


def test_a_run_id_taken_between_check_and_insert_is_a_clean_error(project: Path) -> None:
    store = Workspace().store
    store.create_run("dup", "p", "p.yaml", str(project), "", {})
    with pytest.raises(RunError, match="a run with id 'dup' already exists"):
        store.create_run("dup", "p", "p.yaml", str(project), "", {})


@pytest.mark.parametrize(("option", "value"), [("--log-format", "xml"), ("--log-level", "loud")])
def test_bad_log_options_are_refused(project: Path, cli: Cli, option: str, value: str) -> None:
    proc = cli(option, value, "runs", check=False)
    assert proc.returncode == 2 and value in proc.stderr and "Traceback" not in proc.stderr


def test_input_file_encoding_and_delimiter(project: Path, cli: Cli) -> None:
    (project / "latin.csv").write_bytes("id;text\nm1;café crème\n".encode("latin-1"))
    write(project / "pipelines" / "copy.yaml", """
        name: copy
        steps:
          - {id: keep, type: filter, with: {condition: "id == 'm1'"}}
    """)
    bad = json.loads(cli("run", "pipelines/copy.yaml", "--input", "latin.csv", "--delimiter", ";", "--json").stdout)
    assert bad["quarantined"] == 1  # read as UTF-8: the byte 0xe9 is quarantined, with the fix in the reason
    reason = json.loads((Path(bad["quarantine_file"])).read_text().splitlines()[0])["reason"]
    assert "--encoding" in reason
    good = json.loads(cli("run", "pipelines/copy.yaml", "--input", "latin.csv", "--encoding", "latin-1",
                          "--delimiter", ";", "--json").stdout)
    assert good["status"] == "succeeded" and good["quarantined"] == 0
    rows = [json.loads(x) for x in cli("runs", "export", good["run_id"]).stdout.splitlines()]
    assert rows[0]["text"] == "café crème"
    unknown = cli("run", "pipelines/copy.yaml", "--input", "latin.csv", "--encoding", "utf-99", check=False)
    assert unknown.returncode == 1 and "unknown encoding 'utf-99'" in unknown.stderr
