"""The review app over HTTP (FastAPI's TestClient): login, sessions, CSRF, roles, escaping, decisions."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from matcha.runtime.run import Run
from matcha.runtime.store import sha256_text
from matcha.serve import create_app

pytestmark = pytest.mark.integration


def client(project: Path, **kw: object) -> TestClient:
    return TestClient(create_app(project / ".matcha", **kw), base_url="http://127.0.0.1")  # type: ignore[arg-type]


def login(c: TestClient, name: str, password: str) -> None:
    page = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token
    r = c.post("/login", data={"csrf": token.group(1), "username": name, "password": password, "next": "/"},
               follow_redirects=False)
    assert r.status_code == 303, r.text


def start(project: Path, name: str, steps: str) -> Run:
    """A run of ``data/<name>.csv`` through ``steps`` then a publish, paused for approval."""
    from matcha import Pipeline

    (project / "connectors" / f"{name}.yaml").write_text(f"kind: csv\npath: data/{name}.csv\n")
    (project / "pipelines").mkdir(exist_ok=True)
    (project / "pipelines" / f"{name}.yaml").write_text(
        f"name: {name}\nsource: {{connector: {name}}}\nsteps:\n{steps}"
        "  - {id: publish, type: publish, with: {connector: outbox}}\n")
    return Pipeline.load(project / "pipelines" / f"{name}.yaml", home=project / ".matcha").run()


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m
    return m.group(1)


def test_unauthenticated_requests_go_to_login(project: Path, waiting: str, accounts: dict[str, str]) -> None:
    c = client(project)
    for path in ("/", f"/runs/{waiting}", f"/runs/{waiting}/audit"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    r = c.post(f"/runs/{waiting}/approve", data={"item": "m1", "csrf": "x"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert Run.open(waiting, home=project / ".matcha").pending_count() == 6


def test_cookies_headers_and_escaping(project: Path, waiting: str, accounts: dict[str, str]) -> None:
    c = client(project)
    login(c, "claire", accounts["claire"])
    cookie = next(h for h in c.cookies.jar if h.name == "matcha_session")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.get_nonstandard_attr("SameSite") == "strict"
    page = c.get(f"/runs/{waiting}")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert "<script>document.title" not in page.text and "&lt;script&gt;document.title" in page.text
    assert "<img src=x" not in page.text and "onerror=alert(1)&gt;" in page.text
    assert re.findall(r"<script\b[^>]*>", page.text) == ['<script src="/static/app.js" defer>']
    assert not re.search(r'(src|href)="(https?:)?//', page.text)  # every asset from this origin
    assert "Waiting for a decision: <span id=\"pending-count\">6</span>" in page.text


def test_a_post_without_the_csrf_token_is_refused(project: Path, waiting: str, accounts: dict[str, str]) -> None:
    c = client(project, resume=False)
    login(c, "claire", accounts["claire"])
    for data in ({}, {"csrf": "forged"}):
        r = c.post(f"/runs/{waiting}/approve", data={"item": "m1", **data, "step": "review"})
        assert r.status_code == 403 and "reload the page" in r.text
    assert Run.open(waiting, home=project / ".matcha").pending_count() == 6


def test_a_viewer_reads_but_cannot_decide(project: Path, waiting: str, accounts: dict[str, str]) -> None:
    c = client(project, resume=False)
    login(c, "victor", accounts["victor"])
    page = c.get(f"/runs/{waiting}")
    assert page.status_code == 200 and "Reply to m1" in page.text
    assert ">Approve<" not in page.text and ">Reject<" not in page.text
    r = c.post(f"/runs/{waiting}/approve", data={"item": "m1", "csrf": csrf_of(page.text), "step": "review"})
    assert r.status_code == 403 and "viewers read runs but cannot decide" in r.text
    assert Run.open(waiting, home=project / ".matcha").pending_count() == 6


def test_logins_are_rate_limited(project: Path, accounts: dict[str, str]) -> None:
    c = client(project)
    token = csrf_of(c.get("/login").text)
    codes = [c.post("/login", data={"csrf": token, "username": "claire", "password": f"wrong {i}"}).status_code
             for i in range(6)]
    assert codes == [401] * 5 + [429]
    right = c.post("/login", data={"csrf": token, "username": "claire", "password": accounts["claire"]})
    assert right.status_code == 429 and "Too many failed attempts" in right.text  # even the right password waits


def test_decisions_are_recorded_with_the_logged_in_user_then_the_run_resumes(
        database: str, project: Path, waiting: str, accounts: dict[str, str]) -> None:
    app = create_app(project / ".matcha")
    c = TestClient(app, base_url="http://127.0.0.1")
    login(c, "claire", accounts["claire"])
    token = csrf_of(c.get(f"/runs/{waiting}").text)
    r = c.post(f"/runs/{waiting}/approve", data={"item": "m1", "csrf": token, "step": "review"})
    assert r.status_code == 409 and "reload the page" in r.text  # the form must say which text was shown
    c.post(f"/runs/{waiting}/approve", data={"item": "m1", "csrf": token, "step": "review",
                                              "shown": sha256_text("Reply to m1: thanks for writing.")})
    preview = c.post(f"/runs/{waiting}/edit", data={"item": "m2", "csrf": token, "step": "review",
                                                              "text": "Reply to m2: thank you for writing to us."})
    assert "<del>thanks</del>" in preview.text and "<ins>thank you</ins>" in preview.text
    c.post(f"/runs/{waiting}/save", data={"item": "m2", "csrf": token, "step": "review",
                                           "shown": sha256_text("Reply to m2: thanks for writing."),
                                           "text": "Reply to m2: thank you for writing to us."})
    r = c.post(f"/runs/{waiting}/reject", data={"item": "m3", "csrf": token, "step": "review", "reason": " "})
    assert r.status_code == 400 and "needs a reason" in r.text
    c.post(f"/runs/{waiting}/reject", data={"item": "m3", "csrf": token, "step": "review", "reason": "unsafe markup"})
    confirm = c.post(f"/runs/{waiting}/approve-filtered", data={"csrf": token, "q": "billing", "step": ""})
    assert "Approve 3 item(s)?" in confirm.text
    digest = re.search(r'name="digest" value="([0-9a-f]+)"', confirm.text)
    assert digest
    stale = c.post(f"/runs/{waiting}/approve-filtered", data={"csrf": token, "q": "billing", "step": "",
                                                             "confirm": "yes", "digest": "0" * 64})
    assert "nothing was approved" in stale.text and Run.open(waiting, home=project / ".matcha").pending_count() == 3
    c.post(f"/runs/{waiting}/approve-filtered", data={"csrf": token, "q": "billing", "step": "", "confirm": "yes",
                                                     "digest": digest.group(1)})
    assert app.state.review.resumer.idle.wait(60)
    run = Run.open(waiting, home=project / ".matcha")
    assert run.status == "succeeded" and run.pending_count() == 0
    decided = {i.id: i for i in run.items()}
    assert {i.reviewer for i in decided.values()} == {"claire"}
    assert decided["m2"].final_text == "Reply to m2: thank you for writing to us."
    published = [json.loads(line) for line in (project / "out" / "published.jsonl").read_text().splitlines()]
    assert sorted(p["id"] for p in published) == ["m1", "m2", "m4", "m5", "m6"]
    assert {p["id"]: p["text"] for p in published}["m2"] == "Reply to m2: thank you for writing to us."
    audit = c.get(f"/runs/{waiting}/audit").text
    assert audit.count('<td class="reviewer">claire</td>') == 6 and "unsafe markup" in audit
    assert (project / ".matcha" / "runs.db").exists() == (database == "sqlite")  # the store the test chose


def test_the_queue_is_paged(project: Path, accounts: dict[str, str]) -> None:

    (project / "data" / "many.csv").write_text("id,text\n" + "".join(f"x{i:03},hello {i}\n" for i in range(45)))
    (project / "scripts").mkdir(exist_ok=True)
    (project / "scripts" / "drafts.py").write_text("def draft(batch):\n    for r in batch:\n"
                                                  "        r['draft'] = 'Reply ' + r['id']; r['topic'] = 't'\n"
                                                  "    return batch\n")
    run = start(project, "many", "  - {id: draft, type: script, with: {function: 'scripts/drafts.py:draft'}}\n"
                "  - {id: review, type: approval, with: {field: draft, context: [topic]}}\n")
    c = client(project, resume=False)
    login(c, "claire", accounts["claire"])
    first = c.get(f"/runs/{run.id}").text
    assert first.count('<article class="item"') == 20 and "Reply x000" in first and "Reply x020" not in first
    nxt = re.search(r'href="([^"]+)" rel="next"', first)
    assert nxt
    second = c.get(nxt.group(1).replace("&amp;", "&")).text
    assert "Reply x020" in second and "Reply x000" not in second
    t = time.perf_counter()
    c.get(f"/runs/{run.id}")
    assert time.perf_counter() - t < 30  # sanity only; the figure is measured in benchmarks/review_page.py


def test_artifacts_open_from_the_run_sandboxed(project: Path, waiting: str, accounts: dict[str, str]) -> None:
    from matcha.runtime.run import Workspace

    ws = Workspace(project / ".matcha")
    ws.store.add_artifact(waiting, "draft", "voice.yaml", b"matcha_voice: 1\nname: <b>brand</b>\n",
                          "application/yaml", ws.home / "artifacts")
    ws.store.add_artifact(waiting, "draft", "segments.html", b"<html><body><h1>Segments</h1></body></html>",
                          "text/html", ws.home / "artifacts")
    c = client(project)
    assert c.get(f"/runs/{waiting}/artifacts/voice.yaml", follow_redirects=False).status_code == 303
    login(c, "victor", accounts["victor"])
    page = c.get(f"/runs/{waiting}").text
    for name in ("voice.yaml", "segments.html"):
        assert f'href="/runs/{waiting}/artifacts/{name}"' in page
    profile = c.get(f"/runs/{waiting}/artifacts/voice.yaml")
    assert profile.status_code == 200 and profile.headers["content-type"].startswith("text/plain")
    report = c.get(f"/runs/{waiting}/artifacts/segments.html")
    assert report.headers["content-type"].startswith("text/html") and "<h1>Segments</h1>" in report.text
    assert report.headers["content-security-policy"].startswith("sandbox;")
    missing = c.get(f"/runs/{waiting}/artifacts/..%2F..%2Fusers.json")
    assert missing.status_code in (400, 404) and "scrypt" not in missing.text


def test_logging_out_ends_a_copied_session_and_odd_ids_can_be_decided(project: Path, accounts: dict[str, str]) -> None:

    (project / "data" / "odd.csv").write_text("id,text\nproducts/123,a\n..,b\n")
    run = start(project, "odd", "  - {id: review, type: approval, with: {field: text}}\n")
    c = client(project, resume=False)
    login(c, "claire", accounts["claire"])
    token = csrf_of(c.get(f"/runs/{run.id}").text)
    for item, text in (("products/123", "a"), ("..", "b")):
        r = c.post(f"/runs/{run.id}/approve", data={"item": item, "csrf": token, "step": "review",
                                                    "shown": sha256_text(text)}, follow_redirects=False)
        assert r.status_code == 303, r.text
    assert Run.open(run.id, home=project / ".matcha").pending_count() == 0
    copied = dict(c.cookies)
    c.post("/logout", data={"csrf": token})
    thief = client(project)
    thief.cookies.update(copied)
    assert thief.get("/", follow_redirects=False).status_code == 303  # the copied cookie ended with the logout
