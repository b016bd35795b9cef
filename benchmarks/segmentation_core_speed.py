"""Speed and memory of the segmentation core against scikit-learn's MiniBatchKMeans.

Baseline: ``MiniBatchKMeans(n_clusters=k, random_state=0).fit(X)`` on the whole matrix in memory
(``fit`` also computes ``labels_`` for every row). Matcha: ``fit_segmenter`` + ``Segmenter.assign``
on every row, reading the same rows in batches from a file (as the ``cluster`` step reads its
store), so memory stays bounded by the batch size; by default the keyword sample and the
closest-members keeper are fed during the assignment pass too, as ``describe_segments`` would.
Matcha's time includes reading the file twice (from the page cache) and building the features;
the baseline's loading time is excluded. Each side runs in its own process, so peak RSS is its own.

``--streaming`` adds a third contender: ``MiniBatchKMeans.partial_fit`` over every batch (one
more pass) instead of fitting on the sample, to weigh the sample against a full streaming pass.

Data (cached in ``--cache-dir``, 1.5 GB for the default size): ``random`` unit vectors (no
structure), or ``mixture``: k overlapping Gaussian blobs on the sphere with unequal sizes, whose
blob ids give an NMI. Inertia is the sum of squared distances to the assigned centre (lower is
better), shown relative to the baseline's.

    .venv/bin/python benchmarks/segmentation_core_speed.py [--n 1000000] [--dim 384] [--k 10]
        [--data random|mixture] [--streaming] [--batch 10000] [--repeat 1] [--no-describe]
        [--k-auto] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROWS_PER_WRITE = 50_000


def data_files(cache_dir: Path, kind: str, n: int, dim: int, k: int) -> tuple[Path, Path | None]:
    """Seeded unit float32 vectors (and, for a mixture, the blob of each row); written once."""
    stem = cache_dir / (f"matcha-segbench-{n}x{dim}" + (f"-mixture{k}" if kind == "mixture" else ""))
    vectors, truth = stem.with_suffix(".f32"), stem.with_suffix(".blobs") if kind == "mixture" else None
    if vectors.exists() and vectors.stat().st_size == n * dim * 4:
        return vectors, truth
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((k, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = rng.dirichlet(np.full(k, 2.0))
    with vectors.with_suffix(".tmp").open("wb") as fh, open(truth or os.devnull, "wb") as blobs:
        for start in range(0, n, ROWS_PER_WRITE):
            rows = min(ROWS_PER_WRITE, n - start)
            X = rng.standard_normal((rows, dim), dtype=np.float32)
            if kind == "mixture":
                # noise of norm ~1.1 around unit centres: clusters overlap like sentence embeddings do
                label = rng.choice(k, rows, p=weights).astype(np.int8)
                X = centres[label] + X * np.float32(1.1 / np.sqrt(dim))
                label.tofile(blobs)
            X /= np.linalg.norm(X, axis=1, keepdims=True)
            X.tofile(fh)
    vectors.with_suffix(".tmp").replace(vectors)
    return vectors, truth


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def nmi(truth: Path | None, labels: np.ndarray) -> float | None:
    from matcha.ml.segment import Agreement

    return Agreement().add(np.fromfile(truth, dtype=np.int8), labels).nmi() if truth else None


def worker_baseline(args: argparse.Namespace) -> dict[str, Any]:
    from sklearn.cluster import MiniBatchKMeans

    X = np.fromfile(args.path, dtype=np.float32).reshape(args.n, args.dim)
    started = time.perf_counter()
    model = MiniBatchKMeans(n_clusters=args.k, random_state=0).fit(X)
    labels = model.labels_
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_mb": peak_rss_mb(), "inertia": float(model.inertia_), "k": args.k,
            "nmi": nmi(args.truth, labels)}


def reader(args: argparse.Namespace, reading: list[float]) -> Callable[[], Iterator[np.ndarray]]:
    from matcha.ml.segment import FeatureBuilder

    builder = FeatureBuilder()

    def batches() -> Iterator[np.ndarray]:
        with args.path.open("rb") as fh:
            for start in range(0, args.n, args.batch):
                t = time.perf_counter()
                count = min(args.batch, args.n - start) * args.dim
                rows = np.fromfile(fh, dtype=np.float32, count=count).reshape(-1, args.dim)
                reading[0] += time.perf_counter() - t
                yield builder.transform(rows)

    return batches


def worker_matcha(args: argparse.Namespace) -> dict[str, Any]:
    from matcha.ml.keywords import KeywordCollector, SmallestPerSegment
    from matcha.ml.segment import fit_segmenter

    reading = [0.0]
    batches = reader(args, reading)
    texts = [f"texte numéro {i % 97} sur la livraison et le service client" for i in range(args.batch)]
    ids = [f"c{i}" for i in range(args.batch)]
    started = time.perf_counter()
    if args.worker == "stream":
        segmenter = _streamed(batches, args)
    else:
        segmenter = fit_segmenter(batches, args.n, k="auto" if args.k_auto else args.k, seed=0)
    fitted = time.perf_counter()
    keywords, closest = KeywordCollector(seed=0), SmallestPerSegment(10)
    inertia, outliers, labels = 0.0, 0, np.empty(args.n, dtype=np.int64)
    position = 0
    for features in batches():
        assigned = segmenter.assign(features)
        inertia += float(np.dot(assigned.distances, assigned.distances))
        outliers += int(assigned.outliers.sum())
        labels[position : position + len(features)] = assigned.labels
        position += len(features)
        if args.describe:
            keywords.add(assigned.labels, texts[: len(features)])
            closest.add(assigned.labels, assigned.distances, ids[: len(features)])
    if args.describe:
        keywords.keywords(10)
    done = time.perf_counter()
    return {"seconds": done - started, "fit_seconds": fitted - started, "assign_seconds": done - fitted,
            "read_seconds": reading[0], "rss_mb": peak_rss_mb(), "inertia": inertia, "k": segmenter.k,
            "outliers": outliers, "nmi": nmi(args.truth, labels)}


def _streamed(batches: Callable[[], Iterator[np.ndarray]], args: argparse.Namespace) -> Any:
    """The alternative to the sample: MiniBatchKMeans.partial_fit over every batch (one more pass).

    The radius statistics are learned on the first batch, at no cost: this favours streaming a bit.
    """
    from sklearn.cluster import MiniBatchKMeans

    from matcha.ml.segment import Segmenter

    model = MiniBatchKMeans(n_clusters=args.k, random_state=0, n_init=3)
    first = None
    for features in batches():
        model.partial_fit(features)
        first = features if first is None else first
    assert first is not None
    return Segmenter.from_sample(model.cluster_centers_, first)


def run(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", kind, "--path", str(args.path), "--n", str(args.n),
               "--dim", str(args.dim), "--k", str(args.k), "--batch", str(args.batch)]
    command += ["--truth", str(args.truth)] if args.truth else []
    command += ["--k-auto"] if args.k_auto else []
    command += ["--no-describe"] if not args.describe else []
    env = dict(os.environ)
    if args.threads:  # both sides alike; on a busy machine OpenMP's spin-waiting punishes 2 threads
        env.update({name: str(args.threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def line(name: str, result: dict[str, Any], base: dict[str, Any]) -> str:
    text = f"  {name:<9} {result['seconds']:7.1f} s  x{result['seconds'] / base['seconds']:5.2f}  "
    text += f"{result['rss_mb']:6.0f} MB  inertia x{result['inertia'] / base['inertia']:.4f}"
    text += f"  NMI {result['nmi']:.3f}" if result.get("nmi") is not None else ""
    if "fit_seconds" in result:
        text += (f"  (fit {result['fit_seconds']:.1f} s, assign {result['assign_seconds']:.1f} s; reading the"
                 f" file, both passes: {result['read_seconds']:.1f} s; k={result['k']}, outliers {result['outliers']})")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--data", choices=["random", "mixture"], default="random")
    parser.add_argument("--k-auto", action="store_true", help="Matcha chooses k by silhouette over 2..12")
    parser.add_argument("--streaming", action="store_true", help="also time MiniBatchKMeans.partial_fit over all rows")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=1, help="alternate the contenders this many times")
    parser.add_argument("--no-describe", dest="describe", action="store_false",
                        help="leave out the keyword and closest-member keepers")
    parser.add_argument("--threads", type=int, help="BLAS/OpenMP threads of every side (default: all cores)")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--worker", choices=["baseline", "matcha", "stream"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--truth", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        work = worker_baseline if args.worker == "baseline" else worker_matcha
        print(json.dumps(work(args)))
        return 0

    args.path, args.truth = data_files(args.cache_dir, args.data, args.n, args.dim, args.k)
    print(f"{args.n:,} {args.data} unit vectors, {args.dim}-d float32; batches of {args.batch:,}; "
          f"k={'auto' if args.k_auto else args.k}; describe={args.describe}; threads={args.threads or 'all'}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    ratios = []
    for _ in range(args.repeat):
        base = run("baseline", args)
        print(line("baseline", base, base), flush=True)
        ours = run("matcha", args)
        print(line("matcha", ours, base), flush=True)
        ratios.append(ours["seconds"] / base["seconds"])
        if args.streaming:
            print(line("streamed", run("stream", args), base), flush=True)
    print(f"time ratio matcha / MiniBatchKMeans: {', '.join(f'{r:.2f}' for r in ratios)} "
          f"(load average now {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
