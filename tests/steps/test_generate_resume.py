"""Kill a run in the middle of `generate`, resume it: no record already generated is generated again.

The model is a real HTTP server speaking the OpenAI API (started by the test), so the calls are
counted where they arrive. With `concurrency: 1` the 4th request is only sent after the 3rd answer
was stored; the server holds the 4th request until the test has SIGKILLed the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import Cli, write

pytestmark = pytest.mark.integration


class FakeOpenAI(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.prompts: list[str] = []
        self.hold_after: int | None = 3
        self.release = threading.Event()


class Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body.get("prompt") or body["messages"][-1]["content"]
        self.server.prompts.append(prompt)
        hold = self.server.hold_after
        if hold is not None and len(self.server.prompts) > hold:
            self.server.release.wait(30)
            return
        text = "Reply for: " + prompt.split("MSG:")[-1].strip()
        if self.path.endswith("/chat/completions"):
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        else:
            choice = {"index": 0, "text": text, "finish_reason": "stop"}
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
def server() -> Iterator[FakeOpenAI]:
    srv = FakeOpenAI()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


def test_resume_after_kill_makes_no_new_call_for_generated_records(project: Path, cli: Cli,
                                                                     server: FakeOpenAI) -> None:
    port = server.server_address[1]
    write(project / "pipelines" / "gen.yaml", f"""
        name: gen
        models:
          writer: {{provider: openai, base_url: "http://127.0.0.1:{port}/v1", model: fake, max_retries: 0}}
        source: {{connector: messages}}
        steps:
          - id: draft
            type: generate
            with: {{model: writer, prompt: "MSG: {{{{ text }}}}", concurrency: 1}}
          - {{id: review, type: approval}}
          - {{id: publish, type: publish, with: {{connector: outbox}}}}
    """)
    proc = subprocess.Popen([sys.executable, "-m", "matcha", "run", "pipelines/gen.yaml", "--run-id", "g1"],
                            cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    deadline = time.time() + 60
    while len(server.prompts) < 4:
        assert proc.poll() is None, "the run ended early"
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert server.prompts[:3] == ["MSG: message number 1", "MSG: message number 2", "MSG: message number 3"]

    server.hold_after = None
    server.release.set()
    resumed = json.loads(cli("resume", "g1", "--json").stdout)
    assert resumed["status"] == "waiting_for_approval"
    # after the kill only the unfinished records were asked for: 4 (in flight when killed), 5, 6
    assert server.prompts[4:] == ["MSG: message number 4", "MSG: message number 5", "MSG: message number 6"]
    draft = {s["id"]: s for s in resumed["steps"]}["draft"]
    assert draft["out"] == 6 and draft["model_calls"] == 3
    items = json.loads(cli("review", "g1", "--json").stdout)
    assert [i["ai_text"] for i in items][:2] == ["Reply for: message number 1", "Reply for: message number 2"]
