"""Server backend: a Qdrant server or cluster through ``qdrant-client``.

The same class runs against ``QdrantClient(location=":memory:")`` or ``QdrantClient(path=...)``
(qdrant-client's local mode), which implements the same client API; the tests use that, since the
calls for a server URL are the same. Servers build their HNSW index in the background, so
:meth:`optimize` has nothing to do here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
from qdrant_client import QdrantClient, models

from matcha.connectors.qdrant.store import (
    ID_KEY,
    Distance,
    Filter,
    Hit,
    PayloadKind,
    VectorStore,
    hit,
    per_query,
    point_id,
)
from matcha.errors import ConnectorError
from matcha.secrets import mask

_TO_CLIENT = {"cosine": models.Distance.COSINE, "dot": models.Distance.DOT, "euclid": models.Distance.EUCLID}
_FROM_CLIENT: dict[Any, Distance] = {v: k for k, v in _TO_CLIENT.items()}  # type: ignore[misc]
_SCHEMA = {"keyword": models.PayloadSchemaType.KEYWORD, "integer": models.PayloadSchemaType.INTEGER,
           "bool": models.PayloadSchemaType.BOOL}
T = TypeVar("T")


class ClientStore(VectorStore):
    """Collections on a Qdrant server (or in qdrant-client's local mode)."""

    def __init__(self, client: QdrantClient, *, where: str = "the Qdrant server", quantization: str = "int8",
                 hnsw_ef: int | None = None, oversampling: float = 2.0):
        self.client = client
        self.where = where
        self.quantization = quantization
        self.hnsw_ef = hnsw_ef
        self.oversampling = oversampling
        self._meta: dict[str, tuple[int, Distance]] = {}

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except ConnectorError:
            raise
        except Exception as exc:
            # the API key is registered as a secret: mask() removes it should a message quote it
            text = mask(f"{type(exc).__name__}: {exc}")[:300]
            raise ConnectorError(f"{self.where}: {what} failed: {text}. Check that the server is up and "
                                 "that `url` and the API key are right") from exc

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        with self._errors(what):
            return fn()

    def collection(self, name: str) -> tuple[int, Distance] | None:
        if name in self._meta:
            return self._meta[name]
        with self._errors(f"reading collection '{name}'"):
            if not self.client.collection_exists(name):
                return None
            params: Any = self.client.get_collection(name).config.params.vectors
        if isinstance(params, dict):
            params = params.get("")
        if params is None:
            raise ConnectorError(f"collection '{name}' in {self.where} has only named vectors; Matcha writes the "
                                 "default (unnamed) vector. Use another collection")
        self._meta[name] = (int(params.size), _FROM_CLIENT[params.distance])
        return self._meta[name]

    def _create(self, name: str, dim: int, distance: Distance) -> None:
        quant = None
        if self.quantization == "int8":
            quant = models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8))
        with self._errors(f"creating collection '{name}'"):
            try:
                self.client.create_collection(name, vectors_config=models.VectorParams(
                    size=dim, distance=_TO_CLIENT[distance]), quantization_config=quant)
            except Exception:
                if not self.client.collection_exists(name):  # not created meanwhile by another writer
                    raise

    def upsert(self, collection: str, ids: Sequence[str], vectors: np.ndarray,
               payloads: Sequence[dict[str, Any]]) -> None:
        rows = np.asarray(vectors, dtype=np.float32).tolist()
        points = [models.PointStruct(id=point_id(rid), vector=vec, payload={**payload, ID_KEY: rid})
                  for rid, vec, payload in zip(ids, rows, payloads, strict=True)]
        self._call(f"writing {len(points)} points to collection '{collection}'",
                   lambda: self.client.upsert(collection, points=points, wait=True))

    def search(self, collection: str, vectors: np.ndarray, k: int,
               filter: Filter | Sequence[Filter | None] | None = None,
               exclude: Sequence[str | None] | None = None) -> list[list[Hit]]:
        self.require(collection)
        rows = np.asarray(vectors, dtype=np.float32).tolist()
        filters = per_query(filter, len(rows))
        excluded = list(exclude) if exclude is not None else [None] * len(rows)
        rescore = models.QuantizationSearchParams(rescore=True, oversampling=self.oversampling)  # see EdgeStore
        params = models.SearchParams(hnsw_ef=self.hnsw_ef, quantization=rescore)
        requests = [models.QueryRequest(query=row, limit=k, with_payload=True, params=params,
                                        filter=_client_filter(f, x))
                    for row, f, x in zip(rows, filters, excluded, strict=True)]
        with warnings.catch_warnings():  # local mode (tests) searches exactly and says the params do nothing
            warnings.filterwarnings("ignore", message=".*search_params` has no effect")
            found = self._call(f"searching collection '{collection}'",
                               lambda: self.client.query_batch_points(collection, requests=requests))
        return [[hit(p.id, p.score, p.payload) for p in res.points] for res in found]

    def count(self, collection: str) -> int:
        self.require(collection)
        return self._call(f"counting collection '{collection}'",
                          lambda: self.client.count(collection, exact=True).count)

    def ensure_payload_index(self, collection: str, field: str, kind: PayloadKind) -> None:
        with self._errors(f"indexing the payload field '{field}' of collection '{collection}'"):
            have = self.client.get_collection(collection).payload_schema.get(field)
            if have is None or have.data_type != _SCHEMA[kind]:
                with warnings.catch_warnings():  # local mode (tests) has no payload indexes and says so
                    warnings.filterwarnings("ignore", message="Payload indexes have no effect")
                    self.client.create_payload_index(collection, field, field_schema=_SCHEMA[kind], wait=True)

    def close(self) -> None:
        with self._errors("closing the client"):
            self.client.close()


def _client_filter(match: Filter | None, exclude: str | None) -> models.Filter | None:
    must: list[Any] = [models.FieldCondition(key=key, match=models.MatchAny(any=value) if isinstance(value, list)
                                             else models.MatchValue(value=value))
                       for key, value in (match or {}).items()]
    must_not: list[Any] = [models.HasIdCondition(has_id=[point_id(exclude)])] if exclude is not None else []
    if not must and not must_not:
        return None
    return models.Filter(must=must or None, must_not=must_not or None)
