"""The step interface and the registry of step types (keyed by the YAML ``type:``).

A step type is a small class with a pydantic ``Config`` (validated from the step's ``with:``), a
cheap constructor, heavy work deferred to ``warm_up()``, and ``process(batch) -> BatchOutcome``.
The executor streams batches from the run store through ``process`` and writes the outcome back;
steps that need more control (approval, publish) override ``execute``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from matcha.registry import Registry

if TYPE_CHECKING:
    from matcha.connectors.base import Connector
    from matcha.models.base import Provider
    from matcha.runtime.store import RunStore
    from matcha.spec.models import StepSpec

Record = dict[str, Any]


class StepConfig(BaseModel):
    """Base of every step type's ``with:`` config. Unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


@dataclass
class BatchOutcome:
    """What a step made of a batch. Every input record lands in exactly one list."""

    out: list[Record] = field(default_factory=list)
    dropped: list[tuple[Record, str]] = field(default_factory=list)
    quarantined: list[tuple[Record, str]] = field(default_factory=list)


@dataclass
class StepContext:
    """What a running step may use. Built by the executor for one run."""

    run_id: str
    step_id: str
    store: RunStore
    base_dir: Path
    batch_size: int
    needs: list[str]
    models: Callable[[str], Provider]  # name -> loaded provider
    connectors: Callable[[str], Connector]  # name -> connector
    upstream: set[str]  # ids of every step upstream of this one
    approvals: set[str]  # ids of the upstream steps whose class ``approves`` (plugins included)
    progress: Callable[[str, int, int], None] = lambda step, done, total: None


@dataclass
class StaticIssue:
    """A problem a step finds in its own config at load time (``path`` is relative to ``with``)."""

    path: tuple[str | int, ...]
    message: str
    hint: str = ""


@dataclass
class LoadContext:
    """What a step may look at while the pipeline is validated (no models are loaded)."""

    base_dir: Path
    models: dict[str, Any]  # name -> validated provider config
    connectors: dict[str, Any]  # name -> validated connector config


class Step:
    """Base class of every step type."""

    type_name: ClassVar[str] = ""
    Config: ClassVar[type[StepConfig]] = StepConfig
    #: config fields that name something defined elsewhere: field -> "models" | "connectors"
    references: ClassVar[dict[str, str]] = {}
    #: for a ``models`` reference, what the model must be able to do ("embed" / "generate")
    model_capability: ClassVar[str | None] = None
    #: for a ``connectors`` reference, the connector role required ("source" / "publisher")
    connector_role: ClassVar[str | None] = None
    #: a publish step: the static approval gate applies to it
    publishes: ClassVar[bool] = False
    #: an approval step: paths through it satisfy the gate
    approves: ClassVar[bool] = False
    #: config fields holding templates: their output is stored and published, so a secret that a
    #: template transforms (``|upper``, a slice) could not be masked; ``${env:}`` is refused there
    templated: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: StepSpec, config: Any):
        self.spec = spec
        self.config = config

    @property
    def id(self) -> str:
        return self.spec.id

    def model_names(self) -> list[str]:
        """Names of the models this step uses (for preflight checks)."""
        return [str(getattr(self.config, f)) for f, kind in self.references.items()
                if kind == "models" and getattr(self.config, f, None)]

    def reviewed_fields(self) -> list[str] | None:
        """For an approval step: the record fields its reviewers see (what a publisher may send).
        ``None`` when the step does not say (plugins): publishers' fields are then not checked."""
        return None

    def check(self, ctx: LoadContext) -> list[StaticIssue]:
        """Extra load-time checks (files exist, examples valid...). Must not load models."""
        return []

    def warm_up(self, ctx: StepContext) -> None:
        """Load heavy things (models, templates) before the first batch."""

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        raise NotImplementedError

    def execute(self, ctx: StepContext, when: Callable[[Record], bool] | None, on_error: str) -> None:
        """Run the step over its whole input. The default streams batches through ``process``."""
        from matcha.runtime.batches import run_batches

        run_batches(self, ctx, when, on_error)


STEPS: Registry[type[Step]] = Registry(
    "step type",
    "matcha.steps",
    [
        "matcha.steps.script",
        "matcha.steps.approval",
        "matcha.steps.publish",
        "matcha.steps.transform",
        "matcha.steps.embed",
        "matcha.steps.classify",
        "matcha.steps.sentiment",
        "matcha.steps.generate",
    ],
)


def register_step(name: str) -> Callable[[type[Step]], type[Step]]:
    """Class decorator: make a step type available to pipelines as ``type: <name>``."""

    def deco(cls: type[Step]) -> type[Step]:
        cls.type_name = name
        STEPS.add(name, cls)
        return cls

    return deco
