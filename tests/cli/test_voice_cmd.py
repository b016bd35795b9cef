"""`matcha voice build / show / score`, as documented, in a fresh process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support import Cli, write

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(project: Path) -> Path:
    shutil.copytree(REPO / "examples" / "site", project / "site")
    return project / "site"


def test_build_show_and_score(project: Path, cli: Cli, site: Path) -> None:
    built = cli("voice", "build", "site", "-o", "profile.yaml").stdout
    assert "wrote profile.yaml: voice 'site' (en), 9 pages" in built and "sha256" in built
    assert "the voice's own passages" in built
    assert (project / "profile.yaml").read_text().startswith("# Voice profile 'site'")
    shown = cli("voice", "show", "profile.yaml").stdout
    assert "words per sentence" in shown and "vocabulary: tea" in shown and "small batches" in shown
    data = json.loads(cli("voice", "show", "profile.yaml", "--json").stdout)
    assert data["language"] == "en" and len(data["sha256"]) == 64 and data["held_out_scores"]

    one = json.loads(cli("voice", "score", "profile.yaml", "Too hot? Let it breathe. We steep every leaf slowly, "
                         "in small batches, from our workbench. A slow sip, no rush.", "--json").stdout)
    assert one[0]["id"] == "1" and 0 <= one[0]["voice_score"] <= 100 and isinstance(one[0]["voice_notes"], list)

    write(project / "drafts.csv", 'id,text\na,"We steep it slowly. Too hot? Let it breathe."\nb,\n'
          'c,"The Company hereby announces a product; consult the documentation."\n')
    rows = json.loads(cli("voice", "score", "profile.yaml", "--input", "drafts.csv", "--json").stdout)
    assert [r["id"] for r in rows] == ["a", "b", "c"]  # every input answered, in order
    assert rows[1] == {"id": "b", "voice_score": None, "voice_notes": ["no text to score"],
                       "voice_profile": data["sha256"]}
    assert rows[0]["voice_score"] > rows[2]["voice_score"]
    write(project / "drafts.jsonl", '{"id": "x", "text": "We love a slow cup."}\n')
    assert json.loads(cli("voice", "score", "profile.yaml", "--input", "drafts.jsonl", "--json").stdout)[0]["id"] == "x"
    table = cli("voice", "score", "profile.yaml", "--input", "drafts.csv").stdout
    assert "no text to score" in table


@pytest.mark.parametrize(("args", "message"), [
    (["build", "nowhere", "-o", "p.yaml"], "no folder or file at nowhere"),
    (["build", "few", "-o", "p.yaml"], "too little text for a reliable voice profile: 2 page(s)"),
    (["score", "profile.yaml"], "give the text to score, or --input FILE"),
    (["score", "missing.yaml", "text"], "cannot read the voice profile missing.yaml"),
    (["score", "profile.yaml", "--input", "bad.csv"], "bad.csv: no `text` column (columns: id, body)"),
    (["show", "bad.csv"], "is not a Matcha voice profile"),
])
def test_mistakes_are_one_clear_line(project: Path, cli: Cli, site: Path, args: list[str], message: str) -> None:
    write(project / "few" / "a.md", "# A\n\nWe steep tea. " * 20)
    write(project / "few" / "b.md", "# B\n\nWe brew tea. " * 20)
    write(project / "bad.csv", "id,body\n1,hello\n")
    if args[0] == "score" and args[1] == "profile.yaml":
        cli("voice", "build", "site", "-o", "profile.yaml")
    proc = cli("voice", *args, check=False)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr


def test_input_csv_keeps_line_breaks_inside_quoted_texts(tmp_path: Path) -> None:
    from matcha.cli.voice_cmd import read_items

    path = tmp_path / "drafts.csv"
    path.write_text('id,text\na,"First paragraph.\n\nSecond one."\n,"no id"\n', encoding="utf-8")
    assert read_items(path) == [("a", "First paragraph.\n\nSecond one."), ("line 5", "no id")]
