"""Vector store at scale: Matcha's embedded Qdrant backend (qdrant-edge) on up to a million points.

    .venv/bin/python benchmarks/qdrant_scale.py [--points 1000000] [--dim 512] [--queries 200]

Scale run (through :class:`matcha.connectors.qdrant.edge.EdgeStore`, the class the `index` and
`search` steps use): uploads ``--points`` random unit vectors in batches of ``--batch`` (the steps'
default batch size is 256) with a small payload, builds the HNSW index (``optimize``, what the
`index` step does once at its end), then times ``--queries`` single searches (k=10): p50/p95, and
recall@10 against an exact brute-force ranking (computed by regenerating the same vectors). Uniform
random vectors in 512 dimensions are HNSW's worst case; ``--data clustered`` scatters them around
1,000 centres, closer to how real embeddings are spread.

Comparison at ``--compare`` points (default 20,000): raw qdrant-client local mode (in memory, its
fastest setting; ``--client-files`` for files like the embedded store), raw qdrant-edge (the engine
without Matcha, same settings), and Matcha's EdgeStore, each doing the same upload and queries.
Prints upload time, points/s, query p50/p95, peak RSS and ratios.
"""

from __future__ import annotations

import argparse
import functools
import resource
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from matcha.connectors.qdrant.edge import EdgeStore

K = 10


@dataclass
class Result:
    upload_s: float
    optimize_s: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    found: list[list[str]] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)
    found_ef256: list[list[str]] = field(default_factory=list)


CLUSTERS = 0  # --data clustered: points scattered around this many centres, like real embeddings


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@functools.cache
def centres(dim: int) -> np.ndarray:
    return unit(np.random.default_rng(99).standard_normal((CLUSTERS, dim), dtype=np.float32))


def sample(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    rows = unit(rng.standard_normal((count, dim), dtype=np.float32))
    if CLUSTERS:  # cosine ~0.78 to its centre, ~0.6 to its cluster's other points
        rows = unit(centres(dim)[rng.integers(CLUSTERS, size=count)] + 0.8 * rows)
    return rows


def batches(n: int, dim: int, size: int, seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """The same unit vectors every time for the same arguments (regenerated for the exact ranking)."""
    for start in range(0, n, size):
        yield start, sample(np.random.default_rng([seed, start]), min(size, n - start), dim)


def queries(q: int, dim: int) -> np.ndarray:
    return sample(np.random.default_rng(12345), q, dim)


def exact_top(n: int, dim: int, size: int, seed: int, qs: np.ndarray) -> list[set[str]]:
    """Exact top-K ids per query by cosine, streamed over the regenerated data."""
    best_s = np.full((len(qs), K), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(qs), K), dtype=np.int64)
    for start, rows in batches(n, dim, size, seed):
        s = qs @ rows.T
        all_s = np.concatenate([best_s, s], axis=1)
        all_i = np.concatenate([best_i, np.arange(start, start + len(rows))[None, :].repeat(len(qs), 0)], axis=1)
        top = np.argpartition(-all_s, K - 1, axis=1)[:, :K]
        best_s, best_i = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)
    return [{f"p{i}" for i in row} for row in best_i]


def latencies(search: Callable[[np.ndarray], list[str]], qs: np.ndarray) -> tuple[float, float, list[list[str]]]:
    times, found = [], []
    for q in qs:
        t0 = time.perf_counter()
        found.append(search(q))
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), found


def recall(found: list[list[str]], truth: list[set[str]]) -> float:
    return float(np.mean([len(set(f) & t) / K for f, t in zip(found, truth, strict=True)]))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_parts() -> str:
    """Resident memory now, split into the process's own (anonymous) and mapped files (the collection's
    segments and WAL, which the kernel can drop and read again)."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    except OSError:
        return "n/a"
    mb = {k: int(fields[k].split()[0]) / 1024 for k in ("RssAnon", "RssFile") if k in fields}
    return ", ".join(f"{k} {v:,.0f} MB" for k, v in mb.items())


# -- the three contenders ---------------------------------------------------------------------------
def matcha_edge(root: Path, n: int, dim: int, size: int, qs: np.ndarray, *, quantization: str,
                label: str = "matcha") -> Result:
    store = EdgeStore(root, quantization=quantization)
    store.ensure_collection("bench", dim, "cosine")
    store.ensure_payload_index("bench", "bucket", "integer")  # what `index` does for a `filterable` field
    upload = 0.0
    for start, rows in batches(n, dim, size, seed=1):
        ids = [f"p{i}" for i in range(start, start + len(rows))]
        payloads = [{"bucket": i % 10} for i in range(start, start + len(rows))]
        t0 = time.perf_counter()
        store.upsert("bench", ids, rows, payloads)
        upload += time.perf_counter() - t0
        if n >= 200_000 and (start // size) % max(1, 100_000 // size) == 0:
            print(f"  [{label}] {start + len(rows):,} points uploaded, {upload:.0f} s", flush=True)
    assert store.count("bench") == n
    out = Result(upload)
    if n >= 200_000:  # what a search costs before the index is built (brute force over plain segments)
        out.extra["plain_p50"], _, _ = latencies(lambda q: [h["id"] for h in store.search("bench", q[None], K)[0]],
                                                 qs[:10])
        print(f"  [{label}] before the index: query p50 {out.extra['plain_p50']:.1f} ms; building the HNSW "
              "index...", flush=True)
    t0 = time.perf_counter()
    store.optimize("bench")
    out.optimize_s = time.perf_counter() - t0
    out.p50, out.p95, out.found = latencies(lambda q: [h["id"] for h in store.search("bench", q[None], K)[0]], qs)
    out.extra["filtered_p50"], _, _ = latencies(
        lambda q: [h["id"] for h in store.search("bench", q[None], K, {"bucket": 3})[0]], qs)
    wide = EdgeStore(root, quantization=quantization, hnsw_ef=256)  # shares the open shard
    out.extra["ef256_p50"], _, out.found_ef256 = latencies(
        lambda q: [h["id"] for h in wide.search("bench", q[None], K)[0]], qs)
    wide.close()
    store.close()
    t0 = time.perf_counter()  # what a `search` step after `index` does: open the collection, first query
    again = EdgeStore(root, quantization=quantization)
    again.search("bench", qs[:1], K)
    out.extra["reopen_s"] = time.perf_counter() - t0
    again.close()
    return out


def raw_edge(root: Path, n: int, dim: int, size: int, qs: np.ndarray, quantization: str) -> Result:
    import qdrant_edge as qe

    quant = qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8) if quantization == "int8" else None
    shard = qe.EdgeShard.create(str(root), qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine), quantization_config=quant))
    upload = 0.0
    for start, rows in batches(n, dim, size, seed=1):
        t0 = time.perf_counter()  # building the points is part of using the library
        points = [qe.Point(str(uuid.uuid5(uuid.NAMESPACE_URL, f"p{i}")), row, {"id": f"p{i}", "bucket": i % 10})
                  for i, row in zip(range(start, start + len(rows)), rows, strict=True)]
        shard.update(qe.UpdateOperation.upsert_points(points))
        upload += time.perf_counter() - t0
    t0 = time.perf_counter()
    shard.optimize()
    build = time.perf_counter() - t0
    params = qe.SearchParams(quantization=qe.QuantizationSearchParams(rescore=True, oversampling=2.0))  # as Matcha
    p50, p95, found = latencies(lambda q: [(p.payload or {})["id"] for p in shard.query(qe.QueryRequest(
        limit=K, query=qe.Query.Nearest(q.tolist()), with_payload=True, params=params))], qs)
    shard.close()
    return Result(upload, build, p50, p95, found)


def raw_client(root: Path | None, n: int, dim: int, size: int, qs: np.ndarray) -> Result:
    import warnings

    from qdrant_client import QdrantClient, models

    warnings.filterwarnings("ignore", message=".*Local mode is not recommended.*")
    # in memory: the library's fastest setting (with path=, every point is also committed to SQLite)
    client = QdrantClient(location=":memory:") if root is None else QdrantClient(path=str(root))
    client.create_collection("bench", vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE))
    upload = 0.0
    for start, rows in batches(n, dim, size, seed=1):
        t0 = time.perf_counter()
        points = [models.PointStruct(id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"p{i}")), vector=row.tolist(),
                                     payload={"id": f"p{i}", "bucket": i % 10})
                  for i, row in zip(range(start, start + len(rows)), rows, strict=True)]
        client.upsert("bench", points=points)
        upload += time.perf_counter() - t0
    p50, p95, found = latencies(lambda q: [(p.payload or {})["id"] for p in client.query_points(
        "bench", query=q.tolist(), limit=K, with_payload=True).points], qs)
    client.close()
    return Result(upload, 0.0, p50, p95, found)


def show(name: str, n: int, r: Result, truth: list[set[str]]) -> None:
    print(f"{name:<25} upload {r.upload_s:8.1f} s ({n / r.upload_s:>8,.0f} points/s)  index build "
          f"{r.optimize_s:7.1f} s  query p50 {r.p50:6.2f} ms  p95 {r.p95:6.2f} ms  "
          f"recall@10 {recall(r.found, truth):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=256, help="points per upsert (the steps' default batch size)")
    ap.add_argument("--compare", type=int, default=20_000, help="points for the comparison with the raw libraries")
    ap.add_argument("--quantization", choices=["int8", "none"], default="int8")
    ap.add_argument("--client-files", action="store_true",
                    help="run qdrant-client local mode on files (path=) instead of in memory (much slower upload)")
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary folder)")
    ap.add_argument("--data", choices=["random", "clustered"], default="random",
                    help="clustered: around 1,000 centres (closer to real embeddings than uniform random vectors)")
    args = ap.parse_args()
    global CLUSTERS
    CLUSTERS = 1000 if args.data == "clustered" else 0
    base = args.dir or Path(tempfile.mkdtemp(prefix="matcha-qdrant-"))
    qs = queries(args.queries, args.dim)
    try:
        print(f"scale: {args.points:,} {args.data} points x {args.dim} dims, batches of {args.batch}, "
              f"quantization {args.quantization}, {args.queries} queries (k={K})", flush=True)
        big = matcha_edge(base / "scale", args.points, args.dim, args.batch, qs, quantization=args.quantization)
        peak, parts = rss_mb(), rss_parts()
        truth = exact_top(args.points, args.dim, args.batch, 1, qs)
        show("matcha EdgeStore", args.points, big, truth)
        if "plain_p50" in big.extra:
            print(f"  before the index build (brute force): query p50 {big.extra['plain_p50']:.1f} ms")
        print(f"  payload filter (1 point in 10 matches): query p50 {big.extra['filtered_p50']:.2f} ms")
        print(f"  hnsw_ef 256: query p50 {big.extra['ef256_p50']:.2f} ms, "
              f"recall@10 {recall(big.found_ef256, truth):.3f}")
        size_gb = sum(f.stat().st_size for f in (base / "scale").rglob("*") if f.is_file()) / 1e9
        print(f"  reopening the collection + first query: {big.extra['reopen_s']:.1f} s")
        print(f"  peak RSS {peak:,.0f} MB (mapped files included; now: {parts}); on disk {size_gb:.2f} GB",
              flush=True)

        n = args.compare
        print(f"\ncomparison: {n:,} points x {args.dim} dims, batches of {args.batch}", flush=True)
        truth_c = exact_top(n, args.dim, args.batch, 1, qs)
        client = raw_client(base / "client" if args.client_files else None, n, args.dim, args.batch, qs)
        show(f"raw qdrant-client {'files' if args.client_files else 'memory'}", n, client, truth_c)
        edge = raw_edge(base / "edge", n, args.dim, args.batch, qs, args.quantization)
        show("raw qdrant-edge", n, edge, truth_c)
        ours = matcha_edge(base / "small", n, args.dim, args.batch, qs, quantization=args.quantization)
        show("matcha EdgeStore", n, ours, truth_c)
        print(f"\nmatcha EdgeStore vs raw qdrant-client local mode: upload {client.upload_s / ours.upload_s:.1f}x "
              f"faster, query p50 {client.p50 / ours.p50:.1f}x faster")
        print(f"matcha EdgeStore vs raw qdrant-edge (same engine and settings): upload time "
              f"{ours.upload_s / edge.upload_s:.2f}x, query p50 {ours.p50 / edge.p50:.2f}x")
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
