"""Connection definitions: ``connectors/NAME.yaml`` at the project root, one connection a file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matcha.connectors.base import CONNECTORS, Connector
from matcha.errors import ConfigIssue, PipelineError
from matcha.spec.envrefs import EnvRefs
from matcha.spec.validate import validate_model
from matcha.spec.yamlload import load_located


@dataclass
class Connection:
    name: str
    file: Path
    cls: type[Connector]
    config: Any

    def build(self, base_dir: Path) -> Connector:
        return self.cls(self.name, self.config, base_dir=base_dir)


def read_config_text(path: Path) -> str:
    """The text of a configuration file, or a PipelineError naming it (never an OSError traceback)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineError.single(str(path), f"the file is not UTF-8 text (byte {exc.start})", "Save it as UTF-8",
                                   line=1, col=1) from None
    except OSError as exc:
        raise PipelineError.single(str(path), f"cannot read the file: {exc.strerror or exc}",
                                   "Check that it exists and is readable", line=1, col=1) from None


def connector_dir(base_dir: Path) -> Path:
    return base_dir / "connectors"


def available(base_dir: Path) -> list[str]:
    d = connector_dir(base_dir)
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def load_connection(base_dir: Path, name: str, env: EnvRefs | None = None) -> Connection:
    """Load and validate ``connectors/<name>.yaml``. Raises PipelineError located in that file."""
    env = env or EnvRefs()
    path = connector_dir(base_dir) / f"{name}.yaml"
    file = str(path)
    located = load_located(read_config_text(path), file)
    if not isinstance(located.data, dict):
        raise PipelineError.single(file, "a connection file must be a mapping", "Write `kind: ...` and its fields",
                                   line=1, col=1)
    issues: list[ConfigIssue] = []
    data = env.resolve(located, issues)
    kind = data.get("kind")
    cls = CONNECTORS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        line, col = located.where(("kind",))
        what = ("the field 'kind' is missing" if kind is None else f"unknown connector kind '{kind}'"
                if isinstance(kind, str) else "'kind' must be the name of a connector kind")
        hint = CONNECTORS.unknown_hint(kind if isinstance(kind, str) else "")
        raise PipelineError([ConfigIssue(file, line, col, "kind", what, hint)])
    config, more = validate_model(cls.Config, data, located)
    issues += env.keep(more)
    if issues:
        raise PipelineError(issues)
    if config is None:  # every problem was at a field whose variable is missing (inspection only)
        config = cls.Config.model_construct(**data)
    return Connection(name=name, file=path, cls=cls, config=config)
