"""The step interface and the registry of step types (keyed by the YAML ``type:``).

A step type is a small class with a pydantic ``Config`` (validated from the step's ``with:``), a
cheap constructor, heavy work deferred to ``warm_up()``, and ``process(batch) -> BatchOutcome``.
One driver (:mod:`matcha.runtime.batches`) streams batches from the run store through ``process`` and
writes what changed. The kernel decides how a step runs from its class capabilities, never its type:

- ``scope = "dataset"``: ``fit(data, ctx)`` first sees the step's whole input (streamed, as many passes
  as it needs) and returns a JSON-able state, saved once (a resume reads it back instead of fitting
  again); ``process`` then sees batches with ``ctx.state`` set; ``summarize`` may report figures
  over the step's output.
- ``aggregates = True`` (dataset scope): ``make_records(ctx)`` makes new records (new ids) from the
  state and ``group_of(batch, ctx)`` says which of them each input record went into, so lineage stays
  queryable and every input is accounted for; the new records then flow through ``process``.
- Side inputs: ``ctx.view(step_id)`` streams another upstream step's output, ``ctx.state_of(step_id)``
  reads what a dataset step learned; ``ctx.save_artifact`` stores a file the run produced.

Steps that need more control (approval, publish) override ``execute`` and still use the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from matcha.registry import Registry

if TYPE_CHECKING:
    from matcha.connectors.base import Connector
    from matcha.models.base import Provider
    from matcha.runtime.store import Artifact, RunStore
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
class ColumnOutcome:
    """What a ``columnar`` step made of a batch of :class:`Columns`: the fields it sets, one value per
    record of the batch (in order), and the records it quarantines (index in the batch -> reason).
    Every record passes on or is quarantined; none is dropped."""

    fields: dict[str, list[Any]] = field(default_factory=dict)
    quarantined: dict[int, str] = field(default_factory=dict)


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
    #: records per batch of a column pass (``settings.column_batch_size``)
    column_batch_size: int = 4096
    #: the pipeline's name
    pipeline: str = ""
    #: the source and every upstream step, in execution order: a record is merged over their rows
    lineage: list[str] = field(default_factory=list)
    #: what a dataset-scoped step learned in ``fit`` (``None`` for batch steps)
    state: dict[str, Any] | None = None
    #: opens the output of an upstream step as a dataset (side input)
    open_view: Callable[[str], DatasetView] | None = None
    #: stores a file the run produced: (name, content, media type) -> Artifact
    artifact_sink: Callable[[str, bytes, str], Artifact] | None = None

    def view(self, step_id: str) -> DatasetView:
        """The output of an upstream step, streamed from the store (a side input)."""
        if self.open_view is None or (step_id not in self.upstream and step_id != "source"):
            raise ValueError(f"step '{self.step_id}' can only read the output of a step upstream of it, "
                             f"not '{step_id}'")
        return self.open_view(step_id)

    def state_of(self, step_id: str) -> dict[str, Any] | None:
        """What an upstream dataset-scoped step learned (its saved state)."""
        return self.store.step_state(self.run_id, step_id)

    def save_artifact(self, name: str, content: bytes, media_type: str) -> Artifact:
        if self.artifact_sink is None:
            raise RuntimeError("artifacts are not available here")
        return self.artifact_sink(name, content, media_type)


class Columns:
    """A batch of records as columns: one list per field (``None`` where a record lacks the field),
    the records' ``ids`` (read on first use) and their store positions ``seqs``.

    A dataset pass over a million records reads columns far faster than records: the store decodes a
    part a field at a time and makes no dict per record."""

    __slots__ = ("_ids", "_values", "n", "seqs")

    def __init__(self, values: dict[str, list[Any]], n: int, ids: list[str] | Callable[[], list[str]],
                 seqs: Any = None):
        self._values, self.n, self._ids, self.seqs = values, n, ids, seqs

    @classmethod
    def of_records(cls, records: list[Record], fields: Collection[str]) -> Columns:
        return cls({f: [r.get(f) for r in records] for f in fields}, len(records), [str(r["id"]) for r in records])

    @property
    def ids(self) -> list[str]:
        if callable(self._ids):
            self._ids = self._ids()
        return self._ids

    @property
    def fields(self) -> list[str]:
        return list(self._values)

    def __getitem__(self, field: str) -> list[Any]:
        return self._values[field]

    def __len__(self) -> int:
        return self.n


class DatasetView:
    """A step's whole input (or an upstream step's output), streamed from the store in batches.

    Each call to :meth:`batches` or :meth:`columns` is a fresh pass; memory is bounded by the batch
    size. A pass that names the ``fields`` it reads is faster: the store only decodes what the steps
    that wrote them stored (records then hold those fields and ``id``, and may hold others)."""

    def __init__(self, count: int, batches: Callable[[int | None, Collection[str] | None], Iterator[list[Record]]],
                 columns: Callable[[int | None, Collection[str]], Iterator[Columns]] | None = None):
        self.count = count
        self._batches = batches
        self._columns = columns

    def batches(self, batch_size: int | None = None, fields: Collection[str] | None = None) -> Iterator[list[Record]]:
        return self._batches(batch_size, fields)

    def columns(self, fields: Collection[str], batch_size: int | None = None) -> Iterator[Columns]:
        """The same pass as :meth:`batches`, a batch of ``fields`` at a time as :class:`Columns`."""
        fields = list(dict.fromkeys(fields))
        if self._columns is not None:
            return self._columns(batch_size, fields)
        return (Columns.of_records(batch, fields) for batch in self._batches(batch_size, fields))

    def __len__(self) -> int:
        return self.count


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
    #: config fields that name something defined elsewhere: field -> "models" | "connectors", or with
    #: the field's own need: "models:embed", "connectors:source" (else the two class attributes below)
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
    #: ``"batch"`` or ``"dataset"`` (``fit`` sees the whole input first; see the module docstring)
    scope: ClassVar[str] = "batch"
    #: makes new records from many (``make_records`` / ``group_of``); requires dataset scope
    aggregates: ClassVar[bool] = False
    #: ``process`` may change nested values of a record in place (user scripts): the driver copies
    #: records deeply first, so what changed can still be told from what came in
    mutates_nested: ClassVar[bool] = False
    #: what the step makes, for the library (``"segments"``: ``Run.segments()``) and for the defaults of
    #: steps downstream (``"vectors"``: an embed step; ``"assignments"``: records with segments)
    produces: ClassVar[str | None] = None
    #: config fields that default to what the nearest upstream step producing a kind provides:
    #: field -> kind (``{"vectors": "vectors"}``: the field an upstream embed step writes)
    wants: ClassVar[dict[str, str]] = {}
    #: ``process_columns`` sets fields a batch of columns at a time (the fields of ``reads``): the
    #: driver reads and writes columns, without a dict per record (a dataset pass over a million
    #: records). ``process`` still runs where records are needed (a ``when`` condition).
    columnar: ClassVar[bool] = False
    #: its batches may run in another process or on another machine (a Ray actor that builds the
    #: step from the pipeline and shares the run store): False for a step whose work needs a
    #: resource only this process opens (an embedded vector engine)
    portable: ClassVar[bool] = True

    def __init__(self, spec: StepSpec, config: Any):
        self.spec = spec
        self.config = config

    @property
    def id(self) -> str:
        return self.spec.id

    def reads(self) -> list[str] | None:
        """The only fields ``process`` (or ``group_of``) reads, when a dataset-scoped step's passes can
        do without the rest: records then come with those fields and ``id`` (the store decodes only
        what the steps that wrote them stored), and a quarantined record is kept as read. None (the
        default): whole records. Ignored when the step has a ``when`` condition."""
        return None

    def model_names(self) -> list[str]:
        """Names of the models this step uses (for preflight checks)."""
        return [str(getattr(self.config, f)) for f, kind in self.references.items()
                if kind.partition(":")[0] == "models" and getattr(self.config, f, None)]

    def provides(self, kind: str) -> str:
        """For a step that ``produces`` ``kind``: what a downstream step's wanted field defaults to
        (the output field, by default, or the step id for whole datasets)."""
        return str(getattr(self.config, "output", None) or self.id)

    def reviewed_fields(self) -> list[str] | None:
        """For an approval step: the record fields its reviewers see (what a publisher may send).
        ``None`` when the step does not say (plugins): publishers' fields are then not checked."""
        return None

    def side_inputs(self) -> list[str]:
        """Ids of the steps whose output or state this step reads besides its input (``ctx.view``,
        ``ctx.state_of``): checked at load time to be upstream of it."""
        return []

    def written_fields(self) -> list[str]:
        """The record fields this step sets (kept per attempt by a ``repeat`` loop). Default: ``output``."""
        out = getattr(self.config, "output", None)
        return [out] if isinstance(out, str) else []

    def check(self, ctx: LoadContext) -> list[StaticIssue]:
        """Extra load-time checks (files exist, examples valid...). Must not load models."""
        return []

    def warm_up(self, ctx: StepContext) -> None:
        """Load heavy things (models, templates) before the first batch."""

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        raise NotImplementedError

    def process_columns(self, batch: Columns, ctx: StepContext) -> ColumnOutcome:
        """``columnar`` steps: ``process`` for a batch read as columns (see :attr:`columnar`)."""
        raise NotImplementedError

    def fit(self, data: DatasetView, ctx: StepContext) -> dict[str, Any]:
        """Dataset scope: learn from the whole input; the JSON-able result becomes ``ctx.state``."""
        raise NotImplementedError

    def make_records(self, ctx: StepContext) -> list[Record]:
        """Aggregating steps: the new records (each with a new ``id``), from ``ctx.state``."""
        raise NotImplementedError

    def group_of(self, batch: list[Record], ctx: StepContext) -> list[str | None]:
        """Aggregating steps: for each input record, the id of the new record it went into (or None:
        the record is dropped, with the reason that it belongs to no group)."""
        raise NotImplementedError

    def group_of_columns(self, batch: Columns, ctx: StepContext) -> list[str | None]:
        """:meth:`group_of` for a batch read as columns (the fields of ``reads``); by default, from
        records made of them."""
        fields = batch.fields
        records = [dict(zip(fields, values, strict=True), id=rid)
                   for rid, values in zip(batch.ids, zip(*(batch[f] for f in fields), strict=True), strict=True)] \
            if fields else [{"id": rid} for rid in batch.ids]
        return self.group_of(records, ctx)

    def summarize(self, output: DatasetView, ctx: StepContext) -> dict[str, Any]:
        """Dataset scope: figures about the step's whole output, shown with its counts."""
        return {}

    def execute(self, ctx: StepContext, when: Callable[[Record], bool] | None, on_error: str) -> None:
        """Run the step over its whole input (see :func:`matcha.runtime.batches.run_step`)."""
        from matcha.runtime.batches import run_step

        run_step(self, ctx, when, on_error)


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
        "matcha.steps.cluster",
        "matcha.steps.describe",
        "matcha.steps.report",
        "matcha.steps.vector_index",
        "matcha.steps.voice_profile",
        "matcha.steps.voice_score",
    ],
)


def register_step(name: str) -> Callable[[type[Step]], type[Step]]:
    """Class decorator: make a step type available to pipelines as ``type: <name>``."""

    def deco(cls: type[Step]) -> type[Step]:
        cls.type_name = name
        STEPS.add(name, cls)
        return cls

    return deco
