"""The two connector interfaces and the registry of connector kinds.

A connection file ``connectors/NAME.yaml`` holds ``kind: <kind>`` plus the fields of that kind's
``Config`` (a pydantic model). ``${env:NAME}`` references are resolved before validation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from matcha.registry import Registry

Record = dict[str, Any]


class ConnectorConfig(BaseModel):
    """Base of every connector kind's config. Unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")
    kind: str


@dataclass
class SourceRow:
    """One row read by a source: ``data`` or, for a row that cannot be parsed, ``error``."""

    line: int  # 1-based line (or row) number in the source, for quarantine reasons
    data: Record | None = None
    error: str | None = None


@dataclass
class PublishItem:
    run_id: str
    step_id: str
    record_id: str
    text: str  # the approved final text
    sha256: str  # sha256 of ``text``; matched against the approval before publishing
    record: Record = field(default_factory=dict)  # the whole record (context for the receiver)

    @property
    def key(self) -> str:
        """Stable idempotency key: the same item always gets the same key, across retries and resumes."""
        import hashlib

        raw = f"{self.run_id}|{self.step_id}|{self.record_id}|{self.sha256}"
        return hashlib.sha256(raw.encode()).hexdigest()


class Connector(ABC):
    Config: ClassVar[type[ConnectorConfig]]
    role: ClassVar[str]  # "source", "publisher" or "vectors" (matched against a step's ``connector_role``)

    def __init__(self, name: str, config: Any, *, base_dir: Path):
        self.name = name
        self.config = config
        self.base_dir = base_dir  # project root; relative paths resolve against it

    def describe(self) -> str:
        return f"{self.name} ({self.config.kind})"


class Source(Connector):
    role = "source"

    @abstractmethod
    def read(self) -> Iterator[SourceRow]:
        """Yield rows lazily (never load the whole file)."""


class Publisher(Connector):
    role = "publisher"

    @classmethod
    def published_fields(cls, config: Any) -> list[str]:
        """Record fields this publisher sends besides the approved text (``fields:`` by convention).
        Validation requires a reviewer to have seen each of them."""
        return list(getattr(config, "fields", None) or [])

    @abstractmethod
    def publish(self, items: list[PublishItem]) -> None:
        """Deliver ``items``; raise ConnectorError if any could not be delivered."""

    def already_published(self, items: list[PublishItem]) -> set[str]:
        """Keys of ``items`` the destination already holds (for a crash between send and ledger)."""
        return set()

    def close(self) -> None:
        pass


CONNECTORS: Registry[type[Connector]] = Registry(
    "connector kind",
    "matcha.connectors",
    [
        "matcha.connectors.files",
        "matcha.connectors.file_publisher",
        "matcha.connectors.webhook",
        "matcha.connectors.qdrant",
        "matcha.connectors.pages",
    ],
)
