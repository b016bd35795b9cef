"""Segmentation at scale: N customers through embed → cluster → describe_segments → report, against
scikit-learn's ``MiniBatchKMeans`` on the same vectors held in memory.

The vectors come from the ``hashing`` provider (fast and deterministic), so the benchmark measures
Matcha, not an embedding model. The customers are synthetic: each writes a few words drawn mostly
from one of ``--themes`` vocabularies, plus order numbers that lean with the theme, so there are
segments to find and the agreement with the hidden theme (NMI) can be printed for both sides.

Sides, each in a fresh process so peak RSS is its own:

* ``matcha``: ``Pipeline.run()`` of the four steps on a CSV source, the run store on disk; the
  times of the cluster, describe_segments and report steps are taken from the run's own counters.
* ``baseline``: the same CSV read with the csv module, the same hashing vectors computed into one
  ``(N, dim)`` matrix, ``MiniBatchKMeans(n_clusters=k, random_state=0, n_init=3).fit(X)`` and its
  labels. No store, no keywords, no report.

Two ratios are printed: the segmentation steps (cluster + describe_segments + report) against the
baseline's fit, and the whole run (CSV in, vectors made, durable store, report out) against the
whole baseline. Peak RSS is that of each process.

    .venv/bin/python benchmarks/segmentation_scale.py              # 1,000,000 customers
    .venv/bin/python benchmarks/segmentation_scale.py --n 100000 --k 8
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DIM = 384
PIPELINE = """
name: segmentation-scale
source: {{connector: customers}}
models:
  fast: {{provider: hashing, dim: {dim}}}
steps:
  - {{id: embed, type: embed, with: {{field: text, model: fast}}}}
  - id: cluster
    type: cluster
    with: {{k: {k}, labels_field: theme}}   # the same vectors as the baseline: no numeric fields
  - {{id: segments, type: describe_segments, with: {{text: text, numeric: [orders, revenue]}}}}
  - {{id: report, type: report}}
"""
COMMON = ["order", "delivery", "thanks", "please", "today", "again", "store", "commande", "merci", "encore"]


def themes(count: int) -> list[list[str]]:
    rng = random.Random(1)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [["".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(30)] for _ in range(count)]


def make_csv(path: Path, n: int, count: int) -> None:
    rng = random.Random(0)
    vocab = themes(count)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "theme", "orders", "revenue", "text"])
        for i in range(n):
            t = rng.randrange(count)
            words = [rng.choice(vocab[t]) if rng.random() < 0.6 else rng.choice(COMMON)
                     for _ in range(rng.randint(5, 14))]
            orders = max(0, int(rng.gauss(3 + 2 * t, 2)))
            out.writerow([f"C{i:07d}", f"theme-{t}", orders, f"{orders * rng.uniform(20, 60):.2f}", " ".join(words)])


def run_matcha(root: Path, k: int) -> dict[str, object]:
    from matcha import Pipeline

    os.chdir(root)
    t = time.perf_counter()
    run = Pipeline.load(root / "pipelines" / "scale.yaml").run()
    run.raise_for_status()
    seconds = time.perf_counter() - t
    steps = {s.step_id: s for s in run.steps()}
    cluster = steps["cluster"].extra
    return {"seconds": seconds, "steps": {sid: s.seconds for sid, s in steps.items()},
            "segments": len(run.segments()), "nmi": cluster.get("nmi"), "out": steps["cluster"].out,
            "report_kb": (run.report.stat().st_size / 1e3) if run.report else None,
            "store_mb": (root / ".matcha" / "runs.db").stat().st_size / 1e6}


def run_baseline(root: Path, k: int) -> dict[str, object]:
    import numpy as np
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.metrics import normalized_mutual_info_score

    t = time.perf_counter()
    vectorizer = HashingVectorizer(n_features=DIM, ngram_range=(1, 2), alternate_sign=True, norm="l2",
                                   dtype=np.float32)
    with open(root / "customers.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    x = np.empty((len(rows), DIM), dtype=np.float32)
    for i in range(0, len(rows), 10_000):
        chunk = rows[i:i + 10_000]
        x[i:i + len(chunk)] = vectorizer.transform([r["text"] for r in chunk]).toarray()
    fit_start = time.perf_counter()
    labels = MiniBatchKMeans(n_clusters=k, random_state=0, n_init=3).fit(x).labels_
    fit = time.perf_counter() - fit_start
    total = time.perf_counter() - t
    nmi = normalized_mutual_info_score([r["theme"] for r in rows], labels)
    return {"seconds": total, "fit_seconds": fit, "nmi": round(float(nmi), 4), "out": len(rows)}


def child(kind: str, root: Path, k: int) -> None:
    result = run_matcha(root, k) if kind == "matcha" else run_baseline(root, k)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=8, help="segments (and hidden themes in the data)")
    ap.add_argument("--child", choices=["matcha", "baseline"])
    ap.add_argument("--root", type=Path)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.root, args.k)
        return
    with tempfile.TemporaryDirectory(prefix="matcha-segscale-") as tmp:
        root = Path(tmp)
        (root / "connectors").mkdir()
        (root / "pipelines").mkdir()
        (root / "connectors" / "customers.yaml").write_text("kind: csv\npath: customers.csv\n")
        (root / "pipelines" / "scale.yaml").write_text(PIPELINE.format(k=args.k, dim=DIM))
        t = time.perf_counter()
        make_csv(root / "customers.csv", args.n, args.k)
        csv_mb = (root / "customers.csv").stat().st_size / 1e6
        print(f"data: {args.n:,} customers, {args.k} hidden themes, CSV {csv_mb:.0f} MB "
              f"(written in {time.perf_counter() - t:.0f} s); vectors: hashing, {DIM}-d")
        res = {}
        for kind in ("baseline", "matcha"):
            env = {**os.environ, "MATCHA_LOG_LEVEL": "warning"}
            out = subprocess.run([sys.executable, __file__, "--child", kind, "--root", str(root), "--k", str(args.k)],
                                 capture_output=True, text=True, env=env)
            if out.returncode:
                sys.exit(f"{kind} failed:\n{out.stderr[-3000:]}")
            res[kind] = json.loads(out.stdout.strip().splitlines()[-1])
        b, m = res["baseline"], res["matcha"]
        steps = m["steps"]
        seg = sum(steps[s] or 0.0 for s in ("cluster", "segments", "report"))
        print(f"baseline   : {b['seconds']:7.1f} s (MiniBatchKMeans fit + labels {b['fit_seconds']:.1f} s)  "
              f"peak RSS {b['peak_rss_mb']:6.0f} MB  NMI {b['nmi']}")
        print(f"matcha run : {m['seconds']:7.1f} s  peak RSS {m['peak_rss_mb']:6.0f} MB  NMI {m['nmi']}  "
              f"{m['segments']} segments, report {m['report_kb']:.0f} KB, store {m['store_mb']:.0f} MB")
        print("  steps    : " + ", ".join(f"{s} {v:.1f} s" for s, v in steps.items() if v is not None))
        print(f"ratio segmentation steps (cluster+describe+report {seg:.1f} s) / MiniBatchKMeans fit: "
              f"{seg / b['fit_seconds']:.2f} (target <= 1.5)")
        print(f"ratio whole run / whole baseline: {m['seconds'] / b['seconds']:.2f}; "
              f"peak RSS {m['peak_rss_mb']:.0f} MB (target <= 2,000)")


if __name__ == "__main__":
    main()
