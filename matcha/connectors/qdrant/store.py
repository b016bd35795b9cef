"""The small interface every vector backend implements, and how point ids are derived.

Steps talk to a :class:`VectorStore`; a ``vectors`` connection (:class:`VectorConnector`) opens one.
Both Qdrant backends (embedded ``qdrant-edge``, server ``qdrant-client``) implement it, and one
contract test suite runs against each.

Point ids are uuid5 of the record id under :data:`NAMESPACE`, so indexing the same record again (a
resumed run, a second run over the same data) overwrites its point instead of adding one. The record
id itself is kept in the payload under ``id``, and searches return record ids, not UUIDs.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from matcha.connectors.base import Connector
from matcha.errors import ConnectorError

Distance = Literal["cosine", "dot", "euclid"]
DISTANCES: tuple[Distance, ...] = ("cosine", "dot", "euclid")

#: uuid5(NAMESPACE_URL, "matcha:qdrant:record-id"), written out: it is fixed forever, since changing it would
#: give every record a new point id and duplicate every existing collection on the next run.
NAMESPACE = uuid.UUID("a9d5744f-27d6-5738-93bd-cbf524d3112c")
ID_KEY = "id"  # payload key holding the record id

PayloadKind = Literal["keyword", "integer", "bool"]
Match = str | int | bool | list[str] | list[int]
Filter = dict[str, Match]  # payload key -> value it must equal (a list: any of its values)
Hit = dict[str, Any]  # {"id": record id, "score": float, "payload": {...}}


def point_id(record_id: str) -> str:
    """The Qdrant point id of a record: the same record id always gives the same UUID."""
    return str(uuid.uuid5(NAMESPACE, record_id))


def per_query(filters: Filter | Sequence[Filter | None] | None, n: int) -> list[Filter | None]:
    """One filter per query: a single filter applies to every query."""
    if filters is None or isinstance(filters, dict):
        return [filters] * n
    if len(filters) != n:
        raise ValueError(f"{len(filters)} filters for {n} queries")
    return list(filters)


def payload_kind(value: Any) -> PayloadKind | None:
    """The payload index type for a value (a list: its first item's), or None if it cannot be indexed."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "integer"
    return "keyword" if isinstance(value, str) else None


def hit(raw_id: Any, score: float, payload: dict[str, Any] | None) -> Hit:
    payload = dict(payload or {})
    rid = payload.pop(ID_KEY, None)
    return {"id": str(raw_id) if rid is None else rid, "score": float(score), "payload": payload}


class VectorStore(ABC):
    """Collections of (id, vector, payload) points with nearest-neighbour search.

    ``ensure_collection`` must be called before writing to a collection; searching a collection
    that does not exist is a :class:`ConnectorError` that says to index it first.
    """

    where: str = "the vector store"  # for messages, e.g. "embedded Qdrant at /srv/x"

    @abstractmethod
    def collection(self, name: str) -> tuple[int, Distance] | None:
        """``(dimension, distance)`` of an existing collection, else ``None``."""

    @abstractmethod
    def _create(self, name: str, dim: int, distance: Distance) -> None:
        """Create a collection (called by :meth:`ensure_collection` when it is missing). Creating one that
        appeared meanwhile is not an error: :meth:`ensure_collection` then checks its size and distance."""

    def ensure_collection(self, name: str, dim: int, distance: Distance) -> None:
        """Create ``name`` for ``dim``-dimension vectors compared by ``distance``, or check that the
        existing collection has exactly that size and distance."""
        have = self.collection(name)
        if have is None:
            self._create(name, dim, distance)
            have = self.collection(name)  # another writer may have created it first, differently
        if have is None:
            raise ConnectorError(f"collection '{name}' could not be created in {self.where}")
        if have != (dim, distance):
            fix = (f"set `distance: {have[1]}`, " if have[0] == dim else
                   "embed with the model the collection was made with, ")
            raise ConnectorError(
                f"collection '{name}' in {self.where} holds {have[0]}-dimension vectors compared by {have[1]}, "
                f"but this step has {dim}-dimension vectors and distance {distance}. To fix it, {fix}use another "
                f"collection (`collection:`), or delete this one to rebuild it{self._delete_hint(name)}")

    def _delete_hint(self, name: str) -> str:
        return ""

    def require(self, name: str, dim: int | None = None) -> tuple[int, Distance]:
        """The collection's ``(dimension, distance)``, or a ConnectorError saying how to create it."""
        have = self.collection(name)
        if have is None:
            raise ConnectorError(f"collection '{name}' does not exist in {self.where}. Run an `index` step into it "
                                 "first (in this pipeline or an earlier run), or fix `collection:`")
        if dim is not None and have[0] != dim:
            raise ConnectorError(f"collection '{name}' in {self.where} holds {have[0]}-dimension vectors but the "
                                 f"query vectors have {dim}; embed the queries with the model the collection was "
                                 "indexed with")
        return have

    @abstractmethod
    def upsert(self, collection: str, ids: Sequence[str], vectors: np.ndarray,
               payloads: Sequence[dict[str, Any]]) -> None:
        """Insert or replace one point per record id (idempotent: see :func:`point_id`)."""

    @abstractmethod
    def search(self, collection: str, vectors: np.ndarray, k: int,
               filter: Filter | Sequence[Filter | None] | None = None,
               exclude: Sequence[str | None] | None = None) -> list[list[Hit]]:
        """The ``k`` nearest points to each row of ``vectors``, best first: ``[{id, score, payload}]`` per query.

        ``filter`` (one for all queries, or one per query) keeps points whose payload matches every key;
        ``exclude`` gives, per query, a record id to leave out (the record searching for its neighbours).
        Scores are similarities (higher is closer) for cosine and dot, distances for euclid.
        """

    @abstractmethod
    def count(self, collection: str) -> int:
        """Number of points in the collection (exact)."""

    @abstractmethod
    def ensure_payload_index(self, collection: str, field: str, kind: PayloadKind) -> None:
        """Index a payload field so that filters on it stay fast on large collections (without one, a
        filtered search reads the payload of every candidate)."""

    def optimize(self, collection: str) -> None:  # noqa: B027 - optional: most backends have nothing to do
        """Finish pending index work (build the HNSW graph) so searches are fast. No-op for servers,
        which optimise in the background."""

    def close(self) -> None:  # noqa: B027 - optional, like optimize
        """Release files, locks and connections. Safe to call twice."""


class VectorConnector(Connector):
    """A connection to a vector store (role ``vectors``): ``open()`` gives a :class:`VectorStore`."""

    role: ClassVar[str] = "vectors"

    @abstractmethod
    def open(self) -> VectorStore:
        """Open the store (files, locks or a client). The caller closes it."""
