"""The ingest and template reproducers of issue 6 through the CLI: every row is accounted for,
nothing real is overwritten, and one bad line or template never blocks a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import Cli, write

pytestmark = pytest.mark.integration

COPY = """
name: copy
source: {connector: messages}
steps:
  - {id: keep, type: filter, with: {condition: "id != 'nothing'"}}
"""


def summary(cli: Cli, *args: str) -> dict[str, object]:
    return json.loads(cli(*args, "--json").stdout)


def source_counts(s: dict[str, object]) -> tuple[int, int, int]:
    step = next(x for x in s["steps"] if x["id"] == "source")  # type: ignore[union-attr]
    return step["received"], step["out"], step["quarantined"]


def test_made_up_ids_never_overwrite_real_records(project: Path, cli: Cli) -> None:
    # line 3 has no id (made-up id line-3), line 5 repeats m1 (made-up id line-5-dup); later rows
    # really are called line-3 and line-5-dup: before the fix they overwrote the quarantined rows
    write(project / "data" / "messages.csv",
          "id,text\nm1,one\n,no id\nm2,two\nm1,again\nline-3,real three\nline-5-dup,real dup\n")
    write(project / "pipelines" / "c.yaml", COPY)
    s = summary(cli, "run", "pipelines/c.yaml")
    assert source_counts(s) == (6, 4, 2)
    ids = {r["id"] for r in map(json.loads, cli("runs", "export", s["run_id"], "--step", "keep").stdout.splitlines())}
    assert ids == {"m1", "m2", "line-3", "line-5-dup"}


def test_an_unclosed_quote_costs_one_line(project: Path, cli: Cli) -> None:
    rows = [f"m{i},row {i}" for i in range(1, 16)]
    rows[3] = 'm4,"this quote is never closed'
    write(project / "data" / "messages.csv", "id,text\n" + "\n".join(rows) + "\n")
    write(project / "pipelines" / "c.yaml", COPY)
    s = summary(cli, "run", "pipelines/c.yaml")
    assert source_counts(s) == (15, 14, 1)
    [q] = [json.loads(x) for x in Path(s["quarantine_file"]).read_text().splitlines()]  # type: ignore[arg-type]
    assert q["reason"].startswith("line 5")


def test_a_jsonl_line_python_cannot_read_is_quarantined_and_resume_passes(project: Path, cli: Cli) -> None:
    lines = ['{"id": "a", "text": "fine"}', '{"id": "b", "n": ' + "9" * 4400 + "}",
             '{"id": "c", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}", '{"id": "d", "text": "fine too"}']
    write(project / "data" / "in.jsonl", "\n".join(lines) + "\n")
    write(project / "connectors" / "messages.yaml", "kind: jsonl\npath: data/in.jsonl\n")
    write(project / "pipelines" / "c.yaml", COPY)
    s = summary(cli, "run", "pipelines/c.yaml")
    assert s["status"] == "succeeded" and source_counts(s) == (4, 2, 2)
    assert summary(cli, "resume", s["run_id"])["status"] == "succeeded"  # type: ignore[arg-type]


def test_template_bombs_quarantine_their_record_and_the_run_goes_on(project: Path, cli: Cli) -> None:
    write(project / "data" / "messages.csv", "id,text\nm1,lipsum\nm2,loops\nm3,list\nm4,fine\n")
    bombs = ("{% if text == 'lipsum' %}{{ lipsum(10**6) }}"
             "{% elif text == 'loops' %}{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
             "{% elif text == 'list' %}{{ [1].append(2) }}{% else %}ok{% endif %}")
    write(project / "pipelines" / "t.yaml", f"""
        name: t
        source: {{connector: messages}}
        steps:
          - id: bomb
            type: map
            on_error: quarantine
            with: {{set: {{out: {json.dumps(bombs)}}}}}
    """)
    s = summary(cli, "run", "pipelines/t.yaml")
    assert s["status"] == "succeeded"
    bomb = next(x for x in s["steps"] if x["id"] == "bomb")  # type: ignore[union-attr]
    assert (bomb["received"], bomb["out"], bomb["quarantined"]) == (4, 1, 3)
    quarantine = Path(str(s["quarantine_file"])).read_text().splitlines()
    assert {json.loads(q)["id"] for q in quarantine} == {"m1", "m2", "m3"}
