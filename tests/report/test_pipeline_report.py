"""The report of the real segmentation job, as a user gets it: `matcha run pipelines/segmentation.yaml`
on the embedded defaults, `matcha artifacts RUN segments.html -o FILE`, then opened in Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def matcha(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "matcha", "--home", str(cwd / ".matcha"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"matcha {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.slow
def test_segmentation_report_opens_with_the_map_and_every_segment(tmp_path: Path, recorded_page: Any) -> None:
    for d in ("connectors", "examples", "pipelines"):
        shutil.copytree(REPO / d, tmp_path / d)
    run = json.loads(matcha(tmp_path, "run", "pipelines/segmentation.yaml", "--json").stdout)
    assert run["status"] == "waiting_for_approval", run
    assert [a["name"] for a in run["artifacts"]] == ["segments.html"]
    segments = run["segments"]
    assert len(segments) >= 4  # k: auto tries 4..12
    report = tmp_path / "report.html"
    matcha(tmp_path, "artifacts", run["run_id"], "segments.html", "-o", str(report))

    recorded_page.open(report)
    page = recorded_page.page
    svg = page.locator("#map svg#map-svg")
    assert svg.is_visible()
    box = svg.bounding_box()
    assert box and box["y"] < 820, "the map is the first thing on the page"
    assert page.locator("#map circle.pt").count() == 1200  # every customer of the example data
    for position, seg in enumerate(segments):  # colours go to segments by position
        card = page.locator(f'article.segment[data-segment="{seg["segment"]}"]')
        assert card.count() == 1, seg
        card.scroll_into_view_if_needed()
        assert card.is_visible()
        assert card.get_by_role("heading", name=seg["name"] or f"Segment {seg['segment']}").is_visible()
        assert page.locator(f'#map circle.pt.c{position}').count() > 0
    assert recorded_page.requests_other_than(report.as_uri()) == []
