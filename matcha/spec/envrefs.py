"""Resolve ``${env:NAME}`` references inside located YAML data, reporting missing variables."""

from __future__ import annotations

from typing import Any

from matcha import secrets
from matcha.errors import ConfigIssue
from matcha.spec.yamlload import Located, Path_


def resolve_env(located: Located, issues: list[ConfigIssue]) -> Any:
    """Return a copy of ``located.data`` with env references substituted; append an issue per missing var."""

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
                issues.append(located.issue(
                    path, f"environment variable {name} is not set",
                    f"Set it before running (export {name}=...), or remove the ${{env:{name}}} reference"))
                return value
        return value

    return walk(located.data, ())
