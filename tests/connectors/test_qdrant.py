"""The ``qdrant`` connection kind: one contract suite run against every backend, and its config errors.

Backends: the embedded engine (``qdrant-edge-py``) and ``qdrant-client`` (in its local mode, which
implements the client API a server URL uses; no Qdrant server binary is available to the tests).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient
from support import write

from matcha import Pipeline, PipelineError
from matcha.connectors.base import CONNECTORS
from matcha.connectors.qdrant import QdrantConnector, is_loopback, point_id
from matcha.connectors.qdrant.edge import EdgeStore
from matcha.connectors.qdrant.server import ClientStore
from matcha.connectors.qdrant.store import Distance, VectorStore
from matcha.errors import ConnectorError
from matcha.secrets import mask

pytestmark = pytest.mark.unit

Opener = Callable[[], VectorStore]


def _edge(folder: Path) -> Opener:
    return lambda: EdgeStore(folder / "edge")


def _client(folder: Path | None) -> Opener:
    # on files only where reopening is tested: local mode writes each point to SQLite, slowly
    def open_() -> VectorStore:
        client = QdrantClient(path=str(folder / "local")) if folder else QdrantClient(location=":memory:")
        return ClientStore(client, where="qdrant-client local mode")

    return open_


BACKENDS: dict[str, Callable[[Path | None], Opener]] = {"edge": lambda p: _edge(p or Path()), "client": _client}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def opener(backend: str, tmp_path: Path) -> Opener:
    """Opens a store of one backend on the same files each time (to test reopening)."""
    return BACKENDS[backend](tmp_path)


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[VectorStore]:
    st = BACKENDS[backend](tmp_path if backend == "edge" else None)()
    yield st
    st.close()


def unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def fill(store: VectorStore, n: int = 20, dim: int = 8, distance: Distance = "cosine", seed: int = 0) -> np.ndarray:
    vectors = unit_rows(n, dim, seed)
    store.ensure_collection("docs", dim, distance)
    store.upsert("docs", [f"r{i}" for i in range(n)], vectors,
                 [{"lang": "fr" if i % 2 else "en", "n": i, "vip": i % 5 == 0} for i in range(n)])
    return vectors


# -- the contract ---------------------------------------------------------------------------------
@pytest.mark.parametrize("distance", ["cosine", "dot", "euclid"])
def test_collection_is_created_with_its_size_and_distance(store: VectorStore, distance: Distance) -> None:
    assert store.collection("docs") is None
    store.ensure_collection("docs", 12, distance)
    assert store.collection("docs") == (12, distance)
    store.ensure_collection("docs", 12, distance)  # again: nothing to do
    assert store.count("docs") == 0


def test_a_different_dimension_or_distance_is_refused(store: VectorStore) -> None:
    store.ensure_collection("docs", 8, "cosine")
    with pytest.raises(ConnectorError, match=r"holds 8-dimension vectors.*this step has 16-dimension.*embed with "
                                             r"the model the collection was made with.*`collection:`"):
        store.ensure_collection("docs", 16, "cosine")
    with pytest.raises(ConnectorError, match=r"compared by cosine.*distance dot.*set `distance: cosine`"):
        store.ensure_collection("docs", 8, "dot")
    with pytest.raises(ConnectorError, match=r"'docs'.*holds 8-dimension vectors but the query vectors have 4"):
        store.require("docs", 4)


def test_upserting_the_same_records_twice_keeps_one_point_each(store: VectorStore) -> None:
    vectors = fill(store)
    assert store.count("docs") == 20
    store.upsert("docs", [f"r{i}" for i in range(20)], vectors, [{"lang": "de"}] * 20)  # a resumed batch
    assert store.count("docs") == 20
    [[top]] = store.search("docs", vectors[3:4], 1)
    assert top == {"id": "r3", "score": pytest.approx(1.0, abs=1e-5), "payload": {"lang": "de"}}  # replaced


def test_collections_survive_closing_and_reopening(opener: Opener) -> None:
    first = opener()
    vectors = fill(first, n=30)
    first.optimize("docs")
    first.close()
    first.close()  # twice is harmless
    again = opener()
    try:
        assert again.collection("docs") == (8, "cosine")
        assert again.count("docs") == 30
        assert again.search("docs", vectors[7:8], 1)[0][0]["id"] == "r7"
    finally:
        again.close()


@pytest.mark.parametrize("distance", ["cosine", "dot", "euclid"])
def test_search_returns_the_true_nearest_neighbours(store: VectorStore, distance: Distance) -> None:
    rng = np.random.default_rng(7)
    # not normalised: dot and cosine then rank differently, so each distance is really checked
    data = (rng.standard_normal((300, 16)) * rng.uniform(0.5, 2.0, (300, 1))).astype(np.float32)
    queries = rng.standard_normal((6, 16)).astype(np.float32)
    store.ensure_collection("docs", 16, distance)
    store.upsert("docs", [f"r{i}" for i in range(300)], data, [{}] * 300)
    store.optimize("docs")
    if distance == "cosine":
        unit = data / np.linalg.norm(data, axis=1, keepdims=True)
        scores = queries @ unit.T / np.linalg.norm(queries, axis=1, keepdims=True)
    elif distance == "dot":
        scores = queries @ data.T
    else:
        scores = -np.linalg.norm(queries[:, None, :] - data[None, :, :], axis=2)
    found = store.search("docs", queries, 10)
    for q, hits in enumerate(found):
        expected = np.argsort(-scores[q], kind="stable")[:10]
        assert [h["id"] for h in hits] == [f"r{i}" for i in expected]
        got = [h["score"] for h in hits]
        want = [abs(scores[q][i]) if distance == "euclid" else scores[q][i] for i in expected]
        assert got == pytest.approx(want, rel=1e-3, abs=1e-3)  # euclid: the distance itself, smallest first


def test_payload_filters_and_exclusions(store: VectorStore) -> None:
    vectors = fill(store)
    queries = vectors[:3]
    [fr] = store.search("docs", queries[:1], 50, {"lang": "fr"})
    assert len(fr) == 10 and all(h["payload"]["lang"] == "fr" for h in fr)
    [some] = store.search("docs", queries[:1], 50, {"n": [1, 2, 3]})
    assert sorted(h["id"] for h in some) == ["r1", "r2", "r3"]
    [vip_en] = store.search("docs", queries[:1], 50, {"vip": True, "lang": "en"})
    assert sorted(h["id"] for h in vip_en) == ["r0", "r10"]
    per_query = store.search("docs", queries, 50, [{"lang": "en"}, None, {"lang": ["fr", "de"]}])
    assert [len(hits) for hits in per_query] == [10, 20, 10]
    first, second, third = store.search("docs", queries, 3, exclude=["r0", None, "r2"])
    assert first[0]["id"] != "r0" and second[0]["id"] == "r1" and third[0]["id"] != "r2"
    assert all(h["id"] != "r0" for h in first)
    assert store.search("docs", queries[:1], 5, {"lang": "none-such"}) == [[]]


def test_payload_indexes_keep_filters_working(store: VectorStore, backend: str) -> None:
    vectors = fill(store)
    for _ in range(2):  # ensuring twice is harmless
        store.ensure_payload_index("docs", "lang", "keyword")
        store.ensure_payload_index("docs", "n", "integer")
        store.ensure_payload_index("docs", "vip", "bool")
    [hits] = store.search("docs", vectors[:1], 50, {"lang": "en", "vip": True, "n": [0, 5, 10, 11]})
    assert sorted(h["id"] for h in hits) == ["r0", "r10"]
    if isinstance(store, EdgeStore):
        schema = store._shard("docs").info().payload_schema
        assert {"lang", "n", "vip"} <= set(schema) and schema["lang"].points == 20


def test_k_larger_than_the_collection_returns_every_point(store: VectorStore) -> None:
    vectors = fill(store, n=4)
    [hits] = store.search("docs", vectors[:1], 100)
    assert sorted(h["id"] for h in hits) == ["r0", "r1", "r2", "r3"]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_missing_collection_says_to_index_first(store: VectorStore) -> None:
    with pytest.raises(ConnectorError, match=r"collection 'nope' does not exist.*Run an `index` step"):
        store.search("nope", unit_rows(1, 8), 3)
    with pytest.raises(ConnectorError, match=r"does not exist"):
        store.count("nope")


def test_wrong_vector_size_on_write_is_a_connector_error(store: VectorStore) -> None:
    store.ensure_collection("docs", 8, "cosine")
    with pytest.raises(ConnectorError, match=r"writing 1 points to collection 'docs' failed.*(dim|dimension)"):
        store.upsert("docs", ["r0"], unit_rows(1, 5), [{}])


# -- ids --------------------------------------------------------------------------------------------
def test_point_ids_are_stable_uuid5_of_the_record_id() -> None:
    # a golden value: if it changes, every existing collection would be duplicated on the next run
    assert point_id("m1") == "96d28972-844c-538f-991c-56db4b765a3b"
    assert point_id("m1") == point_id("m1") != point_id("m2")
    assert uuid.UUID(point_id("m1")).version == 5


# -- embedded engine specifics ----------------------------------------------------------------------
def test_embedded_stores_in_one_process_share_a_collection(tmp_path: Path) -> None:
    a, b = EdgeStore(tmp_path), EdgeStore(tmp_path)
    try:
        vectors = fill(a)
        assert b.count("docs") == 20  # b opens the shard a holds, instead of failing on its lock
        a.close()
        assert b.search("docs", vectors[:1], 1)[0][0]["id"] == "r0"  # still open for b
    finally:
        a.close()
        b.close()


@pytest.mark.integration
def test_embedded_store_held_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    holder = EdgeStore(tmp_path)
    fill(holder)
    code = ("import sys; from matcha.connectors.qdrant.edge import EdgeStore\n"
            "try:\n    EdgeStore(__import__('pathlib').Path(sys.argv[1])).count('docs')\n"
            "except Exception as exc:\n    print(exc)\n")
    try:
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                             timeout=60, env={**os.environ}).stdout
    finally:
        holder.close()
    assert "open in another process" in out and "set `url:`" in out
    assert EdgeStore(tmp_path).count("docs") == 20  # released: opens again


# -- the connection kind ----------------------------------------------------------------------------
def connector(tmp_path: Path, **cfg: object) -> QdrantConnector:
    return QdrantConnector("vec", QdrantConnector.Config(kind="qdrant", **cfg), base_dir=tmp_path)


def test_kind_is_registered_with_the_vectors_role() -> None:
    assert CONNECTORS.get("qdrant") is QdrantConnector
    assert QdrantConnector.role == "vectors"


def test_embedded_path_defaults_under_the_project_and_resolves_relative_paths(tmp_path: Path) -> None:
    assert connector(tmp_path).root() == tmp_path / ".matcha" / "qdrant" / "vec"
    assert connector(tmp_path, path="data/vectors").root() == tmp_path / "data" / "vectors"
    assert connector(tmp_path, path="/srv/vectors").root() == Path("/srv/vectors")
    store = connector(tmp_path).open()
    try:
        assert isinstance(store, EdgeStore)
        fill(store)
    finally:
        store.close()
    assert (tmp_path / ".matcha" / "qdrant" / "vec" / "docs" / "edge_config.json").is_file()


def test_server_key_comes_from_the_environment_and_is_never_shown(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    conn = connector(tmp_path, url="https://qdrant.example.com:6333", api_key_env="MATCHA_TEST_QDRANT_KEY")
    monkeypatch.delenv("MATCHA_TEST_QDRANT_KEY", raising=False)
    with pytest.raises(ConnectorError, match=r"MATCHA_TEST_QDRANT_KEY \(named by `api_key_env`\) is not set.*export"):
        conn.open()
    monkeypatch.setenv("MATCHA_TEST_QDRANT_KEY", "qdrant-secret-key-123")
    store = conn.open()  # the client connects lazily: nothing is sent here
    try:
        assert isinstance(store, ClientStore)
        assert "qdrant-secret-key-123" not in store.where + conn.describe()
        assert mask("key=qdrant-secret-key-123") == "key=***"  # registered for masking
    finally:
        store.close()


@pytest.mark.parametrize("host, local", [
    ("localhost", True), ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("::ffff:127.0.0.1", True), ("api.localhost", True), ("LOCALHOST.", True),
    ("10.0.0.5", False), ("qdrant.internal", False), ("localhost.example.com", False), ("0.0.0.0", False),
])
def test_loopback_hosts(host: str, local: bool) -> None:
    assert is_loopback(host) is local


GOOD = "name: t\nsteps:\n  - {id: ix, type: index, with: {connector: vec, collection: docs}}\n"


def load(project: Path, connection: str, pipeline: str = GOOD) -> Pipeline:
    write(project / "connectors" / "vec.yaml", connection)
    return Pipeline.from_yaml(pipeline, base_dir=project, file="p.yaml")


@pytest.mark.parametrize("connection", [
    "kind: qdrant\n",
    "kind: qdrant\npath: vectors\nquantization: none\nhnsw_ef: 128\n",
    "kind: qdrant\nurl: http://localhost:6333\n",
    "kind: qdrant\nurl: http://127.0.0.1:6333\n",
    "kind: qdrant\nurl: 'http://[::1]:6333'\n",
    "kind: qdrant\nurl: https://qdrant.example.com\napi_key_env: QDRANT_API_KEY\ntimeout: 5\n",
])
def test_good_connections_load(project: Path, connection: str) -> None:
    assert load(project, connection).steps == ["ix"]


CONNECTION_ERRORS = [
    ("remote-server-without-key", "kind: qdrant\nurl: https://qdrant.example.com:6333\n", 2, 1, "url",
     r"another machine \(qdrant.example.com\) needs an API key: add `api_key_env: QDRANT_API_KEY`.*localhost"),
    ("private-address-without-key", "kind: qdrant\nurl: http://10.0.0.5:6333\n", 2, 1, "url", r"needs an API key"),
    ("not-http", "kind: qdrant\nurl: grpc://localhost:6334\n", 2, 1, "url", r"http:// or https:// URL"),
    ("path-and-url", "kind: qdrant\npath: v\nurl: http://localhost:6333\n", 3, 1, "url", r"both set; keep one"),
    ("key-without-url", "kind: qdrant\napi_key_env: QDRANT_API_KEY\n", 1, 1, "", r"`api_key_env` is for a server"),
    ("key-pasted-in", "kind: qdrant\nurl: https://q.example.com\napi_key_env: 'sk-12 345'\n", 3, 1, "api_key_env",
     r"NAME of an environment variable"),
    ("unknown-field", "kind: qdrant\npaht: vectors\n", 2, 1, "paht", r"unknown field.*Remove this field"),
    ("bad-quantization", "kind: qdrant\nquantization: int4\n", 2, 1, "quantization",
     r"invalid value 'int4'.*'int8' or 'none'"),
]


@pytest.mark.parametrize("name, connection, line, col, path, pattern", CONNECTION_ERRORS,
                         ids=[c[0] for c in CONNECTION_ERRORS])
def test_connection_errors_are_located(project: Path, name: str, connection: str, line: int, col: int, path: str,
                                       pattern: str) -> None:
    with pytest.raises(PipelineError) as err:
        load(project, connection)
    [issue] = err.value.issues
    assert issue.file.endswith("connectors/vec.yaml")
    assert (issue.line, issue.col, issue.path) == (line, col, path), issue
    assert re.search(pattern, str(issue)), str(issue)
    assert "sk-12" not in str(err.value)  # a key pasted as a variable name is masked


STEP = "name: t\nsteps:\n  - id: s\n    type: {type}\n    with: {with_}\n"
STEP_ERRORS = [
    ("index-names-a-source", "index", "{connector: messages, collection: docs}", "steps[0].with.connector",
     r"'messages' is a source \(csv\), not a vectors.*Name a vectors connection here \(kinds: qdrant\)"),
    ("publish-names-vectors", "publish", "{connector: vec}", "steps[0].with.connector",
     r"'vec' is a vectors \(qdrant\), not a publisher.*kinds: file, webhook"),
    ("unknown-connection", "search", "{connector: vecs, collection: docs}", "steps[0].with.connector",
     r"unknown connector 'vecs'.*defined connectors: .*vec"),
    ("bad-collection-name", "index", "{connector: vec, collection: '../x'}", "steps[0].with.collection",
     r"should match pattern"),
    ("bad-distance", "index", "{connector: vec, collection: d, distance: cos}", "steps[0].with.distance",
     r"invalid value 'cos'.*'cosine', 'dot' or 'euclid'"),
    ("float-filter", "search", "{connector: vec, collection: d, filter: {score: 0.5}}", "steps[0].with.filter",
     r"filter 'score': 0.5 cannot be matched exactly; use a string, a whole number"),
    ("bad-field-ref", "search", "{connector: vec, collection: d, filter: {lang: {fiel: lang}}}",
     "steps[0].with.filter", r"must be \{field: NAME\}"),
    ("filterable-not-stored", "index", "{connector: vec, collection: d, payload: [text], filterable: [lang]}",
     "steps[0].with", r"filterable fields \['lang'\] are not stored: add them to `payload`"),
    ("zero-k", "search", "{connector: vec, collection: d, k: 0}", "steps[0].with.k", r"greater than or equal to 1"),
]


@pytest.mark.parametrize("name, type_, with_, path, pattern", STEP_ERRORS, ids=[c[0] for c in STEP_ERRORS])
def test_step_errors_are_located(project: Path, name: str, type_: str, with_: str, path: str, pattern: str) -> None:
    text = STEP.replace("{type}", type_).replace("{with_}", with_)
    if type_ == "publish":
        text = text.replace("steps:\n", "steps:\n  - {id: r, type: approval}\n").replace("steps[0]", "steps[1]")
        path = path.replace("steps[0]", "steps[1]")
    with pytest.raises(PipelineError) as err:
        load(project, "kind: qdrant\n", text)
    issues = [i for i in err.value.issues if i.path == path]
    assert issues, str(err.value)
    assert re.search(pattern, str(issues[0])), str(issues[0])
    assert issues[0].file == "p.yaml" and issues[0].line > 0
