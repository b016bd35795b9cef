"""Helpers shared by tests (imported as `support`; conftest modules are not imported by tests)."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

Cli = Callable[..., subprocess.CompletedProcess[str]]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def counter(project: Path, name: str) -> list[str]:
    path = project / "counters" / name
    return path.read_text().split() if path.exists() else []
