"""``script``: call a Python function on each batch (``module:function`` or ``path/file.py:function``).

The function takes a list of records (dicts) and returns a list of records. It must keep each
record's ``id``; records it leaves out are counted as dropped. Keyword arguments come from ``args``.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from matcha.spec.paths import check_project_path, resolve_in_project
from matcha.steps.base import (
    BatchOutcome,
    LoadContext,
    Record,
    StaticIssue,
    Step,
    StepConfig,
    StepContext,
    register_step,
)


class ScriptConfig(StepConfig):
    function: str = Field(
        description="`package.module:function` or `path/to/file.py:function` (relative to the project root)."
    )
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments passed to the function.")

    @field_validator("function")
    @classmethod
    def _shape(cls, v: str) -> str:
        if v.count(":") != 1 or not all(v.split(":")):
            raise ValueError("expected 'module:function' or 'path/to/file.py:function'")
        target = v.split(":")[0]
        if target.endswith(".py"):
            check_project_path(target)
        return v


def _split(ref: str) -> tuple[str, str]:
    target, func = ref.split(":")
    return target, func


def load_function(ref: str, base_dir: Path) -> Callable[..., Any]:
    target, func = _split(ref)
    if target.endswith(".py"):
        path = resolve_in_project(base_dir, target)
        name = "matcha_script_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    fn = getattr(module, func)
    if not callable(fn):
        raise TypeError(f"{ref} is not callable")
    return fn  # type: ignore[no-any-return]


@register_step("script")
class ScriptStep(Step):
    Config = ScriptConfig
    mutates_nested = True  # user code may change nested values in place

    def check(self, ctx: LoadContext) -> list[StaticIssue]:
        # Checked without importing: validating a pipeline never runs user code.
        target, func = _split(self.config.function)
        if target.endswith(".py"):
            path = resolve_in_project(ctx.base_dir, target)
            if not path.is_file():
                return [StaticIssue(("function",), f"script file not found: {path}",
                                    "Paths are relative to the project root (the folder holding connectors/)")]
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
            if func not in names:
                return [StaticIssue(("function",), f"{target} defines no function '{func}'",
                                    f"Functions defined there: {', '.join(sorted(names)) or 'none'}")]
            return []
        try:
            found = importlib.util.find_spec(target) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return [StaticIssue(("function",), f"module '{target}' cannot be found",
                                "Install it or put it on PYTHONPATH, or use a file path like scripts/x.py:function")]
        return []

    def warm_up(self, ctx: StepContext) -> None:
        self._fn = load_function(self.config.function, ctx.base_dir)

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        result = self._fn(batch, **self.config.args)
        if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
            raise TypeError(f"{self.config.function} must return a list of dicts, got {type(result).__name__}")
        returned = {r.get("id") for r in result}
        dropped = [(r, "removed by script") for r in batch if r["id"] not in returned]
        return BatchOutcome(out=result, dropped=dropped)
