"""Safe YAML loading that remembers where every value came from.

``load_located(text, file)`` returns the plain data plus a map from field path (a tuple of keys and
indexes) to a 1-based (line, column). Only the safe tag set is accepted: ``!!python/...`` and any
other unknown tag becomes a located :class:`PipelineError`, never an object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from matcha.errors import ConfigIssue, PipelineError

Path_ = tuple[str | int, ...]


# Plain scalars that YAML 1.1 would turn into dates, or into the obscure `=` / `!` value tags, stay
# strings: a pipeline never needs a date object, and `name: 2001-13-45` must not crash the loader.
_PLAIN_TAGS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:int",
               "tag:yaml.org,2002:float", "tag:yaml.org,2002:merge"}
#: Tags a scalar may carry (implicitly or written as ``!!str`` etc.).
SCALAR_TAGS = _PLAIN_TAGS - {"tag:yaml.org,2002:merge"} | {"tag:yaml.org,2002:str"}

#: Limits that keep a hostile file from exhausting the stack, CPU or memory. Real pipelines stay far
#: below them (nesting about 6, a few thousand values including inline classifier examples).
MAX_DEPTH = 64
MAX_NODES = 200_000  # values after expanding aliases


class _Loader(yaml.SafeLoader):
    """SafeLoader; composes nodes only, construction of scalars stays safe."""

    yaml_implicit_resolvers = {  # noqa: RUF012 - PyYAML's own class-level table, replaced, not mutated
        first: [(tag, regexp) for tag, regexp in resolvers if tag in _PLAIN_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


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
        self.merged: dict[int, int] = {}  # id(mapping node) -> pairs brought in by merge keys

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
        if node.tag not in SCALAR_TAGS:  # !!python/..., !!binary, !!timestamp, !!set...
            raise self._tag_error(node, path, "value")
        try:
            value = self.loader.construct_object(node, deep=True)
        except Exception as exc:  # !!bool maybe, !!float x, a 5,000-digit int: each constructor fails its own way
            raise self._error(node, path, f"cannot read {_shown(node.value)} as {_TAG_WORDS[node.tag]}",
                              _TAG_HINTS[node.tag]) from exc
        bad = _SURROGATE.search(value) if isinstance(value, str) else None
        if bad:
            raise self._error(node, path, f"this text contains a lone surrogate U+{ord(bad.group()):04X}, "
                              "which is not a valid Unicode character",
                              "Remove the \\uD800-\\uDFFF escape; write the character itself in UTF-8")
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        if node.tag != "tag:yaml.org,2002:map":
            raise self._tag_error(node, path, "mapping")
        merged = self._flatten(node)
        out: dict[str, Any] = {}
        own: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = self._scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str | int | float | bool) or key is None:
                raise self._error(key_node, path, "mapping keys must be plain strings",
                                  "Write the key as plain text followed by ':', e.g. `name:`")
            # the key as written: `yes:` is not 'True', and a 5,000-digit number has no str()
            key = key if isinstance(key, str) else str(key_node.value)
            if index >= merged:  # the mapping's own keys; overriding a key brought in by `<<` is allowed
                if key in own:
                    raise self._error(key_node, (*path, key), f"duplicate key '{key}'",
                                      "Each key may appear once in a mapping: remove or rename one of them")
                own.add(key)
            out[key] = self.build(value_node, (*path, key))
            self.positions[(*path, key)] = _mark(key_node)
        return out

    def _flatten(self, node: yaml.MappingNode) -> int:
        """Apply YAML merge keys (``<<``) once per node (an aliased mapping is built again at each
        alias); returns how many leading pairs came from merges, the mapping's own pairs follow."""
        if id(node) not in self.merged:
            own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
            self.loader.flatten_mapping(node)
            self.merged[id(node)] = len(node.value) - own
        return self.merged[id(node)]


_SURROGATE = re.compile("[\ud800-\udfff]")
_TAG_WORDS = {
    "tag:yaml.org,2002:bool": "true or false",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:int": "a whole number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:str": "text",
}
_TAG_HINTS = {
    "tag:yaml.org,2002:bool": "Write true or false (or remove the !!bool tag)",
    "tag:yaml.org,2002:null": "Write null (or remove the !!null tag)",
    "tag:yaml.org,2002:int": "Write a whole number of at most 4,300 digits, or quote the value to keep it as text",
    "tag:yaml.org,2002:float": "Write a number such as 0.5, or quote the value to keep it as text",
    "tag:yaml.org,2002:str": "Quote the value",
}


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of character ``index`` of ``text``."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def _prescan(loader: _Loader, file: str) -> None:
    """Walk the parser's events (no recursion, no objects built) and refuse, with their position,
    nesting deeper than :data:`MAX_DEPTH`, an alias inside the anchor it names (a cycle), and aliases
    that expand to more than :data:`MAX_NODES` values (a "billion laughs" file of a few hundred bytes).

    Aliases stay allowed (models and examples are often shared with ``&anchor`` / ``<<: *anchor``);
    only their expanded size is bounded.
    """
    scan = _Scan(file)
    while loader.check_event():
        scan.event(loader.get_event())


class _Scan:
    def __init__(self, file: str):
        self.file = file
        self.frames: list[list[Any]] = []  # [anchor or None, expanded size, height below] per open collection
        self.sizes: dict[str, int] = {}  # anchor -> expanded size of the node it names
        self.heights: dict[str, int] = {}  # anchor -> nesting levels of the node it names (a scalar: 0)
        self.seen = 0  # values so far, aliases expanded

    def fail(self, event: yaml.Event, message: str, hint: str) -> None:
        mark = event.start_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise PipelineError.single(self.file, message, hint, line=line, col=col)

    def event(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.CollectionStartEvent):
            if len(self.frames) >= MAX_DEPTH:
                self.fail(event, f"values are nested more than {MAX_DEPTH} levels deep",
                          "Pipelines need a few levels at most: flatten this structure")
            self.frames.append([event.anchor, 1, 0])
            self.count(event, 1)
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size, below = self.frames.pop()
            if anchor is not None:
                self.sizes[anchor], self.heights[anchor] = size, below + 1
            if self.frames:  # already counted in `seen`, value by value
                self.frames[-1][1] += size
                self.frames[-1][2] = max(self.frames[-1][2], below + 1)
        elif isinstance(event, yaml.AliasEvent):
            name = event.anchor or ""
            if any(frame[0] == name for frame in self.frames):
                self.fail(event, f"the alias *{name} is inside the anchor &{name} it refers to",
                          "An alias cannot contain itself: copy the values instead")
            if len(self.frames) + self.heights.get(name, 0) > MAX_DEPTH:  # aliases can nest anchors deeper
                self.fail(event, f"through the alias *{name}, values are nested more than {MAX_DEPTH} levels deep",
                          "Pipelines need a few levels at most: flatten this structure")
            self.add(event, self.sizes.get(name, 1), self.heights.get(name, 0))  # undefined: the composer says
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                self.sizes[event.anchor], self.heights[event.anchor] = 1, 0
            self.add(event, 1, 0)

    def add(self, event: yaml.Event, size: int, height: int) -> None:
        if self.frames:
            self.frames[-1][1] += size
            self.frames[-1][2] = max(self.frames[-1][2], height)
        self.count(event, size)

    def count(self, event: yaml.Event, size: int) -> None:
        self.seen += size
        if self.seen > MAX_NODES:
            self.fail(event, f"this file expands to more than {MAX_NODES:,} values (through aliases)",
                      "Use fewer aliases (*name), or move large data such as examples to a CSV file")


def load_located(text: str, file: str) -> Located:
    """Parse ``text`` safely, keeping positions. Raises :class:`PipelineError` on any YAML problem."""
    try:
        # Two passes: a cheap event scan bounds depth and alias expansion before anything is composed
        # (PyYAML's composer recurses and follows aliases), then the located build.
        scanner = _Loader(text)
        try:
            _prescan(scanner, file)
        finally:
            scanner.dispose()
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
        finally:
            loader.dispose()
        return Located(data=data, file=file, positions=builder.positions)
    except yaml.reader.ReaderError as exc:
        line, col = _position(text, exc.position)
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise PipelineError.single(
            file, f"the file contains the control character U+{ord(char):04X}, which YAML does not allow",
            "Remove it (write \\t, \\n or \\uXXXX inside a double-quoted string if you need it)",
            line=line, col=col) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
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
        raise PipelineError.single(file, f"YAML error: {exc}", "Fix the YAML syntax", line=1, col=1) from exc
