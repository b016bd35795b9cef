"""Embed memory: peak RSS and throughput of Matcha's `embed` step against the raw libraries at
their defaults, on real review texts and on a worst case with very long texts.

    .venv/bin/python benchmarks/embed_memory.py [--n 10000] [--providers onnx,fastembed]
        [--data reviews,worst] [--repeat 1] [--rss-cap-mb 6000] [--data-dir DIR]

Texts (read from ``../shared/data``, never copied into the repository; see docs/benchmarks.md):

* ``reviews``: English clothing reviews (Kaggle, CC0) and French TV-series reviews (Allociné),
  cycled to N unique texts with a number appended (so no cache hit can help Matcha);
* ``worst``: the same, with every 50th text replaced by a document of 5,000 to 20,000 words
  (real pages of the ``tone`` sets joined end to end), one of 100,000 words, and two of 50,000
  characters of the kinds that cost the USE graph most memory per character (punctuation, kana).

Sides, each run in a fresh subprocess so that peaks are independent:

* ``matcha``: a whole run of a one-step ``embed`` pipeline at default settings (batches of 256
  records, the provider's default settings): records into the run store, the step, vectors out;
* ``raw``: for ``fastembed``, ``TextEmbedding(...).embed(texts)`` at fastembed's defaults
  (batch 256, input order); for ``onnx``, a plain onnxruntime loop over the USE graph with the
  previous batching (64 texts per call, input order).

Rates include building the model. The parent watches each child's RSS and stops it above
``--rss-cap-mb`` (the machine is shared; raw fastembed on the worst case would need about 20 GB)
or after ``--time-limit`` seconds, and says so.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"
REVIEW_SETS = ("segmentation/womens_clothing_reviews/dev.csv", "sentiment/fr_allocine_series_reviews/dev.csv")
RAW_ONNX_BATCH = 64  # the onnx provider's texts per call before texts were grouped by length


def review_texts(data: Path, n: int) -> list[str]:
    base: list[str] = []
    for name in REVIEW_SETS:
        with (data / name).open(encoding="utf-8", newline="") as fh:
            base += [row["text"] for row in csv.DictReader(fh) if row["text"].strip()]
    return [f"{base[i % len(base)]} (review {i})" for i in range(n)]


def worst_texts(data: Path, n: int) -> list[str]:
    words = " ".join(p.read_text(encoding="utf-8") for p in sorted((data / "tone").glob("*/*.md"))).split()

    def document(i: int, length: int) -> str:
        start = (i * 7919) % len(words)
        return " ".join(words[(start + k) % len(words)] for k in range(length))

    texts = review_texts(data, n)
    for i in range(25, n, 50):
        texts[i] = document(i, 5_000 + (i * 104_729) % 15_001)
    texts[n // 2] = document(n // 2, 100_000)
    rng = random.Random(0)
    texts[n // 3] = "".join(rng.choice("!?.,;:()[]{}<>/|@#$%^&*-+=~'\"") for _ in range(50_000))
    texts[2 * n // 3] = "".join(chr(rng.randint(0x3041, 0x3096)) for _ in range(50_000))
    return texts


def _child(side: str, provider: str, kind: str, n: int, data: Path) -> dict[str, float]:
    import numpy as np
    import onnxruntime as ort
    from onnxruntime_extensions import get_library_path

    from matcha.models.bundle import EMBED_MODEL, default_embed_model_dir, default_use_model_path

    if provider == "fastembed":
        from fastembed import TextEmbedding
    if side == "matcha":
        from matcha import Pipeline
    texts = review_texts(data, n) if kind == "reviews" else worst_texts(data, n)
    start = time.perf_counter()  # imports done on both sides: timings hold model loading and the work
    if side == "raw" and provider == "fastembed":
        model = TextEmbedding(EMBED_MODEL, specific_model_path=str(default_embed_model_dir()))
        assert sum(1 for _ in model.embed(texts)) == n
    elif side == "raw":
        options = ort.SessionOptions()
        options.register_custom_ops_library(get_library_path())
        session = ort.InferenceSession(str(default_use_model_path()), options, providers=["CPUExecutionProvider"])
        for i in range(0, n, RAW_ONNX_BATCH):
            session.run(["outputs"], {"inputs": np.asarray(texts[i:i + RAW_ONNX_BATCH], dtype=object)})
    else:
        _run_step(Pipeline, provider, texts)
    elapsed = time.perf_counter() - start
    return {"rate": n / elapsed, "seconds": elapsed,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_step(pipeline_class: Any, provider: str, texts: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="matcha-bench-") as home:
        pipeline = pipeline_class.from_yaml(
            f"name: bench\nmodels:\n  default-embedder: {{provider: {provider}}}\n"
            "steps:\n  - {id: embed, type: embed}\n", home=home)
        run = pipeline.run(records=[{"id": str(i), "text": t} for i, t in enumerate(texts)])
        assert run.status == "succeeded", run.error
        step = {s.step_id: s for s in run.steps()}["embed"]
        assert step.out == len(texts) and step.extra["computed"] == len(texts), step


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def measure(side: str, provider: str, kind: str, n: int, data: Path, cap_mb: float,
            limit_s: float) -> dict[str, float | str]:
    """One configuration in a fresh interpreter, stopped above ``cap_mb`` of RSS or after ``limit_s``."""
    cmd = [sys.executable, __file__, "--child", side, provider, kind, str(n), "--data-dir", str(data)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)
    start = time.monotonic()
    stopped = ""
    while proc.poll() is None:
        if _rss_mb(proc.pid) > cap_mb:
            stopped = f"peak RSS > {cap_mb:.0f} MB, stopped after {time.monotonic() - start:.0f} s"
        elif time.monotonic() - start > limit_s:
            stopped = f"not done after {limit_s:.0f} s (< {n / limit_s:.1f} texts/s), stopped"
        if stopped:
            proc.kill()
            proc.wait()
            return {"stopped": stopped}
        time.sleep(0.1)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed with exit code {proc.returncode}")
    result: dict[str, float | str] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--providers", default="onnx,fastembed")
    ap.add_argument("--data", default="reviews,worst")
    ap.add_argument("--repeat", type=int, default=1, help="alternating rounds; the rate range is reported")
    ap.add_argument("--rss-cap-mb", type=float, default=6000)
    ap.add_argument("--time-limit", type=float, default=1800, help="seconds per configuration")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--child", nargs=4, metavar=("SIDE", "PROVIDER", "DATA", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        side, provider, kind, n = args.child
        print(json.dumps(_child(side, provider, kind, int(n), args.data_dir)))
        return
    print(f"texts: {args.n} per configuration, {args.repeat} round(s), each in a fresh process; "
          f"raw sides stopped above {args.rss_cap_mb:.0f} MB")
    for provider in args.providers.split(","):
        for kind in args.data.split(","):
            results: dict[str, list[dict[str, float | str]]] = {"raw": [], "matcha": []}
            for _ in range(args.repeat):
                for side in ("raw", "matcha"):
                    results[side].append(measure(side, provider, kind, args.n, args.data_dir, args.rss_cap_mb,
                                                 args.time_limit))
            _report(provider, kind, results)


def _report(provider: str, kind: str, results: dict[str, list[dict[str, float | str]]]) -> None:
    raw_name = "fastembed defaults (batch 256)" if provider == "fastembed" else "onnxruntime loop (batch 64)"
    rates: dict[str, list[float]] = {}
    for side, label in (("raw", raw_name), ("matcha", "matcha embed step")):
        done = [r for r in results[side] if "stopped" not in r]
        rates[side] = [float(r["rate"]) for r in done]
        for r in results[side]:
            if "stopped" in r:
                print(f"{provider:9} {kind:7} {label:31}: {r['stopped']}")
        if done:
            rate = "-".join(f"{x:.1f}" for x in sorted({min(rates[side]), max(rates[side])}))
            print(f"{provider:9} {kind:7} {label:31}: {rate:>13} texts/s, "
                  f"peak RSS {max(float(r['peak_mb']) for r in done):6.0f} MB")
    if rates["raw"] and rates["matcha"]:
        low, high = min(rates["matcha"]) / max(rates["raw"]), max(rates["matcha"]) / min(rates["raw"])
        ratio = f"{low:.2f}" if len(rates["raw"]) == len(rates["matcha"]) == 1 else f"{low:.2f}-{high:.2f}"
        print(f"{provider:9} {kind:7} {'ratio matcha/raw':31}: {ratio} (target >= 1; range: worst and best pairing)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
