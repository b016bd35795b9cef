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
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Cli, OpenAIStub, write

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[OpenAIStub]:
    with OpenAIStub(lambda prompt: "Reply for: " + prompt.split("MSG:")[-1].strip()) as srv:
        srv.hold_after = 3
        yield srv


def test_resume_after_kill_makes_no_new_call_for_generated_records(project: Path, cli: Cli,
                                                                     server: OpenAIStub) -> None:
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
