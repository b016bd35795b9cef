"""A project with a run waiting for approval (no model: a script writes the drafts), and accounts."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import chromium, recorded_page  # noqa: F401 - the browser fixtures
from support import write

DRAFTS = '''
def draft(batch):
    for r in batch:
        if r["id"] == "m3":
            r["draft"] = "Hello <script>document.title='pwned'</script><img src=x onerror=alert(1)> there"
        else:
            r["draft"] = "Reply to " + r["id"] + ": thanks for writing."
        r["topic"] = "billing" if r["id"] in ("m4", "m5", "m6") else "delivery"
    return batch
'''

PIPELINE = """
name: replies
source: {connector: messages}
steps:
  - {id: draft, type: script, with: {function: "scripts/drafts.py:draft"}}
  - {id: review, type: approval, with: {field: draft, context: [text, topic]}}
  - {id: publish, type: publish, with: {connector: outbox}}
"""


@pytest.fixture
def waiting(project: Path) -> str:
    """The id of a run of 6 messages waiting for approval."""
    from matcha import Pipeline

    write(project / "scripts" / "drafts.py", DRAFTS)
    write(project / "pipelines" / "replies.yaml", PIPELINE)
    run = Pipeline.load(project / "pipelines" / "replies.yaml", home=project / ".matcha").run(run_id="r1")
    assert run.status == "waiting_for_approval" and run.pending_count() == 6
    return run.id


@pytest.fixture
def accounts(project: Path) -> dict[str, str]:
    from matcha.serve.users import Users

    users = Users(project / ".matcha")
    users.add("claire", "correct horse battery", "reviewer")
    users.add("victor", "viewer password 1", "viewer")
    return {"claire": "correct horse battery", "victor": "viewer password 1"}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The review server on each run store (ask for it before the fixtures that make runs)."""
    if request.param == "postgresql":
        import postgres

        monkeypatch.setenv("MATCHA_DATABASE_URL", postgres.new_database(request.getfixturevalue("pg_server")))
    return str(request.param)
