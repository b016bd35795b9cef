"""``index`` and ``search``: store records' vectors in a vector connection, find each record's neighbours.

Both read the vectors an ``embed`` step stored (the record holds a ``{model, dim, key}`` reference,
see :mod:`matcha.steps.vectors`) and talk to a ``vectors`` connection (``kind: qdrant``) through
its :class:`~matcha.connectors.qdrant.store.VectorStore`.

- ``index`` upserts one point per record: the point id is derived from the record id, so a resumed
  or repeated run overwrites points instead of duplicating them. The collection is created on the
  first batch with the vectors' dimension. When every batch is written it builds the search index
  (embedded engine) once.
- ``search`` adds the ``k`` nearest points to each record: ``[{id, score, ...payload}]``, best first,
  leaving the record itself out (``exclude_self``). ``filter`` keeps points whose payload equals
  given values; a value ``{field: NAME}`` takes it from the record's own field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import structlog
from pydantic import Field, field_validator, model_validator

from matcha.connectors.qdrant.store import (
    Distance,
    Filter,
    VectorConnector,
    VectorStore,
    payload_kind,
    point_id,
)
from matcha.runtime.faults import crash_point
from matcha.steps.base import BatchOutcome, Record, Step, StepConfig, StepContext, register_step
from matcha.steps.vectors import vectors_of

log = structlog.get_logger("matcha.step")

COLLECTION = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"  # also a folder name for the embedded engine
FILTER_VALUES = ("a string, a whole number, true/false, a list of strings or of whole numbers, "
                 "or {field: NAME} for the record's own value")


class VectorStepConfig(StepConfig):
    connector: str = Field(description="Name of a vectors connection (connectors/NAME.yaml with kind: qdrant).")
    collection: str = Field(pattern=COLLECTION, description="Collection name: letters, digits, '_' and '-', "
                            "starting with a letter or digit, at most 64 characters.")
    vector: str = Field("embedding", description="Field holding the vector reference written by an `embed` step.")


class IndexConfig(VectorStepConfig):
    payload: list[str] = Field(default_factory=list, description="Record fields stored with each point and "
                               "returned by `search` (the record id always is).")
    distance: Distance = Field("cosine", description="How vectors are compared when the collection is created: "
                               "cosine, dot or euclid.")
    filterable: list[str] = Field(default_factory=list, description="Payload fields `search` filters on: "
                                  "indexed so filtered searches stay fast on large collections.")
    output: str | None = Field("indexed", description="Field receiving {connector, collection, point}; "
                               "null: add nothing.")

    @model_validator(mode="after")
    def _filterable_is_stored(self) -> IndexConfig:
        missing = [f for f in self.filterable if f not in self.payload]
        if missing:
            raise ValueError(f"filterable fields {missing} are not stored: add them to `payload` too")
        return self


def _match_value(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and (all(isinstance(v, str) for v in value)
                                or all(isinstance(v, int) and not isinstance(v, bool) for v in value))
    return isinstance(value, str | int | bool)


class SearchConfig(VectorStepConfig):
    k: int = Field(5, ge=1, le=1000, description="Number of neighbours per record.")
    filter: dict[str, Any] = Field(default_factory=dict, description="Payload values the neighbours must have: "
                                   "{payload_field: value}; a list matches any of its values; {field: NAME} "
                                   "takes the value from the record's field NAME.")
    exclude_self: bool = Field(True, description="Leave the record's own point out of its neighbours.")
    output: str = Field("neighbors", description="Field receiving [{id, score, ...payload}], best first.")

    @field_validator("filter")
    @classmethod
    def _filter_values(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, match in value.items():
            if isinstance(match, dict):
                if set(match) != {"field"} or not isinstance(match["field"], str):
                    raise ValueError(f"filter '{key}': a mapping must be {{field: NAME}} (the record field whose "
                                     f"value the neighbours must have); got keys {sorted(match)}")
            elif not _match_value(match):
                raise ValueError(f"filter '{key}': {match!r} cannot be matched exactly; use {FILTER_VALUES}")
        return value


class _VectorStep(Step):
    portable = False  # Qdrant's embedded engine is opened by one process
    references: ClassVar[dict[str, str]] = {"connector": "connectors"}
    connector_role = "vectors"

    _store: VectorStore | None = None

    def warm_up(self, ctx: StepContext) -> None:
        if self._store is None:
            conn = ctx.connectors(self.config.connector)
            assert isinstance(conn, VectorConnector), f"{conn.describe()} is not a vectors connection"
            self._store = conn.open()

    @property
    def store(self) -> VectorStore:
        assert self._store is not None, "warm_up() opens the store"
        return self._store

    def execute(self, ctx: StepContext, when: Callable[[Record], bool] | None, on_error: str) -> None:
        try:
            super().execute(ctx, when, on_error)
            self.finish(ctx)
        finally:
            store, self._store = self._store, None
            if store is not None:
                store.close()

    def finish(self, ctx: StepContext) -> None:
        """After the last batch (also when a resume had no batch left)."""


@register_step("index")
class IndexStep(_VectorStep):
    Config = IndexConfig

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        cfg = self.config
        records, vectors, bad = vectors_of(ctx, batch, cfg.vector)
        if records:
            self.store.ensure_collection(cfg.collection, int(vectors.shape[1]), cfg.distance)
            payloads = [{f: rec[f] for f in cfg.payload if f in rec} for rec in records]
            self.store.upsert(cfg.collection, [str(rec["id"]) for rec in records], vectors, payloads)
            self._index_payload(payloads)
            crash_point("index.after_upsert")  # tests: killed before the batch is recorded as done
            if cfg.output:
                for rec in records:
                    rec[cfg.output] = {"connector": cfg.connector, "collection": cfg.collection,
                                       "point": point_id(str(rec["id"]))}
        return BatchOutcome(out=records, quarantined=bad)

    def warm_up(self, ctx: StepContext) -> None:
        super().warm_up(ctx)
        self._pending = list(self.config.filterable)  # payload indexes not yet ensured in this execution

    def _index_payload(self, payloads: list[Record]) -> None:
        for field in list(self._pending):
            kind = next((k for p in payloads if (k := payload_kind(p.get(field))) is not None), None)
            if kind is not None:  # else no record of this batch has a value to tell its type: try the next
                self.store.ensure_payload_index(self.config.collection, field, kind)
                self._pending.remove(field)

    def finish(self, ctx: StepContext) -> None:
        # Also after a resume that found every batch done: a kill during the build must not leave the
        # collection without its index.
        self.warm_up(ctx)
        if self.store.collection(self.config.collection) is not None:
            log.info("building the vector index", step=ctx.step_id, collection=self.config.collection,
                     points=self.store.count(self.config.collection))
            self.store.optimize(self.config.collection)


@register_step("search")
class SearchStep(_VectorStep):
    Config = SearchConfig

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        cfg = self.config
        records, vectors, bad = vectors_of(ctx, batch, cfg.vector)
        out = BatchOutcome(quarantined=bad)
        keep: list[int] = []
        filters: list[Filter | None] = []
        for i, rec in enumerate(records):
            found, why = self._filter_for(rec)
            if why:
                out.quarantined.append((rec, why))
            else:
                keep.append(i)
                filters.append(found)
        if not keep:
            return out
        matrix = vectors[keep]
        self.store.require(cfg.collection, int(matrix.shape[1]))
        chosen = [records[i] for i in keep]
        exclude = [str(rec["id"]) for rec in chosen] if cfg.exclude_self else None
        hits = self.store.search(cfg.collection, matrix, cfg.k, filters, exclude)
        for rec, found_hits in zip(chosen, hits, strict=True):
            rec[cfg.output] = [{**h["payload"], "id": h["id"], "score": round(h["score"], 6)} for h in found_hits]
        out.out = chosen
        return out

    def _filter_for(self, rec: Record) -> tuple[Filter | None, str]:
        """The record's filter, or a reason to quarantine it (a referenced field it lacks)."""
        if not self.config.filter:
            return None, ""
        resolved: Filter = {}
        for key, match in self.config.filter.items():
            if isinstance(match, dict):
                value = rec.get(match["field"])
                if not _match_value(value):
                    what = "is missing" if value is None else f"holds {type(value).__name__} {str(value)[:40]!r}"
                    return None, (f"filter '{key}' takes its value from field '{match['field']}', which {what}; "
                                  f"it must hold {FILTER_VALUES.split(', or')[0]}")
                match = value
            resolved[key] = match
        return resolved, ""
