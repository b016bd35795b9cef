"""Safe YAML loading that remembers where every value came from.

``load_located(text, file)`` returns the plain data plus a map from field path (a tuple of keys and
indexes) to a 1-based (line, column). Only the safe tag set is accepted: ``!!python/...`` and any
other unknown tag becomes a located :class:`PipelineError`, never an object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from matcha.errors import ConfigIssue, PipelineError

Path_ = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader; composes nodes only, construction of scalars stays safe."""


@dataclass
class Located:
    data: Any
    file: str
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Path_) -> tuple[int, int]:
        """Position of ``path``, or of its nearest located parent."""
        p = tuple(path)
        while p:
            if p in self.positions:
                return self.positions[p]
            p = p[:-1]
        return self.positions.get((), (1, 1))

    def issue(self, path: Path_, message: str, hint: str = "") -> ConfigIssue:
        line, col = self.where(path)
        return ConfigIssue(self.file, line, col, format_path(path), message, hint)


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    def __init__(self, loader: _Loader, file: str):
        self.loader = loader
        self.file = file
        self.positions: dict[Path_, tuple[int, int]] = {}

    def _error(self, node: yaml.Node, path: Path_, message: str, hint: str) -> PipelineError:
        line, col = _mark(node)
        return PipelineError.single(self.file, message, hint, line=line, col=col, path=format_path(path))

    def _tag_error(self, node: yaml.Node, path: Path_, what: str) -> PipelineError:
        return self._error(node, path, f"the tag '{node.tag}' is not allowed",
                           f"Pipeline files are data only: remove the tag and write a plain {what}")

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.positions[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":  # e.g. !!python/object/apply:os.system [...]
                raise self._tag_error(node, path, "list")
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: Path_) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise self._tag_error(node, path, "value") from exc

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        if node.tag != "tag:yaml.org,2002:map":
            raise self._tag_error(node, path, "mapping")
        self.loader.flatten_mapping(node)  # YAML merge keys (<<)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._scalar(key_node, path)
            if not isinstance(key, str | int | float | bool) or key is None:
                raise self._error(key_node, path, "mapping keys must be plain strings",
                                  "Write the key as plain text followed by ':', e.g. `name:`")
            # `yes:` / `on:` load as booleans in YAML 1.1; report the key as written, not as 'True'
            key = key_node.value if isinstance(key, bool) else str(key)
            if key in out:
                raise self._error(key_node, (*path, key), f"duplicate key '{key}'",
                                  "Each key may appear once in a mapping: remove or rename one of them")
            out[key] = self.build(value_node, (*path, key))
            self.positions[(*path, key)] = _mark(key_node)
        return out


def load_located(text: str, file: str) -> Located:
    """Parse ``text`` safely, keeping positions. Raises :class:`PipelineError` on any YAML problem."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise PipelineError.single(file, "the file is empty",
                                       "Write its content: a pipeline needs `name:` and `steps:`, a connection "
                                       "needs `kind:` (see docs/pipeline-reference.md)",
                                       line=1, col=1)
        builder = _Builder(loader, file)
        data = builder.build(node, ())
        return Located(data=data, file=file, positions=builder.positions)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = exc.problem or exc.context or "invalid YAML"
        # the context says what was open when parsing failed, e.g. where an unclosed quote started
        context, cmark = exc.context, exc.context_mark
        if exc.problem and context and problem.startswith("but "):
            problem = f"{context}, {problem}"
        elif exc.problem and context and cmark is not None and cmark is not mark:
            problem = f"{problem} ({context} started at line {cmark.line + 1}, column {cmark.column + 1})"
        raise PipelineError.single(
            file,
            f"YAML syntax error: {problem}",
            "Check indentation and quoting at this position (tabs are not allowed; quote strings containing ': ')",
            line=line,
            col=col,
        ) from exc
    except yaml.YAMLError as exc:
        raise PipelineError.single(file, f"YAML error: {exc}", "Fix the YAML syntax") from exc
    finally:
        loader.dispose()
