"""The files a pipeline may name: project-relative paths only.

A pipeline names prompt templates (``prompt_file``), example CSVs (``examples_file``) and scripts
(``function: path/file.py:name``). Each must be a relative path inside the project root (the
folder holding ``connectors/``): not absolute, no ``~``, no ``..`` component, no NUL or other
control character. A symlink inside the project that points outside it is refused when the file
is opened (:func:`resolve_in_project`). Data locations outside the project (a CSV under
``/srv/data``, an output folder) belong in connection files under ``connectors/``, where the
topology of what a pipeline reads and writes is declared and reviewed in one place.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Annotated

from pydantic import AfterValidator

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_project_path(value: str) -> str:
    """Validate the text of a project-relative path (raises ValueError with how to fix it)."""
    if not value.strip():
        raise ValueError("the path is empty")
    if _CONTROL.search(value):
        raise ValueError("the path contains a control character (e.g. NUL); write a plain relative path")
    if value.startswith(("/", "~", "\\")) or re.match(r"^[A-Za-z]:", value):
        raise ValueError(f"'{value}' is not relative to the project; pipelines may name files inside the "
                         "project only (files elsewhere belong in a connection under connectors/)")
    if ".." in PurePosixPath(value.replace("\\", "/")).parts:
        raise ValueError(f"'{value}' leaves the project with '..'; name a file inside the project")
    return value


ProjectPath = Annotated[str, AfterValidator(check_project_path)]


def resolve_in_project(base_dir: Path, value: str) -> Path:
    """``value`` (already checked) as an absolute path; ValueError if a symlink leads outside the project."""
    root = base_dir.resolve()
    path = (root / value).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"'{value}' resolves to {path}, outside the project {root} (through a symlink)")
    return path
