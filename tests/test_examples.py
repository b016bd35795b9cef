"""Every file in pipelines/ and every script in examples/ is run here, in a copy of the project."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PIPELINES = sorted(p.name for p in (REPO / "pipelines").glob("*.yaml"))
SCRIPTS = sorted(p.name for p in (REPO / "examples").glob("*.py"))
# pipelines that call real models are slow (seconds to minutes on 2 cores)
MODEL_TYPES = ("embed", "classify", "sentiment", "generate", "describe_segments")


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    for d in ("connectors", "examples", "pipelines"):
        shutil.copytree(REPO / d, tmp_path / d)
    shutil.copy(REPO / "matcha.schema.json", tmp_path / "matcha.schema.json")
    return tmp_path


def matcha(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "matcha", "--home", str(cwd / ".matcha"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"matcha {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc


def _uses_models(name: str) -> bool:
    text = (REPO / "pipelines" / name).read_text()
    return any(f"type: {t}" in text for t in MODEL_TYPES)


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if _uses_models(n) else [])
                                  for n in PIPELINES])
def test_pipeline_runs_to_approval_and_publishes(copy: Path, name: str) -> None:
    matcha(copy, "validate", f"pipelines/{name}")
    first = json.loads(matcha(copy, "run", f"pipelines/{name}", "--json").stdout)
    assert first["status"] == "waiting_for_approval", first
    assert first["pending_review"] > 0
    done = json.loads(matcha(copy, "approve", first["run_id"], "--all", "--json").stdout)
    assert done["status"] == "succeeded", done
    for step in done["steps"]:  # a step that makes records (segments) accounts for its input as grouped
        accounted = step["out"] - step.get("made", 0) + step.get("grouped", 0) + step["dropped"] + step["quarantined"]
        assert step["received"] == accounted, step
    published = [s for s in done["steps"] if s["id"].startswith("publish")]
    assert published and published[-1]["out"] == first["pending_review"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_script_runs(copy: Path, name: str) -> None:
    proc = subprocess.run([sys.executable, f"examples/{name}"], cwd=copy, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
