"""The review page in a real headless Chromium (Debian's, through Playwright), against `matcha serve`'s
app on a loopback port: log in, decide with the keyboard and the buttons, edit with a diff, reject with
a reason, approve a filtered set; then check what the file publisher wrote and the audit log.

The screenshots of docs/review.md are taken here: set MATCHA_SCREENSHOTS=docs/images to write them."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from browser import RecordedPage
from playwright.sync_api import expect

from matcha.runtime.run import Run
from matcha.serve import create_app

pytestmark = pytest.mark.integration


@pytest.fixture
def served(project: Path, waiting: str, accounts: dict[str, str]) -> Iterator[tuple[str, object]]:
    app = create_app(project / ".matcha")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "the review server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(10)


def shot(page: object, name: str, tmp: Path) -> None:
    where = Path(os.environ.get("MATCHA_SCREENSHOTS") or tmp)
    where.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(where / name), full_page=True)  # type: ignore[attr-defined]


def test_review_in_a_browser(served: tuple[str, object], recorded_page: RecordedPage, project: Path,
                             waiting: str, accounts: dict[str, str], tmp_path: Path) -> None:
    base, app = served
    page = recorded_page.page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    page.goto(f"{base}/runs/{waiting}")
    expect(page).to_have_url(f"{base}/login?next=/runs/{waiting}")
    page.get_by_label("Username").fill("claire")
    page.get_by_label("Password").fill(accounts["claire"])
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/runs/{waiting}")
    expect(page.locator("#pending-count")).to_have_text("6")

    # a draft holding markup is shown as text, and nothing in it runs
    m3 = page.get_by_role("article", name="Item m3")
    expect(m3.locator(".ai-text")).to_have_text(
        "Hello <script>document.title='pwned'</script><img src=x onerror=alert(1)> there")
    assert page.title() != "pwned" and dialogs == []
    shot(page, "review-queue.png", tmp_path)

    # m1 with the keyboard: j selects the first item, a approves it
    page.keyboard.press("j")
    page.keyboard.press("a")
    expect(page.locator("#pending-count")).to_have_text("5")

    # m2: edit, read the diff, save
    m2 = page.get_by_role("article", name="Item m2")
    m2.get_by_role("button", name="Edit").click()
    m2.get_by_label("Edited text for m2").fill("Reply to m2: thank you for writing to us.")
    m2.get_by_role("button", name="Show changes").click()
    expect(page.locator(".diff del")).to_have_text(["thanks", "writing."])
    expect(page.locator(".diff ins")).to_have_text(["thank you", "writing to us."])
    page.get_by_role("button", name="Save edit").click()
    expect(page.locator("#pending-count")).to_have_text("4")

    # m3: reject with a reason
    m3 = page.get_by_role("article", name="Item m3")
    m3.get_by_label("Reason for rejecting m3").fill("markup in a reply")
    m3.get_by_role("button", name="Reject").click()
    expect(page.locator("#pending-count")).to_have_text("3")

    # the billing messages, all at once, after a confirmation that says how many
    page.get_by_label("Filter").fill("billing")
    page.get_by_role("button", name="Filter", exact=True).click()
    page.get_by_role("button", name="Approve all shown by this filter…").click()
    expect(page.get_by_role("heading", name="Approve 3 item(s)?")).to_be_visible()
    page.get_by_role("button", name="Approve 3 item(s)").click()
    expect(page.get_by_text("Nothing waits for a decision")).to_be_visible()

    assert app.state.review.resumer.idle.wait(60)  # type: ignore[attr-defined]
    run = Run.open(waiting, home=project / ".matcha")
    assert run.status == "succeeded"
    published = {p["id"]: p for p in map(json.loads, (project / "out" / "published.jsonl").read_text().splitlines())}
    assert sorted(published) == ["m1", "m2", "m4", "m5", "m6"]
    assert published["m2"]["text"] == "Reply to m2: thank you for writing to us."
    assert published["m1"]["text"] == "Reply to m1: thanks for writing."

    page.goto(f"{base}/runs/{waiting}/audit")
    reviewers = page.locator("td.reviewer")
    expect(reviewers).to_have_count(6)
    assert set(reviewers.all_inner_texts()) == {"claire"}
    expect(page.get_by_text("markup in a reply")).to_be_visible()
    shot(page, "review-audit.png", tmp_path)

    assert [u for u in recorded_page.requests if not u.startswith(base + "/")] == []  # nothing left the origin
    assert dialogs == []


VOICE_DRAFTS = '''
def draft(batch):
    for r in batch:
        n = int(r["id"][1:])
        r["draft"] = ("Meet our new oolong. We roast it slowly, in small batches, right here on our workbench. "
                      "Too strong? Add a splash of milk. No rush.") if n % 2 else (
                      "This product offers a comprehensive tea experience suitable for all consumers.")
        r["voice_score"] = 88 if n % 2 else 41
        r["voice_notes"] = [] if n % 2 else ["sentences twice as long as the voice's median (22 words against 9)",
                                             "none of the voice's usual vocabulary (such as 'tea', 'cup', 'kettle')"]
        note = "no questions, where the voice uses them in about one sentence in 6"
        r["attempts"] = [] if n % 2 else [{"attempt": 1, "draft": "Our tea is available now.", "voice_score": 35,
                                           "voice_notes": [note]}]
        r["exemplars"] = [{"id": "brewing-guide.md#2", "text": "Too hot? Let it breathe. Leave the kettle open.",
                           "score": 0.47}]
        if not n % 2:
            r["flagged"] = "`voice_score >= 70` still not met after 2 attempts: look at every attempt before approving"
    return batch
'''


def test_voice_scores_notes_attempts_and_exemplars_are_shown(recorded_page: RecordedPage, project: Path,
                                                             accounts: dict[str, str], tmp_path: Path) -> None:
    from support import write

    from matcha import Pipeline

    write(project / "scripts" / "voice_drafts.py", VOICE_DRAFTS)
    write(project / "pipelines" / "copy.yaml", """
        name: product_copy
        source: {connector: messages}
        steps:
          - {id: draft, type: script, with: {function: "scripts/voice_drafts.py:draft"}}
          - id: review
            type: approval
            with: {field: draft, context: [voice_score, voice_notes, flagged, attempts, exemplars]}
          - {id: publish, type: publish, with: {connector: outbox}}
    """)
    run = Pipeline.load(project / "pipelines" / "copy.yaml", home=project / ".matcha").run(run_id="v1")
    app = create_app(project / ".matcha", resume=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        page = recorded_page.page
        page.goto(f"{base}/login?next=/runs/{run.id}")
        page.get_by_label("Username").fill("victor")
        page.get_by_label("Password").fill(accounts["victor"])
        page.get_by_role("button", name="Log in").click()
        m2 = page.get_by_role("article", name="Item m2")
        expect(m2.locator("span.flag")).to_have_text("flagged")
        expect(m2.get_by_text("sentences twice as long as the voice's median (22 words against 9)")).to_be_visible()
        expect(m2.get_by_text("no questions, where the voice uses them in about one sentence in 6")).to_be_visible()
        expect(m2.get_by_text("brewing-guide.md#2")).to_be_visible()
        expect(m2.get_by_role("button", name="Approve")).to_have_count(0)  # a viewer
        shot(page, "review-voice.png", tmp_path)
        assert [u for u in recorded_page.requests if not u.startswith(base + "/")] == []
    finally:
        server.should_exit = True
        thread.join(10)
