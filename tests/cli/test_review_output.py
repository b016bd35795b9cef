"""AI text is shown verbatim: brackets in a draft are never taken for terminal markup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import Cli, write

pytestmark = pytest.mark.integration


def test_review_prints_drafts_verbatim(project: Path, cli: Cli) -> None:
    write(project / "pipelines" / "b.yaml", """
        name: b
        source: {connector: messages}
        steps:
          - {id: draft, type: map, with: {set: {draft: "[/bold] [red]{{ text }}[/]"}}}
          - {id: review, type: approval, with: {context: [text]}}
          - {id: publish, type: publish, with: {connector: outbox}}
    """)
    run_id = json.loads(cli("run", "pipelines/b.yaml", "--json").stdout)["run_id"]
    shown = cli("review", run_id)
    assert "[/bold] [red]message number 1[/]" in shown.stdout
    assert "text: message number 1" in shown.stdout
    assert "Traceback" not in shown.stderr
