"""The library entry point: :class:`Pipeline`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from matcha.errors import PipelineError
from matcha.logs import configure_library_default
from matcha.runtime.run import Run, Workspace, start_run
from matcha.spec.graph import SOURCE
from matcha.spec.load import Plan, find_project_root, load_plan


class Pipeline:
    """A validated pipeline. Loading validates everything, including the approval gate.

    >>> p = Pipeline.load("pipelines/reply.yaml")      # doctest: +SKIP
    >>> run = p.run()                                   # doctest: +SKIP
    >>> run.status, [i.id for i in run.pending()]       # doctest: +SKIP
    """

    def __init__(self, plan: Plan, home: str | Path | None = None):
        configure_library_default()
        self._plan = plan
        self._home = home

    @classmethod
    def load(cls, path: str | Path, *, home: str | Path | None = None) -> Pipeline:
        """Load a pipeline file. Raises :class:`~matcha.errors.PipelineError` on any mistake."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PipelineError.single(str(p), "file not found", "Check the path") from None
        except UnicodeDecodeError:
            raise PipelineError.single(str(p), "the file is not UTF-8 text", "Save it as UTF-8") from None
        return cls(load_plan(text, str(p), find_project_root(p)), home)

    @classmethod
    def from_yaml(cls, text: str, *, base_dir: str | Path | None = None, home: str | Path | None = None,
                  file: str = "<string>") -> Pipeline:
        """Load a pipeline from YAML text; relative paths resolve against ``base_dir`` (default: cwd)."""
        return cls(load_plan(text, file, Path(base_dir or Path.cwd()).resolve()), home)

    @property
    def name(self) -> str:
        return self._plan.spec.name

    @property
    def steps(self) -> list[str]:
        return list(self._plan.steps)

    def validate(self) -> Pipeline:
        """Validate again (e.g. after environment variables changed). Returns self."""
        self._plan = load_plan(self._plan.text, self._plan.file, self._plan.base_dir)
        return self

    def run(self, records: Iterable[dict[str, Any]] | None = None, *, source: str | Path | None = None,
            run_id: str | None = None, progress: Any = None, encoding: str = "utf-8",
            delimiter: str | None = None, queue: bool = False) -> Run:
        """Start a run over ``records`` (dicts with an ``id``), a CSV/JSONL file ``source`` (read with
        ``encoding``; CSV fields split on ``delimiter``, default ','), or the pipeline's own ``source:``. Returns
        when the run succeeds, fails or waits for approval; with ``queue``, at once (status ``queued``):
        a ``matcha worker`` drives it."""
        return start_run(self._plan, Workspace(self._home), records=records,
                         input_path=str(source) if source else None, run_id=run_id, progress=progress,
                         encoding=encoding, delimiter=delimiter, queue=queue)

    def mermaid(self) -> str:
        """The step graph as Mermaid text."""
        lines = ["flowchart LR", f"  {SOURCE}([source])"]
        for sid, ps in self._plan.steps.items():
            shape = "{{%s}}" if ps.step.approves else ("[/%s/]" if ps.step.publishes else "[%s]")
            lines.append(f"  {sid}" + shape % f"{sid}: {ps.step.spec.type}")
            for dep in ps.needs:
                label = f"|{ps.step.spec.when}|" if ps.step.spec.when else ""
                lines.append(f"  {dep} -->{label} {sid}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Pipeline {self.name} steps={self.steps}>"
