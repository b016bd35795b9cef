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
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import CORPORATE, IN_VOICE, Cli, OpenAIStub, write

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def answer(prompt: str) -> str:
    return IN_VOICE if "was judged" in prompt and "stubborn" not in prompt else CORPORATE


@pytest.fixture
def writer() -> Iterator[OpenAIStub]:
    with OpenAIStub(answer) as srv:
        yield srv


def test_sigkill_in_the_loop_then_resume(project: Path, cli: Cli, writer: OpenAIStub) -> None:
    shutil.copytree(REPO / "examples" / "site", project / "site")
    write(project / "connectors" / "site.yaml", "kind: pages\npath: site\n")
    write(project / "data" / "products.csv", "id,name\np1,Copper Hill Oolong\np2,stubborn Lapsang\np3,Earl Grey\n")
    write(project / "connectors" / "products.yaml", "kind: csv\npath: data/products.csv\n")
    write(project / "pipelines" / "voice.yaml", f"""
        name: voice
        models:
          writer: {{provider: openai, base_url: "{writer.url}", model: fake,
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
