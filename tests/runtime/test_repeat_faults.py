"""SIGKILL a run inside a `repeat` loop, resume it: no attempt is lost or redone, no model call paid twice.

The writer is a real HTTP server speaking the OpenAI API (started by the test), so calls are counted
where they arrive. It answers in the brand's voice only when the prompt says how the last attempt was
judged, and never for a "stubborn" product: attempt 1 writes 3 drafts, attempt 2 rewrites 3, attempt
3 rewrites the stubborn one. The run is killed right after the 5th answer is stored (in attempt 2).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import Cli, write

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
IN_VOICE = ("Meet our new oolong. We roast it slowly, in small batches, right here on our workbench. "
            "The leaf opens like a slow sip of autumn. Too strong? Add a splash of milk and no rush. "
            "Steep it for four minutes, then breathe in. Honey, toasted nuts, a little smoke. "
            "Brew it your way. It is your little ritual, after all.")
CORPORATE = ("Our organisation hereby announces the commercial availability of a premium beverage product, which, "
             "in accordance with applicable regulatory frameworks, shall be distributed exclusively through "
             "authorised retail channels; consumers are advised to consult the packaging documentation.")


class Writer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.prompts: list[str] = []


class Handler(BaseHTTPRequestHandler):
    server: Writer

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body.get("prompt") or body["messages"][-1]["content"]
        self.server.prompts.append(prompt)
        text = IN_VOICE if "was judged" in prompt and "stubborn" not in prompt else CORPORATE
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        self._send({"id": "x", "object": "chat.completion", "model": "fake", "choices": [choice],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    def _send(self, obj: object) -> None:
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def writer() -> Iterator[Writer]:
    srv = Writer()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_sigkill_in_the_loop_then_resume(project: Path, cli: Cli, writer: Writer) -> None:
    shutil.copytree(REPO / "examples" / "site", project / "site")
    write(project / "connectors" / "site.yaml", "kind: pages\npath: site\n")
    write(project / "data" / "products.csv", "id,name\np1,Copper Hill Oolong\np2,stubborn Lapsang\np3,Earl Grey\n")
    write(project / "connectors" / "products.yaml", "kind: csv\npath: data/products.csv\n")
    write(project / "pipelines" / "voice.yaml", f"""
        name: voice
        models:
          writer: {{provider: openai, base_url: "http://127.0.0.1:{writer.server_address[1]}/v1", model: fake,
                   max_retries: 0}}
          default-embedder: {{provider: hashing, dim: 32}}
        source: {{connector: products}}
        steps:
          - {{id: voice, type: voice_profile, with: {{pages: site}}}}
          - {{id: draft, type: generate, with: {{model: writer, prompt: "Describe {{{{ name }}}}.", voice: voice}}}}
          - {{id: score, type: voice_score, repeat: {{from: draft, until: "voice_score >= 70", max_attempts: 3}}}}
          - {{id: review, type: approval, with: {{field: draft, context: [voice_score, flagged, attempts]}}}}
          - {{id: publish, type: publish, with: {{connector: outbox}}}}
    """)
    killed = subprocess.run([sys.executable, "-m", "matcha", "run", "pipelines/voice.yaml", "--run-id", "v1"],
                            cwd=project, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "MATCHA_CRASH_AT": "generate.cached#5"})
    assert killed.returncode == -9, killed.stderr
    assert len(writer.prompts) == 5
    resumed = json.loads(cli("resume", "v1", "--json").stdout)
    assert resumed["status"] == "waiting_for_approval"
    # 3 first drafts, 3 rewrites, 1 last rewrite: the 5 answered before the kill were not asked again
    assert len(writer.prompts) == 7 and len(set(writer.prompts)) == 7
    steps = {s["id"]: s for s in resumed["steps"]}
    assert [steps[s]["out"] for s in ("draft", "score", "draft@2", "score@2", "draft@3", "score@3")] == [3] * 6
    items = {i["id"]: i for i in json.loads(cli("review", "v1", "--json").stdout)}
    assert set(items) == {"p1", "p2", "p3"}
    stubborn = items["p2"]["context"]
    assert [a["attempt"] for a in stubborn["attempts"]] == [1, 2] and "still not met" in stubborn["flagged"]
    assert items["p1"]["ai_text"] == IN_VOICE and [a["attempt"] for a in items["p1"]["context"]["attempts"]] == [1]
    done = json.loads(cli("approve", "v1", "--all", "--json").stdout)
    assert done["status"] == "succeeded"
    published = (project / "out" / "published.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in published) == ["p1", "p2", "p3"]
