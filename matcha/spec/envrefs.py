"""Resolve ``${env:NAME}`` references inside located YAML data, reporting missing variables."""

from __future__ import annotations

from typing import Any

from matcha import secrets
from matcha.errors import ConfigIssue
from matcha.spec.yamlload import Located, Path_, format_path


class EnvRefs:
    """Resolves references for one load. With ``require=False`` (inspecting a finished run, where the
    variables a run needed may be absent) a missing variable is not a problem: the reference stays
    as written, and validation problems at fields holding one are dropped by :meth:`keep`."""

    def __init__(self, require: bool = True):
        self.require = require
        self._unresolved: set[tuple[str, str]] = set()  # (file, field path)

    def resolve(self, located: Located, issues: list[ConfigIssue]) -> Any:
        """A copy of ``located.data`` with references substituted; an issue per missing variable."""

        def walk(value: Any, path: Path_) -> Any:
            if isinstance(value, dict):
                return {k: walk(v, (*path, k)) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v, (*path, i)) for i, v in enumerate(value)]
            if isinstance(value, str) and "${env:" in value:
                try:
                    return secrets.resolve(value)
                except KeyError as exc:
                    name = exc.args[0]
                    self._unresolved.add((located.file, format_path(path)))
                    if self.require:
                        issues.append(located.issue(
                            path, f"environment variable {name} is not set",
                            f"Set it before running (export {name}=...), or remove the ${{env:{name}}} reference"))
                    return value
            return value

        return walk(located.data, ())

    def keep(self, issues: list[ConfigIssue]) -> list[ConfigIssue]:
        """``issues`` without those about a field whose variable is missing (already reported, or
        not required): its value is still the ``${env:...}`` text, so its validation error is noise."""
        return [i for i in issues if (i.file, i.path) not in self._unresolved]


def resolve_env(located: Located, issues: list[ConfigIssue]) -> Any:
    """Resolve references, appending an issue per missing variable (see :class:`EnvRefs`)."""
    return EnvRefs().resolve(located, issues)
