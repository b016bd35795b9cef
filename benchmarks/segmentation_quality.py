"""Segmentation quality on labelled data: do segments recover the known categories?

For each dev set under ``/work/shared/data/segmentation/<set>/dev.csv`` (columns ``id,text,
category``; not part of the repository, see docs/segmentation.md), the texts are embedded with
the offline default embedder (``onnx``: USE multilingual v3) and, with ``--provider fastembed``,
the previous default (all-MiniLM-L6-v2 int8). Then, on the same vectors:

* ``matcha k=K``: :func:`matcha.ml.segment.fit_segmenter` with k = the true number of categories;
* ``matcha k=K MBK ½``: the large-data path forced on a small set: ``MiniBatchKMeans`` fitted on a
  seeded half of the rows (as above ``minibatch_threshold``), every row then assigned;
* ``KMeans ½``: reference for that row: scikit-learn ``KMeans`` (3 inits) on a seeded half, every
  row assigned to the nearest centre (what the sample costs, apart from the algorithm);
* ``matcha auto``: k chosen by silhouette over 2..12 (the k it chose is shown);
* ``matcha hdbscan``: the density option (segments found, share of noise);
* ``sklearn KMeans``: ``KMeans(n_clusters=K, random_state=seed)`` with scikit-learn's defaults.

NMI (arithmetic) and ARI against the categories, computed with :class:`matcha.ml.segment.Agreement`
(checked against scikit-learn), averaged over ``--seeds`` seeds (± standard deviation). Texts are
embedded as they are (``raw``) and after :func:`matcha.ml.normalise_text` (``norm``: links and
@handles masked, emoji spelled out). Embeddings are cached in the temp folder, so re-runs are fast.

    .venv/bin/python benchmarks/segmentation_quality.py [--provider onnx fastembed] [--seeds 5]
        [--data-dir DIR] [--keywords]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, pairwise_distances_argmin

from matcha.errors import MatchaError
from matcha.ml import normalise_text
from matcha.ml.keywords import KeywordCollector
from matcha.ml.segment import Agreement, FeatureBuilder, fit_segmenter
from matcha.models.base import PROVIDERS, Embedder

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "segmentation"
PREPARATIONS: dict[str, Callable[[str], str]] = {"raw": lambda text: text, "norm": normalise_text}


def read_set(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def embed_cached(provider: str, texts: list[str], cache_dir: Path) -> np.ndarray:
    """Embed with the provider's default model; cached by a hash of (provider, texts)."""
    digest = hashlib.sha256("\x1e".join([provider, *texts]).encode()).hexdigest()[:24]
    path = cache_dir / f"matcha-segquality-{provider}-{digest}.npy"
    if path.exists():
        return np.load(path)
    cls = PROVIDERS.get(provider)
    assert cls is not None
    embedder = cls("embedder", cls.Config.model_validate({"provider": provider}))
    assert isinstance(embedder, Embedder)
    vectors = np.concatenate([embedder.embed(texts[i : i + 256]) for i in range(0, len(texts), 256)])
    np.save(path, vectors.astype(np.float32))
    return vectors


def agreement(truth: list[str], labels: np.ndarray) -> tuple[float, float]:
    scores = Agreement().add(truth, labels)
    nmi, ari = scores.nmi(), scores.ari()
    # the streaming accumulator must give scikit-learn's figures exactly
    assert abs(nmi - normalized_mutual_info_score(truth, labels)) < 1e-9
    assert abs(ari - adjusted_rand_score(truth, labels)) < 1e-9
    return nmi, ari


def evaluate(X: np.ndarray, truth: list[str], seeds: int) -> dict[str, list[tuple[float, float, str]]]:
    """Per method: one (NMI, ARI, note) per seed."""
    n, K = len(X), len(set(truth))
    batches = lambda: (X[i : i + 500] for i in range(0, n, 500))  # noqa: E731 - streamed as the step does
    results: dict[str, list[tuple[float, float, str]]] = {}
    for seed in range(seeds):
        fixed = fit_segmenter(batches, n, k=K, seed=seed)
        results.setdefault(f"matcha k={K}", []).append((*agreement(truth, fixed.assign(X).labels), ""))
        half = fit_segmenter(batches, n, k=K, seed=seed, minibatch_threshold=0, sample_size=n // 2)
        results.setdefault(f"matcha k={K} MBK ½", []).append((*agreement(truth, half.assign(X).labels), ""))
        rows = np.sort(np.random.default_rng(seed).choice(n, n // 2, replace=False))
        centres = KMeans(n_clusters=K, random_state=seed, n_init=3).fit(X[rows]).cluster_centers_
        near = pairwise_distances_argmin(X, centres)
        results.setdefault(f"KMeans ½, n_init=3 k={K}", []).append((*agreement(truth, near), ""))
        auto = fit_segmenter(batches, n, k="auto", seed=seed)
        results.setdefault("matcha auto", []).append((*agreement(truth, auto.assign(X).labels), f"k={auto.k}"))
        try:
            dense = fit_segmenter(batches, n, algorithm="hdbscan", seed=seed)
            note = f"k={dense.k}, noise {dense.noise_fraction:.0%}"
            results.setdefault("matcha hdbscan", []).append((*agreement(truth, dense.assign(X).labels), note))
        except ValueError:  # every row is noise: no segment at all, which tells nothing about the categories
            results.setdefault("matcha hdbscan", []).append((0.0, 0.0, "all noise, no segment"))
        plain = KMeans(n_clusters=K, random_state=seed).fit(X).labels_
        results.setdefault(f"sklearn KMeans k={K}", []).append((*agreement(truth, plain), ""))
    return results


def summary(runs: list[tuple[float, float, str]]) -> str:
    nmi, ari = [r[0] for r in runs], [r[1] for r in runs]
    spread = lambda v: statistics.pstdev(v) if len(v) > 1 else 0.0  # noqa: E731
    notes = sorted({r[2] for r in runs if r[2]})
    return (f"{statistics.mean(nmi):.3f} ±{spread(nmi):.3f}  {statistics.mean(ari):.3f} ±{spread(ari):.3f}  "
            f"{'; '.join(notes[:3])}{' …' if len(notes) > 3 else ''}")


def show_keywords(X: np.ndarray, texts: list[str], truth: list[str]) -> None:
    K = len(set(truth))
    segmenter = fit_segmenter(lambda: iter([X]), len(X), k=K, seed=0)
    labels = segmenter.assign(X).labels
    collector = KeywordCollector(seed=0)
    collector.add(labels, texts)
    for segment, words in sorted(collector.keywords(6).items()):
        members = [t for t, s in zip(truth, labels, strict=True) if s == segment]
        top, count = max(((c, members.count(c)) for c in set(members)), key=lambda p: p[1])
        print(f"    segment {segment} ({len(members)}; {count / len(members):.0%} {top}): "
              + ", ".join(w for w, _ in words))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--provider", nargs="+", default=["onnx"], choices=["onnx", "fastembed"])
    parser.add_argument("--prepare", nargs="+", default=list(PREPARATIONS), choices=list(PREPARATIONS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--keywords", action="store_true", help="print each segment's keywords (k = K, seed 0)")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)

    sets = sorted(args.data_dir.glob("*/dev.csv"))
    if not sets:
        print(f"No <set>/dev.csv under {args.data_dir}; see docs/segmentation.md for the data", file=sys.stderr)
        return 2
    started = time.perf_counter()
    print(f"{'set':<26} {'embedder':<9} {'text':<5} {'method':<26} {'NMI':>12} {'ARI':>13}  notes")
    for path in sets:
        texts, truth = read_set(path)
        for provider in args.provider:
            for prepare in args.prepare:
                raw = embed_cached(provider, [PREPARATIONS[prepare](t) for t in texts], args.cache_dir)
                X = FeatureBuilder().transform(raw)
                for method, runs in evaluate(X, truth, args.seeds).items():
                    print(f"{path.parent.name:<26} {provider:<9} {prepare:<5} {method:<26} {summary(runs)}", flush=True)
                if args.keywords:
                    show_keywords(X, texts, truth)
    elapsed = time.perf_counter() - started
    print(f"\n{len(sets)} sets, {args.seeds} seeds, NMI/ARI mean ± std over seeds; {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MatchaError as exc:  # embedder not available: a message, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
