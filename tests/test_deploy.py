"""The deploy files cannot be exercised here (no systemd in CI); check their structure."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "systemd"


@pytest.mark.parametrize("name", sorted(p.name for p in DEPLOY.iterdir()))
def test_unit_files_parse(name: str) -> None:
    cfg = configparser.ConfigParser(strict=True, interpolation=None)
    cfg.read(DEPLOY / name)
    assert "Unit" in cfg
    if name.endswith(".service"):
        start = cfg["Service"]["ExecStart"]
        assert "matcha" in start and " run pipelines/%i.yaml" in start
    else:
        assert cfg["Timer"]["OnCalendar"]
